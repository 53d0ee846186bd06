"""``mme train`` against moto Step Functions (a Pass/Fail machine standing in for the training run)
and ``mme predict`` against moto S3 pointers plus botocore Stubbers for SageMaker."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.response import StreamingBody  # type: ignore[import-untyped]
from botocore.stub import Stubber  # type: ignore[import-untyped]
from moto import mock_aws

from mme_cli import runs
from mme_cli.commands import train_predict
from mme_cli.context import CliContext
from mme_cli.deployment import Deployment
from mme_cli.runs import Clock
from mme_shared import s3_layout
from mme_shared.model_pointer import ModelPointer
from tests.cli.conftest import (
    ALGORITHM_NAMES,
    BUCKET,
    ENDPOINT,
    GENERATION,
    NEW_GENERATION,
    REGION,
    STATE_MACHINE_ARN,
    UNREADABLE_ANSWERS,
    CliResult,
    answer_body,
    create_stack,
    json_document,
    record_complete,
    record_serving,
)

RunCli = Callable[..., CliResult]
NOW = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC)
ROLE = "arn:aws:iam::123456789012:role/training"
HOUSE = ["1993", "2728", "6", "3.0", "0.7", "1", "y", "y"]


# --------------------------------------------------------------------------------------------------
# Fakes


@dataclass
class FakeTime:
    """Monotonic time that moves only when the CLI sleeps, or by the scripted ``ticks`` per reading."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)
    ticks: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        if self.ticks:
            self.now += self.ticks.pop(0)
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        time.sleep(0.002)  # lets moto's execution thread move on (real, but tiny)

    def clock(self) -> Clock:
        return Clock(monotonic=self.monotonic, sleep=self.sleep, utcnow=lambda: NOW)


SESSION = boto3.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")  # noqa: S106
"""One session for the tests and every CLI invocation: botocore parses each service model once (speed)."""


@pytest.fixture(autouse=True)
def fast_wide_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as wide as they need (the assertions see whole cells); the shared session."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr(CliContext, "session", property(lambda self: SESSION))


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(train_predict, "CLOCK", fake.clock())
    return fake


@pytest.fixture
def outputs(aws: None, monkeypatch: pytest.MonkeyPatch, deployed_algorithm: str) -> None:
    """What ``deployed`` gives, without moto CloudFormation (slow): the discovered outputs directly.

    One test per command keeps the real discovery from stack outputs (``deployed``).
    """
    SESSION.client("s3").create_bucket(Bucket=BUCKET)
    deployment = Deployment(
        prefix="Mme",
        region=REGION,
        outputs={
            "MmeStorage": {"ArtifactBucketName": BUCKET},
            "MmeTraining": {"StateMachineArn": STATE_MACHINE_ARN},
            "MmeEndpoint": {
                "EndpointName": ENDPOINT,
                "VariantName": "AllTraffic",
                "Algorithm": deployed_algorithm,
            },
        },
    )
    monkeypatch.setattr(CliContext, "deployment", property(lambda self: deployment))


