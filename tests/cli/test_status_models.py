"""``mme status`` and ``mme models list | promote | rollback | delete | prune`` against moto.

Lambda answers through a botocore Stubber.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
import typer
from botocore.response import StreamingBody  # type: ignore[import-untyped]
from botocore.stub import Stubber  # type: ignore[import-untyped]

from mme_cli.commands import status_models
from mme_cli.context import CliContext
from mme_shared import s3_layout
from mme_shared.model_pointer import TRAINING_JOB_METADATA, ArtifactChecksum, ModelPointer
from tests.cli.conftest import (
    ACCOUNT,
    BUCKET,
    ENDPOINT,
    GENERATION,
    KEY_ARN,
    NEW_GENERATION,
    OLD_GENERATION,
    REGION,
    STATE_MACHINE_ARN,
    CliResult,
    json_document,
    record_complete,
)

RunCli = Callable[..., CliResult]
PROMOTE_FUNCTION = "mme-promote-artifact-test"
PROMOTED_AT = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich sizes tables to COLUMNS when not on a terminal; wide enough that no value is folded."""
    monkeypatch.setenv("COLUMNS", "250")


_SESSION = boto3.Session(region_name=REGION)


@pytest.fixture(autouse=True)
def shared_session(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """One boto3 session for the CLI and the fixtures, so botocore parses each service model once.

    Only for speed: moto patches botocore itself, so this session's clients are mocked too (moto
    resets boto3's default session when it starts, hence setting it after ``aws``).
    """
    monkeypatch.setattr(CliContext, "session", property(lambda self: _SESSION))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", _SESSION)
    create_client, clients = CliContext.client, dict[str, Any]()

    def client(self: CliContext, service: str) -> Any:
        if service not in clients:
            clients[service] = create_client(self, service)
        return clients[service]

    monkeypatch.setattr(CliContext, "client", client)


def s3() -> Any:
    return boto3.client("s3", region_name=REGION)


def put_version(
    location: str, version: str, body: bytes = b"model-bytes", generation: str = GENERATION
) -> str:
    """A version as the promotion Lambda copies it (metadata naming the training job)."""
    key = s3_layout.model_version_key(generation, location, version)
    s3().put_object(
        Bucket=BUCKET,
        Key=key,
        Body=body,
        ChecksumAlgorithm="CRC32",
        Metadata={TRAINING_JOB_METADATA: version},
    )
    return key


def put_pointer(location: str, version: str, size: int = 11, generation: str = GENERATION) -> None:
    pointer = ModelPointer(
        preprocessor_generation=generation,
        location=location,
        version=version,
        size=size,
        training_job_name=version,
        promoted_at=PROMOTED_AT,
        validation_metrics={"validation:absolute_loss": 1.5},
    )
    s3().put_object(Bucket=BUCKET, Key=pointer.pointer_key, Body=pointer.to_json().encode())


def read_pointer(location: str, generation: str = GENERATION) -> ModelPointer:
    body = (
        s3().get_object(Bucket=BUCKET, Key=s3_layout.current_pointer_key(generation, location))["Body"].read()
    )
    return ModelPointer.from_json(body)


@pytest.fixture
def models(served: None) -> None:
    """Chicago_IL has three versions (current: the newest), Austin_TX one, Boston_MA none promoted."""
    for version in ("ll-Chicago-IL-run1", "ll-Chicago-IL-run2", "ll-Chicago-IL-run3"):
        put_version("Chicago_IL", version)
    put_pointer("Chicago_IL", "ll-Chicago-IL-run3")
    put_version("Austin_TX", "ll-Austin-TX-run1", body=b"x" * 2000)
    put_pointer("Austin_TX", "ll-Austin-TX-run1", size=2000)
    put_version("Boston_MA", "ll-Boston-MA-run1")


def one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------------
# help


@pytest.mark.parametrize(
    ("args", "usage", "expected"),
    [
        ((), "[OPTIONS] COMMAND [ARGS]...", "status"),
        (("status",), "status [OPTIONS]", "endpoint status"),
        (("models",), "models [OPTIONS] COMMAND [ARGS]...", "rollback"),
        (("models", "list"), "models list [OPTIONS]", "Show every version of this location"),
        (("models", "promote"), "models promote [OPTIONS] {TRAINING_JOB}", "--preprocessor"),
        (
            ("models", "rollback"),
            "models rollback [OPTIONS] {LOCATION}",
            "the one promoted before the current",
        ),
        (("models", "delete"), "models delete [OPTIONS] {LOCATION}", "never the current one"),
        (
            ("models", "prune"),
            "models prune [OPTIONS]",
            "lifecycle rule only expires noncurrent object versions",
        ),
    ],
)
def test_help_reads_well(run_cli: RunCli, args: tuple[str, ...], usage: str, expected: str) -> None:
    result = run_cli(*args, "--help")

    assert result.exit_code == 0, result.stderr
    out = one_line(result.stdout)
    assert "Usage: " in out
    assert usage in out
    assert expected in out


# --------------------------------------------------------------------------------------------------
# mme status


def create_endpoint(
    instances: int = 2,
    generation: str | None = GENERATION,
    models_url: str | None = None,
) -> None:
    """The endpoint as the endpoint stack builds it: a serial pipeline whose first container names
    its generation and whose MultiModel container reads that generation's prefix."""
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    gen = generation or GENERATION
    sagemaker.create_model(
        ModelName="mme-model",
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/mme",
        Containers=[
            {
                "Image": "sklearn",
                "ModelDataUrl": f"s3://{BUCKET}/preprocessor/{gen}/model.tar.gz",
                "Environment": {} if generation is None else {"MME_PREPROCESSOR_GENERATION": generation},
            },
            {
                "Image": "linear-learner",
                "Mode": "MultiModel",
                "ModelDataUrl": models_url or f"s3://{BUCKET}/models/{gen}/",
            },
        ],
        InferenceExecutionConfig={"Mode": "Serial"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="mme-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "mme-model",
                "InitialInstanceCount": instances,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="mme-config")


def create_state_machine_with_execution(name: str) -> None:
    stepfunctions = boto3.client("stepfunctions", region_name=REGION)
    arn = stepfunctions.create_state_machine(
        name=STATE_MACHINE_ARN.rsplit(":", 1)[1],
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn",
    )["stateMachineArn"]
    assert arn == STATE_MACHINE_ARN
    stepfunctions.start_execution(stateMachineArn=arn, name=name, input="{}")


def test_status_shows_generations_endpoint_models_and_last_training(models: None, run_cli: RunCli) -> None:
    create_endpoint(instances=2)
    create_state_machine_with_execution("run-20250501")
    put_version("Chicago_IL", "ll-Chicago-IL-run0", generation=OLD_GENERATION)

    result = run_cli("status")

    assert result.exit_code == 0, result.stderr
    out = one_line(result.stdout)
    prefix = f"s3://{BUCKET}/models/{GENERATION}/"
    assert f"Artifact bucket │ {BUCKET}" in out
    assert f"Serving generation │ {GENERATION} (endpoint {ENDPOINT}, since 2025-05-01 12:00:00 UTC)" in out
    assert (
        f"Newest complete generation │ {GENERATION} (3 location(s), completed 2025-05-01 12:00:00 UTC)" in out
    )
    assert f"Endpoint │ {ENDPOINT}" in out
    assert "Endpoint status │ InService" in out
    assert "Instances │ 2 across 1 variant(s)" in out
    assert (
        f"Endpoint serves │ {GENERATION} (model mme-model: preprocessor "
        f"s3://{BUCKET}/preprocessor/{GENERATION}/model.tar.gz, models {prefix})"
    ) in out
    assert f"Model prefix (served) │ {prefix}" in out
    assert f"Models (served generation) │ 5 object(s) in 3 location(s) under {prefix}" in out
    assert "Pointers (served generation) │ 2 location(s)" in out
    assert f"Models (other generations) │ {OLD_GENERATION}: 1 object(s) in 1 location(s)" in out
    assert f"State machine │ {STATE_MACHINE_ARN}" in out
    assert "Last training │ run-20250501: RUNNING, started" in out
    assert "Warning" not in result.stderr


def warnings_of(result: CliResult) -> list[str]:
    return [one_line(part) for part in one_line(result.stderr).split("Warning: ") if part.strip()]


def test_status_warns_about_every_mismatch(models: None, run_cli: RunCli) -> None:
    create_endpoint(generation=OLD_GENERATION)  # serving.json says GENERATION
    record_complete(NEW_GENERATION)  # newer, complete, not served
    put_pointer("Austin_TX", "ll-Austin-TX-run1", generation=OLD_GENERATION)  # written into GENERATION's
    body = s3().get_object(Bucket=BUCKET, Key=s3_layout.current_pointer_key(OLD_GENERATION, "Austin_TX"))
    s3().put_object(
        Bucket=BUCKET, Key=s3_layout.current_pointer_key(GENERATION, "Austin_TX"), Body=body["Body"].read()
    )

    result = run_cli("status")

    assert result.exit_code == 0, result.stderr
    assert f"Newest complete generation │ {NEW_GENERATION}" in one_line(result.stdout)
    assert warnings_of(result) == [
        f"Generation {NEW_GENERATION} is complete but not served (the endpoint serves {GENERATION}): "
        "run `make deploy` to switch every location to it.",
        f"preprocessor/serving.json says generation {GENERATION} is served, but the endpoint's model "
        f"mme-model is configured for {OLD_GENERATION} (an endpoint update still running or one that "
        "failed?): run `make deploy` so the two agree.",
        f"s3://{BUCKET}/model-pointers/{GENERATION}/Austin_TX.json is not a valid pointer: it names "
        f"preprocessor generation {OLD_GENERATION}, not its folder's {GENERATION}.",
    ]


def test_status_warns_when_the_endpoint_model_contradicts_itself(models: None, run_cli: RunCli) -> None:
    create_endpoint(models_url=f"s3://{BUCKET}/models/")

    result = run_cli("status")

    assert result.exit_code == 0, result.stderr
    assert warnings_of(result) == [
        f"the endpoint's model mme-model says generation {GENERATION} but its MultiModel container reads "
        f"s3://{BUCKET}/models/, not s3://{BUCKET}/models/{GENERATION}/."
    ]


def test_status_before_anything_was_trained(deployed: None, run_cli: RunCli) -> None:
    result = run_cli("status")

    assert result.exit_code == 0, result.stderr
    out = one_line(result.stdout)
    assert f"Endpoint │ {ENDPOINT}: not deployed (SageMaker has no such endpoint)" in out
    assert "Serving generation │ none yet (no preprocessor/serving.json): run `make deploy`" in out
    assert "Newest complete generation │ none yet: run `mme train --wait`" in out
    assert "Models │ none yet" in out
    assert "Last training │ state machine not found" in out
    assert result.stderr == ""


def test_status_after_the_first_run_before_the_first_deploy(deployed: None, run_cli: RunCli) -> None:
    record_complete(GENERATION)
    put_version("Chicago_IL", "ll-Chicago-IL-run1")

    result = run_cli("status")

    assert result.exit_code == 0, result.stderr
    assert f"Models (other generations) │ {GENERATION}: 1 object(s) in 1 location(s)" in one_line(
        result.stdout
    )
    assert warnings_of(result) == [
        f"Generation {GENERATION} is complete but nothing is served yet: run `make deploy`."
    ]


def test_status_without_endpoint_stack(deployed: None, run_cli: RunCli) -> None:
    boto3.client("cloudformation", region_name=REGION).delete_stack(StackName="MmeEndpoint")

    result = run_cli("status")

    assert result.exit_code == 0, result.stderr
    assert "Endpoint │ not deployed (no Endpoint stack)" in one_line(result.stdout)


def test_status_fails_clearly_without_the_storage_stack(aws: None, run_cli: RunCli) -> None:
    result = run_cli("status")

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Stack MmeStorage is not deployed in us-east-1: run `make deploy`")
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------------------
# mme status: the dashboard and the alarms

MONITORING_ALARMS = {
    # CloudFormation names the monitoring stack's alarms <stack>-<logical id>-<random suffix>.
    "MmeMonitoring-ObservabilityErrors5xxAlarm34E54F82-1XK2Q3ZP8ANB4": "ALARM",
    "MmeMonitoring-ObservabilityCacheHitLowAlarm17A7D1F0-9ZT0LMQ2D7RX": "INSUFFICIENT_DATA",
    "MmeMonitoring-ObservabilityMemoryHighAlarm2B169F9A-5C3VBN7M1QWE": "OK",
}
ROLLBACK_ALARMS = {
    # The endpoint stack names its rollback alarms itself.
    "MmeEndpoint-Rollback-Invocation5XXErrors": "OK",
}
FOREIGN_ALARMS = (
    "MmeStagingMonitoring-ObservabilityErrors5xxAlarm34E54F82-7HJ2K4L6M8N0",  # another deployment
    "MmeMonitoringObservability-handmade",
    "billing-alarm",
)
ALARM_REASON = (
    "Threshold Crossed: 1 out of the last 1 datapoints [7.0 (01/05/25 12:00:00)] was greater than or "
    "equal to the threshold (1.0) (minimum 1 datapoint for OK -> ALARM transition)."
)
DASHBOARD_URL = (
    "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
    "#dashboards/dashboard/mme-dashboard"
)


def table_cells(line: str) -> list[str]:
    """The non-empty cells of one line of a rich table."""
    return [cell.strip() for cell in re.split("[│┃]", line) if cell.strip()]


def create_alarms(states: dict[str, str], region: str = REGION) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=region)
    for name, state in states.items():
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/SageMaker",
            MetricName="Invocation5XXErrors",
            Statistic="Sum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
        reason = ALARM_REASON if state == "ALARM" else f"{state} for the test"
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason)


