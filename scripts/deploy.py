"""The first-deploy path: storage and training, one training run, then the endpoint and the rest.

The endpoint serves one complete preprocessor generation (``preprocessor/<generation>/``, see
``mme_shared.generation``), which only a training run produces, so a plain ``cdk deploy --all`` on a
fresh account cannot succeed (the endpoint stack's generation resolver fails it within seconds).
This script does the four steps in the only order that works::

    1. npx --no-install cdk deploy <prefix>Storage <prefix>Training --require-approval never
    2. read the bucket (<prefix>Storage output ArtifactBucketName) and the state machine
       (<prefix>Training output StateMachineArn) with CloudFormation DescribeStacks
    3. with --generation GEN: check that GEN is complete (preprocessor/GEN/complete.json) and train
       nothing (pinning, or rolling back to an older generation). Otherwise, unless a complete
       generation exists (preprocessor/newest.json) and --retrain is not given: start an execution
       named deploy-<UTC yyyymmdd-HHMMSS> with {"locations": <config data.locations>} (or a
       manifest under location-manifests/ when that input would be too large), wait for it and
       print its summary; a failed run, one that trained no location, or one after which still no
       generation is complete stops here (exit 1)
    4. npx --no-install cdk deploy --all --require-approval never -c preprocessor_generation=<GEN or
       the generation preprocessor/newest.json names>

Step 4 always pins the generation, so the endpoint template names what it serves: a generation
switch is a visible template change, and a CloudFormation rollback returns to exactly the generation
that was served before (see "Updating models" in the README).

If a training run is already RUNNING (say, a previous ``make deploy`` was interrupted) it is waited
for instead of starting a second one. Running the script again is always safe.

Usage (from the repository root; ``make deploy [CONFIG=file.json] [GENERATION=GEN] [RETRAIN=1]`` runs
the first line)::

    .venv/bin/python -m scripts.deploy [--config FILE] [--region REGION] [--profile PROFILE]
                                       [--retrain | --generation GEN] [--timeout-minutes N]
                                       [--poll-seconds N]

Exit codes: 0 deployed; 1 a step failed (one sentence on stderr says which and what to do); the
CDK CLI's own exit code when ``cdk deploy`` fails; 2 bad command-line usage; 130 interrupted.

The AWS calls it makes (what the deploying identity needs besides ``cdk deploy``):
``cloudformation:DescribeStacks``; ``s3:GetObject`` on ``preprocessor/newest.json`` (and, with
--generation, on ``preprocessor/<GEN>/complete.json``), ``kms:Decrypt`` on the project key (those
records are SSE-KMS) and ``s3:ListBucket`` on the bucket (to tell "missing" from "forbidden");
``s3:PutObject`` on ``location-manifests/*`` and ``kms:GenerateDataKey`` on the project key (only for
a location list too large to pass inline); ``states:ListExecutions``, ``states:StartExecution`` and
``states:DescribeExecution`` on the training state machine and its executions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeAlias

import boto3  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from mme_shared import generation, naming, s3_layout
from mme_shared.run_summary import NotARunSummary, read_run_outcome
from project_config import ConfigError, ProjectConfig, load_default_config
from project_config.loader import PREPROCESSOR_GENERATION_CONTEXT_KEY

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
CDK_COMMAND: Final = ("npx", "--no-install", "cdk")

STORAGE_BUCKET_OUTPUT: Final = "ArtifactBucketName"
TRAINING_STATE_MACHINE_OUTPUT: Final = "StateMachineArn"

INLINE_INPUT_MAX_BYTES: Final = 200_000
"""Step Functions accepts 256 KiB of execution input; beyond this the locations go in a manifest."""
RUN_ID_PREFIX: Final = "deploy-"
DEFAULT_POLL_SECONDS: Final = 30
PROGRESS_EVERY_SECONDS: Final = 300
"""While the status stays the same, print a progress line this often (not on every poll)."""
SHOWN_FAILURES: Final = 10
EXIT_INTERRUPTED: Final = 130

CdkRunner: TypeAlias = Callable[[Sequence[str]], int]
"""Runs the CDK CLI with these arguments (after ``npx --no-install cdk``); returns its exit code."""
Printer: TypeAlias = Callable[[str], None]


class DeployError(Exception):
    """A step failed; ``str(error)`` is the one sentence to show, ``exit_code`` what to exit with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Options:
    """The command line."""

    config_path: str | None
    region: str | None
    profile: str | None
    retrain: bool
    generation: str | None
    """``--generation``: the preprocessor generation to deploy instead of the newest (no training)."""
    timeout_minutes: int | None
    poll_seconds: int


