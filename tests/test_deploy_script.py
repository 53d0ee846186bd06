"""``scripts/deploy.py`` (``make deploy``) against moto S3 and Step Functions and a recording CDK runner.

moto really executes the small state machines below (a Pass state returning a run summary, a Fail
state, a long Wait), so the script polls real execution states. CloudFormation's DescribeStacks is
answered by botocore's Stubber (moto's CloudFormation needs packages this project does not install);
the Stubber also checks the requests' parameters against the service model. Time is a fake clock:
the waits cost nothing.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.stub import Stubber  # type: ignore[import-untyped]
from moto import mock_aws

from mme_shared import generation
from project_config import load_default_config
from scripts import deploy

REGION = "us-east-1"
BUCKET = "sandbox-artifacts-123456789012"
NEWEST_KEY = "preprocessor/newest.json"
ROLE_ARN = "arn:aws:iam::123456789012:role/training-state-machine"
NOW = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC)
RUN_ID = "deploy-20250501-120000"
TRAINED = f"pp-{RUN_ID}"
"""The generation a refit by the run the script starts fits."""
OLDER = "pp-deploy-20250401-090000"
LOCATIONS = ["NewYork_NY", "Chicago_IL", "austin-tx"]
SUMMARY = {
    "run_id": RUN_ID,
    "summary_key": f"pipeline-runs/{RUN_ID}/summary.json",
    "succeeded_count": 2,
    "failed_count": 1,
    "succeeded": [],
    "failed": [
        {
            "location": "austin-tx",
            "failed_step": "TrainModel",
            "error": "SageMaker.ResourceLimitExceededException",
            "cause": "The account-level service limit for ml.c4.xlarge is 0 instances.",
            "execution_arn": None,
        }
    ],
    "truncated": False,
}


def pass_machine(result: object) -> dict[str, Any]:
    return {"StartAt": "Summarize", "States": {"Summarize": {"Type": "Pass", "Result": result, "End": True}}}


FAIL_MACHINE = {
    "StartAt": "RunFailed",
    "States": {
        "RunFailed": {
            "Type": "Fail",
            "Error": "SageMaker.AmazonSageMakerException",
            "Cause": "Training job pp-deploy-20250501-120000 failed: AlgorithmError",
        }
    },
}
WAIT_MACHINE = {"StartAt": "Train", "States": {"Train": {"Type": "Wait", "Seconds": 3600, "End": True}}}


# --------------------------------------------------------------------------------------------------
# Fakes and fixtures


@pytest.fixture(scope="module")
def _moto() -> Iterator[Any]:
    mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
    mock.start()
    yield mock
    mock.stop()


@pytest.fixture
def aws(_moto: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and an empty mocked account with the artifact bucket."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    _moto.reset()
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)


@dataclass
class FakeCdk:
    """Records each ``cdk`` argument list, and what the training state machine had done by then."""

    stepfunctions: Any
    exit_codes: list[int] = field(default_factory=list)
    calls: list[list[str]] = field(default_factory=list)
    executions_seen: list[list[tuple[str, str]]] = field(default_factory=list)

    def __call__(self, args: Sequence[str]) -> int:
        self.calls.append(list(args))
        self.executions_seen.append(
            [
                (e["name"], e["status"])
                for machine in self.stepfunctions.list_state_machines()["stateMachines"]
                for e in self.stepfunctions.list_executions(stateMachineArn=machine["stateMachineArn"])[
                    "executions"
                ]
            ]
        )
        return self.exit_codes.pop(0) if self.exit_codes else 0


@dataclass
class FakeTime:
    """Monotonic time that only moves when the script sleeps; ``on_sleep`` can act like the world."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Callable[[int], None] | None = None

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))
        time.sleep(0.005)  # lets moto's execution thread move on

    def clock(self) -> deploy.Clock:
        return deploy.Clock(monotonic=self.monotonic, sleep=self.sleep, utcnow=lambda: NOW)