@pytest.fixture
def executing(outputs: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto Step Functions that really runs the (tiny) state machines of these tests.

    These machines have no Map state, so there is no progress to show; and moto's ListMapRuns
    races with its own execution worker (AttributeError on an execution whose worker has not
    started yet), which made these tests flaky. ``map_progress`` has its own test below.
    """
    monkeypatch.setattr(runs, "map_progress", lambda stepfunctions, execution_arn: "")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


def create_training_machine(state: dict[str, Any]) -> None:
    """The deployed StateMachineArn (named mme-training-test) as one state that ends the run."""
    definition = {
        "StartAt": "Run",
        "States": {"Run": {**state, "End": True} if state["Type"] == "Pass" else state},
    }
    arn = SESSION.client("stepfunctions").create_state_machine(
        name="mme-training-test", roleArn=ROLE, definition=json.dumps(definition)
    )["stateMachineArn"]
    assert arn == STATE_MACHINE_ARN


def execution_input(run_id: str) -> dict[str, Any]:
    arn = STATE_MACHINE_ARN.replace(":stateMachine:", ":execution:") + f":{run_id}"
    execution = SESSION.client("stepfunctions").describe_execution(executionArn=arn)
    return dict(json.loads(execution["input"]))


SUMMARY_OK = {
    "run_id": "run-20250501-120000",
    "summary_key": "pipeline-runs/run-20250501-120000/summary.json",
    "succeeded_count": 2,
    "failed_count": 0,
    "succeeded": [
        {
            "location": "NewYork_NY",
            "training_job_name": "ll-NewYork-NY-run-20250501-120000",
            "target_model": "NewYork_NY/NewYork_NY-ll-NewYork-NY-run-20250501-120000.tar.gz",
            "model_version": "ll-NewYork-NY-run-20250501-120000",
            "validation_metrics": {"validation:absolute_loss": 15234.5},
        },
        {
            "location": "Chicago_IL",
            "training_job_name": "ll-Chicago-IL-run-20250501-120000",
            "target_model": "Chicago_IL/Chicago_IL-ll-Chicago-IL-run-20250501-120000.tar.gz",
            "model_version": "ll-Chicago-IL-run-20250501-120000",
            "validation_metrics": {"validation:absolute_loss": 9876.0},
        },
    ],
    "failed": [],
    "truncated": False,
}


# --------------------------------------------------------------------------------------------------
# mme train


def test_train_starts_the_run_for_the_configured_locations(
    deployed: None, fake_time: FakeTime, run_cli: RunCli
) -> None:
    """The real discovery: the state machine and bucket come from the stacks' outputs."""
    create_training_machine({"Type": "Pass", "Result": SUMMARY_OK})

    result = run_cli("train")

    assert result.exit_code == 0, result.stderr
    assert (
        f"{STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:run-20250501-120000" in result.stdout
    )
    from project_config import load_default_config

    assert execution_input("run-20250501-120000") == {"locations": load_default_config().data.locations}
    assert fake_time.sleeps == []  # --no-wait is the default


def test_train_wait_prints_the_summary_table(executing: None, fake_time: FakeTime, run_cli: RunCli) -> None:
    create_training_machine({"Type": "Pass", "Result": SUMMARY_OK})

    result = run_cli(
        "train",
        "--locations",
        "NewYork_NY,Chicago_IL",
        "--location",
        "NewYork_NY",
        "--wait",
        "--run-id",
        "nightly-1",
        "--poll-seconds",
        "5",
    )

    assert result.exit_code == 0, result.stderr
    assert execution_input("nightly-1") == {"locations": ["NewYork_NY", "Chicago_IL"]}
    assert "Training run nightly-1: SUCCEEDED" in result.stdout
    assert "2 trained, 0 failed" in result.stdout
    assert "validation:absolute_loss = 1.523e+04" in result.stdout
    assert "ll-Chicago-IL-run-20250501-120000" in result.stdout
    assert f"s3://{BUCKET}/pipeline-runs/run-20250501-120000/summary.json" in result.stdout
    assert all(s == 5 for s in fake_time.sleeps)


def test_train_wait_exits_1_when_a_location_failed(
    executing: None, fake_time: FakeTime, run_cli: RunCli
) -> None:
    summary = {
        **SUMMARY_OK,
        "succeeded_count": 1,
        "failed_count": 1,
        "succeeded": SUMMARY_OK["succeeded"][:1],  # type: ignore[index]
        "failed": [
            {
                "location": "Chicago_IL",
                "failed_step": "TrainModel",
                "error": "States.TaskFailed",
                "cause": "AlgorithmError: out of memory",
                "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:x:y",
            }
        ],
    }
    create_training_machine({"Type": "Pass", "Result": summary})

    result = run_cli("train", "--wait")

    assert result.exit_code == 1
    assert "failed at TrainModel" in result.stdout
    assert "AlgorithmError: out of memory" in result.stdout
    assert result.stderr.strip() == (
        "Error: 1 of 2 location(s) failed in training run run-20250501-120000; see the table above and "
        f"s3://{BUCKET}/pipeline-runs/run-20250501-120000/summary.json."
    )


def test_train_wait_reports_a_failed_execution(executing: None, fake_time: FakeTime, run_cli: RunCli) -> None:
    create_training_machine({"Type": "Fail", "Error": "RunFailed", "Cause": "The preprocessor job failed."})

    result = run_cli("train", "--wait", "--run-id", "r1")

    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: Training run r1 ended FAILED (RunFailed: The preprocessor job failed.); see "
        "`aws stepfunctions get-execution-history --execution-arn arn:aws:states:"
    )


def test_train_wait_gives_up_after_the_execution_timeout(
    outputs: None, fake_time: FakeTime, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto without execute_state_machine leaves every execution RUNNING.
    SESSION.client("stepfunctions").create_state_machine(
        name="mme-training-test",
        roleArn=ROLE,
        definition=json.dumps({"StartAt": "W", "States": {"W": {"Type": "Pass", "End": True}}}),
    )

    result = run_cli("train", "--wait", "--run-id", "r2", "--poll-seconds", "600")

    assert result.exit_code == 1
    assert "Error: Training run r2 is still running after" in result.stderr
    assert "it goes on in the background" in result.stderr
    assert 0 < len(fake_time.sleeps) < 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--locations", "New York"),
            "Error: --locations: location name 'New York' is not allowed: use 1 to 32",
        ),
        (("--run-id", "bad_id"), "Error: --run-id: run id 'bad_id' is not allowed: use 1 to 24 characters"),
        (
            ("--run-id", "run-1-"),
            "Error: --run-id: run id 'run-1-' is not allowed: use 1 to 24 characters from A-Z, a-z, 0-9 and "
            "'-', starting and ending with a letter or digit",
        ),
    ],
)
def test_train_rejects_bad_names_before_calling_aws(
    aws: None, run_cli: RunCli, args: tuple[str, ...], message: str
) -> None:
    result = run_cli("train", *args)

    assert result.exit_code == 1
    assert result.stderr.startswith(message)


def test_train_rejects_a_run_id_that_exists(executing: None, fake_time: FakeTime, run_cli: RunCli) -> None:
    create_training_machine({"Type": "Pass", "Result": SUMMARY_OK})
    # --wait: the first run has ended before the second starts. While it still runs, Step Functions
    # (and moto) treat a StartExecution with the same name and input as the same request and succeed,
    # so without waiting this test raced moto's execution thread.
    assert run_cli("train", "--run-id", "again", "--wait").exit_code == 0

    result = run_cli("train", "--run-id", "again")

    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: A training run named again already exists: pass another --run-id."


