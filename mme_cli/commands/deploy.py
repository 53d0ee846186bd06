"""``mme deploy``: the preflight, storage and training, a training run when needed, then every stack.

The endpoint serves one complete preprocessor generation (``preprocessor/<generation>/``, see
:mod:`mme_shared.generation`), which only a training run produces, so a plain ``cdk deploy --all``
on a fresh account cannot succeed (the endpoint stack's generation resolver fails it within
seconds). ``mme deploy`` does the steps in the only order that works::

    0. the preflight (mme_cli/preflight.py): credentials and account, the region's images, the CDK
       bootstrap, SageMaker quotas for the configured instance types, the autoscaling role; any
       problem stops here with its fix, before a stack changes (--skip-preflight skips it)
    1. cdk deploy <prefix>Storage <prefix>Training
    2. read the bucket and the state machine from the stacks' outputs
    3. with --generation GEN: check that GEN is complete and was trained with training.algorithm,
       and train nothing (pinning, or rolling back to an older generation). Otherwise, unless a
       complete generation of training.algorithm exists and neither --retrain nor --refit is given:
       start a run named deploy-<UTC yyyymmdd-HHMMSS> for the config's data.locations (a refit with
       --refit, or when the newest generation holds another algorithm's models), or wait for one that
       is already running, and report it; a failed run, or one after which no generation of
       training.algorithm is complete, stops here
    4. an instance type change of an endpoint that autoscaling manages (SageMaker refuses to change
       the instance type of a registered scalable target, "Update endpoints that use auto
       scaling"): first deploy the endpoint stack with autoscaling removed and the deployed instance
       type kept, so CloudFormation deregisters the target; step 5 then changes the type and
       registers it again
    5. cdk deploy --all -c preprocessor_generation=<GEN or the newest complete generation>

Step 5 always pins the generation, so the endpoint template names what it serves. Running it again is
always safe: finished steps are quick, and a run that is still going is waited for, never doubled.

An endpoint serves only models of its own algorithm (its resolver refuses a generation whose
``complete.json`` names another), so after ``training.algorithm`` changed no older generation is
deployed: a refit trains a new one for every location first.

The AWS calls it makes besides the preflight's and ``cdk deploy``'s: ``cloudformation:DescribeStacks``
and ``ListStacks``; ``s3:GetObject`` on ``preprocessor/newest.json`` and ``preprocessor/serving.json``
and the ``preprocessor/<GEN>/complete.json`` of the newest generation (or of --generation, to
compare its algorithm with ``training.algorithm``), ``kms:Decrypt`` on the project key,
``s3:ListBucket`` on the bucket; ``s3:PutObject`` on ``location-manifests/*`` and
``kms:GenerateDataKey`` (only for a location list too large to pass inline);
``states:ListExecutions``, ``StartExecution``, ``DescribeExecution``, ``ListMapRuns`` and
``DescribeMapRun``; ``sagemaker:DescribeEndpoint`` and ``DescribeEndpointConfig`` and
``application-autoscaling:DescribeScalableTargets`` (the instance type check).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mme_cli import generations, preflight, runs
from mme_cli.cdk import CdkRunner, SubprocessCdk, cdk_args, run_cdk
from mme_cli.context import CliContext
from mme_cli.deployment import CliError, Deployment, discover
from mme_cli.runs import Clock
from mme_constructs.algorithms import title_of
from mme_shared import generation, naming, s3_layout
from mme_shared.stack_names import ENDPOINT_NAME, VARIANT_NAME, StackRole, stack_name
from project_config.loader import PREPROCESSOR_GENERATION_CONTEXT_KEY, deep_merge, read_override_file

CLOCK: Clock = Clock()
"""Time for the wait loop and the run id; the tests replace it."""
CDK_RUNNER: Callable[[str], CdkRunner] = SubprocessCdk
"""Makes the CDK runner for a region; the tests replace it with a recording fake."""

RUN_ID_PREFIX: Final = "deploy-"
DEFAULT_POLL_SECONDS: Final = 30
APPROVAL: Final = ("--require-approval", "never")
AGAIN: Final = "mme deploy"
SCALABLE_DIMENSION: Final = "sagemaker:variant:DesiredInstanceCount"


def register(
    app: typer.Typer, *, models_app: typer.Typer, experiment_app: typer.Typer, access_app: typer.Typer
) -> None:
    """Add ``deploy`` to the top level."""
    del models_app, experiment_app, access_app
    app.command("deploy")(deploy)


def deploy(
    ctx: typer.Context,
    generation_option: Annotated[
        str | None,
        typer.Option(
            "--generation",
            help="Serve this complete preprocessor generation (pp-<run id>) instead of the newest, without "
            "training: to pin one or roll back.",
        ),
    ] = None,
    retrain: Annotated[
        bool, typer.Option("--retrain", help="Train the config's locations even if a generation is complete.")
    ] = False,
    refit: Annotated[
        bool,
        typer.Option(
            "--refit",
            help="Train with a new preprocessor generation (a refit), then serve it if it completes.",
        ),
    ] = False,
    timeout_minutes: Annotated[
        int | None,
        typer.Option(
            "--timeout-minutes",
            min=1,
            max=7 * 24 * 60,
            help="How long to wait for the training run (default: training.execution_timeout_minutes).",
        ),
    ] = None,
    poll_seconds: Annotated[
        int, typer.Option("--poll-seconds", min=1, max=600, help="Seconds between status checks.")
    ] = DEFAULT_POLL_SECONDS,
    skip_preflight: Annotated[
        bool, typer.Option("--skip-preflight", help="Deploy without the preflight checks.")
    ] = False,
) -> None:
    """Deploy everything in the order that works: preflight, storage and training, a training run if
    needed, then every stack with the endpoint pinned to a complete preprocessor generation."""
    cli: CliContext = ctx.obj
    if generation_option is not None and (retrain or refit):
        raise typer.BadParameter("--generation deploys without training; leave out --retrain and --refit")
    if generation_option is not None:
        problem = naming.generation_problem(generation_option)
        if problem is not None:
            raise typer.BadParameter(problem, param_hint="--generation")
    region = str(cli.session.region_name)
    say = cli.console.print
    prefix = cli.config.stack_prefix
    storage, training = stack_name(prefix, StackRole.STORAGE), stack_name(prefix, StackRole.TRAINING)

    if skip_preflight:
        say("[0/5] Preflight skipped (--skip-preflight)")
    else:
        say(f"[0/5] Preflight in {region}")
        _preflight(cli, region)
    cdk = CDK_RUNNER(region)

    say(f"[1/5] Deploying {storage} and {training} to {region}")
    run_cdk(cdk, _args(cli, [storage, training]), say, retry_with=AGAIN)

    say("[2/5] Reading the stacks' outputs")
    deployment = discover(cli.client("cloudformation"), prefix=prefix, region=region)
    bucket, state_machine_arn = deployment.bucket, deployment.state_machine_arn
    say(f"  bucket {bucket}, state machine {state_machine_arn}", soft_wrap=True)
    s3 = cli.client("s3")
    algorithm = cli.config.training.algorithm

    if generation_option is not None:
        say(f"[3/5] Checking preprocessor generation {generation_option} (no training)")
        _require_complete(s3, bucket, generation_option, algorithm)
        serving = generation_option
    else:
        say("[3/5] Training")
        trained_run = _train(
            cli,
            bucket=bucket,
            state_machine_arn=state_machine_arn,
            retrain=retrain or refit,
            refit=refit,
            timeout_minutes=timeout_minutes or cli.config.training.execution_timeout_minutes,
            poll_seconds=poll_seconds,
        )
        serving = _newest_after_training(s3, bucket, trained_run, algorithm)

    say("[4/5] Checking the endpoint's instance type against autoscaling")
    _prepare_instance_type_change(cli, deployment, cdk, serving=serving)

    say(f"[5/5] Deploying every stack, the endpoint serving preprocessor generation {serving}")
    run_cdk(cdk, _args(cli, [], generation_id=serving), say, retry_with=AGAIN)
    say("Deployed.")


def _args(
    cli: CliContext,
    stacks: list[str],
    *,
    generation_id: str | None = None,
    config_path: Path | None = None,
    exclusively: bool = False,
) -> list[str]:
    context = {PREPROCESSOR_GENERATION_CONTEXT_KEY: generation_id} if generation_id else None
    return cdk_args(
        "deploy",
        stacks,
        config_path=config_path or cli.config_path,
        profile=cli.profile,
        context=context,
        extra=[*APPROVAL, *(["--exclusively"] if exclusively else [])],
    )


# --------------------------------------------------------------------------------------------------
# Step 0


def _preflight(cli: CliContext, region: str) -> None:
    result = preflight.run_preflight(cli.client, cli.config, region=region)
    for line in result.passed:
        cli.console.print(f"  ok: {line}", soft_wrap=True, markup=False, highlight=False)
    if result.problems:
        listed = "\n".join(f"  - {problem}" for problem in result.problems)
        raise CliError(
            f"The preflight found {len(result.problems)} problem(s) in account {result.account or '?'}, "
            f"{region}, so nothing was deployed (fix them, or pass --skip-preflight):\n{listed}"
        )


# --------------------------------------------------------------------------------------------------
# Step 3


def _read(s3: Any, bucket: str, key: str, read: Callable[[], Any]) -> Any:
    try:
        return read()
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code", "")) in {"403", "AccessDenied", "Forbidden"}:
            raise CliError(
                f"Cannot read {s3_layout.s3_uri(bucket, key)} (S3 answered 403): your credentials need "
                "s3:GetObject on it, s3:ListBucket on the bucket and kms:Decrypt on the project key."
            ) from None
        raise
    except generation.GenerationRecordError as error:
        raise CliError(f"{error}; it is written by the training state machine, do not edit it.") from None


def _newest(s3: Any, bucket: str) -> str | None:
    key = s3_layout.NEWEST_GENERATION_KEY
    ref = _read(s3, bucket, key, lambda: generation.read_ref(s3, bucket, key))
    return None if ref is None else str(ref.generation)


def _generation_algorithm(s3: Any, bucket: str, generation_id: str) -> str | None:
    """The algorithm the generation's models were trained with (its ``complete.json``), or None
    while the generation is not complete."""
    key = s3_layout.generation_record_key(generation_id)
    record = _read(s3, bucket, key, lambda: generation.read_complete(s3, bucket, generation_id))
    return None if record is None else str(record.algorithm)


def _require_complete(s3: Any, bucket: str, generation_id: str, algorithm: str) -> None:
    trained_with = _generation_algorithm(s3, bucket, generation_id)
    if trained_with is None:
        key = s3_layout.generation_record_key(generation_id)
        raise CliError(
            f"Preprocessor generation {generation_id} is not complete ({s3_layout.s3_uri(bucket, key)} does "
            "not exist), so the endpoint was not deployed; pass --generation with a complete generation, "
            "or leave it out to deploy the newest one."
        )
    if trained_with != algorithm:
        raise CliError(
            f"Preprocessor generation {generation_id} holds {title_of(trained_with)} models, but "
            f"training.algorithm is {algorithm} and an endpoint serves only its own algorithm's models, so "
            f"the endpoint was not deployed; pass --generation with a generation trained with {algorithm}, "
            "or leave it out to train one."
        )


def _train(
    cli: CliContext,
    *,
    bucket: str,
    state_machine_arn: str,
    retrain: bool,
    refit: bool,
    timeout_minutes: int,
    poll_seconds: int,
) -> str | None:
    """Skip, join a running run, or start one; wait; report. Returns the run that trained, if any."""
    stepfunctions, s3, say = cli.client("stepfunctions"), cli.client("s3"), cli.console.print
    algorithm = cli.config.training.algorithm
    execution_arn = runs.running_run(stepfunctions, state_machine_arn)
    newest = None if execution_arn is not None or retrain else _newest(s3, bucket)
    # A newest.json whose complete.json is missing is deployed as before (the endpoint's resolver
    # names the problem); only a generation known to hold another algorithm's models is refitted.
    trained_with = None if newest is None else _generation_algorithm(s3, bucket, newest)
    if execution_arn is not None:
        say(f"Training run {execution_arn.rsplit(':', 1)[-1]} is already running; waiting for it.")
    elif newest is not None and trained_with in (None, algorithm):
        say(
            f"Preprocessor generation {newest} is complete "
            f"({s3_layout.s3_uri(bucket, s3_layout.NEWEST_GENERATION_KEY)}): skipping training (pass "
            "--retrain or --refit to train again).",
            soft_wrap=True,
        )
        return None
    else:
        if newest is not None and trained_with is not None:
            say(
                f"Preprocessor generation {newest} holds {title_of(trained_with)} models, but "
                f"training.algorithm is {algorithm}: a refit trains a new generation of "
                f"{title_of(algorithm)} models for every location.",
                soft_wrap=True,
            )
            refit = True
        locations = cli.config.data.locations
        run_id = naming.validate_run_id(
            RUN_ID_PREFIX + CLOCK.utcnow().astimezone(UTC).strftime("%Y%m%d-%H%M%S")
        )
        payload = runs.execution_input(s3, bucket, run_id, locations, say, refit=refit)
        execution_arn = runs.start_run(
            stepfunctions,
            state_machine_arn,
            run_id,
            payload,
            if_taken="wait a second and run `mme deploy` again",
        )
        say(
            f"Started {'refit ' if refit else ''}training run {run_id} for {len(locations)} location(s): "
            f"{execution_arn}",
            soft_wrap=True,
        )
    description = runs.wait_for_run(
        cli,
        stepfunctions,
        execution_arn,
        timeout_seconds=timeout_minutes * 60,
        poll=poll_seconds,
        clock=CLOCK,
        resume_with=AGAIN,
    )
    serving = _read(
        s3,
        bucket,
        s3_layout.SERVING_GENERATION_KEY,
        lambda: generation.read_ref(s3, bucket, s3_layout.SERVING_GENERATION_KEY),
    )
    # A run in which some locations failed still leaves the generation the endpoint can serve: the
    # served one (a partial run) or none (an incomplete refit, caught below).
    runs.report_run(cli, description, bucket, serving, fail_on_failed_locations=False)
    return execution_arn.rsplit(":", 1)[-1]


def _newest_after_training(s3: Any, bucket: str, trained_run: str | None, algorithm: str) -> str:
    newest = _newest(s3, bucket)
    run = f"Training run {trained_run} finished" if trained_run else "Training finished"
    if newest is None:
        uri = s3_layout.s3_uri(bucket, s3_layout.NEWEST_GENERATION_KEY)
        raise CliError(
            f"{run} but no preprocessor generation is complete ({uri} does not exist: a generation is "
            "complete only once every location of the run that fitted it was trained), so the endpoint "
            "was not deployed; fix the failed locations in the run's summary and run `mme deploy --refit`."
        )
    trained_with = _generation_algorithm(s3, bucket, newest)
    if trained_with is not None and trained_with != algorithm:
        raise CliError(
            f"{run} but the newest complete generation, {newest}, holds {title_of(trained_with)} models, "
            f"not {title_of(algorithm)} ones (the refit for training.algorithm did not complete), so the "
            "endpoint was not deployed; fix the failed locations in the run's summary and run "
            "`mme deploy --refit`."
        )
    return newest


# --------------------------------------------------------------------------------------------------
# Step 4


def deployed_instance_type(cli: CliContext, deployment: Deployment) -> tuple[str, bool] | None:
    """``(instance type, autoscaling registered)`` of the deployed endpoint, or None when there is none."""
    outputs = deployment.outputs_of(StackRole.ENDPOINT)
    if not outputs or ENDPOINT_NAME.key not in outputs:
        return None
    name, variant = outputs[ENDPOINT_NAME.key], outputs.get(VARIANT_NAME.key, "AllTraffic")
    found = generations.endpoint_and_config(cli.client("sagemaker"), name)
    if found is None:
        return None
    _, config = found
    types = [v["InstanceType"] for v in config["ProductionVariants"] if v["VariantName"] == variant]
    if not types:
        return None
    targets = cli.client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="sagemaker",
        ResourceIds=[f"endpoint/{name}/variant/{variant}"],
        ScalableDimension=SCALABLE_DIMENSION,
    )["ScalableTargets"]
    return str(types[0]), bool(targets)


def _prepare_instance_type_change(
    cli: CliContext, deployment: Deployment, cdk: CdkRunner, *, serving: str
) -> None:
    """Deregister autoscaling through CloudFormation before SageMaker is asked to change the type."""
    found = deployed_instance_type(cli, deployment)
    wanted = cli.config.endpoint.instance_type
    if found is None:
        cli.console.print("  no endpoint deployed yet")
        return
    deployed, scaled = found
    if deployed == wanted:
        cli.console.print(f"  instance type {deployed} unchanged")
        return
    if not scaled:
        cli.console.print(f"  {deployed} -> {wanted}: no scalable target registered, a plain update")
        return
    cli.console.print(
        f"  {deployed} -> {wanted} with autoscaling registered: SageMaker refuses that update, so the "
        f"endpoint stack is first deployed with autoscaling removed (and {deployed} kept); the next step "
        "changes the instance type and registers autoscaling again",
        soft_wrap=True,
    )
    with _config_without_autoscaling(cli.config_path, deployed) as interim:
        run_cdk(
            cdk,
            _args(
                cli,
                [deployment.stack_name(StackRole.ENDPOINT)],
                generation_id=serving,
                config_path=interim,
                exclusively=True,
            ),
            cli.console.print,
            retry_with=AGAIN,
        )


@contextmanager
def _config_without_autoscaling(config_path: Path | None, instance_type: str) -> Iterator[Path]:
    """The user's config with ``endpoint.instance_type`` kept and autoscaling off, as a temporary file."""
    base = read_override_file(config_path) if config_path is not None else {}
    interim = deep_merge(
        base, {"endpoint": {"instance_type": instance_type, "autoscaling": {"enabled": False}}}
    )
    with tempfile.TemporaryDirectory(prefix="mme-deploy-") as folder:
        path = Path(folder) / "interim-config.json"
        path.write_text(json.dumps(interim, indent=2), encoding="utf-8")
        yield path