def describe_stacks_response(name: str, outputs: dict[str, str]) -> dict[str, Any]:
    return {
        "Stacks": [
            {
                "StackName": name,
                "StackId": f"arn:aws:cloudformation:{REGION}:123456789012:stack/{name}/0a1b2c3d",
                "CreationTime": NOW,
                "StackStatus": "CREATE_COMPLETE",
                "Outputs": [{"OutputKey": key, "OutputValue": value} for key, value in outputs.items()],
            }
        ]
    }


@dataclass
class Account:
    """One scenario: the mocked clients, the stubbed CloudFormation answers and the fakes."""

    prefix: str
    state_machine: dict[str, Any] | None
    training_outputs: dict[str, str] | None = None
    storage_error: str | None = None
    cdk_exit_codes: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.s3 = boto3.client("s3", region_name=REGION)
        self.stepfunctions = boto3.client("stepfunctions", region_name=REGION)
        self.cloudformation = boto3.client("cloudformation", region_name=REGION)
        self.stub = Stubber(self.cloudformation)
        self.state_machine_arn = ""
        if self.state_machine is not None:
            self.state_machine_arn = self.stepfunctions.create_state_machine(
                name=f"{self.prefix}TrainingStateMachine",
                definition=json.dumps(self.state_machine),
                roleArn=ROLE_ARN,
            )["stateMachineArn"]
        if self.storage_error is not None:
            self.stub.add_client_error(
                "describe_stacks",
                service_error_code="ValidationError",
                service_message=self.storage_error,
                http_status_code=400,
                expected_params={"StackName": f"{self.prefix}Storage"},
            )
        else:
            self.stub.add_response(
                "describe_stacks",
                describe_stacks_response(f"{self.prefix}Storage", {"ArtifactBucketName": BUCKET}),
                {"StackName": f"{self.prefix}Storage"},
            )
            outputs = (
                {"StateMachineArn": self.state_machine_arn}
                if self.training_outputs is None
                else self.training_outputs
            )
            self.stub.add_response(
                "describe_stacks",
                describe_stacks_response(f"{self.prefix}Training", outputs),
                {"StackName": f"{self.prefix}Training"},
            )
        self.stub.activate()
        self.cdk = FakeCdk(self.stepfunctions, exit_codes=list(self.cdk_exit_codes))
        self.time = FakeTime()
        self.printed: list[str] = []

    def clients(self) -> deploy.AwsClients:
        return deploy.AwsClients(
            cloudformation=self.cloudformation, s3=self.s3, stepfunctions=self.stepfunctions, region=REGION
        )

    def main(self, *args: str) -> int:
        return deploy.main(
            list(args),
            connect_aws=lambda options, config: self.clients(),
            cdk=self.cdk,
            clock=self.time.clock(),
            say=self.printed.append,
        )

    def executions(self) -> list[dict[str, Any]]:
        listed = self.stepfunctions.list_executions(stateMachineArn=self.state_machine_arn)["executions"]
        return [self.stepfunctions.describe_execution(executionArn=e["executionArn"]) for e in listed]

    def complete(self, generation_id: str, *, newest: bool = True) -> None:
        """A complete generation, as the training state machine leaves it (and, by default, the newest)."""
        record = generation.CompleteGeneration(
            generation=generation_id,
            run_id=generation_id.removeprefix("pp-"),
            location_count=len(LOCATIONS),
            completed_at=NOW,
        )
        self.s3.put_object(Bucket=BUCKET, Key=record.key, Body=record.to_json())
        if newest:
            ref = generation.GenerationRef(generation=generation_id, updated_at=NOW)
            self.s3.put_object(Bucket=BUCKET, Key=NEWEST_KEY, Body=ref.to_json())

    def training_completes(self, generation_id: str = TRAINED) -> None:
        """Each StartExecution completes ``generation_id`` as a successful refit's summary step would
        (moto runs only the stand-in Pass state)."""

        def complete(**_: Any) -> None:
            self.complete(generation_id)

        self.stepfunctions.meta.events.register("after-call.sfn.StartExecution", complete)