def test_train_without_the_training_stack(aws: None, run_cli: RunCli) -> None:
    result = run_cli("train")

    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: Stack MmeTraining is not deployed in us-east-1: run `make deploy`"
    )


def test_train_help_reads_well(run_cli: RunCli) -> None:
    result = run_cli("train", "--help")

    assert result.exit_code == 0
    for text in ("Start a training run", "--locations", "--wait", "--no-wait", "--run-id"):
        assert text in result.stdout


# --------------------------------------------------------------------------------------------------
# mme predict


@dataclass
class SageMakerStubs:
    sagemaker: Any
    runtime: Any
    algorithm: str
    """The deployed algorithm: the format of the answers, and the Accept header expected."""

    def endpoint_status(self, status: str, reason: str | None = None) -> None:
        response: dict[str, Any] = {
            "EndpointName": ENDPOINT,
            "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{ENDPOINT}",
            "EndpointConfigName": "config",
            "EndpointStatus": status,
            "CreationTime": NOW,
            "LastModifiedTime": NOW,
        }
        if reason:
            response["FailureReason"] = reason
        self.sagemaker.stub.add_response("describe_endpoint", response, {"EndpointName": ENDPOINT})

    def answer(
        self, body: str, values: list[float], *, target: str | None = None, csv_separator: str = "\n"
    ) -> None:
        """Answer the next InvokeEndpoint as the algorithm does, if it asked with the algorithm's
        Accept header (the Stubber refuses other parameters)."""
        payload, content_type = answer_body(self.algorithm, values, csv_separator=csv_separator)
        self.answer_raw(body, payload, content_type, target=target)

    def answer_raw(self, body: str, payload: bytes, content_type: str, *, target: str | None = None) -> None:
        self.runtime.stub.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(payload), len(payload)), "ContentType": content_type},
            {
                "EndpointName": ENDPOINT,
                "TargetModel": target or TARGET,
                "ContentType": "text/csv",
                "Accept": ACCEPT[self.algorithm],
                "Body": body.encode(),
            },
        )

    def refuse(self, code: str, message: str, status: int = 400, **extra: Any) -> None:
        self.runtime.stub.add_client_error(
            "invoke_endpoint",
            service_error_code=code,
            service_message=message,
            http_status_code=status,
            response_meta=None,
            modeled_fields=extra or None,
        )


@dataclass
class _Stubbed:
    client: Any
    stub: Stubber


ACCEPT = {
    "linear-learner": "application/json",
    "xgboost": "text/csv",
    "knn": "application/json",
    "randomcutforest": "application/json",
}
"""The Accept header each algorithm's answer format needs (its inference-format page); the stubbed
runtime refuses a call that sends another."""
VERSION = "ll-Chicago-IL-run-20250501-120000"
TARGET = f"Chicago_IL/Chicago_IL-{VERSION}.tar.gz"


def store_pointer() -> None:
    """Chicago_IL's current model in the served generation, as the promotion Lambda writes it."""
    record_complete(GENERATION)
    record_serving(GENERATION, ENDPOINT)
    pointer = ModelPointer(
        preprocessor_generation=GENERATION,
        location="Chicago_IL",
        version=VERSION,
        size=1843,
        training_job_name=VERSION,
        promoted_at=NOW,
        validation_metrics={"validation:absolute_loss": 9876.0},
    )
    SESSION.client("s3").put_object(
        Bucket=BUCKET,
        Key=s3_layout.current_pointer_key(GENERATION, "Chicago_IL"),
        Body=pointer.to_json().encode(),
    )


@pytest.fixture
def stubs(
    outputs: None, monkeypatch: pytest.MonkeyPatch, fake_time: FakeTime, deployed_algorithm: str
) -> Iterator[SageMakerStubs]:
    made = {name: SESSION.client(name) for name in ("sagemaker", "sagemaker-runtime")}
    stubbers = {name: Stubber(client) for name, client in made.items()}
    original = CliContext.client

    def client(self: CliContext, service: str) -> Any:
        return made[service] if service in made else original(self, service)

    monkeypatch.setattr(CliContext, "client", client)
    store_pointer()
    with stubbers["sagemaker"], stubbers["sagemaker-runtime"]:
        yield SageMakerStubs(
            sagemaker=_Stubbed(made["sagemaker"], stubbers["sagemaker"]),
            runtime=_Stubbed(made["sagemaker-runtime"], stubbers["sagemaker-runtime"]),
            algorithm=deployed_algorithm,
        )
        stubbers["sagemaker-runtime"].assert_no_pending_responses()


def test_predict_prints_the_price_and_latency(
    stubs: SageMakerStubs, fake_time: FakeTime, run_cli: RunCli
) -> None:
    stubs.endpoint_status("InService")
    stubs.answer("1993,2728,6,3.0,0.7,1,y,y\n", [412345.678])
    fake_time.ticks = [0.0, 0.0421]

    result = run_cli("predict", "Chicago_IL", *HOUSE)

    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == (
        f"Price: $412,345.68 (Chicago_IL model {VERSION} of {GENERATION}, 42.1 ms)".split()
    )


