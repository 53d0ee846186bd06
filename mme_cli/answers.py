"""An endpoint's answer, read and shown as the deployed algorithm gives it.

The multi-model container is the deployment's built-in algorithm (the endpoint stack's ``Algorithm``
output, :attr:`mme_cli.deployment.Deployment.algorithm`). Each answers in its own format and Accept
header (:class:`mme_constructs.algorithms.ResponseFormat`), and not every one predicts a price:
Random Cut Forest gives each house an anomaly score. ``mme predict`` and the cache experiment read
answers through here, so both ask with the right Accept header and refuse an unreadable answer with
the same sentence.
"""

from __future__ import annotations

from mme_cli.deployment import CliError
from mme_constructs.algorithms import Algorithm, ResponseUnreadable


def values(algorithm: Algorithm, body: bytes, *, target_model: str, rows: int) -> list[float]:
    """One number per request row from ``body``; CliError naming the model and the expected format."""
    try:
        found = algorithm.response.values(body)
    except ResponseUnreadable as error:
        raise CliError(f"Model {target_model} answered in an unexpected format ({error}).") from None
    if len(found) != rows:
        raise CliError(
            f"Model {target_model} returned {len(found)} {algorithm.prediction}(s) for {rows} row(s)."
        )
    return found


def heading(algorithm: Algorithm) -> str:
    """What one number is: "Price" or "Anomaly score"."""
    return algorithm.prediction.capitalize()


def shown(algorithm: Algorithm, value: float) -> str:
    """A price in dollars and cents; an anomaly score (no unit) to four decimals."""
    if algorithm.prediction == "price":
        return f"${value:,.2f}"
    return f"{value:,.4f}"