@pytest.fixture
def config_file(tmp_path: Path) -> Callable[..., str]:
    def write(**settings: Any) -> str:
        content = {"stack_prefix": "Sandbox", "data": {"locations": LOCATIONS}, **settings}
        path = tmp_path / "sandbox.json"
        path.write_text(json.dumps(content))
        return str(path)

    return write


def deploy_args(config: str, *stacks: str, serving: str | None = None) -> list[str]:
    args = ["deploy", *(stacks or ("--all",)), "--require-approval", "never", "-c", f"config={config}"]
    return args + (["-c", f"preprocessor_generation={serving}"] if serving else [])


# --------------------------------------------------------------------------------------------------
# The path that works


def test_first_deploy_trains_then_deploys_the_endpoint(
    aws: None, config_file: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file()
    account = Account(prefix="Sandbox", state_machine=pass_machine(SUMMARY))
    account.training_completes()

    code = account.main("--config", config, "--region", REGION)

    assert code == 0, capsys.readouterr().err
    assert account.cdk.calls == [
        deploy_args(config, "SandboxStorage", "SandboxTraining"),
        # the endpoint is pinned to the generation the run completed
        deploy_args(config, serving=TRAINED),
    ]
    # Nothing was training while storage and training deployed; the endpoint came after the run ended.
    assert account.cdk.executions_seen == [[], [(RUN_ID, "SUCCEEDED")]]
    (execution,) = account.executions()
    assert execution["name"] == RUN_ID
    assert json.loads(execution["input"]) == {"locations": LOCATIONS}
    assert (
        f"Training run {RUN_ID}: 2 location(s) trained, 1 failed "
        f"(full summary: s3://{BUCKET}/pipeline-runs/{RUN_ID}/summary.json)"
    ) in account.printed
    assert (
        "  failed: austin-tx: SageMaker.ResourceLimitExceededException: The account-level service limit for "
        "ml.c4.xlarge is 0 instances."
    ) in account.printed
    assert f"[4/4] Deploying every stack, the endpoint serving preprocessor generation {TRAINED}" in (
        account.printed
    )
    assert account.printed[-1] == "Deployed."
    account.stub.assert_no_pending_responses()


def test_without_a_config_file_the_defaults_and_no_context_flag_are_used(aws: None) -> None:
    account = Account(prefix="Mme", state_machine=pass_machine(SUMMARY))
    account.training_completes()

    assert account.main("--profile", "sandbox-admin") == 0

    assert account.cdk.calls == [
        ["deploy", "MmeStorage", "MmeTraining", "--require-approval", "never", "--profile", "sandbox-admin"],
        [
            "deploy", "--all", "--require-approval", "never",
            "-c", f"preprocessor_generation={TRAINED}", "--profile", "sandbox-admin",
        ],
    ]  # fmt: skip
    (execution,) = account.executions()
    default_locations = load_default_config().data.locations
    assert json.loads(execution["input"]) == {"locations": default_locations}


def test_an_existing_complete_generation_skips_training(aws: None, config_file: Callable[..., str]) -> None:
    config = config_file()
    account = Account(prefix="Sandbox", state_machine=pass_machine(SUMMARY))
    account.complete(OLDER)

    assert account.main("--config", config) == 0

    assert account.executions() == []
    assert account.cdk.calls == [
        deploy_args(config, "SandboxStorage", "SandboxTraining"),
        deploy_args(config, serving=OLDER),
    ]
    assert (
        f"Preprocessor generation {OLDER} is complete (s3://{BUCKET}/{NEWEST_KEY}): skipping training "
        "(pass --retrain to train again)." in account.printed
    )


def test_an_incomplete_generation_does_not_skip_training(aws: None, config_file: Callable[..., str]) -> None:
    """An artifact of a generation whose run is unfinished is not a reason to skip: only newest.json is."""
    account = Account(prefix="Sandbox", state_machine=pass_machine(SUMMARY))
    account.s3.put_object(Bucket=BUCKET, Key=f"preprocessor/{OLDER}/model.tar.gz", Body=b"fitted")
    account.training_completes()

    assert account.main("--config", config_file()) == 0

    assert [e["name"] for e in account.executions()] == [RUN_ID]


def test_retrain_trains_even_when_a_generation_is_complete(
    aws: None, config_file: Callable[..., str]
) -> None:
    config = config_file()
    account = Account(prefix="Sandbox", state_machine=pass_machine(SUMMARY))
    account.complete(OLDER)
    account.training_completes()

    assert account.main("--config", config, "--retrain") == 0

    assert [e["name"] for e in account.executions()] == [RUN_ID]
    assert account.cdk.executions_seen[-1] == [(RUN_ID, "SUCCEEDED")]
    assert account.cdk.calls[-1] == deploy_args(config, serving=TRAINED)


def test_a_run_into_the_served_generation_deploys_the_newest_one(
    aws: None, config_file: Callable[..., str]
) -> None:
    """A run that trains into an existing generation leaves newest.json as it was: that is deployed."""
    config = config_file()
    account = Account(prefix="Sandbox", state_machine=pass_machine(SUMMARY))
    account.complete(OLDER)

    assert account.main("--config", config, "--retrain") == 0

    assert account.cdk.calls[-1] == deploy_args(config, serving=OLDER)


def test_a_run_after_which_no_generation_is_complete_stops_before_the_endpoint(
    aws: None, config_file: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    account = Account(prefix="Sandbox", state_machine=pass_machine(SUMMARY))  # 1 location failed

    assert account.main("--config", config_file()) == 1

    assert len(account.cdk.calls) == 1
    assert capsys.readouterr().err == (
        f"Deploy stopped: Training run {RUN_ID} finished but no preprocessor generation is complete "
        f"(s3://{BUCKET}/{NEWEST_KEY} does not exist: a generation is complete only once every location of "
        "the run that fitted it was trained), so the endpoint was not deployed; fix the failed locations in "
        "the run's summary and train again with `make deploy RETRAIN=1`.\n"
    )


# --------------------------------------------------------------------------------------------------
# --generation: pinning and rolling back


def test_a_pinned_generation_is_deployed_without_training(aws: None, config_file: Callable[..., str]) -> None:
    config = config_file()
    account = Account(prefix="Sandbox", state_machine=pass_machine(SUMMARY))
    account.complete(OLDER, newest=False)
    account.complete(TRAINED)  # the newest, which --generation overrides

    assert account.main("--config", config, "--generation", OLDER) == 0

    assert account.executions() == []
    assert account.cdk.calls == [
        deploy_args(config, "SandboxStorage", "SandboxTraining"),
        deploy_args(config, serving=OLDER),
    ]
    assert f"[3/4] Checking preprocessor generation {OLDER} (no training)" in account.printed


def test_a_pinned_generation_that_is_not_complete_stops_before_the_endpoint(
    aws: None, config_file: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    account = Account(prefix="Sandbox", state_machine=pass_machine(SUMMARY))
    account.complete(TRAINED)

    assert account.main("--config", config_file(), "--generation", OLDER) == 1

    assert len(account.cdk.calls) == 1
    assert account.executions() == []
    assert capsys.readouterr().err == (
        f"Deploy stopped: Preprocessor generation {OLDER} is not complete (s3://{BUCKET}/preprocessor/{OLDER}/"
        "complete.json does not exist), so the endpoint was not deployed; pass --generation with a complete "
        "generation, or leave it out to deploy the newest one.\n"
    )


@pytest.mark.parametrize(
    ("key", "body"),
    [(NEWEST_KEY, b'{"generation": "pp-x"}'), (f"preprocessor/{OLDER}/complete.json", b"[]")],
    ids=["newest", "complete"],
)
def test_a_malformed_generation_record_is_named(
    aws: None, config_file: Callable[..., str], capsys: pytest.CaptureFixture[str], key: str, body: bytes
) -> None:
    account = Account(prefix="Sandbox", state_machine=pass_machine(SUMMARY))
    account.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    pinned = ["--generation", OLDER] if "complete" in key else []

    assert account.main("--config", config_file(), *pinned) == 1

    err = capsys.readouterr().err
    assert err.startswith("Deploy stopped: ")
    assert err.endswith("; it is written by the training state machine, do not edit it.\n")
    assert len(account.cdk.calls) == 1


def test_a_huge_location_list_goes_through_a_manifest(aws: None, config_file: Callable[..., str]) -> None:
    locations = [f"L{index:05d}-{'x' * 25}" for index in range(10_000)]  # 32 characters each
    account = Account(prefix="Sandbox", state_machine=pass_machine(SUMMARY))
    account.training_completes()

    assert account.main("--config", config_file(data={"locations": locations})) == 0

    manifest_key = f"location-manifests/{RUN_ID}.json"
    (execution,) = account.executions()
    assert json.loads(execution["input"]) == {"locations_manifest_key": manifest_key}
    manifest = account.s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read()
    assert json.loads(manifest) == locations


def test_the_inline_limit_is_on_the_encoded_input() -> None:
    """Just under the limit stays inline; one byte over needs the manifest."""

    class NoS3:
        def put_object(self, **_: Any) -> None:
            raise AssertionError("must stay inline")

    overhead = len('{"locations":[""]}')
    fits = ["a" * (deploy.INLINE_INPUT_MAX_BYTES - overhead)]
    assert len(deploy.execution_input(NoS3(), BUCKET, RUN_ID, fits, print)) == deploy.INLINE_INPUT_MAX_BYTES

    uploads: list[dict[str, Any]] = []

    class RecordingS3:
        def put_object(self, **params: Any) -> None:
            uploads.append(params)

    too_big = ["a" * (deploy.INLINE_INPUT_MAX_BYTES - overhead + 1)]
    assert json.loads(deploy.execution_input(RecordingS3(), BUCKET, RUN_ID, too_big, print)) == {
        "locations_manifest_key": f"location-manifests/{RUN_ID}.json"
    }
    assert [u["Key"] for u in uploads] == [f"location-manifests/{RUN_ID}.json"]

    # A refit asks for it in either form, and the flag counts towards the inline limit.
    assert json.loads(deploy.execution_input(RecordingS3(), BUCKET, RUN_ID, too_big, print, refit=True)) == {
        "locations_manifest_key": f"location-manifests/{RUN_ID}.json",
        "refit": True,
    }
    assert json.loads(deploy.execution_input(NoS3(), BUCKET, RUN_ID, ["Chicago_IL"], print, refit=True)) == {
        "locations": ["Chicago_IL"],
        "refit": True,
    }
    refit_fits = ["a" * (deploy.INLINE_INPUT_MAX_BYTES - len('{"locations":[""],"refit":true}'))]
    assert len(deploy.execution_input(NoS3(), BUCKET, RUN_ID, refit_fits, print, refit=True)) == (
        deploy.INLINE_INPUT_MAX_BYTES
    )


def test_run_ids_are_valid_execution_names_in_utc() -> None:
    from datetime import timedelta, timezone

    assert deploy.new_run_id(datetime(2025, 12, 31, 23, 59, 58, tzinfo=UTC)) == "deploy-20251231-235958"
    local = datetime(2026, 1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert deploy.new_run_id(local) == "deploy-20251231-230000"


# --------------------------------------------------------------------------------------------------
# Training that must stop the deploy


def test_a_failed_run_stops_before_the_endpoint(
    aws: None, config_file: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file()
    account = Account(prefix="Sandbox", state_machine=FAIL_MACHINE)

    code = account.main("--config", config)

    assert code == 1
    assert account.cdk.calls == [deploy_args(config, "SandboxStorage", "SandboxTraining")]
    (execution,) = account.executions()
    assert capsys.readouterr().err == (
        f"Deploy stopped: Training run {RUN_ID} ended FAILED (SageMaker.AmazonSageMakerException: "
        f"Training job pp-{RUN_ID} failed: AlgorithmError), so the endpoint was not deployed; see "
        f"`aws stepfunctions get-execution-history --execution-arn {execution['executionArn']}`, "
        "fix the cause and run `make deploy` again.\n"
    )


def test_a_run_that_trained_no_location_stops_before_the_endpoint(
    aws: None, config_file: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    nothing = {**SUMMARY, "succeeded_count": 0, "failed_count": 3}
    account = Account(prefix="Sandbox", state_machine=pass_machine(nothing))

    assert account.main("--config", config_file()) == 1

    assert len(account.cdk.calls) == 1
    assert capsys.readouterr().err == (
        f"Deploy stopped: Training run {RUN_ID} trained no location successfully (3 failed), so the "
        "endpoint would have no model to serve and was not deployed; see "
        f"s3://{BUCKET}/pipeline-runs/{RUN_ID}/summary.json.\n"
    )
    assert "  ... and 2 more in the summary" in account.printed


def test_an_aborted_run_stops_before_the_endpoint(
    aws: None, config_file: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    account = Account(prefix="Sandbox", state_machine=WAIT_MACHINE)

    def operator_stops_it(sleep_count: int) -> None:
        if sleep_count == 2:
            (running,) = account.executions()
            account.stepfunctions.stop_execution(executionArn=running["executionArn"])

    account.time.on_sleep = operator_stops_it

    assert account.main("--config", config_file()) == 1

    assert len(account.cdk.calls) == 1
    assert account.time.sleeps == [30, 30]
    assert f"Training run {RUN_ID}: ABORTED after 1 min 00 s" in account.printed
    assert f"Training run {RUN_ID} ended ABORTED" in capsys.readouterr().err


def test_timed_out_output_is_a_failure() -> None:
    description = {
        "executionArn": f"arn:aws:states:{REGION}:123456789012:execution:M:{RUN_ID}",
        "status": "TIMED_OUT",
    }
    with pytest.raises(deploy.DeployError, match=f"Training run {RUN_ID} ended TIMED_OUT, so the endpoint"):
        deploy.report_outcome(description, BUCKET, print)


def test_a_summary_that_is_not_a_summary_is_refused() -> None:
    description = {"executionArn": f"arn:x:{RUN_ID}", "status": "SUCCEEDED", "output": '{"ok": true}'}
    with pytest.raises(deploy.DeployError, match="its output is not a run summary"):
        deploy.report_outcome(description, BUCKET, print)


def test_the_wait_is_bounded_and_prints_progress(
    aws: None, config_file: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    account = Account(prefix="Sandbox", state_machine=WAIT_MACHINE)

    code = account.main("--config", config_file(), "--timeout-minutes", "12", "--poll-seconds", "60")

    assert code == 1
    assert len(account.cdk.calls) == 1
    assert account.time.sleeps == [60] * 12
    progress = [line for line in account.printed if line.startswith(f"Training run {RUN_ID}: RUNNING")]
    assert progress == [
        f"Training run {RUN_ID}: RUNNING (0 s so far)",
        f"Training run {RUN_ID}: RUNNING (5 min 00 s so far)",
        f"Training run {RUN_ID}: RUNNING (10 min 00 s so far)",
    ]
    assert capsys.readouterr().err == (
        f"Deploy stopped: Training run {RUN_ID} is still running after 12 min 00 s; it goes on in the "
        "background: run `make deploy` again to keep waiting for it (it will not start another run), or "
        "pass a larger --timeout-minutes.\n"
    )


def test_the_default_wait_is_the_state_machine_timeout(aws: None, config_file: Callable[..., str]) -> None:
    account = Account(prefix="Sandbox", state_machine=WAIT_MACHINE)

    config = config_file(training={"execution_timeout_minutes": 60})
    assert account.main("--config", config, "--poll-seconds", "600") == 1

    assert sum(account.time.sleeps) == 60 * 60


def test_a_run_already_in_progress_is_waited_for_not_duplicated(
    aws: None, config_file: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    account = Account(prefix="Sandbox", state_machine=WAIT_MACHINE)
    account.stepfunctions.start_execution(
        stateMachineArn=account.state_machine_arn, name="deploy-20250430-090000", input="{}"
    )

    assert account.main("--config", config_file(), "--timeout-minutes", "1") == 1

    assert [e["name"] for e in account.executions()] == ["deploy-20250430-090000"]
    assert "Training run deploy-20250430-090000 is already running; waiting for it." in account.printed
    assert "Training run deploy-20250430-090000 is still running after 1 min 00 s" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Everything else that can stop it, each with one sentence


def test_a_failing_cdk_deploy_stops_with_its_exit_code(
    aws: None, config_file: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file()
    account = Account(prefix="Sandbox", state_machine=pass_machine(SUMMARY), cdk_exit_codes=[3])

    assert account.main("--config", config) == 3

    assert account.cdk.calls == [deploy_args(config, "SandboxStorage", "SandboxTraining")]
    assert account.executions() == []
    assert capsys.readouterr().err == (
        "Deploy stopped: `cdk deploy SandboxStorage SandboxTraining --require-approval never "
        f"-c config={config}` failed with exit code 3; fix the error it printed above and run "
        "`make deploy` again (finished steps are skipped or quick the second time).\n"
    )
    with pytest.raises(AssertionError):  # DescribeStacks was never called
        account.stub.assert_no_pending_responses()


def test_a_failing_endpoint_deploy_returns_its_exit_code(aws: None, config_file: Callable[..., str]) -> None:
    account = Account(prefix="Sandbox", state_machine=pass_machine(SUMMARY), cdk_exit_codes=[0, 1])
    account.training_completes()

    assert account.main("--config", config_file()) == 1

    assert len(account.cdk.calls) == 2
    assert "Deployed." not in account.printed


def test_a_missing_stack_output_is_named(
    aws: None, config_file: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    account = Account(prefix="Sandbox", state_machine=pass_machine(SUMMARY), training_outputs={})

    assert account.main("--config", config_file()) == 1

    assert len(account.cdk.calls) == 1
    assert account.executions() == []
    assert capsys.readouterr().err == (
        f"Deploy stopped: Stack SandboxTraining in {REGION} has no output StateMachineArn (status "
        "CREATE_COMPLETE); redeploy it from this repository with `npx cdk deploy SandboxTraining`.\n"
    )


def test_a_stack_that_is_not_deployed_is_named(
    aws: None, config_file: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    account = Account(
        prefix="Sandbox",
        state_machine=pass_machine(SUMMARY),
        storage_error="Stack with id SandboxStorage does not exist",
    )

    assert account.main("--config", config_file()) == 1

    assert capsys.readouterr().err == (
        f"Deploy stopped: Stack SandboxStorage is not deployed in {REGION}; deploy it with `npx cdk deploy "
        "SandboxStorage`, or pass the --region it was deployed to.\n"
    )


def test_no_credentials_stops_before_anything_runs(
    config_file: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The real ``connect``: no keys in the environment, no files, no instance metadata."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    calls: list[Sequence[str]] = []

    def cdk(args: Sequence[str]) -> int:
        calls.append(args)
        return 0

    code = deploy.main(["--config", config_file(), "--region", REGION], cdk=cdk)

    assert code == 1
    assert calls == []
    assert capsys.readouterr().err == (
        "Deploy stopped: no AWS credentials were found; set AWS_PROFILE (or pass --profile) or configure "
        "credentials as for the AWS CLI, then run it again.\n"
    )


def test_no_region_is_a_clear_message(
    config_file: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))

    assert deploy.main(["--config", config_file()], cdk=lambda a: 0) == 1

    assert capsys.readouterr().err == (
        'Deploy stopped: No AWS region is set: pass --region, set AWS_REGION, or set "region" in the '
        "config file.\n"
    )


def test_a_region_that_contradicts_the_config_is_refused(
    config_file: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = deploy.main(["--config", config_file(region="eu-west-1"), "--region", REGION], cdk=lambda a: 0)

    assert code == 1
    assert capsys.readouterr().err == (
        f"Deploy stopped: --region {REGION} differs from the config's region eu-west-1, where the stacks "
        "are deployed; drop --region or change the config.\n"
    )


def test_an_unknown_profile_is_named(
    config_file: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))

    assert deploy.main(["--config", config_file(), "--profile", "nope"], cdk=lambda a: 0) == 1

    assert capsys.readouterr().err.startswith("Deploy stopped: The AWS profile 'nope' is not configured")


def test_an_invalid_config_is_reported_like_synth_does(
    config_file: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = deploy.main(["--config", config_file(data={"locations": ["../etc"]})], cdk=lambda a: 0)

    assert code == 1
    assert capsys.readouterr().err.startswith(
        "Deploy stopped: Invalid configuration: config key 'data.locations' entry 0: '../etc' is not allowed"
    )


@pytest.mark.parametrize("pinned", [False, True], ids=["newest", "pinned"])
def test_access_denied_on_a_generation_record_is_explained(pinned: bool) -> None:
    s3 = boto3.client("s3", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")  # noqa: S106
    key = f"preprocessor/{OLDER}/complete.json" if pinned else NEWEST_KEY
    with Stubber(s3) as stub:
        stub.add_client_error(
            "get_object",
            service_error_code="AccessDenied",
            http_status_code=403,
            expected_params={"Bucket": BUCKET, "Key": key},
        )
        read: Callable[[], object] = (
            (lambda: deploy.require_complete(s3, BUCKET, OLDER))
            if pinned
            else (lambda: deploy.newest_generation(s3, BUCKET))
        )
        with pytest.raises(deploy.DeployError) as raised:
            read()
    assert str(raised.value) == (
        f"Cannot read s3://{BUCKET}/{key} (S3 answered 403): your credentials need s3:GetObject on it, "
        "s3:ListBucket on the bucket and kms:Decrypt on the project key."
    )


def test_other_aws_errors_name_the_call(
    aws: None, config_file: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    account = Account(
        prefix="Sandbox",
        state_machine=pass_machine(SUMMARY),
        training_outputs={"StateMachineArn": f"arn:aws:states:{REGION}:123456789012:stateMachine:Gone"},
    )

    assert account.main("--config", config_file()) == 1

    assert capsys.readouterr().err.startswith(
        "Deploy stopped: AWS refused ListExecutions (StateMachineDoesNotExist"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--timeout-minutes", "0"], "0 is not between 1 and 10080"),
        (["--poll-seconds", "soon"], "'soon' is not a whole number"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--generation", "current"], "preprocessor generation 'current' is not allowed: use 'pp-' followed"),
        (["--generation", OLDER, "--retrain"], "argument --retrain: not allowed with argument --generation"),
    ],
)
def test_bad_usage_exits_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        deploy.main(argv, cdk=lambda a: 0)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# The real CDK runner


def test_the_subprocess_runner_runs_in_the_repository_with_the_region(tmp_path: Path) -> None:
    """A stand-in command (this Python) in place of npx: arguments, working folder, environment, exit code."""
    record = tmp_path / "record.json"
    script = (
        "import json, os, sys; "
        f"open({str(record)!r}, 'w').write(json.dumps({{'argv': sys.argv[1:], 'cwd': os.getcwd(), "
        "'region': os.environ['AWS_REGION'], 'default_region': os.environ['AWS_DEFAULT_REGION'], "
        "'version_check': os.environ['CDK_DISABLE_VERSION_CHECK']})); sys.exit(4)"
    )
    runner = deploy.SubprocessCdk(region="eu-west-1", command=(sys.executable, "-c", script))

    assert runner(["deploy", "--all"]) == 4
    assert json.loads(record.read_text()) == {
        "argv": ["deploy", "--all"],
        "cwd": str(deploy.REPO_ROOT),
        "region": "eu-west-1",
        "default_region": "eu-west-1",
        "version_check": "1",
    }


def test_a_missing_npx_is_a_clear_message() -> None:
    runner = deploy.SubprocessCdk(region=REGION, command=("/nonexistent/npx", "--no-install", "cdk"))
    with pytest.raises(deploy.DeployError, match=r"was not found: install Node\.js 20 or newer"):
        runner(["deploy"])