def test_predict_accepts_one_comma_separated_string(stubs: SageMakerStubs, run_cli: RunCli) -> None:
    stubs.endpoint_status("InService")
    stubs.answer("1993,2728,6,3.0,0.7,1,n,y\n", [300000.0])

    result = run_cli("predict", "Chicago_IL", "1993, 2728, 6, 3.0, 0.7, 1, N, y")

    assert result.exit_code == 0, result.stderr
    assert "Price: $300,000.00" in result.stdout


def test_predict_csv_sends_every_row_in_one_request(
    stubs: SageMakerStubs, run_cli: RunCli, tmp_path: Path
) -> None:
    houses = tmp_path / "houses.csv"
    houses.write_text(
        "YEAR_BUILT,SQUARE_FEET,NUM_BEDROOMS,NUM_BATHROOMS,LOT_ACRES,GARAGE_SPACES,FRONT_PORCH,DECK\n"
        "1993,2728,6,3.0,0.7,1,y,y\n\n2005,1500,3,2.0,0.25,2,n,n\n"
    )
    stubs.endpoint_status("InService")
    stubs.answer("1993,2728,6,3.0,0.7,1,y,y\n2005,1500,3,2.0,0.25,2,n,n\n", [412000.0, 250500.5])

    result = run_cli("predict", "Chicago_IL", "--csv", str(houses))

    assert result.exit_code == 0, result.stderr
    assert "2 predictions by Chicago_IL" in result.stdout
    assert "$412,000.00" in result.stdout
    assert "$250,500.50" in result.stdout


# --------------------------------------------------------------------------------------------------
# mme predict for every algorithm: the deployed one (the endpoint stack's Algorithm output, not the
# config, which is the default linear learner here) decides the Accept header and how the answer reads

SHOWN = {
    "linear-learner": "Price: $412,345.68",
    "xgboost": "Price: $412,345.68",
    "knn": "Price: $412,345.68",
    "randomcutforest": "Anomaly score: 412,345.6780",
}


def test_every_algorithm_has_an_accept_header_and_a_shown_value() -> None:
    assert set(ACCEPT) == set(SHOWN) == set(ALGORITHM_NAMES)


@pytest.mark.parametrize("deployed_algorithm", ALGORITHM_NAMES)
def test_predict_reads_the_deployed_algorithms_answer(
    stubs: SageMakerStubs, fake_time: FakeTime, run_cli: RunCli, deployed_algorithm: str
) -> None:
    stubs.endpoint_status("InService")
    stubs.answer("1993,2728,6,3.0,0.7,1,y,y\n", [412345.678])  # with ACCEPT[deployed_algorithm] only
    fake_time.ticks = [0.0, 0.0421]

    result = run_cli("predict", "Chicago_IL", *HOUSE)

    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == (
        f"{SHOWN[deployed_algorithm]} (Chicago_IL model {VERSION} of {GENERATION}, 42.1 ms)".split()
    )


