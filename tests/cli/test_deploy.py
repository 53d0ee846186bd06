"""``mme deploy`` against moto (CloudFormation, S3, Step Functions executing small state machines,
SageMaker, Application Auto Scaling) and a recording CDK runner that creates the stacks it deploys.

moto really executes the stand-in state machines (a Pass state returning a run summary, a Fail
state, a long Wait), so the command polls real execution states. Time is a fake clock: the waits
cost nothing. The preflight is replaced by a recorded result (its own checks are tested in
tests/cli/test_preflight.py), except where a test checks that its problems stop the deploy.
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
from moto import mock_aws

from mme_cli import cdk as cdk_module
from mme_cli import preflight, runs
from mme_cli.commands import deploy
from mme_cli.deployment import CliError
from mme_cli.runs import Clock
from mme_shared import generation, s3_layout
from tests.cli.conftest import CliResult, create_stack

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "sandbox-artifacts-123456789012"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/training-state-machine"
NOW = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC)
RUN_ID = "deploy-20250501-120000"
TRAINED = f"pp-{RUN_ID}"
"""The generation the run the command starts completes (a first run fits one)."""
OLDER = "pp-deploy-20250401-090000"
LOCATIONS = ["NewYork_NY", "Chicago_IL", "austin-tx"]
ENDPOINT = "sandbox-endpoint"
SUMMARY = {
    "run_id": RUN_ID,
    "generation": TRAINED,
    "refit": True,
    "generation_complete": True,
    "summary_key": f"pipeline-runs/{RUN_ID}/summary.json",
    "succeeded_count": 3,
    "failed_count": 0,
    "succeeded": [],
    "failed": [],
    "truncated": False,
    "nothing_promoted": False,
}
WAIT_MACHINE = {"StartAt": "Train", "States": {"Train": {"Type": "Wait", "Seconds": 3600, "End": True}}}


def pass_machine(result: object) -> dict[str, Any]:
    return {"StartAt": "Summarize", "States": {"Summarize": {"Type": "Pass", "Result": result, "End": True}}}


def fail_machine(error: str, cause: str) -> dict[str, Any]:
    return {"StartAt": "Fail", "States": {"Fail": {"Type": "Fail", "Error": error, "Cause": cause}}}


@pytest.fixture(scope="module")
def _moto() -> Iterator[Any]:
    mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
    mock.start()
    yield mock
    mock.stop()


@dataclass
class FakeTime:
    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        time.sleep(0.005)  # lets moto's execution thread move on

    def clock(self) -> Clock:
        return Clock(monotonic=self.monotonic, sleep=self.sleep, utcnow=lambda: NOW)


@dataclass
class FakeCdk:
    """Records each ``cdk`` call (and the interim config it was given) and creates the stacks a
    successful ``deploy`` of storage and training would, so the command reads their outputs."""

    account: Account
    exit_codes: list[int] = field(default_factory=list)
    calls: list[list[str]] = field(default_factory=list)
    configs: list[dict[str, Any] | None] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)

    def __call__(self, args: Sequence[str]) -> int:
        self.calls.append(list(args))
        config = next((a.split("=", 1)[1] for a in args if a.startswith("config=")), None)
        self.configs.append(json.loads(Path(config).read_text()) if config else None)
        code = self.exit_codes.pop(0) if self.exit_codes else 0
        if code == 0 and "SandboxStorage" in args:
            self.account.create_storage_and_training()
        return code


@dataclass
class Account:
    state_machine: dict[str, Any]
    cdk_exit_codes: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.s3 = boto3.client("s3", region_name=REGION)
        self.stepfunctions = boto3.client("stepfunctions", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET)
        self.state_machine_arn = self.stepfunctions.create_state_machine(
            name="SandboxTrainingStateMachine", definition=json.dumps(self.state_machine), roleArn=ROLE_ARN
        )["stateMachineArn"]
        self.cdk = FakeCdk(self, exit_codes=list(self.cdk_exit_codes))
        self.time = FakeTime()
        self.on_start: list[Callable[[], None]] = []

    def create_storage_and_training(self) -> None:
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        names = {s["StackName"] for s in cloudformation.describe_stacks()["Stacks"]}
        if "SandboxStorage" not in names:
            create_stack("SandboxStorage", {"ArtifactBucketName": BUCKET, "KeyArn": KEY_ARN})
            create_stack("SandboxTraining", {"StateMachineArn": self.state_machine_arn})

    def executions(self) -> list[dict[str, Any]]:
        listed = self.stepfunctions.list_executions(stateMachineArn=self.state_machine_arn)["executions"]
        return [self.stepfunctions.describe_execution(executionArn=e["executionArn"]) for e in listed]

    def complete(self, generation_id: str, *, newest: bool = True, algorithm: str = "linear-learner") -> None:
        record = generation.CompleteGeneration(
            generation_id, generation_id.removeprefix("pp-"), 3, NOW, algorithm=algorithm
        )
        self.s3.put_object(Bucket=BUCKET, Key=record.key, Body=record.to_json())
        if newest:
            ref = generation.GenerationRef(generation=generation_id, updated_at=NOW)
            self.s3.put_object(Bucket=BUCKET, Key=s3_layout.NEWEST_GENERATION_KEY, Body=ref.to_json())

    def training_completes(self, generation_id: str = TRAINED, algorithm: str = "linear-learner") -> None:
        """Each run the command starts completes ``generation_id``, as a successful refit's summary
        step would (moto runs only the stand-in Pass state)."""
        self.on_start.append(lambda: self.complete(generation_id, algorithm=algorithm))


PASSED = preflight.PreflightResult(account=ACCOUNT, region=REGION, passed=["everything checked"], problems=[])


@pytest.fixture
def env(_moto: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Account]:
    """A fresh mocked account, and the command's runner, clock and preflight replaced."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    _moto.reset()
    preflights: list[str] = []

    def fake_preflight(client: Any, config: Any, *, region: str) -> preflight.PreflightResult:
        preflights.append(region)
        return PASSED

    monkeypatch.setattr(preflight, "run_preflight", fake_preflight)

    def make(state_machine: dict[str, Any], **options: Any) -> Account:
        account = Account(state_machine, **options)
        account.preflights = preflights  # type: ignore[attr-defined]

        def runner(region: str) -> FakeCdk:
            account.cdk.regions.append(region)
            return account.cdk

        monkeypatch.setattr(deploy, "CDK_RUNNER", runner)
        start = runs.start_run

        def start_and_complete(*args: Any, **kwargs: Any) -> str:
            arn = start(*args, **kwargs)
            for hook in account.on_start:
                hook()
            return arn

        monkeypatch.setattr(runs, "start_run", start_and_complete)
        monkeypatch.setattr(deploy, "CLOCK", account.time.clock())
        return account

    return make


