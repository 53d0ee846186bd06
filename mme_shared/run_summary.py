"""Read a finished training execution: its status and, when it succeeded, the run summary.

``make deploy`` and ``mme train --wait`` both report a run from its DescribeExecution result; this
is the one place that knows the shape of that result and of the summary the state machine returns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from mme_shared import s3_layout

FAILED_STATUSES: Final = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


class NotARunSummary(ValueError):  # noqa: N818 (named for what the caller is told)
    """The execution succeeded but its output is not the training state machine's summary."""


@dataclass(frozen=True)
class RunOutcome:
    """A finished execution: ``failed`` (with ``detail``) or a summary with its counts."""

    name: str
    arn: str
    status: str
    detail: str
    """``error: cause`` of a failed execution, empty otherwise."""
    summary: Mapping[str, Any]
    succeeded_count: int
    failed_count: int
    summary_key: str
    generation: str | None = None
    """The preprocessor generation the run trained into (None for a failed execution)."""
    refit: bool = False
    """Whether the run fitted that generation (a refit) rather than reusing the served one."""
    generation_complete: bool = False
    """A refit whose every location was promoted: the generation can now be served (make deploy)."""

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


def read_run_outcome(description: Mapping[str, Any]) -> RunOutcome:
    """Interpret a DescribeExecution result; NotARunSummary if a succeeded run has no summary."""
    arn = str(description.get("executionArn", ""))
    name = arn.rsplit(":", 1)[-1]
    status = str(description["status"])
    if status in FAILED_STATUSES:
        detail = ": ".join(str(description[k]) for k in ("error", "cause") if description.get(k))
        return RunOutcome(name, arn, status, detail, {}, 0, 0, s3_layout.run_summary_key(name))
    try:
        summary = json.loads(description.get("output") or "")
        succeeded, failed = int(summary["succeeded_count"]), int(summary["failed_count"])
    except (ValueError, TypeError, KeyError):
        raise NotARunSummary(
            f"Training run {name} ended {status} but its output is not a run summary (succeeded_count, "
            "failed_count); the state machine may be from another version of this project."
        ) from None
    key = str(summary.get("summary_key") or s3_layout.run_summary_key(name))
    generation = summary.get("generation")
    return RunOutcome(
        name,
        arn,
        status,
        "",
        summary,
        succeeded,
        failed,
        key,
        generation=generation if isinstance(generation, str) else None,
        refit=summary.get("refit") is True,
        generation_complete=summary.get("generation_complete") is True,
    )