@pytest.mark.parametrize("deployed_algorithm", ["randomcutforest"])
def test_the_endpoints_algorithm_decides_not_the_config(
    stubs: SageMakerStubs, run_cli: RunCli, tmp_path: Path
) -> None:
    """The config now says XGBoost (text/csv), but the endpoint still serves Random Cut Forest."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"training": {"algorithm": "xgboost"}}))
    stubs.endpoint_status("InService")
    stubs.answer("1993,2728,6,3.0,0.7,1,y,y\n", [1.23456])  # asked with application/json

    result = run_cli("--config", str(config), "predict", "Chicago_IL", *HOUSE)

    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Anomaly score: 1.2346  (Chicago_IL model")
    assert "$" not in result.stdout


@pytest.mark.parametrize(
    ("deployed_algorithm", "csv_separator", "column", "cells"),
    [
        ("linear-learner", "\n", "Price", ["$412,000.00", "$250,500.50"]),
        ("xgboost", "\n", "Price", ["$412,000.00", "$250,500.50"]),
        ("xgboost", ",", "Price", ["$412,000.00", "$250,500.50"]),
        ("knn", "\n", "Price", ["$412,000.00", "$250,500.50"]),
        ("randomcutforest", "\n", "Anomaly score", ["412,000.0000", "250,500.5000"]),
    ],
)
def test_predict_csv_table_names_what_the_algorithm_predicts(
    stubs: SageMakerStubs,
    run_cli: RunCli,
    tmp_path: Path,
    csv_separator: str,
    column: str,
    cells: list[str],
) -> None:
    houses = tmp_path / "houses.csv"
    houses.write_text("1993,2728,6,3.0,0.7,1,y,y\n2005,1500,3,2.0,0.25,2,n,n\n")
    stubs.endpoint_status("InService")
    stubs.answer(houses.read_text(), [412000.0, 250500.5], csv_separator=csv_separator)

    result = run_cli("predict", "Chicago_IL", "--csv", str(houses))

    assert result.exit_code == 0, result.stderr
    table = [table_cells(line) for line in result.stdout.splitlines() if "│" in line or "┃" in line]
    header = next(row for row in table if "YEAR_BUILT" in row)
    assert header[-1] == column
    assert [row[-1] for row in table if row[0] in {"1", "2"}] == cells
    if column == "Anomaly score":
        assert "$" not in result.stdout


def table_cells(line: str) -> list[str]:
    """The cells of one line of a rich table (header or body)."""
    return [cell.strip() for cell in re.split("[│┃]", line) if cell.strip()]


@pytest.mark.parametrize("deployed_algorithm", ALGORITHM_NAMES)
def test_an_unreadable_answer_is_one_sentence(
    stubs: SageMakerStubs, run_cli: RunCli, deployed_algorithm: str
) -> None:
    body, shape = UNREADABLE_ANSWERS[deployed_algorithm]
    stubs.endpoint_status("InService")
    stubs.answer_raw("1993,2728,6,3.0,0.7,1,y,y\n", body, "application/json")

    result = run_cli("predict", "Chicago_IL", *HOUSE)

    assert result.exit_code == 1
    assert result.stderr == f"Error: Model {TARGET} answered in an unexpected format (expected {shape}).\n"


@pytest.mark.parametrize(
    ("deployed_algorithm", "what"), [("linear-learner", "price(s)"), ("randomcutforest", "anomaly score(s)")]
)
def test_an_answer_for_the_wrong_number_of_rows_is_refused(
    stubs: SageMakerStubs, run_cli: RunCli, what: str
) -> None:
    stubs.endpoint_status("InService")
    stubs.answer("1993,2728,6,3.0,0.7,1,y,y\n", [1.0, 2.0])

    result = run_cli("predict", "Chicago_IL", *HOUSE)

    assert result.exit_code == 1
    assert result.stderr == f"Error: Model {TARGET} returned 2 {what} for 1 row(s).\n"


def test_predict_needs_the_endpoint_stacks_algorithm(aws: None, run_cli: RunCli) -> None:
    """Real discovery: an endpoint stack deployed before the Algorithm output existed."""
    SESSION.client("s3").create_bucket(Bucket=BUCKET)
    store_pointer()
    create_stack("MmeStorage", {"ArtifactBucketName": BUCKET})
    create_stack("MmeEndpoint", {"EndpointName": ENDPOINT, "VariantName": "AllTraffic"})

    result = run_cli("predict", "Chicago_IL", *HOUSE)

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Stack MmeEndpoint has no output Algorithm: redeploy it with this version of the project.\n"
    )


def test_predict_repeat_prints_cold_and_warm_latency(
    stubs: SageMakerStubs, fake_time: FakeTime, run_cli: RunCli
) -> None:
    stubs.endpoint_status("InService")
    for _ in range(4):
        stubs.answer("1993,2728,6,3.0,0.7,1,y,y\n", [412000.0])
    # Two readings per call: 900 ms cold, then 10, 20 and 40 ms warm.
    fake_time.ticks = [0, 0.9, 0, 0.01, 0, 0.02, 0, 0.04]

    result = run_cli("predict", "Chicago_IL", *HOUSE, "--repeat", "4")

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    cold = next(line for line in lines if "cold (first call)" in line)
    warm = next(line for line in lines if "warm (later calls)" in line)
    assert cold.replace("│", " ").split()[-5:] == ["1", "900.0", "900.0", "900.0", "900.0"]
    assert warm.replace("│", " ").split()[-5:] == ["3", "20.0", "40.0", "40.0", "40.0"]


def test_percentile_is_nearest_rank() -> None:
    sample = [float(v) for v in range(1, 101)]
    assert [train_predict.percentile(sample, f) for f in (0.5, 0.9, 0.99, 1.0)] == [50.0, 90.0, 99.0, 100.0]
    assert train_predict.percentile([7.0], 0.5) == 7.0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            HOUSE[:7],
            "Error: expected 8 fields (YEAR_BUILT SQUARE_FEET NUM_BEDROOMS NUM_BATHROOMS LOT_ACRES "
            "GARAGE_SPACES FRONT_PORCH DECK), got 7: 1993 2728 6 3.0 0.7 1 y.",
        ),
        (["1993", "big", *HOUSE[2:]], "Error: field 2 (SQUARE_FEET) must be a number, got 'big'."),
        ([*HOUSE[:5], "nan", "y", "y"], "Error: field 6 (GARAGE_SPACES) must be a number, got 'nan'."),
        ([*HOUSE[:7], "yes"], "Error: field 8 (DECK) must be y or n, got 'yes'."),
        (
            [],
            "Error: Give the 8 features (YEAR_BUILT SQUARE_FEET NUM_BEDROOMS NUM_BATHROOMS LOT_ACRES "
            "GARAGE_SPACES FRONT_PORCH DECK) as arguments, or --csv FILE.",
        ),
    ],
)
def test_predict_rejects_bad_fields_before_calling_aws(
    aws: None, run_cli: RunCli, fields: list[str], message: str
) -> None:
    result = run_cli("predict", "Chicago_IL", *fields)

    assert result.exit_code == 1
    assert result.stderr.strip() == message


def test_predict_names_the_bad_csv_row(aws: None, run_cli: RunCli, tmp_path: Path) -> None:
    houses = tmp_path / "houses.csv"
    houses.write_text("1993,2728,6,3.0,0.7,1,y,y\n2005,1500,3,2.0,0.25,2,maybe,n\n")

    result = run_cli("predict", "Chicago_IL", "--csv", str(houses))

    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == f"Error: Row 2 of {houses}: field 7 (FRONT_PORCH) must be y or n, got 'maybe'."
    )


def test_predict_unknown_location_says_how_to_get_a_model(stubs: SageMakerStubs, run_cli: RunCli) -> None:
    result = run_cli("predict", "Boston_MA", *HOUSE)

    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: Location Boston_MA has no current model in generation {GENERATION} (served) "
        f"(s3://{BUCKET}/model-pointers/{GENERATION}/Boston_MA.json does not exist): train it with "
        "`mme train --location Boston_MA --wait`, or add one with "
        f"`mme models add Boston_MA ARTIFACT --generation {GENERATION}`."
    )


def test_predict_needs_an_endpoint_in_service(stubs: SageMakerStubs, run_cli: RunCli) -> None:
    stubs.endpoint_status("Updating")

    result = run_cli("predict", "Chicago_IL", *HOUSE)

    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: Endpoint {ENDPOINT} is Updating, not InService: wait until it is InService "
        "(see `mme status`) and try again."
    )


def test_predict_shows_the_model_error(stubs: SageMakerStubs, run_cli: RunCli) -> None:
    stubs.endpoint_status("InService")
    stubs.refuse(
        "ModelError",
        "Received client error (400) from model with message \"could not convert string to float: 'y'\".",
        OriginalStatusCode=400,
        OriginalMessage="could not convert string to float: 'y'",
        LogStreamArn="arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/x",
    )

    result = run_cli("predict", "Chicago_IL", *HOUSE)

    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: Model {TARGET} failed to predict (HTTP 400): could not convert string to float: 'y'; "
        "its log stream is arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/x."
    )


def test_predict_shows_a_validation_error(stubs: SageMakerStubs, run_cli: RunCli) -> None:
    stubs.endpoint_status("InService")
    stubs.refuse("ValidationError", "Failed to download model data for target model.")

    result = run_cli("predict", "Chicago_IL", *HOUSE)

    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: Endpoint {ENDPOINT} rejected the request for {TARGET}: Failed to download model data for "
        "target model.."
    )


def test_predict_access_denied(stubs: SageMakerStubs, run_cli: RunCli) -> None:
    stubs.endpoint_status("InService")
    stubs.refuse("AccessDeniedException", "User is not authorized to perform: sagemaker:InvokeEndpoint", 403)

    result = run_cli("predict", "Chicago_IL", *HOUSE)

    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: Your credentials are not allowed to call sagemaker:InvokeEndpoint: use a role or policy "
        "that allows sagemaker:InvokeEndpoint, or another --profile."
    )


def test_predict_without_any_stack(aws: None, run_cli: RunCli) -> None:
    result = run_cli("predict", "Chicago_IL", *HOUSE)

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Stack MmeStorage is not deployed in us-east-1: run `make deploy`")


def test_predict_without_the_endpoint_stack(aws: None, run_cli: RunCli) -> None:
    """Real discovery: the bucket comes from the storage stack's outputs; the endpoint stack is missing."""
    SESSION.client("s3").create_bucket(Bucket=BUCKET)
    store_pointer()
    create_stack("MmeStorage", {"ArtifactBucketName": BUCKET})

    result = run_cli("predict", "Chicago_IL", *HOUSE)

    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: Stack MmeEndpoint is not deployed in us-east-1: run `make deploy`"
    )