def test_status_shows_the_dashboard_and_each_alarm(models: None, run_cli: RunCli) -> None:
    create_alarms({**MONITORING_ALARMS, **ROLLBACK_ALARMS, **dict.fromkeys(FOREIGN_ALARMS, "ALARM")})

    result = run_cli("status")

    assert result.exit_code == 0, result.stderr
    out = one_line(result.stdout)
    assert f"Dashboard │ {DASHBOARD_URL} │" in out
    assert "Alarm topic │ arn:aws:sns:x │" in out
    assert "Alarms │ 4 alarm(s): 1 ALARM, 1 INSUFFICIENT_DATA, 2 OK │" in out
    rows = [
        table_cells(line)
        for line in result.stdout.splitlines()
        if "-Observability" in line or "-Rollback-" in line
    ]
    assert [(row[0], row[1], row[3]) for row in rows] == [
        ("MmeMonitoring-ObservabilityErrors5xxAlarm34E54F82-1XK2Q3ZP8ANB4", "ALARM", ALARM_REASON),
        ("MmeMonitoring-ObservabilityCacheHitLowAlarm17A7D1F0-9ZT0LMQ2D7RX", "INSUFFICIENT_DATA",
         "INSUFFICIENT_DATA for the test"),
        ("MmeEndpoint-Rollback-Invocation5XXErrors", "OK", "OK for the test"),
        ("MmeMonitoring-ObservabilityMemoryHighAlarm2B169F9A-5C3VBN7M1QWE", "OK", "OK for the test"),
    ]  # fmt: skip
    assert all(row[2].endswith(" UTC") for row in rows)
    assert not any(name in result.stdout for name in FOREIGN_ALARMS)
    assert result.stderr == ""


def test_status_without_the_monitoring_stack_says_so_in_one_line(models: None, run_cli: RunCli) -> None:
    boto3.client("cloudformation", region_name=REGION).delete_stack(StackName="MmeMonitoring")
    create_alarms(ROLLBACK_ALARMS)

    result = run_cli("status")

    assert result.exit_code == 0, result.stderr
    assert "│ Monitoring │ not deployed (no Monitoring stack) │" in one_line(result.stdout)
    assert "Dashboard" not in result.stdout
    assert "│ MmeEndpoint-Rollback-Invocation5XXErrors │ OK │" in one_line(result.stdout)
    assert result.stderr == ""
    document = json_document(run_cli("status", "--output", "json"), "mme.status/1")
    assert document["monitoring"] == {
        "deployed": False,
        "dashboard_name": None,
        "dashboard_url": None,
        "alarm_topic_arn": None,
    }
    assert [alarm["name"] for alarm in document["alarms"]] == list(ROLLBACK_ALARMS)


