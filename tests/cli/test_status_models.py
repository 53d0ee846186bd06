"""``mme status`` and ``mme models list | promote | rollback`` against moto (and a Stubber for Lambda)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.response import StreamingBody  # type: ignore[import-untyped]
from botocore.stub import Stubber  # type: ignore[import-untyped]

from mme_cli.commands import status_models
from mme_cli.context import CliContext
from mme_shared import s3_layout
from mme_shared.model_pointer import ArtifactChecksum, ModelPointer
from tests.cli.conftest import ACCOUNT, BUCKET, ENDPOINT, KEY_ARN, REGION, STATE_MACHINE_ARN, CliResult

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


def put_version(location: str, version: str, body: bytes = b"model-bytes") -> str:
    key = s3_layout.model_version_key(location, version)
    s3().put_object(Bucket=BUCKET, Key=key, Body=body, ChecksumAlgorithm="CRC32")
    return key


def put_pointer(location: str, version: str, size: int = 11) -> None:
    pointer = ModelPointer(
        location=location,
        version=version,
        size=size,
        training_job_name=version,
        promoted_at=PROMOTED_AT,
        validation_metrics={"validation:absolute_loss": 1.5},
    )
    s3().put_object(Bucket=BUCKET, Key=pointer.pointer_key, Body=pointer.to_json().encode())


def read_pointer(location: str) -> ModelPointer:
    body = s3().get_object(Bucket=BUCKET, Key=s3_layout.current_pointer_key(location))["Body"].read()
    return ModelPointer.from_json(body)


@pytest.fixture
def models(deployed: None) -> None:
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


def create_endpoint(instances: int = 2) -> None:
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model(
        ModelName="mme-model",
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/mme",
        PrimaryContainer={"Image": "image", "Mode": "MultiModel", "ModelDataUrl": f"s3://{BUCKET}/models/"},
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


def test_status_shows_outputs_endpoint_models_and_last_training(models: None, run_cli: RunCli) -> None:
    create_endpoint(instances=2)
    create_state_machine_with_execution("run-20250501")

    result = run_cli("status")

    assert result.exit_code == 0, result.stderr
    out = one_line(result.stdout)
    assert f"Artifact bucket │ {BUCKET}" in out
    assert f"Model prefix │ s3://{BUCKET}/models/" in out
    assert f"Endpoint │ {ENDPOINT}" in out
    assert "Endpoint status │ InService" in out
    assert "Instances │ 2 across 1 variant(s)" in out
    assert "Models │ 5 object(s) in 3 location(s)" in out
    assert f"State machine │ {STATE_MACHINE_ARN}" in out
    assert "Last training │ run-20250501: RUNNING, started" in out


def test_status_says_not_deployed_when_the_endpoint_is_missing(deployed: None, run_cli: RunCli) -> None:
    result = run_cli("status")

    assert result.exit_code == 0, result.stderr
    out = one_line(result.stdout)
    assert f"Endpoint │ {ENDPOINT}: not deployed (SageMaker has no such endpoint)" in out
    assert "Models │ 0 object(s) in 0 location(s)" in out
    assert "Last training │ state machine not found" in out


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
# mme models list


def test_list_shows_each_location(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "list")

    assert result.exit_code == 0, result.stderr
    rows = {line.split("│")[1].strip(): one_line(line) for line in result.stdout.splitlines() if "│" in line}
    assert "│ ll-Chicago-IL-run3 │ 3 │ ll-Chicago-IL-run3 │ 33 bytes │" in rows["Chicago_IL"]
    assert "│ ll-Austin-TX-run1 │ 1 │ ll-Austin-TX-run1 │ 2.0 kB │" in rows["Austin_TX"]
    assert "│ none (no pointer) │ 1 │ ll-Boston-MA-run1 │" in rows["Boston_MA"]


def test_list_follows_every_page(deployed: None, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_models, "_PAGE_SIZE", 2)  # S3 pages hold up to 1000 keys; 5 need 3 pages
    for index in range(5):
        s3().put_object(Bucket=BUCKET, Key=s3_layout.model_version_key("Paris", f"v{index}"), Body=b"m")

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
        "│ ll-Chicago-IL-run1 │ models/Chicago_IL/Chicago_IL-ll-Chicago-IL-run1.tar.gz │ 11"
    )
    assert lines[1].endswith("│ * │")
    assert not lines[0].endswith("│ * │")
    assert not lines[2].endswith("│ * │")


def test_list_unknown_location_names_the_existing_ones(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "list", "--location", "Denver_CO")

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Location 'Denver_CO' has no model versions under s3://{BUCKET}/models/; "
        "locations with models: Austin_TX, Boston_MA, Chicago_IL.\n"
    )


def test_list_rejects_an_invalid_location_name(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "list", "--location", "../etc")

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Invalid --location: location name '../etc' is not allowed")


def test_list_warns_about_an_invalid_pointer(models: None, run_cli: RunCli) -> None:
    s3().put_object(Bucket=BUCKET, Key=s3_layout.current_pointer_key("Austin_TX"), Body=b"{not json")

    result = run_cli("models", "list")

    assert result.exit_code == 0
    assert "│ Austin_TX │ invalid pointer │" in one_line(result.stdout)
    assert f"Warning: s3://{BUCKET}/model-pointers/Austin_TX.json is not a valid pointer" in result.stderr


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
        "key": "models/Chicago_IL/Chicago_IL-ll-Chicago-IL-run4.tar.gz",
        "pointer_key": "model-pointers/Chicago_IL.json",
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
    assert pointer.key == "models/Chicago_IL/Chicago_IL-ll-Chicago-IL-run2.tar.gz"
    assert pointer.size == len(b"model-bytes")
    head = s3().head_object(Bucket=BUCKET, Key=pointer.key, ChecksumMode="ENABLED")
    assert pointer.checksum == ArtifactChecksum(algorithm="CRC32", value=head["ChecksumCRC32"])
    assert pointer.promoted_at > PROMOTED_AT
    assert pointer.validation_metrics == {}  # the training job is gone (never existed in moto)


def test_rollback_writes_the_pointer_as_the_promotion_lambda_does(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "rollback", "Chicago_IL")

    assert result.exit_code == 0, result.stderr
    head = s3().head_object(Bucket=BUCKET, Key=s3_layout.current_pointer_key("Chicago_IL"))
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
        "Error: Chicago_IL has no version 'll-Chicago-IL-run7'; its versions are: "
        "ll-Chicago-IL-run1, ll-Chicago-IL-run2, ll-Chicago-IL-run3.\n"
    )
    assert read_pointer("Chicago_IL").version == "ll-Chicago-IL-run3"


def test_rollback_to_the_current_version(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "rollback", "Chicago_IL", "--to", "ll-Chicago-IL-run3")

    assert result.exit_code == 1
    assert result.stderr == "Error: ll-Chicago-IL-run3 is already the current version of Chicago_IL.\n"


def test_rollback_unknown_location(models: None, run_cli: RunCli) -> None:
    result = run_cli("models", "rollback", "Denver_CO")

    assert result.exit_code == 1
    assert "Error: Location 'Denver_CO' has no model versions under" in result.stderr
    assert "locations with models: Austin_TX, Boston_MA, Chicago_IL." in result.stderr


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
    s3().delete_object(Bucket=BUCKET, Key=s3_layout.model_version_key("Chicago_IL", "ll-Chicago-IL-run3"))

    result = run_cli("models", "rollback", "Chicago_IL")

    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: The current version ll-Chicago-IL-run3 of Chicago_IL is missing from models/Chicago_IL/; "
        "pass --to VERSION, one of: ll-Chicago-IL-run1, ll-Chicago-IL-run2."
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
        f"Error: s3://{BUCKET}/model-pointers/Chicago_IL.json changed while rolling back (a promotion?); "
        "nothing was written: check `mme models list` and run the rollback again.\n"
    )
    assert read_pointer("Chicago_IL").version == "ll-Chicago-IL-run4"


def test_rollback_without_the_storage_stack(aws: None, run_cli: RunCli) -> None:
    result = run_cli("models", "rollback", "Chicago_IL")

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Stack MmeStorage is not deployed in us-east-1")