@dataclass(frozen=True)
class AwsClients:
    """The boto3 clients the deploy needs, all for the region the stacks are deployed to."""

    cloudformation: Any
    s3: Any
    stepfunctions: Any
    region: str


@dataclass(frozen=True)
class Clock:
    """Time as the wait loop sees it (replaced by a fake in the tests)."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    utcnow: Callable[[], datetime] = lambda: datetime.now(UTC)


# --------------------------------------------------------------------------------------------------
# Command line


def _positive_int(maximum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not 1 <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is not between 1 and {maximum}")
        return value

    return parse


def _generation(text: str) -> str:
    try:
        return naming.validate_generation(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.deploy",
        description="First deploy: storage and training stacks, one training run (waited for), then every "
        "stack including the endpoint.",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="JSON settings merged over cdk.json's defaults (as -c config=FILE)"
    )
    parser.add_argument(
        "--region", help="AWS region (default: the config's region, else AWS_REGION or the profile's)"
    )
    parser.add_argument("--profile", help="AWS named profile (default: AWS_PROFILE or the default chain)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--retrain",
        action="store_true",
        help="run training even if a complete preprocessor generation already exists",
    )
    which.add_argument(
        "--generation",
        type=_generation,
        metavar="GEN",
        help="deploy this complete preprocessor generation (pp-<run id>) instead of the newest, without "
        "training: to pin one or roll back to an older one",
    )
    parser.add_argument(
        "--timeout-minutes",
        type=_positive_int(7 * 24 * 60),
        metavar="N",
        help="how long to wait for the training run (default: training.execution_timeout_minutes)",
    )
    parser.add_argument(
        "--poll-seconds",
        type=_positive_int(600),
        default=DEFAULT_POLL_SECONDS,
        metavar="N",
        help=f"seconds between status checks of the training run (default {DEFAULT_POLL_SECONDS})",
    )
    args = parser.parse_args(argv)
    return Options(
        config_path=args.config,
        region=args.region,
        profile=args.profile,
        retrain=args.retrain,
        generation=args.generation,
        timeout_minutes=args.timeout_minutes,
        poll_seconds=args.poll_seconds,
    )


# --------------------------------------------------------------------------------------------------
# CDK


def cdk_deploy_args(
    stacks: Sequence[str], options: Options, *, preprocessor_generation: str | None = None
) -> list[str]:
    """``deploy <stacks or --all> --require-approval never [-c config=FILE]
    [-c preprocessor_generation=GEN] [--profile P]``.

    ``preprocessor_generation`` pins the generation the endpoint stack serves.
    """
    args = ["deploy", *(stacks or ["--all"]), "--require-approval", "never"]
    if options.config_path is not None:
        args += ["-c", f"config={Path(options.config_path).resolve()}"]
    if preprocessor_generation is not None:
        args += ["-c", f"{PREPROCESSOR_GENERATION_CONTEXT_KEY}={preprocessor_generation}"]
    if options.profile is not None:
        args += ["--profile", options.profile]
    return args


def run_cdk(cdk: CdkRunner, args: Sequence[str], say: Printer) -> None:
    """Run one ``cdk`` command; raise DeployError with the CLI's exit code when it fails."""
    shown = " ".join(args)
    say(f"$ npx cdk {shown}")
    code = cdk(args)
    if code != 0:
        raise DeployError(
            f"`cdk {shown}` failed with exit code {code}; fix the error it printed above and run "
            "`make deploy` again (finished steps are skipped or quick the second time).",
            exit_code=code if code > 0 else 1,  # a negative code means a signal ended the CLI
        )


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
            completed = subprocess.run(  # noqa: S603  (fixed command; arguments built by this script)
                [*self.command, *args], cwd=REPO_ROOT, env=self.environment(os.environ), check=False
            )
        except FileNotFoundError:
            raise DeployError(
                f"{self.command[0]} was not found: install Node.js 20 or newer and run `make setup`."
            ) from None
        return completed.returncode


# --------------------------------------------------------------------------------------------------
# AWS


