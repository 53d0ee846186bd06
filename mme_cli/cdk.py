"""Running the CDK CLI for ``mme deploy`` and ``mme destroy``: one runner, one way to build arguments.

The CDK CLI is the one pinned in ``package.json`` (``npx --no-install cdk``), run in the repository
root so that it finds ``cdk.json`` and ``app.py``, with its output streamed to the terminal. It gets
the same region as every other AWS call of the command (``AWS_REGION`` and ``AWS_DEFAULT_REGION``
set for it), the profile (``--profile``) and the config (``-c config=<absolute path>``), so the
stacks it deploys or destroys are exactly the ones the command reads.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from mme_cli.deployment import CliError

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
CDK_COMMAND: Final = ("npx", "--no-install", "cdk")

Printer = Callable[[str], None]


class CdkRunner(Protocol):
    """Runs the CDK CLI with these arguments (after ``npx --no-install cdk``); returns its exit code."""

    def __call__(self, args: Sequence[str]) -> int: ...


class CdkFailed(CliError):  # noqa: N818 (says what happened, like the handlers' errors)
    """A ``cdk`` command failed; ``exit_code`` is what the command should exit with."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class SubprocessCdk:
    """The real runner: the CDK CLI pinned in package.json, in the repository root, output streamed."""

    region: str
    command: Sequence[str] = CDK_COMMAND

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        env = dict(base)
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = self.region
        env.setdefault("CDK_DISABLE_VERSION_CHECK", "1")
        env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
        return env

    def __call__(self, args: Sequence[str]) -> int:
        try:
            completed = subprocess.run(  # noqa: S603  (fixed command; arguments built by this module)
                [*self.command, *args], cwd=REPO_ROOT, env=self.environment(os.environ), check=False
            )
        except FileNotFoundError:
            raise CliError(
                f"{self.command[0]} was not found: install Node.js 20 or newer and run `make setup`."
            ) from None
        return completed.returncode


def cdk_args(
    command: str,
    stacks: Sequence[str],
    *,
    config_path: Path | None,
    profile: str | None,
    context: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """``<command> <stacks or --all> [extra...] [-c config=FILE] [-c key=value...] [--profile P]``."""
    args = [command, *(stacks or ["--all"]), *extra]
    if config_path is not None:
        args += ["-c", f"config={Path(config_path).resolve()}"]
    for key, value in (context or {}).items():
        args += ["-c", f"{key}={value}"]
    if profile is not None:
        args += ["--profile", profile]
    return args


def run_cdk(cdk: CdkRunner, args: Sequence[str], say: Printer, *, retry_with: str) -> None:
    """Run one ``cdk`` command; raise CdkFailed naming it (and ``retry_with``) when it fails."""
    shown = " ".join(args)
    say(f"$ npx cdk {shown}")
    code = cdk(args)
    if code != 0:
        raise CdkFailed(
            f"`cdk {shown}` failed with exit code {code}; fix the error it printed above and run "
            f"`{retry_with}` again (finished steps are skipped or quick the second time).",
            exit_code=code if code > 0 else 1,  # a negative code means a signal ended the CLI
        )
