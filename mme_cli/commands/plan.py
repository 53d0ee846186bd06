"""``mme plan``: the jobs, API calls, wall time, instance-hours and endpoint instances of a training run of
N locations, modelled from the config and stated assumptions (``mme_cli.planner``); no AWS call."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import typer
from rich.table import Table

from mme_cli import planner
from mme_cli.context import CliContext

DEFAULTS = planner.Assumptions()


def register(
    app: typer.Typer, *, models_app: typer.Typer, experiment_app: typer.Typer, access_app: typer.Typer
) -> None:
    """Add ``plan`` to the top-level app (the groups are not used here)."""
    app.command("plan")(plan)


def _seconds(name: str, default: float | None, what: str) -> object:
    shown = "derived from the data size" if default is None else f"{default:g}"
    return typer.Option(name, min=0.0, help=f"{what} (default: {shown}).", show_default=False)


def plan(
    ctx: typer.Context,
    locations: Annotated[
        int | None,
        typer.Option(
            "--locations",
            "-n",
            min=1,
            help="Number of locations in the run (default: the config's data.locations).",
            show_default=False,
        ),
    ] = None,
    refit: Annotated[
        bool, typer.Option("--refit", help="The run fits a new preprocessor (one more training job).")
    ] = False,
    output: Annotated[
        Literal["table", "json"], typer.Option("--output", "-o", help="Tables for people, or JSON.")
    ] = "table",
    parallel: Annotated[
        int | None,
        typer.Option(
            "--parallel",
            min=1,
            help="Training jobs at a time (default: training.parallel_training_jobs).",
            show_default=False,
        ),
    ] = None,
    keep_alive_seconds: Annotated[
        int | None,
        typer.Option(
            "--keep-alive-seconds",
            min=0,
            max=planner.MAX_KEEP_ALIVE_SECONDS,
            help="Warm pool keep-alive of the training jobs, 0 = none "
            "(default: training.warm_pool_keep_alive_seconds).",
            show_default=False,
        ),
    ] = None,
    training_start_seconds: Annotated[
        float,
        _seconds(
            "--training-start-seconds", DEFAULTS.training_cold_start_seconds, "Training job cold start-up, s"
        ),
    ] = DEFAULTS.training_cold_start_seconds,
    transform_start_seconds: Annotated[
        float,
        _seconds(
            "--transform-start-seconds", DEFAULTS.transform_cold_start_seconds, "Transform job start-up, s"
        ),
    ] = DEFAULTS.transform_cold_start_seconds,
    warm_start_seconds: Annotated[
        float, _seconds("--warm-start-seconds", DEFAULTS.warm_start_seconds, "Start-up on a warm pool hit, s")
    ] = DEFAULTS.warm_start_seconds,
    billed_start_seconds: Annotated[
        float,
        _seconds(
            "--billed-start-seconds", DEFAULTS.billed_start_seconds, "Billed part of a cold start-up, s"
        ),
    ] = DEFAULTS.billed_start_seconds,
    train_seconds: Annotated[
        float | None,
        _seconds("--train-seconds", None, "One location's training job, s, estimated for linear learner"),
    ] = None,
    preprocessor_fit_seconds: Annotated[
        float | None, _seconds("--preprocessor-fit-seconds", None, "The preprocessor job's run, s")
    ] = None,
    transform_rows_per_second: Annotated[
        float,
        _seconds(
            "--transform-rows-per-second", DEFAULTS.transform_rows_per_second, "Transform rows/s per instance"
        ),
    ] = DEFAULTS.transform_rows_per_second,
    transform_object_seconds: Annotated[
        float,
        _seconds(
            "--transform-object-seconds", DEFAULTS.transform_object_seconds, "Transform s per S3 object"
        ),
    ] = DEFAULTS.transform_object_seconds,
    generation_seconds: Annotated[
        float, _seconds("--generation-seconds", DEFAULTS.generation_seconds, "One data-generation Lambda, s")
    ] = DEFAULTS.generation_seconds,
    lambda_seconds: Annotated[
        float, _seconds("--lambda-seconds", DEFAULTS.lambda_step_seconds, "One Lambda step, s")
    ] = DEFAULTS.lambda_step_seconds,
    model_mb: Annotated[
        float, _seconds("--model-mb", DEFAULTS.model_mb, "One model.tar.gz, MB")
    ] = DEFAULTS.model_mb,
    endpoint_baseline_mib: Annotated[
        float,
        _seconds(
            "--endpoint-baseline-mib", DEFAULTS.endpoint_baseline_mib, "Endpoint memory with no model, MiB"
        ),
    ] = DEFAULTS.endpoint_baseline_mib,
) -> None:
    """Model a training run of N locations and the endpoint that serves them, without calling AWS.

    Reports the jobs and API calls per run, the modelled wall time and instance-hours (with warm pools
    when training.warm_pool_keep_alive_seconds or --keep-alive-seconds is above 0), and how many
    endpoint instances keep all N models loaded. Every assumption is printed with its source and can
    be overridden with the option named beside it.
    """
    cli: CliContext = ctx.obj
    workload = planner.Workload.from_config(
        cli.config,
        locations=locations if locations is not None else len(cli.config.data.locations),
        refit=refit,
        parallel_training_jobs=parallel,
        warm_pool_keep_alive_seconds=keep_alive_seconds,
    )
    assumptions = planner.Assumptions(
        training_cold_start_seconds=training_start_seconds,
        transform_cold_start_seconds=transform_start_seconds,
        warm_start_seconds=warm_start_seconds,
        billed_start_seconds=billed_start_seconds,
        train_seconds=train_seconds,
        preprocessor_fit_seconds=preprocessor_fit_seconds,
        transform_rows_per_second=transform_rows_per_second,
        transform_object_seconds=transform_object_seconds,
        generation_seconds=generation_seconds,
        lambda_step_seconds=lambda_seconds,
        model_mb=model_mb,
        endpoint_baseline_mib=endpoint_baseline_mib,
    )
    try:
        result = planner.plan(workload, assumptions)
    except planner.PlanError as error:
        raise typer.BadParameter(f"{error}.") from None
    if output == "json":
        typer.echo(json.dumps(planner.to_json(result), indent=2, sort_keys=True))
        return
    for table in tables(result):
        cli.console.print(table)


def duration(seconds: float) -> str:
    """``5025`` -> ``1 h 23 min 45 s``; whole seconds, deterministic."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h"] if hours else []
    if hours or minutes:
        parts.append(f"{minutes} min")
    parts.append(f"{secs} s")
    return " ".join(parts)