def test_predict_help_reads_well(run_cli: RunCli) -> None:
    result = run_cli("predict", "--help")

    assert result.exit_code == 0
    for text in ("LOCATION", "FIELDS", "--csv", "--repeat", "YEAR_BUILT"):
        assert text in result.stdout


# --------------------------------------------------------------------------------------------------
# mme predict --output json


def test_predict_json_follows_its_schema(stubs: SageMakerStubs, fake_time: FakeTime, run_cli: RunCli) -> None:
    stubs.endpoint_status("InService")
    stubs.answer("1993,2728,6,3.0,0.7,1,y,y\n", [412345.678])
    fake_time.ticks = [0.0, 0.0421]

    result = run_cli("predict", "Chicago_IL", *HOUSE, "--output", "json")

    document = json_document(result, "mme.predict/1")
    assert result.stderr == ""
    assert {key: value for key, value in document.items() if key not in {"predictions", "latency_ms"}} == {
        "schema": "mme.predict/1",
        "endpoint_name": ENDPOINT,
        "algorithm": "linear-learner",
        "predicts": "price",
        "location": "Chicago_IL",
        "generation": GENERATION,
        "model_version": VERSION,
        "target_model": TARGET,
    }
    assert document["predictions"] == [
        {
            "features": {
                "YEAR_BUILT": "1993",
                "SQUARE_FEET": "2728",
                "NUM_BEDROOMS": "6",
                "NUM_BATHROOMS": "3.0",
                "LOT_ACRES": "0.7",
                "GARAGE_SPACES": "1",
                "FRONT_PORCH": "y",
                "DECK": "y",
            },
            "value": 412345.678,
        }
    ]
    assert document["latency_ms"] == {
        "calls": 1,
        "first": 42.1,
        "cold": {"count": 1, "p50": 42.1, "p90": 42.1, "p99": 42.1, "max": 42.1},
        "warm": None,
    }


