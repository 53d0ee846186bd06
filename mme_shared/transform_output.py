"""The batch transform's modes and output: what the preprocessor writes and ``check_transform`` reads.

One batch transform per split covers every location of a run (see ``mme_constructs/
training_jobs.py``). The transform job tells the preprocessor what to write through
:data:`PREPROCESSOR_MODE_ENV`: :data:`LABELLED_TRANSFORM_MODE` (PRICE first, then the features, for
a label-first CSV training channel) or :data:`UNLABELLED_TRANSFORM_MODE` (the features alone, for
an algorithm that trains without a label, ``text/csv;label_size=0``). Both read the same raw files,
the features then PRICE.

So that one location's bad rows cannot fail that shared job, the preprocessor in either transform
mode answers a request whose rows it rejects with HTTP 200 and exactly one line,
:data:`TRANSFORM_ERROR_MARKER`, a space and the reason; the line lands in that location's ``.out``
file, where the ``check_transform`` Lambda finds it and fails that location alone. No transformed
row can start like it: those are comma-separated floats.

Standard library only, like all of ``mme_shared`` (the preprocessor's artifact packages it).
"""

from __future__ import annotations

from typing import Final

PREPROCESSOR_MODE_ENV: Final = "MME_PREPROCESSOR_MODE"
"""The environment variable of the preprocessor's model or transform job that names its mode."""
LABELLED_TRANSFORM_MODE: Final = "labelled-transform"
"""Raw rows (the features then PRICE) in; PRICE first, then the transformed features, out."""
UNLABELLED_TRANSFORM_MODE: Final = "unlabelled-transform"
"""Raw rows (the features then PRICE, PRICE validated) in; the transformed features alone out."""

TRANSFORM_ERROR_MARKER: Final = "#mme-transform-error:"
"""Starts the one line that answers rows rejected in a transform mode:
``#mme-transform-error: <reason>``."""