def connect(options: Options, config: ProjectConfig) -> AwsClients:
    """boto3 clients for the deployment region; clear errors for a missing profile, region or credentials."""
    if options.region and config.region and options.region != config.region:
        raise DeployError(
            f"--region {options.region} differs from the config's region {config.region}, where the "
            "stacks are deployed; drop --region or change the config."
        )
    try:
        session = boto3.Session(profile_name=options.profile, region_name=options.region or config.region)
    except ProfileNotFound:
        raise DeployError(
            f"The AWS profile {options.profile!r} is not configured; check ~/.aws/config or pass another "
            "--profile."
        ) from None
    region = session.region_name
    if not region:
        raise DeployError(
            'No AWS region is set: pass --region, set AWS_REGION, or set "region" in the config file.'
        )
    if session.get_credentials() is None:
        raise NoCredentialsError()
    return AwsClients(
        cloudformation=session.client("cloudformation"),
        s3=session.client("s3"),
        stepfunctions=session.client("stepfunctions"),
        region=region,
    )


def stack_output(cloudformation: Any, stack_name: str, output_key: str, region: str) -> str:
    """One output of a deployed stack; DeployError when the stack or the output is missing."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error.response.get("Error", {}).get("Message", "")):
            raise DeployError(
                f"Stack {stack_name} is not deployed in {region}; deploy it with `npx cdk deploy "
                f"{stack_name}`, or pass the --region it was deployed to."
            ) from None
        raise
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stacks[0].get("Outputs", [])}
    value = outputs.get(output_key)
    if not value:
        raise DeployError(
            f"Stack {stack_name} in {region} has no output {output_key} (status "
            f"{stacks[0].get('StackStatus', 'unknown')}); redeploy it from this repository with "
            f"`npx cdk deploy {stack_name}`."
        )
    return str(value)


def _forbidden(bucket: str, key: str) -> DeployError:
    return DeployError(
        f"Cannot read {s3_layout.s3_uri(bucket, key)} (S3 answered 403): your credentials need "
        "s3:GetObject on it, s3:ListBucket on the bucket and kms:Decrypt on the project key."
    )


def _is_forbidden(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code", "")) in {"403", "AccessDenied", "Forbidden"}


def newest_generation(s3: Any, bucket: str) -> str | None:
    """The newest complete preprocessor generation (``preprocessor/newest.json``), None if none yet."""
    try:
        ref = generation.read_ref(s3, bucket, s3_layout.NEWEST_GENERATION_KEY)
    except ClientError as error:
        if _is_forbidden(error):
            raise _forbidden(bucket, s3_layout.NEWEST_GENERATION_KEY) from None
        raise
    except generation.GenerationRecordError as error:
        raise DeployError(f"{error}; it is written by the training state machine, do not edit it.") from None
    return None if ref is None else ref.generation


def require_complete(s3: Any, bucket: str, generation_id: str) -> None:
    """DeployError unless ``preprocessor/<generation>/complete.json`` exists (and is valid)."""
    key = s3_layout.generation_record_key(generation_id)
    try:
        record = generation.read_complete(s3, bucket, generation_id)
    except ClientError as error:
        if _is_forbidden(error):
            raise _forbidden(bucket, key) from None
        raise
    except generation.GenerationRecordError as error:
        raise DeployError(f"{error}; it is written by the training state machine, do not edit it.") from None
    if record is None:
        raise DeployError(
            f"Preprocessor generation {generation_id} is not complete ({s3_layout.s3_uri(bucket, key)} does "
            "not exist), so the endpoint was not deployed; pass --generation with a complete generation, "
            "or leave it out to deploy the newest one."
        )


def new_run_id(now: datetime) -> str:
    """``deploy-<UTC yyyymmdd-HHMMSS>``: the execution name, and part of every job name of the run."""
    return naming.validate_run_id(RUN_ID_PREFIX + now.astimezone(UTC).strftime("%Y%m%d-%H%M%S"))


def execution_input(
    s3: Any, bucket: str, run_id: str, locations: Sequence[str], say: Printer, *, refit: bool = False
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


def running_execution(stepfunctions: Any, state_machine_arn: str) -> str | None:
    """The ARN of a training run that is still going, if any (the newest)."""
    executions = stepfunctions.list_executions(
        stateMachineArn=state_machine_arn, statusFilter="RUNNING", maxResults=1
    )["executions"]
    return str(executions[0]["executionArn"]) if executions else None


def wait_for_execution(
    stepfunctions: Any,
    execution_arn: str,
    *,
    timeout_seconds: float,
    poll_seconds: float,
    clock: Clock,
    say: Printer,
) -> dict[str, Any]:
    """Poll DescribeExecution until the run ends; DeployError when the wait runs out or is interrupted."""
    name = execution_arn.rsplit(":", 1)[-1]
    started = clock.monotonic()
    last_status, last_print = "", started
    try:
        while True:
            description: dict[str, Any] = stepfunctions.describe_execution(executionArn=execution_arn)
            status = str(description["status"])
            elapsed = clock.monotonic() - started
            if status != "RUNNING":
                say(f"Training run {name}: {status} after {_duration(elapsed)}")
                return description
            if status != last_status or clock.monotonic() - last_print >= PROGRESS_EVERY_SECONDS:
                say(f"Training run {name}: RUNNING ({_duration(elapsed)} so far)")
                last_status, last_print = status, clock.monotonic()
            if elapsed >= timeout_seconds:
                raise DeployError(
                    f"Training run {name} is still running after {_duration(elapsed)}; it goes on in the "
                    "background: run `make deploy` again to keep waiting for it (it will not start another "
                    "run), or pass a larger --timeout-minutes."
                )
            clock.sleep(min(poll_seconds, max(timeout_seconds - elapsed, 1.0)))
    except KeyboardInterrupt:
        raise DeployError(
            f"Interrupted; training run {name} goes on in the background: run `make deploy` again to wait "
            "for it and deploy the endpoint.",
            exit_code=EXIT_INTERRUPTED,
        ) from None


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def report_outcome(description: Mapping[str, Any], bucket: str, say: Printer) -> None:
    """Print the run's summary; DeployError when it failed or trained no location."""
    try:
        outcome = read_run_outcome(description)
    except NotARunSummary as error:
        raise DeployError(str(error)) from None
    name, arn, status = outcome.name, outcome.arn, outcome.status
    if outcome.failed:
        detail = outcome.detail
        raise DeployError(
            f"Training run {name} ended {status}{f' ({detail})' if detail else ''}, so the endpoint was not "
            f"deployed; see `aws stepfunctions get-execution-history --execution-arn {arn}`, fix the cause "
            "and run `make deploy` again."
        )
    summary, succeeded, failed = outcome.summary, outcome.succeeded_count, outcome.failed_count
    summary_uri = s3_layout.s3_uri(bucket, outcome.summary_key)
    say(
        f"Training run {name}: {succeeded} location(s) trained, {failed} failed (full summary: {summary_uri})"
    )
    entries = [e for e in summary.get("failed", []) if isinstance(e, Mapping)]
    for entry in entries[:SHOWN_FAILURES]:
        say(f"  failed: {entry.get('location')}: {entry.get('error')}: {entry.get('cause')}")
    if failed > min(len(entries), SHOWN_FAILURES):
        say(f"  ... and {failed - min(len(entries), SHOWN_FAILURES)} more in the summary")
    if succeeded == 0:
        raise DeployError(
            f"Training run {name} trained no location successfully ({failed} failed), so the endpoint "
            f"would have no model to serve and was not deployed; see {summary_uri}."
        )


