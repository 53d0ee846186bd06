"""``mme experiment cache`` (the walkthrough's cache experiment) and ``mme access check`` (tenant matrix).

Both invoke what clients invoke: the served preprocessor generation (``preprocessor/serving.json``;
before anything is served, the newest complete one) and its locations' pointers. The experiment asks
as ``mme predict`` does, with the deployed algorithm's Accept header, and reads every answer
(:mod:`mme_cli.answers`): a call counts only if the model really answered.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final

import boto3  # type: ignore[import-untyped]
import typer
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mme_cli import answers, generations, output
from mme_cli import cache_experiment as ce
from mme_cli.context import CliContext
from mme_cli.deployment import CliError
from mme_cli.output import Decision, Observed
from mme_shared import s3_layout
from mme_shared.model_pointer import ModelPointer, ModelPointerError
from mme_shared.stack_names import TENANT_ABAC_ROLE_ARN, tenant_role_output_key
from mme_shared.tenant_abac import session_tags

# Seams for tests: the clock (latency and --max-minutes), the wall clock, sleeping, and the runtime
# client built from a tenant's assumed credentials.
monotonic: Callable[[], float] = time.perf_counter
wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731
sleep: Callable[[float], None] = time.sleep

DELETE_BATCH: Final = 1000
PROBE_NAME: Final = "access-check-probe"


def _obj(ctx: typer.Context) -> CliContext:
    found = ctx.find_object(CliContext)
    if found is None:  # pragma: no cover - the app callback always sets it
        raise CliError("internal error: no CLI context")
    return found


def read_pointer(s3: Any, bucket: str, generation: str, location: str) -> ModelPointer | None:
    """The location's current-model pointer in ``generation``, or None when it has none yet."""
    try:
        body = s3.get_object(Bucket=bucket, Key=s3_layout.current_pointer_key(generation, location))[
            "Body"
        ].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            return None
        raise
    try:
        pointer = ModelPointer.from_json(body)
    except ModelPointerError as error:
        raise CliError(f"The model pointer of {location} in {generation} is invalid: {error}.") from None
    if pointer.preprocessor_generation != generation or pointer.location != location:
        raise CliError(
            f"The model pointer of {location} in {generation} is invalid: it names "
            f"{pointer.location} in preprocessor generation {pointer.preprocessor_generation}."
        )
    return pointer


# ================================================================================================
# mme experiment cache
# ================================================================================================


def delete_keys(s3: Any, bucket: str, keys: Sequence[str]) -> int:
    """Delete ``keys`` in batches; return how many S3 reported deleted. Raise if any failed."""
    deleted = 0
    for start in range(0, len(keys), DELETE_BATCH):
        batch = keys[start : start + DELETE_BATCH]
        response = s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": False}
        )
        deleted += len(response.get("Deleted", []))
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            folder = str(first.get("Key", "")).rsplit("/", 1)[0]
            raise CliError(
                f"Could not delete {len(errors)} experiment copies (first: {first.get('Key')}: "
                f"{first.get('Code')}); delete them with `aws s3 rm --recursive s3://{bucket}/{folder}/`."
            )
    return deleted


