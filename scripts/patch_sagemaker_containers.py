"""Patch the installed ``sagemaker_containers`` the way the scikit-learn container image does.

``sagemaker_containers/_mapping.py`` (2.8.6.post2, the last release) still subclasses
``collections.Mapping``, which Python 3.10 removed, so the package cannot even be imported. The
SageMaker scikit-learn image fixes it in its Dockerfile with one text replacement,
``collections.Mapping`` -> ``collections.abc.Mapping`` in that file, right after installing its
requirements (aws/sagemaker-scikit-learn-container, ``docker/*/final/Dockerfile.cpu``). This script
applies the same replacement to the contract venv (``make test`` runs it with that venv's python)::

    .venv-contract/bin/python scripts/patch_sagemaker_containers.py

It is idempotent, and it fails loudly if the file no longer looks like the one the image patches
(another toolkit version), rather than leaving the contract test to fail on an import error.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

PACKAGE = "sagemaker_containers"
PATCHED_FILE = "_mapping.py"
_REMOVED_NAME = re.compile(r"\bcollections\.Mapping\b")
_FIXED_NAME = "collections.abc.Mapping"


def mapping_file() -> Path:
    """``_mapping.py`` of the installed package, found without importing it (that import fails)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{PACKAGE} is not installed in {sys.prefix}; install requirements-contract.txt")
    return Path(next(iter(spec.submodule_search_locations))) / PATCHED_FILE


def patch(text: str) -> str:
    """The file's text with every ``collections.Mapping`` replaced, as the image's Dockerfile does."""
    return _REMOVED_NAME.sub(_FIXED_NAME, text)


def main() -> int:
    path = mapping_file()
    text = path.read_text(encoding="utf-8")
    patched = patch(text)
    if patched != text:
        path.write_text(patched, encoding="utf-8")
        print(f"Patched {path}: collections.Mapping -> {_FIXED_NAME}")
    elif _FIXED_NAME in text:
        print(f"{path} is already patched")
    else:
        raise SystemExit(f"{path} mentions neither collections.Mapping nor {_FIXED_NAME}; check the pin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