@pytest.mark.parametrize("deployed_algorithm", ["randomcutforest"])
def test_predict_json_of_rows_and_repeated_calls(
    stubs: SageMakerStubs, fake_time: FakeTime, run_cli: RunCli, tmp_path: Path
) -> None:
    houses = tmp_path / "houses.csv"
    houses.write_text("1993,2728,6,3.0,0.7,1,y,y\n2005,1500,3,2.0,0.25,2,N,n\n")
    stubs.endpoint_status("InService")
    for _ in range(4):
        stubs.answer("1993,2728,6,3.0,0.7,1,y,y\n2005,1500,3,2.0,0.25,2,n,n\n", [1.5, 0.25])
    fake_time.ticks = [0, 0.9, 0, 0.01, 0, 0.02, 0, 0.04]

    result = run_cli("predict", "Chicago_IL", "--csv", str(houses), "-n", "4", "-o", "json")

    document = json_document(result, "mme.predict/1")
    assert (document["algorithm"], document["predicts"]) == ("randomcutforest", "anomaly score")
    assert [
        (row["features"]["YEAR_BUILT"], row["features"]["FRONT_PORCH"]) for row in document["predictions"]
    ] == [
        ("1993", "y"),
        ("2005", "n"),
    ]
    assert [row["value"] for row in document["predictions"]] == [1.5, 0.25]
    latency = document["latency_ms"]
    assert (latency["calls"], latency["first"]) == (4, 900.0)
    assert latency["cold"] == {"count": 1, "p50": 900.0, "p90": 900.0, "p99": 900.0, "max": 900.0}
    assert latency["warm"] == {"count": 3, "p50": 20.0, "p90": 40.0, "p99": 40.0, "max": 40.0}


def test_predict_json_failure_prints_nothing_on_stdout(stubs: SageMakerStubs, run_cli: RunCli) -> None:
    stubs.endpoint_status("Updating")

    result = run_cli("predict", "Chicago_IL", *HOUSE, "--output", "json")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: Endpoint {ENDPOINT} is Updating, not InService")


class _MapRuns:
    """A Step Functions client answering ListMapRuns/DescribeMapRun for one training run."""

    def __init__(self, counts: dict[str, dict[str, int]], error: Exception | None = None) -> None:
        self.counts = counts
        self.error = error

    def list_map_runs(self, executionArn: str) -> dict[str, Any]:  # noqa: N803 (boto3's parameter name)
        if self.error is not None:
            raise self.error
        machine = executionArn.split(":execution:", 1)[1].split(":", 1)[0]
        return {
            "mapRuns": [
                {"mapRunArn": f"arn:aws:states:us-east-1:123456789012:mapRun:{machine}/{state}:uuid-{i}"}
                for i, state in enumerate(self.counts)
            ]
        }

    def describe_map_run(self, mapRunArn: str) -> dict[str, Any]:  # noqa: N803
        state = mapRunArn.rsplit("/", 1)[1].split(":", 1)[0]
        return {"itemCounts": self.counts[state]}


def test_wait_shows_per_location_progress_from_the_map_runs() -> None:
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    from mme_cli.runs import map_progress

    arn = "arn:aws:states:us-east-1:123456789012:execution:training:run-1"
    client = _MapRuns(
        {
            "GenerateData": {"total": 10, "succeeded": 10},
            "TrainLocations": {"total": 10, "succeeded": 3, "failed": 1, "running": 4, "pending": 2},
        }
    )
    assert map_progress(client, arn) == "data generated 10/10, locations trained or failed 4/10 (1 failed)"
    assert map_progress(_MapRuns({}), arn) == ""
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "ListMapRuns")
    assert map_progress(_MapRuns({}, error=denied), arn) == ""  # progress is best effort, never fatal


# --------------------------------------------------------------------------------------------------
# Generations: mme train --refit and what a run's summary says about its generation


def refit_summary(complete: bool) -> dict[str, Any]:
    return {**SUMMARY_OK, "generation": NEW_GENERATION, "refit": True, "generation_complete": complete}


def test_train_refit_asks_for_a_new_generation(executing: None, fake_time: FakeTime, run_cli: RunCli) -> None:
    record_serving(GENERATION, ENDPOINT)
    create_training_machine({"Type": "Pass", "Result": refit_summary(complete=True)})

    result = run_cli("train", "--location", "Chicago_IL", "--refit", "--wait", "--run-id", "run2")

    assert result.exit_code == 0, result.stderr
    assert execution_input("run2") == {"locations": ["Chicago_IL"], "refit": True}
    out = " ".join(result.stdout.split())
    assert "Started refit training run run2 for 1 location(s)" in out
    assert f"Generation: {NEW_GENERATION} (refit: a new preprocessor was fitted)" in out
    assert (
        f"Generation {NEW_GENERATION} is complete; the endpoint still serves {GENERATION}: run `make deploy` "
        "to switch every location at once."
    ) in out


def test_train_without_refit_trains_into_the_served_generation(
    executing: None, fake_time: FakeTime, run_cli: RunCli
) -> None:
    record_serving(GENERATION, ENDPOINT)
    summary = {**SUMMARY_OK, "generation": GENERATION, "refit": False, "generation_complete": False}
    create_training_machine({"Type": "Pass", "Result": summary})

    result = run_cli("train", "--location", "Chicago_IL", "--wait", "--run-id", "run3")

    assert result.exit_code == 0, result.stderr
    assert execution_input("run3") == {"locations": ["Chicago_IL"]}
    out = " ".join(result.stdout.split())
    assert f"Generation: {GENERATION} (no refit: trained on the generation's existing preprocessor)" in out
    assert "make deploy" not in out