def test_status_when_the_alarms_cannot_be_read(
    models: None, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    stubber = Stubber(cloudwatch)
    stubber.add_client_error(
        "describe_alarms", "AccessDenied", "not authorized to perform: cloudwatch:DescribeAlarms"
    )
    create_client = CliContext.client
    monkeypatch.setattr(
        CliContext,
        "client",
        lambda self, service: cloudwatch if service == "cloudwatch" else create_client(self, service),
    )

    with stubber:
        table = run_cli("status")
    with stubber:
        stubber.add_client_error("describe_alarms", "AccessDenied", "not authorized")
        document = json_document(run_cli("status", "-o", "json"), "mme.status/1")

    assert table.exit_code == 0, table.stderr
    assert "│ Alarms │ could not be read (see the warning) │" in one_line(table.stdout)
    assert warnings_of(table) == [
        "The alarms could not be read (AccessDenied: not authorized to perform: "
        "cloudwatch:DescribeAlarms): `mme status` needs cloudwatch:DescribeAlarms."
    ]
    assert document["alarms"] is None
    assert document["warnings"] == [
        "The alarms could not be read (AccessDenied: not authorized): `mme status` needs "
        "cloudwatch:DescribeAlarms."
    ]


@pytest.mark.parametrize(
    ("region", "url"),
    [
        (
            "us-east-1",
            "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/d",
        ),
        (
            "eu-central-1",
            "https://eu-central-1.console.aws.amazon.com/cloudwatch/home?region=eu-central-1"
            "#dashboards/dashboard/d",
        ),
        (
            "cn-north-1",
            "https://console.amazonaws.cn/cloudwatch/home?region=cn-north-1#dashboards/dashboard/d",
        ),
        (
            "cn-northwest-1",
            "https://console.amazonaws.cn/cloudwatch/home?region=cn-northwest-1#dashboards/dashboard/d",
        ),
        (
            "us-gov-west-1",
            "https://console.amazonaws-us-gov.com/cloudwatch/home?region=us-gov-west-1"
            "#dashboards/dashboard/d",
        ),
    ],
)
def test_dashboard_url_per_partition(region: str, url: str) -> None:
    assert status_models.dashboard_url(region, "d") == url


def test_status_in_china_links_the_china_console(
    aws: None, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    china = "cn-north-1"
    monkeypatch.setattr(CliContext, "session", property(lambda self: boto3.Session(region_name=china)))
    boto3.client("s3", region_name=china).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": china}
    )
    cloudformation = boto3.client("cloudformation", region_name=china)
    for name, outputs in (
        ("MmeStorage", {"ArtifactBucketName": BUCKET}),
        ("MmeMonitoring", {"DashboardName": "mme-dashboard", "AlarmTopicArn": "arn:aws-cn:sns:x"}),
    ):
        template = {
            "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
        cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))
    create_alarms(MONITORING_ALARMS, region=china)
    url = "https://console.amazonaws.cn/cloudwatch/home?region=cn-north-1#dashboards/dashboard/mme-dashboard"

    table = run_cli("status")
    document = json_document(run_cli("status", "--output", "json"), "mme.status/1")

    assert table.exit_code == 0, table.stderr
    assert f"│ Dashboard │ {url} │" in one_line(table.stdout)
    assert "Alarms │ 3 alarm(s): 1 ALARM, 1 INSUFFICIENT_DATA, 1 OK │" in one_line(table.stdout)
    assert document["region"] == china
    assert document["monitoring"]["dashboard_url"] == url
    assert [(alarm["name"], alarm["state"]) for alarm in document["alarms"]] == [
        ("MmeMonitoring-ObservabilityErrors5xxAlarm34E54F82-1XK2Q3ZP8ANB4", "ALARM"),
        ("MmeMonitoring-ObservabilityCacheHitLowAlarm17A7D1F0-9ZT0LMQ2D7RX", "INSUFFICIENT_DATA"),
        ("MmeMonitoring-ObservabilityMemoryHighAlarm2B169F9A-5C3VBN7M1QWE", "OK"),
    ]


# --------------------------------------------------------------------------------------------------
# mme status --output json


def test_status_json_follows_its_schema(models: None, run_cli: RunCli) -> None:
    create_endpoint(instances=2)
    create_state_machine_with_execution("run-20250501")
    put_version("Chicago_IL", "ll-Chicago-IL-run0", generation=OLD_GENERATION)
    create_alarms({**MONITORING_ALARMS, **ROLLBACK_ALARMS})

    result = run_cli("status", "--output", "json")

    document = json_document(result, "mme.status/1")
    assert result.exit_code == 0
    assert result.stderr == ""
    prefix = f"s3://{BUCKET}/models/{GENERATION}/"
    assert (document["prefix"], document["region"], document["bucket"]) == ("Mme", REGION, BUCKET)
    assert document["serving"] == {
        "generation": GENERATION,
        "endpoint_name": ENDPOINT,
        "updated_at": "2025-05-01T12:00:00Z",
        "next_generation": None,
    }
    assert document["newest"] == {
        "generation": GENERATION,
        "updated_at": "2025-05-01T12:00:00Z",
        "complete_record": True,
        "location_count": 3,
        "completed_at": "2025-05-01T12:00:00Z",
        "algorithm": "linear-learner",
    }
    assert document["endpoint"] == {
        "name": ENDPOINT,
        "found": True,
        "status": "InService",
        "instances": 2,
        "variants": 1,
        "models": [
            {
                "model_name": "mme-model",
                "generation": GENERATION,
                "preprocessor_url": f"s3://{BUCKET}/preprocessor/{GENERATION}/model.tar.gz",
                "models_url": prefix,
            }
        ],
    }
    assert document["models"] == {
        "served_prefix_uri": prefix,
        "served_pointers": 2,
        "generations": [
            {"generation": GENERATION, "served": True, "objects": 5, "locations": 3},
            {"generation": OLD_GENERATION, "served": False, "objects": 1, "locations": 1},
        ],
    }
    training = document["training"]
    assert (training["state_machine_arn"], training["found"]) == (STATE_MACHINE_ARN, True)
    assert (training["last_run"]["name"], training["last_run"]["status"]) == ("run-20250501", "RUNNING")
    assert document["monitoring"] == {
        "deployed": True,
        "dashboard_name": "mme-dashboard",
        "dashboard_url": DASHBOARD_URL,
        "alarm_topic_arn": "arn:aws:sns:x",
    }
    alarms = document["alarms"]
    assert [(alarm["state"], alarm["stack"]) for alarm in alarms] == [
        ("ALARM", "MmeMonitoring"),
        ("INSUFFICIENT_DATA", "MmeMonitoring"),
        ("OK", "MmeEndpoint"),
        ("OK", "MmeMonitoring"),
    ]
    assert alarms[0]["reason"] == ALARM_REASON
    assert document["warnings"] == []


def test_status_json_carries_the_warnings_and_prints_them_on_stderr(models: None, run_cli: RunCli) -> None:
    record_complete(NEW_GENERATION)

    result = run_cli("status", "-o", "json")

    document = json_document(result, "mme.status/1")
    expected = [
        f"Generation {NEW_GENERATION} is complete but not served (the endpoint serves {GENERATION}): "
        "run `make deploy` to switch every location to it."
    ]
    assert document["warnings"] == expected
    assert warnings_of(result) == expected