def train(
    options: Options,
    config: ProjectConfig,
    clients: AwsClients,
    *,
    bucket: str,
    state_machine_arn: str,
    clock: Clock,
    say: Printer,
) -> str | None:
    """Step 3: skip, join a running run, or start one; wait; report. Returns the run that trained."""
    uri = s3_layout.s3_uri(bucket, s3_layout.NEWEST_GENERATION_KEY)
    execution_arn = running_execution(clients.stepfunctions, state_machine_arn)
    newest = None
    if execution_arn is None and not options.retrain:
        newest = newest_generation(clients.s3, bucket)
    if execution_arn is not None:
        say(f"Training run {execution_arn.rsplit(':', 1)[-1]} is already running; waiting for it.")
    elif newest is not None:
        say(
            f"Preprocessor generation {newest} is complete ({uri}): skipping training (pass --retrain to "
            "train again)."
        )
        return None
    else:
        run_id = new_run_id(clock.utcnow())
        payload = execution_input(clients.s3, bucket, run_id, config.data.locations, say)
        execution_arn = str(
            clients.stepfunctions.start_execution(
                stateMachineArn=state_machine_arn, name=run_id, input=payload
            )["executionArn"]
        )
        say(f"Started training run {run_id} for {len(config.data.locations)} location(s): {execution_arn}")
    timeout_minutes = options.timeout_minutes or config.training.execution_timeout_minutes
    description = wait_for_execution(
        clients.stepfunctions,
        execution_arn,
        timeout_seconds=timeout_minutes * 60,
        poll_seconds=options.poll_seconds,
        clock=clock,
        say=say,
    )
    report_outcome(description, bucket, say)
    return execution_arn.rsplit(":", 1)[-1]