def fetch_metrics(
    cloudwatch: Any, *, endpoint_name: str, variant_name: str, start: datetime, end: datetime
) -> dict[str, ce.MetricSeries]:
    """Every series of the experiment over [start, end), all pages."""
    results: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "MetricDataQueries": ce.metric_queries(endpoint_name, variant_name),
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    }
    while True:
        response = cloudwatch.get_metric_data(**request)
        results.extend(response.get("MetricDataResults", []))
        token = response.get("NextToken")
        if not token:
            break
        request["NextToken"] = token
    return ce.collect_series(results)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def run_cache_experiment(
    ctx: CliContext,
    *,
    source_location: str,
    copies: int,
    out: Path,
    keep: bool,
    max_minutes: float,
    metrics_delay: float,
    output_format: output.OutputFormat = "table",
) -> output.CacheExperimentDocument:
    """Copy, invoke, measure, chart; the copies are deleted in ``finally`` unless ``keep``.

    With JSON output the report is the only thing on stdout; progress and messages go to stderr.
    """
    if source_location not in ctx.config.data.locations:
        raise CliError(
            f"Unknown location {source_location!r}: the config has {', '.join(ctx.config.data.locations)}."
        )
    deployment = ctx.deployment
    bucket, endpoint, variant = deployment.bucket, deployment.endpoint_name, deployment.variant_name
    algorithm = deployment.algorithm
    s3 = ctx.client("s3")
    generation = generations.served_generation(s3, bucket).generation
    pointer = read_pointer(s3, bucket, generation, source_location)
    if pointer is None:
        raise CliError(
            f"{source_location} has no current model in the served generation {generation} (no "
            f"{s3_layout.current_pointer_key(generation, source_location)}): run `mme train` first."
        )
    runtime = ctx.client("sagemaker-runtime")
    cloudwatch = ctx.client("cloudwatch")
    run_id = ce.make_run_id(wall_clock(), secrets.token_hex(3))
    plan = ce.invocation_plan(copies)
    created: list[str] = []
    results: list[ce.CallResult] = []
    stopped_early: str | None = None
    timings: dict[str, float] = {}
    began = monotonic()
    started_at = wall_clock()
    deadline = began + max_minutes * 60
    console = ctx.errors if output_format == "json" else ctx.console
    console.print(
        f"Run [bold]{run_id}[/]: {copies} copies of {pointer.target_model} under "
        f"s3://{bucket}/{s3_layout.generation_models_prefix(generation)}{ce.experiment_folder(run_id)}"
    )
    try:
        with _progress(console) as progress:
            task = progress.add_task("Copying the model", total=copies)
            for index in range(copies):
                key = ce.copy_key(generation, run_id, index)
                created.append(key)  # before the copy: a Ctrl-C inside copy_object still cleans it up
                s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": pointer.key})
                progress.advance(task)
            timings["copy"] = monotonic() - began
            invoking = monotonic()
            task = progress.add_task("Invoking (3 passes)", total=len(plan))
            for call in plan:
                if monotonic() > deadline:
                    stopped_early = (
                        f"--max-minutes {max_minutes:g} exceeded after {len(results)} of {len(plan)} calls"
                    )
                    break
                called_at = wall_clock()
                before = monotonic()
                target = ce.copy_target_model(run_id, call.copy)
                try:
                    body = runtime.invoke_endpoint(
                        EndpointName=endpoint,
                        TargetModel=target,
                        ContentType="text/csv",
                        Accept=algorithm.response.accept,
                        Body=ce.FEATURE_ROW.encode(),
                    )["Body"].read()
                except ClientError as error:
                    details = error.response.get("Error", {})
                    raise CliError(
                        f"Invoking {target} on {endpoint} failed after {len(results)} calls: "
                        f"{details.get('Code', 'Error')}: {details.get('Message', error)}."
                    ) from None
                answers.values(algorithm, body, target_model=target, rows=1)
                results.append(
                    ce.CallResult(call=call, latency_ms=(monotonic() - before) * 1000, started_at=called_at)
                )
                progress.advance(task)
            timings["invoke"] = monotonic() - invoking
        finished_at = wall_clock()
        if stopped_early:
            console.print(f"[yellow]Stopped early:[/] {stopped_early}.")
        if metrics_delay > 0:
            console.print(f"Waiting {metrics_delay:g} s for CloudWatch to publish the last minutes...")
            sleep(metrics_delay)
        start, end = ce.metric_window(started_at, finished_at)
        series = fetch_metrics(cloudwatch, endpoint_name=endpoint, variant_name=variant, start=start, end=end)
    finally:
        if created and not keep:
            console.print(f"Deleting the {len(created)} experiment copies...")
            delete_keys(s3, bucket, created)
    timings["total"] = monotonic() - began
    report = ce.build_report(
        run_id=run_id,
        endpoint_name=endpoint,
        variant_name=variant,
        source_location=source_location,
        source_key=pointer.key,
        copies=copies,
        planned_calls=len(plan),
        results=results,
        series=series,
        started_at=started_at,
        finished_at=finished_at,
        timings=timings,
        stopped_early=stopped_early,
        kept_copies=keep,
        generation=generation,
        algorithm=algorithm.name,
    )
    out.mkdir(parents=True, exist_ok=True)
    figure = ce.build_chart(series, title=f"Cache experiment {run_id}: {copies} copies on {endpoint}")
    chart = ce.save_chart(figure, out / "cache-experiment.png")
    report_path = out / "cache-experiment.json"
    report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if output_format == "json":
        output.emit(report)
        console.print(f"Chart: {chart}\nReport: {report_path}", markup=False, highlight=False, soft_wrap=True)
    else:
        _print_summary(ctx, report, chart, report_path)
    return report