def test_status_json_before_anything_was_deployed_or_trained(deployed: None, run_cli: RunCli) -> None:
    boto3.client("cloudformation", region_name=REGION).delete_stack(StackName="MmeEndpoint")

    document = json_document(run_cli("status", "--output", "json"), "mme.status/1")

    assert (document["serving"], document["newest"]) == (None, None)
    assert document["endpoint"] == {
        "name": None,
        "found": False,
        "status": None,
        "instances": None,
        "variants": None,
        "models": [],
    }
    assert document["models"] == {"served_prefix_uri": None, "served_pointers": None, "generations": []}
    assert document["training"] == {"state_machine_arn": STATE_MACHINE_ARN, "found": False, "last_run": None}
    assert document["alarms"] == []


# --------------------------------------------------------------------------------------------------
# mme models list


def test_list_shows_each_location(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "list")

    assert result.exit_code == 0, result.stderr
    rows = {line.split("│")[1].strip(): one_line(line) for line in result.stdout.splitlines() if "│" in line}
    assert "│ ll-Chicago-IL-run3 │ 3 │ ll-Chicago-IL-run3 │ 33 bytes │" in rows["Chicago_IL"]
    assert "│ ll-Austin-TX-run1 │ 1 │ ll-Austin-TX-run1 │ 2.0 kB │" in rows["Austin_TX"]
    assert "│ none (no pointer) │ 1 │ ll-Boston-MA-run1 │" in rows["Boston_MA"]


def test_list_follows_every_page(served: None, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_models, "_PAGE_SIZE", 2)  # S3 pages hold up to 1000 keys; 5 need 3 pages
    for index in range(5):
        s3().put_object(
            Bucket=BUCKET, Key=s3_layout.model_version_key(GENERATION, "Paris", f"v{index}"), Body=b"m"
        )

    result = run_cli("models", "list")

    assert result.exit_code == 0, result.stderr
    assert "│ Paris │ none (no pointer) │ 5 │ v4 │ 5 bytes │" in one_line(result.stdout)


def test_list_one_location_marks_the_current_version(models: None, run_cli: RunCli) -> None:
    put_pointer("Chicago_IL", "ll-Chicago-IL-run2")

    result = run_cli("models", "list", "--location", "Chicago_IL")

    assert result.exit_code == 0, result.stderr
    lines = [one_line(line) for line in result.stdout.splitlines() if "ll-Chicago-IL-run" in line]
    assert len(lines) == 3
    assert lines[0].startswith(
        "│ ll-Chicago-IL-run1 │ models/pp-run1/Chicago_IL/Chicago_IL-ll-Chicago-IL-run1.tar.gz │ 11"
    )
    assert lines[1].endswith("│ * │")
    assert not lines[0].endswith("│ * │")
    assert not lines[2].endswith("│ * │")


def test_list_unknown_location_names_the_existing_ones(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "list", "--location", "Denver_CO")

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Location 'Denver_CO' has no model versions in generation {GENERATION} (served) under "
        f"s3://{BUCKET}/models/{GENERATION}/; locations with models there: Austin_TX, Boston_MA, "
        "Chicago_IL.\n"
    )


def test_list_rejects_an_invalid_location_name(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "list", "--location", "../etc")

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Invalid --location: location name '../etc' is not allowed")


def test_list_warns_about_an_invalid_pointer(models: None, run_cli: RunCli) -> None:
    s3().put_object(
        Bucket=BUCKET, Key=s3_layout.current_pointer_key(GENERATION, "Austin_TX"), Body=b"{not json"
    )

    result = run_cli("models", "list")

    assert result.exit_code == 0
    assert "│ Austin_TX │ invalid pointer │" in one_line(result.stdout)
    assert (
        f"Warning: s3://{BUCKET}/model-pointers/pp-run1/Austin_TX.json is not a valid pointer"
        in result.stderr
    )


# --------------------------------------------------------------------------------------------------
# mme models list --output json


def test_list_json_follows_its_schema(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "list", "--output", "json")

    document = json_document(result, "mme.models.list/1")
    assert result.stderr == ""
    assert {key: document[key] for key in ("bucket", "generation", "chosen_by", "served")} == {
        "bucket": BUCKET,
        "generation": GENERATION,
        "chosen_by": "serving",
        "served": True,
    }
    assert document["serving_generation"] == GENERATION
    assert document["models_prefix_uri"] == f"s3://{BUCKET}/models/{GENERATION}/"
    by_name = {entry["location"]: entry for entry in document["locations"]}
    assert list(by_name) == ["Austin_TX", "Boston_MA", "Chicago_IL"]
    chicago = by_name["Chicago_IL"]
    assert {key: value for key, value in chicago.items() if key != "versions"} == {
        "location": "Chicago_IL",
        "current_version": "ll-Chicago-IL-run3",
        "pointer_problem": None,
        "current_object_missing": False,
        "newest_version": "ll-Chicago-IL-run3",
        "version_count": 3,
        "total_size_bytes": 33,
    }
    assert [(v["version"], v["current"], v["size_bytes"]) for v in chicago["versions"]] == [
        ("ll-Chicago-IL-run1", False, 11),
        ("ll-Chicago-IL-run2", False, 11),
        ("ll-Chicago-IL-run3", True, 11),
    ]
    assert chicago["versions"][0]["key"] == s3_layout.model_version_key(
        GENERATION, "Chicago_IL", "ll-Chicago-IL-run1"
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", chicago["versions"][0]["last_modified"])
    boston = by_name["Boston_MA"]
    assert (boston["current_version"], boston["newest_version"]) == (None, "ll-Boston-MA-run1")
    assert [v["current"] for v in boston["versions"]] == [False]


def test_list_one_location_json_is_the_same_document_with_one_location(models: None, run_cli: RunCli) -> None:
    everything = json_document(run_cli("models", "list", "-o", "json"), "mme.models.list/1")

    one = json_document(
        run_cli("models", "list", "--location", "Chicago_IL", "-o", "json"), "mme.models.list/1"
    )

    chicago = next(entry for entry in everything["locations"] if entry["location"] == "Chicago_IL")
    assert one == {**everything, "locations": [chicago]}


def test_list_json_without_models_is_an_empty_list(served: None, run_cli: RunCli) -> None:
    result = run_cli("models", "list", "--output", "json")

    assert json_document(result, "mme.models.list/1")["locations"] == []
    assert "run `mme train` first" not in result.stdout + result.stderr


def test_list_json_names_an_invalid_pointer_and_warns_on_stderr(models: None, run_cli: RunCli) -> None:
    s3().put_object(
        Bucket=BUCKET, Key=s3_layout.current_pointer_key(GENERATION, "Austin_TX"), Body=b"{not json"
    )
    put_pointer("Boston_MA", "ll-Boston-MA-run9")  # its object does not exist

    result = run_cli("models", "list", "-o", "json")

    by_name = {entry["location"]: entry for entry in json_document(result, "mme.models.list/1")["locations"]}
    problem = by_name["Austin_TX"]["pointer_problem"]
    assert problem.startswith(f"s3://{BUCKET}/model-pointers/pp-run1/Austin_TX.json is not a valid pointer")
    assert by_name["Austin_TX"]["current_version"] is None
    assert (by_name["Boston_MA"]["current_version"], by_name["Boston_MA"]["current_object_missing"]) == (
        "ll-Boston-MA-run9",
        True,
    )
    assert f"Warning: {problem}" in one_line(result.stderr)


# --------------------------------------------------------------------------------------------------
# mme models promote


@pytest.fixture
def lambda_stub(deployed: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """The Training stack with its PromoteFunctionName output; Lambda answers through a Stubber."""
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {
            "StateMachineArn": {"Value": STATE_MACHINE_ARN},
            "PromoteFunctionName": {"Value": PROMOTE_FUNCTION},
        },
    }
    boto3.client("cloudformation", region_name=REGION).update_stack(
        StackName="MmeTraining", TemplateBody=json.dumps(template)
    )
    lambda_client = boto3.client("lambda", region_name=REGION)
    original = CliContext.client

    def client(self: CliContext, service: str) -> Any:
        return lambda_client if service == "lambda" else original(self, service)

    monkeypatch.setattr(CliContext, "client", client)
    with Stubber(lambda_client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def stub_invoke(
    stubber: Stubber, event: dict[str, str], payload: object, function_error: str | None = None
) -> None:
    body = json.dumps(payload).encode()
    response: dict[str, Any] = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}
    if function_error is not None:
        response["FunctionError"] = function_error
    stubber.add_response(
        "invoke",
        response,
        {
            "FunctionName": PROMOTE_FUNCTION,
            "InvocationType": "RequestResponse",
            "Payload": json.dumps(event).encode(),
        },
    )


def promotion_result(copied: bool) -> dict[str, object]:
    return {
        "artifact": "model",
        "location": "Chicago_IL",
        "version": "ll-Chicago-IL-run4",
        "training_job_name": "ll-Chicago-IL-run4",
        "target_model": "Chicago_IL/Chicago_IL-ll-Chicago-IL-run4.tar.gz",
        "key": "models/pp-run1/Chicago_IL/Chicago_IL-ll-Chicago-IL-run4.tar.gz",
        "pointer_key": "model-pointers/pp-run1/Chicago_IL.json",
        "size": 1843,
        "copied": copied,
        "verification": "size+CRC32",
        "validation_metrics": {"validation:absolute_loss": 15234.5},
    }


@pytest.mark.parametrize(("copied", "action"), [(True, "copied and verified"), (False, "already promoted")])
def test_promote_invokes_the_lambda_and_prints_the_result(
    lambda_stub: Stubber, run_cli: RunCli, copied: bool, action: str
) -> None:
    stub_invoke(
        lambda_stub,
        {"training_job_name": "ll-Chicago-IL-run4", "location": "Chicago_IL"},
        promotion_result(copied),
    )

    result = run_cli("models", "promote", "ll-Chicago-IL-run4", "--location", "Chicago_IL")

    assert result.exit_code == 0, result.stderr
    out = one_line(result.stdout)
    assert "Promoted ll-Chicago-IL-run4 as the Chicago_IL model" in out
    assert f"Result │ {action}" in out
    assert "Version │ ll-Chicago-IL-run4" in out
    assert "Target model │ Chicago_IL/Chicago_IL-ll-Chicago-IL-run4.tar.gz" in out
    assert "validation:absolute_loss │ 15234.5" in out


def test_promote_the_preprocessor(lambda_stub: Stubber, run_cli: RunCli) -> None:
    result_payload = {
        **promotion_result(True),
        "artifact": "preprocessor",
        "location": None,
        "version": "pp-run4",
        "target_model": None,
        "key": "preprocessor/current/model.tar.gz",
        "pointer_key": None,
    }
    stub_invoke(lambda_stub, {"training_job_name": "pp-run4", "artifact": "preprocessor"}, result_payload)

    result = run_cli("models", "promote", "pp-run4", "--preprocessor")

    assert result.exit_code == 0, result.stderr
    out = one_line(result.stdout)
    assert "Promoted pp-run4 as the preprocessor" in out
    assert "Key │ preprocessor/current/model.tar.gz" in out
    assert "Target model" not in out


def test_promote_reports_the_lambda_error(lambda_stub: Stubber, run_cli: RunCli) -> None:
    stub_invoke(
        lambda_stub,
        {"training_job_name": "ll-Chicago-IL-run9", "location": "Chicago_IL"},
        {
            "errorType": "TrainingJobNotReady",
            "errorMessage": "Training job ll-Chicago-IL-run9 is InProgress.",
        },
        function_error="Unhandled",
    )

    result = run_cli("models", "promote", "ll-Chicago-IL-run9", "--location", "Chicago_IL")

    assert result.exit_code == 1
    assert result.stderr.endswith(
        "Error: Promotion of ll-Chicago-IL-run9 failed: TrainingJobNotReady: "
        "Training job ll-Chicago-IL-run9 is InProgress.\n"
    )


@pytest.mark.parametrize("args", [(), ("--location", "Chicago_IL", "--preprocessor")])
def test_promote_needs_exactly_one_target(
    lambda_stub: Stubber, run_cli: RunCli, args: tuple[str, ...]
) -> None:
    result = run_cli("models", "promote", "ll-Chicago-IL-run4", *args)

    assert result.exit_code == 2
    assert "pass exactly one of --location L and --preprocessor" in one_line(result.stderr)


def test_promote_without_the_function_output(deployed: None, run_cli: RunCli) -> None:
    result = run_cli("models", "promote", "ll-Chicago-IL-run4", "--location", "Chicago_IL")

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Stack MmeTraining has no output PromoteFunctionName: redeploy it with this version of the "
        "project.\n"
    )


