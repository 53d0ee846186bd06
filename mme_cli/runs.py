"""Training runs as the CLI starts, follows and reports them: one copy for ``mme train`` and ``mme deploy``.

The execution input (inline locations, or a manifest under ``location-manifests/`` when too large,
plus ``"refit": true``), the start, the wait with per-location progress from the Map Runs, and the
summary table with what the run means for the served preprocessor generation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import typer
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
from rich.markup import escape
from rich.table import Table

from mme_cli.context import CliContext
from mme_cli.deployment import CliError
from mme_shared import s3_layout
from mme_shared.generation import GenerationRef
from mme_shared.run_summary import NotARunSummary, RunOutcome, read_run_outcome

INLINE_INPUT_MAX_BYTES: Final = 200_000
"""Step Functions accepts 256 KiB of execution input; beyond this the locations go in a manifest."""
SHOWN_CAUSE_CHARS: Final = 300


@dataclass(frozen=True)
class Clock:
    """Time as the wait loops see it (replaced by a fake in the tests)."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    utcnow: Callable[[], datetime] = lambda: datetime.now(UTC)


def execution_input(
    s3: Any,
    bucket: str,
    run_id: str,
    locations: Sequence[str],
    say: Callable[[str], None],
    *,
    refit: bool = False,
) -> str:
    """The locations inline, or (too large for that) a manifest uploaded under location-manifests/;
    with ``refit`` the input also asks for a new preprocessor generation."""
    options = {"refit": True} if refit else {}
    inline = json.dumps({"locations": list(locations), **options}, separators=(",", ":"))
    if len(inline.encode("utf-8")) <= INLINE_INPUT_MAX_BYTES:
        return inline
    key = f"{s3_layout.LOCATION_MANIFESTS_PREFIX}{run_id}.json"
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(list(locations), separators=(",", ":")).encode("utf-8"),
        ContentType="application/json",
    )
    say(f"{len(locations)} locations are too many to pass inline; uploaded {s3_layout.s3_uri(bucket, key)}")
    return json.dumps({"locations_manifest_key": key, **options})