def test_train_refit_that_did_not_complete(executing: None, fake_time: FakeTime, run_cli: RunCli) -> None:
    create_training_machine({"Type": "Pass", "Result": refit_summary(complete=False)})

    result = run_cli("train", "--refit", "--wait", "--run-id", "run4")

    assert result.exit_code == 0, result.stderr
    assert f"Generation {NEW_GENERATION} is not complete: it will not be served." in result.stdout


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (
            "IncompleteGeneration",
            "the refit's new preprocessor generation is incomplete, because at least one location failed "
            "to train on it; it will not be served (the endpoint keeps its generation): fix the failed "
            "locations and run `mme train --refit` again",
        ),
        (
            "NothingPromoted",
            "no location was trained and promoted, so nothing that the endpoint serves changed: see each "
            "location's failure in the run summary",
        ),
    ],
)
def test_train_explains_the_pipelines_own_failures(
    executing: None, fake_time: FakeTime, run_cli: RunCli, error: str, cause: str
) -> None:
    create_training_machine({"Type": "Fail", "Error": error, "Cause": "1 of 4 locations failed"})

    result = run_cli("train", "--refit", "--wait", "--run-id", "run5")

    assert result.exit_code == 1
    assert " ".join(result.stderr.split()) == (
        f"Error: Training run run5 failed with {error}: {cause}; the summary is "
        f"s3://{BUCKET}/pipeline-runs/run5/summary.json."
    )


def test_predict_refuses_a_pointer_of_another_generation(stubs: SageMakerStubs, run_cli: RunCli) -> None:
    stray = ModelPointer(
        preprocessor_generation=NEW_GENERATION,
        location="Chicago_IL",
        version=VERSION,
        size=1,
        training_job_name=None,
        promoted_at=NOW,
    )
    SESSION.client("s3").put_object(
        Bucket=BUCKET,
        Key=s3_layout.current_pointer_key(GENERATION, "Chicago_IL"),
        Body=stray.to_json().encode(),
    )

    result = run_cli("predict", "Chicago_IL", *HOUSE)

    assert result.exit_code == 1
    assert " ".join(result.stderr.split()) == (
        f"Error: The model pointer s3://{BUCKET}/model-pointers/{GENERATION}/Chicago_IL.json names "
        f"preprocessor generation {NEW_GENERATION}, not its folder's {GENERATION}, so its model would get "
        "the wrong preprocessing: retrain Chicago_IL with `mme train --location Chicago_IL --wait`."
    )


def test_predict_before_anything_is_trained(outputs: None, run_cli: RunCli) -> None:
    result = run_cli("predict", "Chicago_IL", *HOUSE)

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: No preprocessor generation is served or complete yet")


def _switching_to_the_new_generation() -> str:
    """serving.json announces NEW_GENERATION (as the endpoint stack's resolver does before an
    update), whose pointer for Chicago_IL names another version; returns that TargetModel."""
    from mme_shared.generation import GenerationRef

    record_complete(NEW_GENERATION)
    announced = GenerationRef(GENERATION, NOW, endpoint_name=ENDPOINT, next_generation=NEW_GENERATION)
    SESSION.client("s3").put_object(
        Bucket=BUCKET, Key=s3_layout.SERVING_GENERATION_KEY, Body=announced.to_json()
    )
    version = "ll-Chicago-IL-run2"
    pointer = ModelPointer(
        preprocessor_generation=NEW_GENERATION,
        location="Chicago_IL",
        version=version,
        size=10,
        training_job_name=version,
        promoted_at=NOW,
    )
    SESSION.client("s3").put_object(
        Bucket=BUCKET,
        Key=s3_layout.current_pointer_key(NEW_GENERATION, "Chicago_IL"),
        Body=pointer.to_json().encode(),
    )
    return pointer.target_model


def test_predict_follows_a_generation_switch_when_the_model_is_not_found(
    stubs: SageMakerStubs, run_cli: RunCli
) -> None:
    new_target = _switching_to_the_new_generation()
    stubs.endpoint_status("InService")
    stubs.refuse("ValidationError", "Failed to download model data for target model.")
    stubs.answer(",".join(HOUSE) + "\n", [250000.0], target=new_target)

    result = run_cli("predict", "Chicago_IL", *HOUSE)

    assert result.exit_code == 0, result.stderr
    assert f"while the endpoint switches to generation {NEW_GENERATION}" in " ".join(result.stderr.split())
    assert "Price: $250,000.00 (Chicago_IL model ll-Chicago-IL-run2 of pp-run2" in " ".join(
        result.stdout.split()
    )


def test_predict_does_not_switch_without_an_announced_generation(
    stubs: SageMakerStubs, run_cli: RunCli
) -> None:
    stubs.endpoint_status("InService")
    stubs.refuse("ValidationError", "Failed to download model data for target model.")

    result = run_cli("predict", "Chicago_IL", *HOUSE)

    assert result.exit_code == 1
    assert "switches" not in result.stderr