# --------------------------------------------------------------------------------------------------
# mme models rollback


def test_rollback_to_the_previous_version(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "rollback", "Chicago_IL")

    assert result.exit_code == 0, result.stderr
    assert "Chicago_IL: ll-Chicago-IL-run3 -> ll-Chicago-IL-run2" in result.stdout
    assert "TargetModel Chicago_IL/Chicago_IL-ll-Chicago-IL-run2.tar.gz" in result.stdout
    pointer = read_pointer("Chicago_IL")
    assert pointer.version == "ll-Chicago-IL-run2"
    assert pointer.training_job_name == "ll-Chicago-IL-run2"
    assert pointer.key == "models/pp-run1/Chicago_IL/Chicago_IL-ll-Chicago-IL-run2.tar.gz"
    assert pointer.size == len(b"model-bytes")
    head = s3().head_object(Bucket=BUCKET, Key=pointer.key, ChecksumMode="ENABLED")
    assert pointer.checksum == ArtifactChecksum(algorithm="CRC32", value=head["ChecksumCRC32"])
    assert pointer.promoted_at > PROMOTED_AT
    assert pointer.validation_metrics == {}  # the training job is gone (never existed in moto)


def test_rollback_writes_the_pointer_as_the_promotion_lambda_does(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "rollback", "Chicago_IL")

    assert result.exit_code == 0, result.stderr
    head = s3().head_object(Bucket=BUCKET, Key=s3_layout.current_pointer_key(GENERATION, "Chicago_IL"))
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KEY_ARN)
    assert head["ContentType"] == "application/json"


def test_rollback_without_the_key_output_writes_nothing(models: None, run_cli: RunCli) -> None:
    create_stack_outputs = {"ArtifactBucketName": BUCKET}
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in create_stack_outputs.items()},
    }
    boto3.client("cloudformation", region_name=REGION).update_stack(
        StackName="MmeStorage", TemplateBody=json.dumps(template)
    )

    result = run_cli("models", "rollback", "Chicago_IL")

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Stack MmeStorage has no output KeyArn: redeploy it with this version of the project.\n"
    )
    assert read_pointer("Chicago_IL").version == "ll-Chicago-IL-run3"


def test_rollback_twice_walks_back(models: None, run_cli: RunCli) -> None:
    assert run_cli("models", "rollback", "Chicago_IL").exit_code == 0
    result = run_cli("models", "rollback", "Chicago_IL")

    assert result.exit_code == 0, result.stderr
    assert "Chicago_IL: ll-Chicago-IL-run2 -> ll-Chicago-IL-run1" in result.stdout


def test_rollback_to_a_named_version(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "rollback", "Chicago_IL", "--to", "ll-Chicago-IL-run1")

    assert result.exit_code == 0, result.stderr
    assert "Chicago_IL: ll-Chicago-IL-run3 -> ll-Chicago-IL-run1" in result.stdout
    assert read_pointer("Chicago_IL").version == "ll-Chicago-IL-run1"


def test_rollback_without_an_earlier_version(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "rollback", "Austin_TX")

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Austin_TX has no version older than the current ll-Austin-TX-run1; "
        "its versions are: ll-Austin-TX-run1.\n"
    )


def test_rollback_to_a_missing_version_names_the_existing_ones(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "rollback", "Chicago_IL", "--to", "ll-Chicago-IL-run7")

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Chicago_IL has no version 'll-Chicago-IL-run7' in generation {GENERATION} (served); its "
        "versions are: ll-Chicago-IL-run1, ll-Chicago-IL-run2, ll-Chicago-IL-run3.\n"
    )
    assert read_pointer("Chicago_IL").version == "ll-Chicago-IL-run3"


