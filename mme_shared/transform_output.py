"""The batch transform's output format: what the preprocessor writes and ``check_transform`` reads.

One batch transform per split covers every location of a run (see ``mme_constructs/
training_pipeline.py``). So that one location's bad rows cannot fail that shared job, the
preprocessor in ``labelled-transform`` mode answers a request whose rows it rejects with HTTP 200 and
exactly one line, :data:`TRANSFORM_ERROR_MARKER`, a space and the reason; the line lands in that
location's ``.out`` file, where the ``check_transform`` Lambda finds it and fails that location alone.
No transformed row can start like it: those are comma-separated floats.

Standard library only, like all of ``mme_shared`` (the preprocessor's artifact packages it).
"""

from __future__ import annotations

from typing import Final

TRANSFORM_ERROR_MARKER: Final = "#mme-transform-error:"
"""Starts the one line that answers rows rejected in labelled-transform mode:
``#mme-transform-error: <reason>``."""
