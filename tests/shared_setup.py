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
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock


class SetupFailedError(RuntimeError):
    """A shared setup failed earlier in this session; the message holds its traceback."""


def session_folder(factory: pytest.TempPathFactory) -> Path:
    """The folder every worker of this session sees, and no other session.

    A popen worker's basetemp is ``<the session's basetemp>/popen-gwN``; the folder's name also
    carries the session's run id (``PYTEST_XDIST_TESTRUNUID``), so workers whose basetemps share a
    parent with earlier sessions (remote workers) never read an earlier session's results.
    """
    base = factory.getbasetemp()
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    root = base.parent if run_id else base
    folder = root / f"shared-setup-{run_id or 'local'}"
    folder.mkdir(exist_ok=True)
    return folder


def once(folder: Path, name: str, produce: Callable[[Path], Any]) -> Any:
    """The JSON document ``produce(workdir)`` returned, produced in ``folder/name`` by the first
    process of the session to ask, and read back by every other.

    A producer that raises is not run again: every later call, in any worker, raises
    :class:`SetupFailedError` with the producer's traceback, so a broken setup costs one attempt, not one
    per test that needs it.
    """
    workdir = folder / name
    document = folder / f"{name}.json"
    failure = folder / f"{name}.failed"
    with FileLock(folder / f"{name}.lock"):
        if failure.is_file():
            raise SetupFailedError(f"{name} failed earlier in this session:\n{failure.read_text()}")
        if not document.is_file():
            workdir.mkdir()
            try:
                result = produce(workdir)
            except BaseException:
                failure.write_text(traceback.format_exc(), encoding="utf-8")
                raise
            written = folder / f"{name}.json.partial"
            written.write_text(json.dumps(result), encoding="utf-8")
            written.replace(document)
        return json.loads(document.read_text(encoding="utf-8"))