def test_rollback_to_the_current_version(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "rollback", "Chicago_IL", "--to", "ll-Chicago-IL-run3")

    assert result.exit_code == 1
    assert result.stderr == "Error: ll-Chicago-IL-run3 is already the current version of Chicago_IL.\n"


def test_rollback_unknown_location(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "rollback", "Denver_CO")

    assert result.exit_code == 1
    assert (
        "Error: Location 'Denver_CO' has no model versions in generation pp-run1 (served) under"
        in result.stderr
    )
    assert "locations with models there: Austin_TX, Boston_MA, Chicago_IL." in result.stderr


def test_rollback_without_a_pointer_needs_to(models: None, run_cli: RunCli) -> None:
    failed = run_cli("models", "rollback", "Boston_MA")
    assert failed.exit_code == 1
    assert failed.stderr == (
        "Error: Boston_MA has no usable current version to roll back from (no pointer); "
        "pass --to VERSION, one of: ll-Boston-MA-run1.\n"
    )

    fixed = run_cli("models", "rollback", "Boston_MA", "--to", "ll-Boston-MA-run1")
    assert fixed.exit_code == 0, fixed.stderr
    assert "Boston_MA: none -> ll-Boston-MA-run1" in fixed.stdout
    assert read_pointer("Boston_MA").version == "ll-Boston-MA-run1"


def test_rollback_when_the_current_object_is_missing(models: None, run_cli: RunCli) -> None:
    s3().delete_object(
        Bucket=BUCKET, Key=s3_layout.model_version_key(GENERATION, "Chicago_IL", "ll-Chicago-IL-run3")
    )

    result = run_cli("models", "rollback", "Chicago_IL")

    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: The current version ll-Chicago-IL-run3 of Chicago_IL is missing from "
        "models/pp-run1/Chicago_IL/; pass --to VERSION, one of: ll-Chicago-IL-run1, ll-Chicago-IL-run2."
    )


def test_rollback_does_not_undo_a_concurrent_promotion(
    models: None, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    original_head = status_models._head

    def head_while_a_promotion_lands(s3_client: Any, bucket: str, key: str) -> Any:
        put_version("Chicago_IL", "ll-Chicago-IL-run4")
        put_pointer("Chicago_IL", "ll-Chicago-IL-run4")
        return original_head(s3_client, bucket, key)

    monkeypatch.setattr(status_models, "_head", head_while_a_promotion_lands)

    result = run_cli("models", "rollback", "Chicago_IL")

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: s3://{BUCKET}/model-pointers/pp-run1/Chicago_IL.json changed while rolling back "
        "(a promotion?); nothing was written: check `mme models list` and run the rollback again.\n"
    )
    assert read_pointer("Chicago_IL").version == "ll-Chicago-IL-run4"


def test_rollback_without_the_storage_stack(aws: None, run_cli: RunCli) -> None:
    result = run_cli("models", "rollback", "Chicago_IL")

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Stack MmeStorage is not deployed in us-east-1")


# --------------------------------------------------------------------------------------------------
# mme models delete


def version_keys(location: str) -> list[str]:
    listed = s3().list_objects_v2(
        Bucket=BUCKET, Prefix=s3_layout.location_models_prefix(GENERATION, location)
    )
    return sorted(
        item["Key"].rsplit("-", 1)[1].removesuffix(".tar.gz") for item in listed.get("Contents", [])
    )


def has_pointer(location: str) -> bool:
    listed = s3().list_objects_v2(Bucket=BUCKET, Prefix=s3_layout.current_pointer_key(GENERATION, location))
    return bool(listed.get("Contents"))


def answer(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


def test_delete_a_location_removes_its_pointer_then_every_version(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "delete", "Chicago_IL", "--yes")

    assert result.exit_code == 0, result.stderr
    assert f"Deleted s3://{BUCKET}/model-pointers/pp-run1/Chicago_IL.json" in result.stdout
    assert (
        f"Chicago_IL: deleted 3 version(s) of {GENERATION}; clients can no longer invoke it." in result.stdout
    )
    assert not has_pointer("Chicago_IL")
    assert version_keys("Chicago_IL") == []
    assert version_keys("Austin_TX") == ["run1"]
    assert has_pointer("Austin_TX")
    assert "Chicago_IL" not in run_cli("models", "list").stdout


def test_delete_asks_first_and_no_changes_nothing(
    models: None, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer(monkeypatch, "n\n")

    result = run_cli("models", "delete", "Chicago_IL")

    assert result.exit_code == 1
    assert (
        f"Delete Chicago_IL from generation {GENERATION} (served): the pointer "
        f"s3://{BUCKET}/model-pointers/pp-run1/Chicago_IL.json and "
        f"3 version(s) under s3://{BUCKET}/models/pp-run1/Chicago_IL/? [y/N]"
    ) in one_line(result.stdout)
    assert result.stderr == "Error: Nothing was deleted: the deletion was not confirmed.\n"
    assert version_keys("Chicago_IL") == ["run1", "run2", "run3"]
    assert read_pointer("Chicago_IL").version == "ll-Chicago-IL-run3"


def test_delete_asks_first_and_yes_deletes(
    models: None, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer(monkeypatch, "y\n")

    result = run_cli("models", "delete", "Boston_MA")

    assert result.exit_code == 0, result.stderr
    assert (
        f"Delete Boston_MA from generation {GENERATION} (served): 1 version(s) under s3://{BUCKET}/models/pp-run1/Boston_MA/?"
        in result.stdout
    )
    assert "Boston_MA: deleted 1 version(s)" in result.stdout
    assert version_keys("Boston_MA") == []


def test_delete_one_version(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "delete", "Chicago_IL", "--version", "ll-Chicago-IL-run1", "--yes")

    assert result.exit_code == 0, result.stderr
    assert (
        f"Deleted s3://{BUCKET}/models/pp-run1/Chicago_IL/Chicago_IL-ll-Chicago-IL-run1.tar.gz"
        in result.stdout
    )
    assert version_keys("Chicago_IL") == ["run2", "run3"]
    assert read_pointer("Chicago_IL").version == "ll-Chicago-IL-run3"


def test_delete_one_version_declined(models: None, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    answer(monkeypatch, "\n")  # the default is no

    result = run_cli("models", "delete", "Chicago_IL", "--version", "ll-Chicago-IL-run1")

    assert result.exit_code == 1
    assert result.stderr == "Error: Nothing was deleted: the deletion was not confirmed.\n"
    assert version_keys("Chicago_IL") == ["run1", "run2", "run3"]


def test_delete_refuses_the_current_version(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "delete", "Chicago_IL", "--version", "ll-Chicago-IL-run3", "--yes")

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: ll-Chicago-IL-run3 is the current version of Chicago_IL: roll back first "
        "(`mme models rollback Chicago_IL`) or delete the whole location (`mme models delete Chicago_IL`).\n"
    )
    assert version_keys("Chicago_IL") == ["run1", "run2", "run3"]


def test_delete_refuses_an_unknown_version(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "delete", "Chicago_IL", "--version", "ll-Chicago-IL-run7", "--yes")

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Chicago_IL has no version 'll-Chicago-IL-run7'; its versions are: "
        "ll-Chicago-IL-run1, ll-Chicago-IL-run2, ll-Chicago-IL-run3.\n"
    )
    assert version_keys("Chicago_IL") == ["run1", "run2", "run3"]


def test_delete_one_version_refuses_when_the_pointer_is_unreadable(models: None, run_cli: RunCli) -> None:
    s3().put_object(
        Bucket=BUCKET, Key=s3_layout.current_pointer_key(GENERATION, "Chicago_IL"), Body=b"{not json"
    )

    result = run_cli("models", "delete", "Chicago_IL", "--version", "ll-Chicago-IL-run1", "--yes")

    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: Cannot tell whether ll-Chicago-IL-run1 is current, because s3://{BUCKET}/"
        "model-pointers/pp-run1/Chicago_IL.json is not a valid pointer"
    )
    assert result.stderr.endswith("; nothing was deleted.\n")
    assert version_keys("Chicago_IL") == ["run1", "run2", "run3"]


@pytest.mark.parametrize("args", [("../etc",), ("../etc", "--version", "v1")])
def test_delete_rejects_an_invalid_location_name(
    models: None, run_cli: RunCli, args: tuple[str, ...]
) -> None:
    result = run_cli("models", "delete", *args, "--yes")

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Invalid --location: location name '../etc' is not allowed")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_delete_an_unknown_location(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "delete", "Denver_CO", "--yes")

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Location 'Denver_CO' has no model versions in generation {GENERATION} (served) under "
        f"s3://{BUCKET}/models/{GENERATION}/; locations with models there: Austin_TX, Boston_MA, "
        "Chicago_IL.\n"
    )


