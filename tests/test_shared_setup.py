"""tests/shared_setup.py: a setup shared by the xdist workers runs once, and a failed one once too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.shared_setup import SetupFailedError, once


def test_a_setup_is_produced_once_and_read_back(tmp_path: Path) -> None:
    calls: list[Path] = []

    def produce(workdir: Path) -> dict[str, str]:
        calls.append(workdir)
        (workdir / "artifact").write_text("made")
        return {"artifact": str(workdir / "artifact")}

    first = once(tmp_path, "setup", produce)
    second = once(tmp_path, "setup", produce)

    assert first == second == {"artifact": str(tmp_path / "setup" / "artifact")}
    assert calls == [tmp_path / "setup"]


def test_a_failed_setup_is_not_run_again(tmp_path: Path) -> None:
    calls: list[Path] = []

    def produce(workdir: Path) -> None:
        calls.append(workdir)
        raise ValueError("the container did not start")

    with pytest.raises(ValueError, match="did not start"):
        once(tmp_path, "setup", produce)
    earlier = r"(?s)setup failed earlier.*ValueError: the container did not start"
    with pytest.raises(SetupFailedError, match=earlier):
        once(tmp_path, "setup", produce)

    assert len(calls) == 1