def tables(result: planner.Plan) -> list[Table]:
    """The plan as rich tables: run, time, instance-hours, endpoint, assumptions."""
    w, mapped = result.workload, result.training_map
    run = Table(
        title=f"One {'refit ' if w.refit else ''}training run of {w.locations:,} location(s)",
        show_header=False,
    )
    run.add_column("What")
    run.add_column("Count", justify="right")
    for kind, count in result.jobs.items():
        run.add_row(f"SageMaker {kind}", f"{count:,}")
    for call, count in result.api_calls.items():
        run.add_row(call, f"{count:,}")
    run.add_row("peak training instances", f"{result.peak_training_instances:,}")
    run.add_row("peak warm pool instances (own service quota)", f"{result.peak_warm_pool_instances:,}")

    timeline = Table(title=f"Modelled wall time: {duration(result.wall_seconds)}")
    timeline.add_column("Step")
    timeline.add_column("Wall time", justify="right")
    timeline.add_column("How")
    for phase in result.phases:
        timeline.add_row(phase.name, duration(phase.seconds), phase.detail)
    if result.exceeds_execution_timeout:
        timeline.caption = (
            f"Longer than training.execution_timeout_minutes ({w.execution_timeout_minutes:,} min): the run "
            "would time out; raise it, or training.parallel_training_jobs (and the training instance quota)."
        )

    hours = Table(title="Billed instance-hours")
    hours.add_column("Jobs or instance type")
    hours.add_column("Instance-hours", justify="right")
    for kind, value in result.instance_hours_by_kind.items():
        hours.add_row(kind, f"{value:,.2f}")
    if mapped.warm_pool_idle_seconds:
        hours.add_row("  of which warm pool kept idle", f"{mapped.warm_pool_idle_seconds / 3600:,.2f}")
    for instance_type, value in result.instance_hours_by_type.items():
        hours.add_row(f"[bold]{instance_type}[/bold]", f"[bold]{value:,.2f}[/bold]")

    serving = Table(
        title=f"Endpoint: {w.locations:,} models loaded at {result.loaded_model_mib:,.1f} MiB each "
        f"(the cache never evicts)"
    )
    serving.add_column("Instance type")
    serving.add_column("Memory", justify="right")
    serving.add_column("Models per instance", justify="right")
    serving.add_column("Instances needed", justify="right")
    for fit in [result.endpoint, *result.alternatives]:
        label = fit.instance_type + (" (configured)" if fit is result.endpoint else "")
        needed = "none fits" if fit.instances_needed is None else f"{fit.instances_needed:,}"
        serving.add_row(label, f"{fit.memory_gib:g} GiB", f"{fit.models_per_instance:,}", needed)
    fleet = result.endpoint.instances_needed
    if fleet is not None and w.autoscaling_max_capacity is not None and fleet > w.autoscaling_max_capacity:
        serving.caption = (
            f"{fleet:,} {w.endpoint_instance_type} instances exceed endpoint.autoscaling.max_capacity "
            f"({w.autoscaling_max_capacity}): the cache will evict."
        )

    stated = Table(title="Assumptions (override with the option named)")
    stated.add_column("Option")
    stated.add_column("Value", justify="right")
    stated.add_column("Meaning")
    stated.add_column("Source", overflow="fold")
    for row in planner.assumption_rows(result):
        stated.add_row(*row)
    if not w.calibrated:
        stated.caption = (
            f"The default times and sizes are calibrated on linear learner, not {w.algorithm_title}: "
            "override them with measurements of it (e.g. --train-seconds, --model-mb)."
        )
    return [run, timeline, hours, serving, stated]