def test_delete_loses_to_a_concurrent_promotion(
    models: None, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    original_scan = status_models._scan_models

    def scan_while_a_promotion_lands(
        s3_client: Any, bucket: str, generation: str, location: str | None = None
    ) -> Any:
        found = original_scan(s3_client, bucket, generation, location)  # after the pointer was read
        put_version("Chicago_IL", "ll-Chicago-IL-run4")
        put_pointer("Chicago_IL", "ll-Chicago-IL-run4")
        return found

    monkeypatch.setattr(status_models, "_scan_models", scan_while_a_promotion_lands)

    result = run_cli("models", "delete", "Chicago_IL", "--yes")

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: s3://{BUCKET}/model-pointers/pp-run1/Chicago_IL.json changed since it was read "
        "(a promotion?); nothing was deleted: check `mme models list` and run the delete again.\n"
    )
    assert read_pointer("Chicago_IL").version == "ll-Chicago-IL-run4"
    assert version_keys("Chicago_IL") == ["run1", "run2", "run3", "run4"]


# --------------------------------------------------------------------------------------------------
# mme models prune


@pytest.fixture
def five_versions(served: None) -> None:
    """Chicago_IL has run1..run5, Austin_TX one version; the pointers are set by each test."""
    for index in range(1, 6):
        put_version("Chicago_IL", f"ll-Chicago-IL-run{index}")
    put_version("Austin_TX", "ll-Austin-TX-run1")
    put_pointer("Austin_TX", "ll-Austin-TX-run1")


def prune_row(stdout: str, location: str) -> str:
    return next(one_line(line) for line in stdout.splitlines() if f"│ {location} " in line)


def test_prune_keeps_the_newest_and_never_the_current_or_previous(
    five_versions: None, run_cli: RunCli
) -> None:
    put_pointer("Chicago_IL", "ll-Chicago-IL-run5")

    result = run_cli("models", "prune", "--keep", "1", "--yes")

    assert result.exit_code == 0, result.stderr
    # keep 1 keeps run5, which is current; its previous (run4) is kept too.
    assert version_keys("Chicago_IL") == ["run4", "run5"]
    assert version_keys("Austin_TX") == ["run1"]
    assert prune_row(result.stdout, "Chicago_IL") == (
        "│ Chicago_IL │ ll-Chicago-IL-run5 │ 2 │ 3 │ "
        "ll-Chicago-IL-run1, ll-Chicago-IL-run2, ll-Chicago-IL-run3 │"
    )
    assert prune_row(result.stdout, "Austin_TX") == "│ Austin_TX │ ll-Austin-TX-run1 │ 1 │ 0 │ - │"
    assert "Deleted 3 version(s) in 1 location(s)." in result.stdout
    assert read_pointer("Chicago_IL").version == "ll-Chicago-IL-run5"


def test_prune_after_a_rollback_keeps_the_rolled_back_version_and_its_previous(
    five_versions: None, run_cli: RunCli
) -> None:
    put_pointer("Chicago_IL", "ll-Chicago-IL-run2")

    result = run_cli("models", "prune", "--keep", "1", "--location", "Chicago_IL", "--yes")

    assert result.exit_code == 0, result.stderr
    assert version_keys("Chicago_IL") == ["run1", "run2", "run5"]
    assert "Austin_TX" not in result.stdout


def test_prune_keep_n_without_a_pointer(five_versions: None, run_cli: RunCli) -> None:
    result = run_cli("models", "prune", "--keep", "2", "-l", "Chicago_IL", "--yes")

    assert result.exit_code == 0, result.stderr
    assert version_keys("Chicago_IL") == ["run4", "run5"]
    assert prune_row(result.stdout, "Chicago_IL").startswith("│ Chicago_IL │ none │ 2 │ 3 │")


def test_prune_dry_run_deletes_nothing(five_versions: None, run_cli: RunCli) -> None:
    put_pointer("Chicago_IL", "ll-Chicago-IL-run5")

    result = run_cli("models", "prune", "--keep", "2", "--dry-run")

    assert result.exit_code == 0, result.stderr
    assert "Would delete" in result.stdout
    assert (
        f"Would delete s3://{BUCKET}/models/pp-run1/Chicago_IL/Chicago_IL-ll-Chicago-IL-run1.tar.gz"
        in result.stdout
    )
    assert "Dry run: 3 version(s) would be deleted; nothing was deleted." in result.stdout
    assert version_keys("Chicago_IL") == ["run1", "run2", "run3", "run4", "run5"]


def test_prune_declined_deletes_nothing(
    five_versions: None, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer(monkeypatch, "n\n")

    result = run_cli("models", "prune", "--keep", "1")

    assert result.exit_code == 1
    assert f"Delete 4 version(s) from s3://{BUCKET}/models/{GENERATION}/? [y/N]" in result.stdout
    assert result.stderr == "Error: Nothing was deleted: the deletion was not confirmed.\n"
    assert version_keys("Chicago_IL") == ["run1", "run2", "run3", "run4", "run5"]


def test_prune_with_nothing_to_delete(five_versions: None, run_cli: RunCli) -> None:
    result = run_cli("models", "prune", "--keep", "5")

    assert result.exit_code == 0, result.stderr
    assert "Nothing to prune." in result.stdout


def test_prune_needs_keep_of_at_least_one(five_versions: None, run_cli: RunCli) -> None:
    result = run_cli("models", "prune", "--keep", "0", "--yes")

    assert result.exit_code == 2
    assert "Invalid value for '--keep'" in one_line(result.stderr)
    assert version_keys("Chicago_IL") == ["run1", "run2", "run3", "run4", "run5"]


def test_prune_an_unknown_or_invalid_location(five_versions: None, run_cli: RunCli) -> None:
    unknown = run_cli("models", "prune", "--keep", "1", "-l", "Chicago_IL", "-l", "Denver_CO", "--yes")
    invalid = run_cli("models", "prune", "--keep", "1", "-l", "../etc", "--yes")

    assert unknown.exit_code == 1
    assert unknown.stderr.startswith(
        "Error: Location 'Denver_CO' has no model versions in generation pp-run1 (served) under"
    )
    assert invalid.exit_code == 1
    assert invalid.stderr.startswith("Error: Invalid --location: location name '../etc' is not allowed")
    assert version_keys("Chicago_IL") == ["run1", "run2", "run3", "run4", "run5"]


def test_prune_refuses_a_location_with_an_unreadable_pointer(five_versions: None, run_cli: RunCli) -> None:
    s3().put_object(
        Bucket=BUCKET, Key=s3_layout.current_pointer_key(GENERATION, "Chicago_IL"), Body=b"{not json"
    )

    result = run_cli("models", "prune", "--keep", "1", "--yes")

    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: Cannot prune Chicago_IL, because s3://{BUCKET}/model-pointers/pp-run1/Chicago_IL.json "
        "is not a valid pointer"
    )
    assert result.stderr.count("\n") == 1
    assert version_keys("Chicago_IL") == ["run1", "run2", "run3", "run4", "run5"]


def test_prune_stops_when_a_pointer_moves_meanwhile(
    five_versions: None, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_pointer("Chicago_IL", "ll-Chicago-IL-run5")

    def confirm_while_someone_rolls_back(question: str, default: bool = False) -> bool:
        put_pointer("Chicago_IL", "ll-Chicago-IL-run1")  # run1 was planned for deletion
        return True

    monkeypatch.setattr(typer, "confirm", confirm_while_someone_rolls_back)

    result = run_cli("models", "prune", "--keep", "1")

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: s3://{BUCKET}/model-pointers/pp-run1/Chicago_IL.json changed while pruning (a promotion or "
        "rollback?), so none of Chicago_IL's versions were deleted (0 of other locations were): "
        "run the prune again.\n"
    )
    assert version_keys("Chicago_IL") == ["run1", "run2", "run3", "run4", "run5"]