@pytest.fixture
def config_file(tmp_path: Path) -> Callable[..., str]:
    def write(**settings: Any) -> str:
        content = {"stack_prefix": "Sandbox", "data": {"locations": LOCATIONS}, **settings}
        path = tmp_path / "sandbox.json"
        path.write_text(json.dumps(content))
        return str(path)

    return write


@pytest.fixture
def mme(run_cli: Callable[..., CliResult]) -> Callable[..., CliResult]:
    """The console-script entry point (tests/cli/conftest.py), under this module's name for it."""
    return run_cli


def deploy_args(
    config: str, *stacks: str, serving: str | None = None, exclusively: bool = False
) -> list[str]:
    args = ["deploy", *(stacks or ("--all",)), "--require-approval", "never"]
    args += ["--exclusively"] if exclusively else []
    args += ["-c", f"config={config}"]
    return args + (["-c", f"preprocessor_generation={serving}"] if serving else [])


def flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------------
# The path that works


def test_first_deploy_runs_the_preflight_trains_then_deploys_the_endpoint(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    config = config_file()
    account = env(pass_machine(SUMMARY))
    account.training_completes()

    result = mme("--config", config, "deploy")

    assert result.exit_code == 0, result.stderr
    assert account.preflights == [REGION]  # type: ignore[attr-defined]
    assert account.cdk.regions == [REGION]
    assert account.cdk.calls == [
        deploy_args(config, "SandboxStorage", "SandboxTraining"),
        deploy_args(config, serving=TRAINED),  # pinned to the generation the run completed
    ]
    (execution,) = account.executions()
    assert execution["name"] == RUN_ID
    assert json.loads(execution["input"]) == {"locations": LOCATIONS}
    output = flat(result.stdout)
    assert "ok: everything checked" in output
    assert f"Training run {RUN_ID}: 3 trained, 0 failed" in output
    assert f"[5/5] Deploying every stack, the endpoint serving preprocessor generation {TRAINED}" in output
    assert output.endswith("Deployed.")


def test_the_region_comes_from_aws_region_alone(
    env: Callable[..., Account],
    config_file: Callable[..., str],
    mme: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rule of every mme command: --region, AWS_REGION, AWS_DEFAULT_REGION, the profile."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", REGION)
    account = env(pass_machine(SUMMARY))
    account.complete(OLDER)

    assert mme("--config", config_file(), "deploy").exit_code == 0
    assert account.cdk.regions == [REGION]


def test_an_existing_complete_generation_skips_training(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    config = config_file()
    account = env(pass_machine(SUMMARY))
    account.complete(OLDER)

    result = mme("--config", config, "deploy")

    assert result.exit_code == 0, result.stderr
    assert account.executions() == []
    assert account.cdk.calls[-1] == deploy_args(config, serving=OLDER)
    assert f"Preprocessor generation {OLDER} is complete" in flat(result.stdout)


@pytest.mark.parametrize(("flag", "refit"), [("--retrain", False), ("--refit", True)])
def test_retrain_and_refit_train_even_when_a_generation_is_complete(
    env: Callable[..., Account],
    config_file: Callable[..., str],
    mme: Callable[..., CliResult],
    flag: str,
    refit: bool,
) -> None:
    config = config_file()
    account = env(pass_machine(SUMMARY))
    account.complete(OLDER)
    account.training_completes()

    assert mme("--config", config, "deploy", flag).exit_code == 0

    (execution,) = account.executions()
    assert json.loads(execution["input"]) == {"locations": LOCATIONS, **({"refit": True} if refit else {})}
    assert account.cdk.calls[-1] == deploy_args(config, serving=TRAINED)


def test_a_pinned_generation_is_deployed_without_training(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    config = config_file()
    account = env(pass_machine(SUMMARY))
    account.complete(TRAINED)
    account.complete(OLDER, newest=False)

    assert mme("--config", config, "deploy", "--generation", OLDER).exit_code == 0

    assert account.executions() == []
    assert account.cdk.calls[-1] == deploy_args(config, serving=OLDER)


def test_a_pinned_generation_that_is_not_complete_stops_before_the_endpoint(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    config = config_file()
    account = env(pass_machine(SUMMARY))

    result = mme("--config", config, "deploy", "--generation", OLDER)

    assert result.exit_code == 1
    assert account.cdk.calls == [deploy_args(config, "SandboxStorage", "SandboxTraining")]
    assert flat(result.stderr) == (
        f"Error: Preprocessor generation {OLDER} is not complete (s3://{BUCKET}/preprocessor/{OLDER}/"
        "complete.json does not exist), so the endpoint was not deployed; pass --generation with a "
        "complete generation, or leave it out to deploy the newest one."
    )


def test_a_run_after_which_no_generation_is_complete_stops_before_the_endpoint(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    account = env(pass_machine({**SUMMARY, "generation_complete": False, "failed_count": 1}))

    result = mme("--config", config_file(), "deploy")

    assert result.exit_code == 1
    assert len(account.cdk.calls) == 1
    assert f"Training run {RUN_ID} finished but no preprocessor generation is complete" in flat(result.stderr)
    assert "run `mme deploy --refit`" in flat(result.stderr)


def test_a_generation_of_another_algorithm_is_refitted_not_deployed(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    """training.algorithm changed to XGBoost: the newest generation's linear-learner models cannot be
    served by an XGBoost endpoint, so a refit trains every location again before the endpoint moves."""
    config = config_file(training={"algorithm": "xgboost"})
    account = env(pass_machine(SUMMARY))
    account.complete(OLDER)  # linear learner
    account.training_completes(algorithm="xgboost")

    result = mme("--config", config, "deploy")

    assert result.exit_code == 0, result.stderr
    (execution,) = account.executions()
    assert json.loads(execution["input"]) == {"locations": LOCATIONS, "refit": True}
    assert account.cdk.calls[-1] == deploy_args(config, serving=TRAINED)
    assert (
        f"Preprocessor generation {OLDER} holds linear learner models, but training.algorithm is xgboost: a "
        "refit trains a new generation of XGBoost models for every location."
    ) in flat(result.stdout)


def test_a_generation_of_the_configured_algorithm_skips_training(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    config = config_file(training={"algorithm": "knn"})
    account = env(pass_machine(SUMMARY))
    account.complete(OLDER, algorithm="knn")

    assert mme("--config", config, "deploy").exit_code == 0

    assert account.executions() == []
    assert account.cdk.calls[-1] == deploy_args(config, serving=OLDER)


def test_a_pinned_generation_of_another_algorithm_is_refused(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    config = config_file(training={"algorithm": "randomcutforest"})
    account = env(pass_machine(SUMMARY))
    account.complete(OLDER)

    result = mme("--config", config, "deploy", "--generation", OLDER)

    assert result.exit_code == 1
    assert account.cdk.calls == [deploy_args(config, "SandboxStorage", "SandboxTraining")]
    assert flat(result.stderr) == (
        f"Error: Preprocessor generation {OLDER} holds linear learner models, but training.algorithm is "
        "randomcutforest and an endpoint serves only its own algorithm's models, so the endpoint was not "
        "deployed; pass --generation with a generation trained with randomcutforest, or leave it out to "
        "train one."
    )


def test_a_refit_that_left_only_the_old_algorithms_generation_stops_before_the_endpoint(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    config = config_file(training={"algorithm": "xgboost"})
    account = env(pass_machine({**SUMMARY, "generation_complete": False, "failed_count": 1}))
    account.complete(OLDER)  # linear learner, still the newest: the refit did not complete

    result = mme("--config", config, "deploy")

    assert result.exit_code == 1
    assert len(account.cdk.calls) == 1
    assert flat(result.stderr) == (
        f"Error: Training run {RUN_ID} finished but the newest complete generation, {OLDER}, holds linear "
        "learner models, not XGBoost ones (the refit for training.algorithm did not complete), so the "
        "endpoint was not deployed; fix the failed locations in the run's summary and run `mme deploy "
        "--refit`."
    )


AUSTIN_FAILED = {"location": "austin-tx", "failed_step": "train", "error": "X", "cause": "Y"}


def test_a_partial_run_with_a_failed_location_still_deploys_the_newest_generation(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    config = config_file()
    account = env(
        pass_machine({**SUMMARY, "refit": False, "generation": OLDER, "generation_complete": False,
                      "succeeded_count": 2, "failed_count": 1, "failed": [AUSTIN_FAILED]})
    )  # fmt: skip
    account.complete(OLDER)

    result = mme("--config", config, "deploy", "--retrain")

    assert result.exit_code == 0, result.stderr
    assert account.cdk.calls[-1] == deploy_args(config, serving=OLDER)
    assert "austin-tx" in result.stdout


def test_a_failed_run_stops_before_the_endpoint_and_explains_it(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    account = env(fail_machine("IncompleteGeneration", "not every location was promoted"))

    result = mme("--config", config_file(), "deploy")

    assert result.exit_code == 1
    assert len(account.cdk.calls) == 1
    assert f"Training run {RUN_ID} failed with IncompleteGeneration" in flat(result.stderr)


def test_the_wait_is_bounded_and_resumable(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    account = env(WAIT_MACHINE)

    result = mme("--config", config_file(), "deploy", "--timeout-minutes", "12", "--poll-seconds", "60")

    assert result.exit_code == 1
    assert len(account.cdk.calls) == 1
    assert account.time.sleeps == [60] * 12
    assert flat(result.stderr) == (
        f"Error: Training run {RUN_ID} is still running after 12 min 00 s; it goes on in the background: "
        "run `mme deploy` again to keep waiting for it (it starts no second run)."
    )


def test_a_run_already_in_progress_is_waited_for_not_duplicated(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    account = env(WAIT_MACHINE)
    account.stepfunctions.start_execution(
        stateMachineArn=account.state_machine_arn, name="deploy-20250430-090000", input="{}"
    )

    result = mme("--config", config_file(), "deploy", "--timeout-minutes", "1")

    assert result.exit_code == 1
    assert [e["name"] for e in account.executions()] == ["deploy-20250430-090000"]
    assert "Training run deploy-20250430-090000 is already running; waiting for it." in flat(result.stdout)


# --------------------------------------------------------------------------------------------------
# What stops it first


def test_preflight_problems_stop_it_before_any_stack_changes(
    env: Callable[..., Account],
    config_file: Callable[..., str],
    mme: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account = env(pass_machine(SUMMARY))
    problems = [
        "The CDK bootstrap is missing: run `npx cdk bootstrap aws://123456789012/us-east-1`.",
        "Quota ml.c4.xlarge for training job usage is 0, 4 are needed: request an increase.",
    ]
    monkeypatch.setattr(
        preflight,
        "run_preflight",
        lambda client, config, *, region: preflight.PreflightResult(ACCOUNT, region, [], problems),
    )

    result = mme("--config", config_file(), "deploy")

    assert result.exit_code == 1
    assert account.cdk.calls == []
    assert result.stderr.startswith(
        f"Error: The preflight found 2 problem(s) in account {ACCOUNT}, {REGION}, so nothing was deployed"
    )
    for problem in problems:
        assert f"  - {problem}" in result.stderr


def test_skip_preflight_deploys_without_it(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    account = env(pass_machine(SUMMARY))
    account.complete(OLDER)

    result = mme("--config", config_file(), "deploy", "--skip-preflight")

    assert result.exit_code == 0, result.stderr
    assert account.preflights == []  # type: ignore[attr-defined]
    assert "[0/5] Preflight skipped (--skip-preflight)" in result.stdout


def test_a_failing_cdk_deploy_stops_with_its_exit_code(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    config = config_file()
    account = env(pass_machine(SUMMARY), cdk_exit_codes=[3])

    result = mme("--config", config, "deploy")

    assert result.exit_code == 3
    assert account.cdk.calls == [deploy_args(config, "SandboxStorage", "SandboxTraining")]
    assert account.executions() == []
    assert flat(result.stderr) == (
        "Error: `cdk deploy SandboxStorage SandboxTraining --require-approval never "
        f"-c config={config}` failed with exit code 3; fix the error it printed above and run "
        "`mme deploy` again (finished steps are skipped or quick the second time)."
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--generation", "current"], "generation 'current' is not allowed"),
        (["--generation", OLDER, "--retrain"], "--generation deploys without training"),
        (["--timeout-minutes", "0"], "--timeout-minutes"),
    ],
)
def test_bad_usage_exits_2(
    env: Callable[..., Account], mme: Callable[..., CliResult], argv: list[str], message: str
) -> None:
    account = env(pass_machine(SUMMARY))
    result = mme("deploy", *argv)
    assert result.exit_code == 2
    assert message in flat(result.stderr.replace("│", " "))
    assert account.cdk.calls == []


# --------------------------------------------------------------------------------------------------
# Changing the instance type of an autoscaled endpoint


def _deployed_endpoint(instance_type: str, *, scaled: bool) -> None:
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model(
        ModelName="pipeline", ExecutionRoleArn=ROLE_ARN, Containers=[{"Image": "img", "Mode": "SingleModel"}]
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="config-1",
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "pipeline", "InitialInstanceCount": 2,
             "InstanceType": instance_type}
        ],
    )  # fmt: skip
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="config-1")
    create_stack("SandboxEndpoint", {"EndpointName": ENDPOINT, "VariantName": "AllTraffic"})
    if scaled:
        boto3.client("application-autoscaling", region_name=REGION).register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=f"endpoint/{ENDPOINT}/variant/AllTraffic",
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            MinCapacity=1,
            MaxCapacity=4,
        )


def test_an_instance_type_change_under_autoscaling_deregisters_it_through_cloudformation_first(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    config = config_file(endpoint={"instance_type": "ml.c4.xlarge", "container_log_level": "WARNING"})
    account = env(pass_machine(SUMMARY))
    account.complete(OLDER)
    account.create_storage_and_training()
    _deployed_endpoint("ml.m4.xlarge", scaled=True)

    result = mme("--config", config, "deploy")

    assert result.exit_code == 0, result.stderr
    storage_training, interim, everything = account.cdk.calls
    assert storage_training == deploy_args(config, "SandboxStorage", "SandboxTraining")
    assert interim[:5] == ["deploy", "SandboxEndpoint", "--require-approval", "never", "--exclusively"]
    assert interim[-2:] == ["-c", f"preprocessor_generation={OLDER}"]
    # The interim config is the user's, with the deployed type kept and autoscaling removed.
    assert account.cdk.configs[1] == {
        "stack_prefix": "Sandbox",
        "data": {"locations": LOCATIONS},
        "endpoint": {
            "instance_type": "ml.m4.xlarge",
            "container_log_level": "WARNING",
            "autoscaling": {"enabled": False},
        },
    }
    assert everything == deploy_args(config, serving=OLDER)
    assert "ml.m4.xlarge -> ml.c4.xlarge with autoscaling registered" in flat(result.stdout)


@pytest.mark.parametrize(
    ("deployed", "scaled", "said"),
    [
        ("ml.c4.xlarge", True, "instance type ml.c4.xlarge unchanged"),
        (
            "ml.m4.xlarge",
            False,
            "ml.m4.xlarge -> ml.c4.xlarge: no scalable target registered, a plain update",
        ),
    ],
)
def test_no_interim_deploy_when_it_is_not_needed(
    env: Callable[..., Account],
    config_file: Callable[..., str],
    mme: Callable[..., CliResult],
    deployed: str,
    scaled: bool,
    said: str,
) -> None:
    config = config_file(endpoint={"instance_type": "ml.c4.xlarge"})
    account = env(pass_machine(SUMMARY))
    account.complete(OLDER)
    account.create_storage_and_training()
    _deployed_endpoint(deployed, scaled=scaled)

    result = mme("--config", config, "deploy")

    assert result.exit_code == 0, result.stderr
    assert len(account.cdk.calls) == 2
    assert said in flat(result.stdout)


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
    runner = cdk_module.SubprocessCdk(region="eu-west-1", command=(sys.executable, "-c", script))

    assert runner(["deploy", "--all"]) == 4
    assert json.loads(record.read_text()) == {
        "argv": ["deploy", "--all"],
        "cwd": str(cdk_module.REPO_ROOT),
        "region": "eu-west-1",
        "default_region": "eu-west-1",
        "version_check": "1",
    }


def test_a_missing_npx_is_a_clear_message() -> None:
    runner = cdk_module.SubprocessCdk(region=REGION, command=("/nonexistent/npx", "--no-install", "cdk"))
    with pytest.raises(CliError, match=r"was not found: install Node\.js 20 or newer"):
        runner(["deploy"])


# --------------------------------------------------------------------------------------------------
# The generation records it reads


def test_a_malformed_newest_record_is_named(
    env: Callable[..., Account], config_file: Callable[..., str], mme: Callable[..., CliResult]
) -> None:
    account = env(pass_machine(SUMMARY))
    account.s3.put_object(Bucket=BUCKET, Key=s3_layout.NEWEST_GENERATION_KEY, Body=b'{"generation": 7}')

    result = mme("--config", config_file(), "deploy")

    assert result.exit_code == 1
    assert "it is written by the training state machine, do not edit it." in flat(result.stderr)
    assert len(account.cdk.calls) == 1


def test_access_denied_on_the_newest_record_says_which_permissions(
    env: Callable[..., Account],
    config_file: Callable[..., str],
    mme: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """moto cannot deny a request, so the read raises S3's 403 as a real bucket would."""
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    account = env(pass_machine(SUMMARY))

    def denied(*args: Any, **kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

    monkeypatch.setattr(generation, "read_ref", denied)

    result = mme("--config", config_file(), "deploy")

    assert result.exit_code == 1
    assert flat(result.stderr) == (
        f"Error: Cannot read s3://{BUCKET}/preprocessor/newest.json (S3 answered 403): your credentials "
        "need s3:GetObject on it, s3:ListBucket on the bucket and kms:Decrypt on the project key."
    )
    assert len(account.cdk.calls) == 1