def served_after_training(s3: Any, bucket: str, trained_run: str | None) -> str:
    """The newest complete generation once step 3 is done; DeployError when there is none."""
    newest = newest_generation(s3, bucket)
    if newest is None:
        uri = s3_layout.s3_uri(bucket, s3_layout.NEWEST_GENERATION_KEY)
        run = f"Training run {trained_run} finished" if trained_run else "Training finished"
        raise DeployError(
            f"{run} but no preprocessor generation is complete ({uri} does not exist: a generation is "
            "complete only once every location of the run that fitted it was trained), so the endpoint "
            "was not deployed; fix the failed locations in the run's summary and train again with "
            "`make deploy RETRAIN=1`."
        )
    return newest


def deploy(
    options: Options,
    config: ProjectConfig,
    *,
    clients: AwsClients,
    cdk: CdkRunner,
    clock: Clock,
    say: Printer,
) -> None:
    """The four steps; raises DeployError at the first one that fails."""
    storage, training = f"{config.stack_prefix}Storage", f"{config.stack_prefix}Training"
    say(f"[1/4] Deploying {storage} and {training} to {clients.region}")
    run_cdk(cdk, cdk_deploy_args([storage, training], options), say)

    say("[2/4] Reading the stacks' outputs")
    bucket = stack_output(clients.cloudformation, storage, STORAGE_BUCKET_OUTPUT, clients.region)
    state_machine_arn = stack_output(
        clients.cloudformation, training, TRAINING_STATE_MACHINE_OUTPUT, clients.region
    )
    say(f"  bucket {bucket}, state machine {state_machine_arn}")

    if options.generation is not None:
        say(f"[3/4] Checking preprocessor generation {options.generation} (no training)")
        require_complete(clients.s3, bucket, options.generation)
        serving = options.generation
    else:
        say("[3/4] Training")
        trained_run = train(
            options, config, clients, bucket=bucket, state_machine_arn=state_machine_arn, clock=clock, say=say
        )
        serving = served_after_training(clients.s3, bucket, trained_run)

    say(f"[4/4] Deploying every stack, the endpoint serving preprocessor generation {serving}")
    run_cdk(cdk, cdk_deploy_args([], options, preprocessor_generation=serving), say)
    say("Deployed.")


# --------------------------------------------------------------------------------------------------
# Entry point


def _print(line: str) -> None:
    print(line, flush=True)


def main(
    argv: Sequence[str] | None = None,
    *,
    connect_aws: Callable[[Options, ProjectConfig], AwsClients] = connect,
    cdk: CdkRunner | None = None,
    clock: Clock | None = None,
    say: Printer = _print,
) -> int:
    """Run the deploy; return the process exit code. Tests inject the AWS clients and the CDK runner."""
    options = parse_args(argv)
    try:
        try:
            config = load_default_config(options.config_path)
        except ConfigError as error:
            raise DeployError(f"Invalid configuration: {error}.") from None
        clients = connect_aws(options, config)
        deploy(
            options,
            config,
            clients=clients,
            cdk=cdk or SubprocessCdk(region=clients.region),
            clock=clock or Clock(),
            say=say,
        )
    except DeployError as error:
        print(f"Deploy stopped: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("Deploy stopped: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except NoCredentialsError:
        print(
            "Deploy stopped: no AWS credentials were found; set AWS_PROFILE (or pass --profile) or "
            "configure credentials as for the AWS CLI, then run it again.",
            file=sys.stderr,
        )
        return 1
    except NoRegionError:
        print(
            'Deploy stopped: no AWS region is set; pass --region, set AWS_REGION, or set "region" in '
            "the config file.",
            file=sys.stderr,
        )
        return 1
    except ClientError as error:
        details = error.response.get("Error", {})
        print(
            f"Deploy stopped: AWS refused {error.operation_name} "
            f"({details.get('Code', 'error')}: {details.get('Message', '')}).",
            file=sys.stderr,
        )
        return 1
    except BotoCoreError as error:
        print(f"Deploy stopped: {error}.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
