"""The per-location algorithm, as configuration: what differs between MME-capable built-ins.

Linear learner is the only entry today. XGBoost and k-NN can also serve from a multi-model
endpoint; adding one means: its image in the region table (``scripts/refresh_image_uris.py``), an
entry here, its hyperparameter model in ``project_config/model.py``, and its name in
``training.algorithm``'s allowed values. The training pipeline and the endpoint read everything
algorithm-specific from the ``Algorithm`` they are given, so nothing else has to change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from mme_constructs.image_table import ImageUris


@dataclass(frozen=True)
class Algorithm:
    """One built-in algorithm trained per location and served in MultiModel mode."""

    name: str
    """The value of ``training.algorithm``."""
    image: Callable[[ImageUris], str]
    """Picks this algorithm's image out of the region's image URIs (literal or FindInMap token)."""
    content_type: str
    """Content type of the training/validation channels: label-first CSV from the preprocessor."""


ALGORITHMS: Final[dict[str, Algorithm]] = {
    "linear-learner": Algorithm(
        name="linear-learner",
        image=lambda images: images.linear_learner,
        content_type="text/csv;label_size=1",
    ),
}