def start_run(stepfunctions: Any, state_machine_arn: str, name: str, payload: str, *, if_taken: str) -> str:
    """StartExecution named ``name``; CliError ending in ``if_taken`` when the name was used before
    (execution names cannot be reused). Returns the execution's ARN."""
    try:
        return str(
            stepfunctions.start_execution(stateMachineArn=state_machine_arn, name=name, input=payload)[
                "executionArn"
            ]
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
            raise CliError(f"A training run named {name} already exists: {if_taken}.") from None
        raise


def running_run(stepfunctions: Any, state_machine_arn: str) -> str | None:
    """The ARN of a training run that is still going, if any (the newest)."""
    executions = stepfunctions.list_executions(
        stateMachineArn=state_machine_arn, statusFilter="RUNNING", maxResults=1
    )["executions"]
    return str(executions[0]["executionArn"]) if executions else None


RUN_FAILURES: Final = {
    "IncompleteGeneration": (
        "the refit's new preprocessor generation is incomplete, because at least one location failed to "
        "train on it; it will not be served (the endpoint keeps its generation): fix the failed "
        "locations and run `mme train --refit` again"
    ),
    "NothingPromoted": (
        "no location was trained and promoted, so nothing that the endpoint serves changed: see each "
        "location's failure in the run summary"
    ),
}
"""Why the training state machine fails a run on purpose, by its error name, in plain words."""


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


MAP_STAGES: Final = {"GenerateData": "data generated", "TrainLocations": "locations trained or failed"}
"""The training state machine's two Distributed Maps, by state name, as progress is shown."""


def map_progress(stepfunctions: Any, execution_arn: str) -> str:
    """Per-location progress from the run's Map Runs, e.g. ``locations trained or failed 3/10``.

    Each Map Run's ARN names its Map state (``mapRun:<state machine>/<state>:<id>``); its item
    counts say how many locations are done. Empty while no Map has started (or if not allowed).
    """
    try:
        runs = stepfunctions.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
        parts = []
        for run in runs:
            arn = str(run["mapRunArn"])
            state = arn.split(":mapRun:", 1)[-1].split("/", 1)[-1].split(":", 1)[0]
            counts = stepfunctions.describe_map_run(mapRunArn=arn).get("itemCounts", {})
            failed = sum(int(counts.get(key, 0)) for key in ("failed", "timedOut", "aborted"))
            done = int(counts.get("succeeded", 0)) + failed
            text = f"{MAP_STAGES.get(state, state)} {done}/{int(counts.get('total', 0))}"
            parts.append(text + (f" ({failed} failed)" if failed else ""))
    except (ClientError, BotoCoreError):  # progress is best effort: never stop the wait for it
        return ""
    return ", ".join(parts)


def wait_for_run(
    cli: CliContext,
    stepfunctions: Any,
    arn: str,
    *,
    timeout_seconds: float,
    poll: float,
    clock: Clock,
    resume_with: str | None = None,
) -> dict[str, Any]:
    """Poll DescribeExecution under a rich status line until the run leaves RUNNING.

    ``resume_with`` is the command that waits for the same run again (``mme deploy`` does); without
    it, the messages say how to follow the run by hand.
    """
    name = arn.rsplit(":", 1)[-1]
    follow = (
        f"run `{resume_with}` again to keep waiting for it (it starts no second run)"
        if resume_with
        else f"follow it with `aws stepfunctions describe-execution --execution-arn {arn}`"
    )
    started = clock.monotonic()
    try:
        with cli.console.status(f"Training run {name}: starting") as status:
            while True:
                description: dict[str, Any] = stepfunctions.describe_execution(executionArn=arn)
                elapsed = clock.monotonic() - started
                state = str(description["status"])
                if state != "RUNNING":
                    cli.console.print(
                        f"Training run {name}: {state} after {_duration(elapsed)}", soft_wrap=True
                    )
                    return description
                progress = map_progress(stepfunctions, arn)
                status.update(
                    f"Training run {name}: RUNNING, {_duration(elapsed)} elapsed"
                    + (f"; {progress}" if progress else "")
                )
                if elapsed >= timeout_seconds:
                    raise CliError(
                        f"Training run {name} is still running after {_duration(elapsed)}; it goes on in "
                        f"the background: {follow}."
                    )
                clock.sleep(min(poll, max(timeout_seconds - elapsed, 1.0)))
    except KeyboardInterrupt:
        cli.errors.print(
            f"Interrupted; training run {name} goes on in the background: {follow}.", soft_wrap=True
        )
        raise typer.Exit(130) from None


def report_run(
    cli: CliContext,
    description: Mapping[str, Any],
    bucket: str,
    serving: GenerationRef | None,
    *,
    fail_on_failed_locations: bool = True,
) -> RunOutcome:
    """Print the run's summary as a table; CliError when the run failed, or (unless told otherwise)
    any location did. Returns the outcome."""
    try:
        outcome = read_run_outcome(description)
    except NotARunSummary as error:
        raise CliError(str(error)) from None
    name, arn, state = outcome.name, outcome.arn, outcome.status
    if outcome.failed:
        error_name = str(description.get("error") or "")
        summary_uri = s3_layout.s3_uri(bucket, outcome.summary_key)
        if error_name in RUN_FAILURES:
            raise CliError(
                f"Training run {name} failed with {error_name}: {RUN_FAILURES[error_name]}; the summary is "
                f"{summary_uri}."
            )
        detail = short(outcome.detail) if outcome.detail else ""
        raise CliError(
            f"Training run {name} ended {state}{f' ({detail})' if detail else ''}; see "
            f"`aws stepfunctions get-execution-history --execution-arn {arn}`."
        )
    summary, succeeded_count, failed_count = outcome.summary, outcome.succeeded_count, outcome.failed_count
    summary_uri = s3_layout.s3_uri(bucket, outcome.summary_key)
    table = Table(title=f"Training run {name}: {succeeded_count} trained, {failed_count} failed")
    for column in ("Location", "Result", "Training job", "Model version", "Validation / error"):
        table.add_column(column)
    for entry in _entries(summary, "succeeded"):
        metrics = entry.get("validation_metrics") or {}
        shown = (
            ", ".join(f"{k} = {_number(v)}" for k, v in sorted(metrics.items()))
            if isinstance(metrics, dict)
            else ""
        )
        table.add_row(
            escape(str(entry.get("location", "?"))),
            "[green]trained[/green]",
            escape(str(entry.get("training_job_name") or "")),
            escape(str(entry.get("model_version") or "")),
            escape(shown or "-"),
        )
    for entry in _entries(summary, "failed"):
        reason = ": ".join(short(str(entry[k])) for k in ("error", "cause") if entry.get(k))
        table.add_row(
            escape(str(entry.get("location", "?"))),
            f"[red]failed at {escape(str(entry.get('failed_step') or 'unknown step'))}[/red]",
            "",
            "",
            escape(reason or "-"),
        )
    cli.console.print(table)
    for line in _generation_lines(outcome, serving):
        cli.console.print(line, soft_wrap=True, markup=False, highlight=False)
    if summary.get("truncated"):
        cli.console.print(f"The table is truncated; every location is in {summary_uri}.", soft_wrap=True)
    else:
        cli.console.print(f"Full summary: {summary_uri}", soft_wrap=True)
    if failed_count and fail_on_failed_locations:
        raise CliError(
            f"{failed_count} of {succeeded_count + failed_count} location(s) failed in training run {name}; "
            f"see the table above and {summary_uri}."
        )
    return outcome


def _generation_lines(outcome: RunOutcome, serving: GenerationRef | None) -> list[str]:
    """Which generation the run trained into, whether it was a refit, and what serving it takes."""
    generation = outcome.generation
    if generation is None:
        return ["The run's summary names no preprocessor generation (a state machine of an older version?)."]
    lines = [
        f"Generation: {generation} (refit: a new preprocessor was fitted)"
        if outcome.refit
        else f"Generation: {generation} (no refit: trained on the generation's existing preprocessor)"
    ]
    served = None if serving is None else serving.generation
    if outcome.refit and outcome.generation_complete:
        if served == generation:
            lines.append(f"Generation {generation} is complete and already served.")
        else:
            lines.append(
                f"Generation {generation} is complete; the endpoint still serves {served or 'nothing yet'}: "
                "run `make deploy` to switch every location at once."
            )
    elif outcome.refit:
        lines.append(f"Generation {generation} is not complete: it will not be served.")
    elif served is not None and served != generation:
        lines.append(f"The endpoint serves {served}: these models are served once {generation} is.")
    return lines


def _entries(summary: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    entries = summary.get(key)
    return [e for e in entries if isinstance(e, Mapping)] if isinstance(entries, list) else []


def short(text: str) -> str:
    """``text`` cut to SHOWN_CAUSE_CHARS characters for a table cell or a message."""
    return text if len(text) <= SHOWN_CAUSE_CHARS else text[: SHOWN_CAUSE_CHARS - 1] + "…"


def _number(value: object) -> str:
    return f"{value:,.4g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


# --------------------------------------------------------------------------------------------------
# mme predict
