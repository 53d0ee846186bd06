"""Expensive setups done once per test session, however many pytest-xdist workers run it.

Each xdist worker is a process of its own, so a session fixture runs once in every worker that
needs it: the contract tests' training job and serving start-ups would run on both cores. This is
pytest-xdist's own recipe ("Making session-scoped fixtures execute only once"): the workers'
temporary folders share one parent for the session, and a file lock per setup lets the first worker
to ask produce the result there while any other asking for the same setup waits, then reads it.
A setup is a JSON document plus the files its producer left in its folder.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock


def session_folder(factory: pytest.TempPathFactory) -> Path:
    """The folder every worker of this session sees (this session's only, never an earlier one's)."""
    base = factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # basetemp/popen-gwN
    folder = root / "shared-setup"
    folder.mkdir(exist_ok=True)
    return folder


def once(folder: Path, name: str, produce: Callable[[Path], Any]) -> Any:
    """The JSON document ``produce(workdir)`` returned, produced in ``folder/name`` by the first
    process of the session to ask, and read back by every other.

    A producer that raises leaves no document, so the next process to ask tries again (and fails
    the same way, with its own traceback).
    """
    workdir = folder / name
    document = folder / f"{name}.json"
    with FileLock(folder / f"{name}.lock"):
        if not document.is_file():
            if workdir.exists():
                shutil.rmtree(workdir)  # what a failed producer left
            workdir.mkdir()
            written = folder / f"{name}.json.partial"
            written.write_text(json.dumps(produce(workdir)), encoding="utf-8")
            written.replace(document)
        return json.loads(document.read_text(encoding="utf-8"))
