"""How long ``make test`` takes against one ``npx cdk synth``, measured in the same run.

Each run times one ``npx cdk synth`` (into a scratch folder, so ``cdk.out/`` is left alone) and
then one ``make test``, on the same machine under the same load, and reports both wall times, their
ratio and the test summary. ``--stress`` keeps ``stress-ng --cpu N`` (N = the machine's cores)
running beside every run, the load the suite must stand without a flaky test.

    python -m benchmarks.suite_timing                 # one run, nothing else running
    python -m benchmarks.suite_timing --stress --runs 3

Exit status 1 when any ``make test`` failed (its output's last lines are printed).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
_SUMMARY: Final = re.compile(r"^=+ (.*\d+ passed.*) in [\d.]+s.*=+$", re.MULTILINE)
_FAILED_SUMMARY: Final = re.compile(r"^=+ (.*\d+ (?:failed|error).*) in [\d.]+s.*=+$", re.MULTILINE)


@dataclass(frozen=True)
class Run:
    synth_seconds: float
    test_seconds: float
    passed: bool
    summary: str

    @property
    def ratio(self) -> float:
        return self.test_seconds / self.synth_seconds


def _environment() -> dict[str, str]:
    return {
        **os.environ,
        "CDK_DISABLE_VERSION_CHECK": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }


def time_synth() -> float:
    """Wall seconds of one ``npx cdk synth`` of the default app (cdk-nag included)."""
    with tempfile.TemporaryDirectory(prefix="mme-synth-") as outdir:
        started = time.monotonic()
        subprocess.run(
            ["npx", "--no-install", "cdk", "synth", "--quiet", "--output", outdir],
            cwd=REPO_ROOT,
            env=_environment(),
            check=True,
            capture_output=True,
        )
        return time.monotonic() - started


def time_make_test() -> tuple[float, bool, str]:
    """Wall seconds of ``make test``, whether it passed, and pytest's summary (or the output's tail)."""
    started = time.monotonic()
    done = subprocess.run(["make", "test"], cwd=REPO_ROOT, env=_environment(), capture_output=True, text=True)
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    found = (_SUMMARY if done.returncode == 0 else _FAILED_SUMMARY).findall(output)
    summary = found[-1] if found else "\n".join(output.splitlines()[-30:])
    return seconds, done.returncode == 0, summary


@contextmanager
def cpu_load(workers: int | None) -> Iterator[None]:
    """``stress-ng --cpu <workers>`` for the duration of the block (no load when ``workers`` is None)."""
    if workers is None:
        yield
        return
    if shutil.which("stress-ng") is None:
        raise SystemExit("--stress needs stress-ng on PATH (Debian/Ubuntu: apt-get install stress-ng).")
    load = subprocess.Popen(["stress-ng", "--cpu", str(workers), "--quiet"])
    try:
        yield
    finally:
        load.terminate()
        load.wait(timeout=30)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="synth + make test runs (default 1)")
    parser.add_argument("--stress", action="store_true", help="run stress-ng --cpu <cores> beside every run")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    cores = os.cpu_count() or 1
    runs: list[Run] = []
    with cpu_load(cores if args.stress else None):
        for number in range(1, args.runs + 1):
            synth = time_synth()
            test, passed, summary = time_make_test()
            runs.append(Run(synth, test, passed, summary))
            print(
                f"run {number}: npx cdk synth {synth:.1f} s, make test {test:.1f} s "
                f"({runs[-1].ratio:.1f} x), {'passed' if passed else 'FAILED'}: {summary}",
                flush=True,
            )
    load = f"stress-ng --cpu {cores} beside it" if args.stress else "nothing else running"
    print(f"\n{cores} cores, {load}")
    print("| run | `npx cdk synth` | `make test` | ratio | result |\n|---|---|---|---|---|")
    for number, done in enumerate(runs, start=1):
        result = done.summary if done.passed else f"FAILED: {done.summary.splitlines()[-1]}"
        times = f"{done.synth_seconds:.1f} s | {done.test_seconds:.1f} s | {done.ratio:.1f} x"
        print(f"| {number} | {times} | {result} |")
    if len(runs) > 1:
        print(f"median ratio {statistics.median(r.ratio for r in runs):.1f} x")
    return 0 if all(r.passed for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