def _print_summary(
    ctx: CliContext, report: output.CacheExperimentDocument, chart: Path, report_path: Path
) -> None:
    table = Table(title="Latency (ms, client side)")
    for column in ("calls", "count", "p50", "p90", "p99", "max"):
        table.add_column(column, justify="right" if column != "calls" else "left")
    for name in ("cold", "warm"):
        stats = report["latency_ms"][name]
        table.add_row(
            name,
            *("-" if stats[k] is None else f"{stats[k]:g}" for k in ("count", "p50", "p90", "p99", "max")),
        )
    ctx.console.print(table)
    peak = report["peak_models_loaded"]
    ctx.console.print(f"Peak models loaded: {'no data yet' if peak is None else f'{peak:g}'}")
    if report["copies_kept"]:
        ctx.console.print(
            f"Copies kept under models/{report['generation']}/{ce.experiment_folder(report['run_id'])} "
            "(--keep): delete them later."
        )
    ctx.console.print(f"Chart: {chart}\nReport: {report_path}")


# ================================================================================================
# mme access check
# ================================================================================================


def iam_like(value: str, pattern: str) -> bool:
    """IAM ``StringLike``: case-sensitive, ``*`` any run of characters (``/`` included), ``?`` one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def expected_decision(target_model: str | None, patterns: Sequence[str]) -> Decision:
    """What the tenant policy decides: the two guard denies first, then the StringLike allow."""
    if not target_model:
        return "deny"  # DenyWithoutTargetModel
    if iam_like(target_model, "*..*"):
        return "deny"  # DenyPathTraversal
    return "allow" if any(iam_like(target_model, p) for p in patterns) else "deny"


def probe_for(pattern: str) -> str:
    """A concrete TargetModel matching ``pattern``: ``*`` becomes a probe name, ``?`` one letter."""
    return pattern.replace("*", PROBE_NAME).replace("?", "x")


def effective_patterns(ctx: CliContext, tenant: str) -> list[str]:
    tenants = ctx.config.tenants
    own = [f"{tenant}/*"] if tenants.mode == "abac" else list(tenants.tenants[tenant].model_patterns)
    return [*own, *tenants.shared_model_patterns]


@dataclass(frozen=True)
class Probe:
    target_model: str
    source: str


def default_probes(ctx: CliContext, tenant: str, s3: Any, bucket: str) -> list[Probe]:
    """Every location's current model (served generation), the tenant's pattern probes, a traversal and a
    shared probe."""
    tenants = ctx.config.tenants
    probes: list[Probe] = []
    generation = generations.served_generation(s3, bucket).generation
    for location in ctx.config.data.locations:
        pointer = read_pointer(s3, bucket, generation, location)
        if pointer is not None:
            probes.append(Probe(pointer.target_model, f"location {location}"))
    own = [f"{tenant}/*"] if tenants.mode == "abac" else tenants.tenants[tenant].model_patterns
    for pattern in own:
        probes.append(Probe(probe_for(pattern), f"tenant pattern {pattern}"))
    probes.append(Probe(f"{tenant}/../{PROBE_NAME}.tar.gz", "path traversal"))
    if tenants.shared_model_patterns:
        pattern = tenants.shared_model_patterns[0]
        probes.append(Probe(probe_for(pattern), f"shared pattern {pattern}"))
    unique: dict[str, Probe] = {}
    for probe in probes:
        unique.setdefault(probe.target_model, probe)
    return list(unique.values())


def role_for(ctx: CliContext, tenant: str) -> str:
    roles = ctx.deployment.tenant_roles
    key = TENANT_ABAC_ROLE_ARN.key if ctx.config.tenants.mode == "abac" else tenant_role_output_key(tenant)
    arn = roles.get(key)
    if arn is None:
        raise CliError(
            f"No stack output {key} for tenant {tenant}: deploy the tenant stacks with this config."
        )
    return arn


def assume_tenant_role(ctx: CliContext, tenant: str, role_arn: str) -> dict[str, Any]:
    request: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": f"mme-access-check-{tenant}"[:64]}
    if ctx.config.tenants.mode == "abac":
        request["Tags"] = session_tags(tenant)
    try:
        credentials: dict[str, Any] = ctx.client("sts").assume_role(**request)["Credentials"]
    except ClientError as error:
        details = error.response.get("Error", {})
        raise CliError(
            f"Could not assume {role_arn} for tenant {tenant}: {details.get('Code', 'Error')}: "
            f"{details.get('Message', error)} (is your principal one of the tenant's trusted principals?)."
        ) from None
    return credentials


def runtime_client(ctx: CliContext, credentials: dict[str, Any]) -> Any:
    """A sagemaker-runtime client acting as the tenant (tests replace this)."""
    session = boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=ctx.session.region_name,
    )
    return session.client("sagemaker-runtime")


def observe(runtime: Any, endpoint: str, target_model: str) -> tuple[Observed, str]:
    try:
        runtime.invoke_endpoint(
            EndpointName=endpoint,
            TargetModel=target_model,
            ContentType="text/csv",
            Body=ce.FEATURE_ROW.encode(),
        )["Body"].read()
    except ClientError as error:
        details = error.response.get("Error", {})
        code = str(details.get("Code", "Error"))
        if code in {"AccessDeniedException", "AccessDenied"}:
            return "denied", code
        return "error", f"{code}: {details.get('Message', '')}".strip()
    return "allowed", ""


def matches(expected: Decision, observed: Observed) -> bool:
    """IAM decides before the model is looked up: any non-AccessDenied error means IAM allowed."""
    return (observed == "denied") == (expected == "deny")


def access_check(
    ctx: CliContext, *, tenant: str, models: list[str] | None, output_format: output.OutputFormat = "table"
) -> bool:
    """Invoke each probe as the tenant and compare with the configured patterns; True if all match."""
    tenants = ctx.config.tenants
    if tenant not in tenants.tenants:
        configured = ", ".join(sorted(tenants.tenants)) or "none (add them under tenants.tenants)"
        raise CliError(f"Unknown tenant {tenant!r}: the configured tenants are {configured}.")
    deployment = ctx.deployment
    endpoint = deployment.endpoint_name
    role_arn = role_for(ctx, tenant)
    if models:
        probes = [Probe(m, "--models") for m in models]
    else:
        probes = default_probes(ctx, tenant, ctx.client("s3"), deployment.bucket)
    credentials = assume_tenant_role(ctx, tenant, role_arn)
    runtime = runtime_client(ctx, credentials)
    patterns = effective_patterns(ctx, tenant)
    results: list[output.AccessProbe] = []
    for probe in probes:
        expected = expected_decision(probe.target_model, patterns)
        observed, detail = observe(runtime, endpoint, probe.target_model)
        results.append(
            output.AccessProbe(
                target_model=probe.target_model,
                source=probe.source,
                expected=expected,
                observed=observed,
                detail=detail or None,
                matches=matches(expected, observed),
            )
        )
    mismatches = sum(not result["matches"] for result in results)
    if output_format == "json":
        output.emit(
            output.AccessCheckDocument(
                schema=output.ACCESS_CHECK,
                tenant=tenant,
                mode=tenants.mode,
                role_arn=role_arn,
                endpoint_name=endpoint,
                patterns=patterns,
                probes=results,
                mismatches=mismatches,
                all_match=mismatches == 0,
            )
        )
        return mismatches == 0
    table = Table(title=f"Tenant {tenant} ({tenants.mode} mode, {role_arn})")
    for column in ("TargetModel", "probe", "expected", "observed", "result"):
        table.add_column(column)
    for result in results:
        why, seen = result["detail"], result["observed"]
        shown = seen if why is None or seen == "denied" else f"{seen} ({why})"
        table.add_row(
            escape(result["target_model"]),
            escape(result["source"]),
            result["expected"],
            escape(shown),
            "ok" if result["matches"] else "MISMATCH",
            style=None if result["matches"] else "bold red",
        )
    ctx.console.print(table)
    if mismatches:
        ctx.console.print(
            f"[bold red]{mismatches} of {len(probes)} decisions differ from the configured patterns.[/]"
        )
        return False
    ctx.console.print(
        f"[green]All {len(probes)} decisions match the configured patterns ({', '.join(patterns)}).[/]"
    )
    return True


# ================================================================================================
# registration
# ================================================================================================


def register(
    app: typer.Typer, *, models_app: typer.Typer, experiment_app: typer.Typer, access_app: typer.Typer
) -> None:
    del app, models_app  # this module only adds to the experiment and access groups

    @experiment_app.command("cache")
    def experiment_cache(
        ctx: typer.Context,
        source_location: Annotated[
            str, typer.Option("--source-location", "-l", help="Location whose current model is copied")
        ],
        copies: Annotated[
            int,
            typer.Option(min=ce.MIN_COPIES, max=ce.MAX_COPIES, help="How many copies to make and invoke"),
        ] = 200,
        out: Annotated[Path, typer.Option(help="Folder for cache-experiment.png and .json")] = Path("."),
        keep: Annotated[
            bool, typer.Option("--keep", help="Keep the copies afterwards (default: delete)")
        ] = False,
        max_minutes: Annotated[
            float, typer.Option(min=0.1, max=24 * 60, help="Stop invoking after this many minutes")
        ] = 30.0,
        metrics_delay: Annotated[
            float,
            typer.Option(
                min=0, max=900, help="Seconds to wait before reading CloudWatch (metrics lag ~1-2 min)"
            ),
        ] = 120.0,
        output_format: output.OutputOption = "table",
    ) -> None:
        """Copy one model to N names under models/<served generation>/_experiment-<run>/, invoke 0..N/2-1
        twice then 0..N-1, and chart LoadedModelCount, MemoryUtilization and ModelCacheHit (PNG + JSON
        report)."""
        run_cache_experiment(
            _obj(ctx),
            source_location=source_location,
            copies=copies,
            out=out,
            keep=keep,
            max_minutes=max_minutes,
            metrics_delay=metrics_delay,
            output_format=output_format,
        )

    @access_app.command("check")
    def check(
        ctx: typer.Context,
        tenant: Annotated[str, typer.Option("--tenant", "-t", help="Configured tenant name")],
        models: Annotated[
            str | None,
            typer.Option(help="Comma-separated TargetModels (default: every location's model plus probes)"),
        ] = None,
        output_format: output.OutputOption = "table",
    ) -> None:
        """Assume the tenant's role, invoke each model and compare allow/deny with the configured patterns
        (exit 1 on any difference)."""
        names = [m.strip() for m in models.split(",") if m.strip()] if models else None
        if not access_check(_obj(ctx), tenant=tenant, models=names, output_format=output_format):
            raise typer.Exit(1)