# --------------------------------------------------------------------------------------------------
# Which generation the models commands act on


def test_models_commands_need_a_generation(deployed: None, run_cli: RunCli) -> None:
    for args in (
        ("models", "list"),
        ("models", "rollback", "Chicago_IL"),
        ("models", "prune", "--keep", "1"),
    ):
        result = run_cli(*args)

        assert result.exit_code == 1
        assert result.stderr == (
            "Error: No preprocessor generation is served or complete yet (neither "
            "preprocessor/serving.json nor preprocessor/newest.json exists): run `mme train --wait` to "
            "train the first one, then `make deploy` to serve it.\n"
        )


def test_before_the_first_deploy_the_newest_complete_generation_is_used(
    deployed: None, run_cli: RunCli
) -> None:
    record_complete(GENERATION)
    put_version("Chicago_IL", "ll-Chicago-IL-run1")
    put_pointer("Chicago_IL", "ll-Chicago-IL-run1")

    result = run_cli("models", "list")

    assert result.exit_code == 0, result.stderr
    out = one_line(result.stdout)
    assert f"Models of generation {GENERATION} (newest complete; nothing is served yet)" in out
    assert "│ Chicago_IL │ ll-Chicago-IL-run1 │ 1 │" in out


def test_list_another_generation(models: None, run_cli: RunCli) -> None:
    put_version("Chicago_IL", "ll-Chicago-IL-run0", generation=OLD_GENERATION)
    put_pointer("Chicago_IL", "ll-Chicago-IL-run0", generation=OLD_GENERATION)

    result = run_cli("models", "list", "--generation", OLD_GENERATION)

    assert result.exit_code == 0, result.stderr
    out = one_line(result.stdout)
    assert (
        f"Models of generation {OLD_GENERATION} (not served; the endpoint serves {GENERATION}) under "
        f"s3://{BUCKET}/models/{OLD_GENERATION}/"
    ) in out
    assert "│ Chicago_IL │ ll-Chicago-IL-run0 │ 1 │" in out
    assert "Austin_TX" not in out


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "run0",
            "Error: Invalid --generation: preprocessor generation 'run0' is not allowed: use 'pp-' followed "
            "by a run id (1 to 24 characters",
        ),
        (
            "pp-run9",
            f"Error: Generation pp-run9 does not exist in s3://{BUCKET}/ (no preprocessor/pp-run9/ or "
            f"models/pp-run9/); the generations are: {GENERATION}.",
        ),
    ],
)
def test_a_bad_generation_option_is_one_sentence(
    models: None, run_cli: RunCli, value: str, message: str
) -> None:
    for args in (("models", "list"), ("models", "delete", "Chicago_IL", "--yes")):
        result = run_cli(*args, "--generation", value)

        assert result.exit_code == 1
        assert result.stderr.startswith(message)
        assert result.stderr.count("\n") == 1
    assert version_keys("Chicago_IL") == ["run1", "run2", "run3"]


def test_list_treats_a_pointer_of_another_generation_as_invalid(models: None, run_cli: RunCli) -> None:
    stray = ModelPointer(
        preprocessor_generation=OLD_GENERATION,
        location="Austin_TX",
        version="ll-Austin-TX-run1",
        size=1,
        training_job_name=None,
        promoted_at=PROMOTED_AT,
    )
    s3().put_object(
        Bucket=BUCKET,
        Key=s3_layout.current_pointer_key(GENERATION, "Austin_TX"),
        Body=stray.to_json().encode(),
    )

    result = run_cli("models", "list")

    assert result.exit_code == 0
    assert "│ Austin_TX │ invalid pointer │" in one_line(result.stdout)
    assert one_line(result.stderr) == (
        f"Warning: s3://{BUCKET}/model-pointers/{GENERATION}/Austin_TX.json is not a valid pointer: it names "
        f"preprocessor generation {OLD_GENERATION}, not its folder's {GENERATION}"
    )


def test_rollback_refuses_a_version_of_another_generation(models: None, run_cli: RunCli) -> None:
    put_version("Chicago_IL", "ll-Chicago-IL-run0", generation=OLD_GENERATION)

    result = run_cli("models", "rollback", "Chicago_IL", "--to", "ll-Chicago-IL-run0")

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Version ll-Chicago-IL-run0 of Chicago_IL was trained with preprocessor generation "
        f"{OLD_GENERATION}, while the endpoint serves {GENERATION}, and a model only works behind the "
        f"preprocessor it was trained on: serve {OLD_GENERATION} with `make deploy GENERATION="
        f"{OLD_GENERATION}` (which also switches every other location to {OLD_GENERATION}'s models), or "
        f"retrain Chicago_IL on {GENERATION} with `mme train --location Chicago_IL`.\n"
    )
    assert read_pointer("Chicago_IL").version == "ll-Chicago-IL-run3"
    assert not has_pointer_in(OLD_GENERATION, "Chicago_IL")


def test_rollback_within_another_generation(models: None, run_cli: RunCli) -> None:
    for version in ("ll-Chicago-IL-run0a", "ll-Chicago-IL-run0b"):
        put_version("Chicago_IL", version, generation=OLD_GENERATION)
    put_pointer("Chicago_IL", "ll-Chicago-IL-run0b", generation=OLD_GENERATION)

    result = run_cli("models", "rollback", "Chicago_IL", "--generation", OLD_GENERATION)

    assert result.exit_code == 0, result.stderr
    assert "Chicago_IL: ll-Chicago-IL-run0b -> ll-Chicago-IL-run0a" in result.stdout
    pointer = read_pointer("Chicago_IL", OLD_GENERATION)
    assert (pointer.preprocessor_generation, pointer.version) == (OLD_GENERATION, "ll-Chicago-IL-run0a")
    assert pointer.key == f"models/{OLD_GENERATION}/Chicago_IL/Chicago_IL-ll-Chicago-IL-run0a.tar.gz"
    assert read_pointer("Chicago_IL").version == "ll-Chicago-IL-run3"  # the served one is untouched


def test_rollback_to_an_added_version_records_no_training_job(models: None, run_cli: RunCli) -> None:
    key = s3_layout.model_version_key(GENERATION, "Chicago_IL", "add-20250502120000")
    s3().put_object(
        Bucket=BUCKET,
        Key=key,
        Body=b"added",
        ChecksumAlgorithm="CRC32",
        Metadata={status_models.ADDED_BY_METADATA: "model.tar.gz"},
    )

    result = run_cli("models", "rollback", "Chicago_IL", "--to", "add-20250502120000")

    assert result.exit_code == 0, result.stderr
    pointer = read_pointer("Chicago_IL")
    assert (pointer.version, pointer.training_job_name, pointer.size) == ("add-20250502120000", None, 5)
    assert pointer.preprocessor_generation == GENERATION


def has_pointer_in(generation: str, location: str) -> bool:
    listed = s3().list_objects_v2(Bucket=BUCKET, Prefix=s3_layout.current_pointer_key(generation, location))
    return bool(listed.get("Contents"))


def test_rollback_in_another_generation_to_a_served_version_says_to_drop_the_option(
    models: None, run_cli: RunCli
) -> None:
    put_version("Chicago_IL", "ll-Chicago-IL-run0", generation=OLD_GENERATION)

    result = run_cli(
        "models", "rollback", "Chicago_IL", "--to", "ll-Chicago-IL-run2", "--generation", OLD_GENERATION
    )

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Version ll-Chicago-IL-run2 of Chicago_IL belongs to the served generation {GENERATION}, "
        f"not to {OLD_GENERATION} (chosen with --generation): run the rollback without --generation.\n"
    )
    assert not has_pointer_in(OLD_GENERATION, "Chicago_IL")
