"""The training state machine's data flow, executed: the synthesized definition in moto's executor.

The definition is the one CloudFormation would receive (the session's synthesized template with its
tokens rendered), run by moto's Step Functions interpreter with the four real Lambda handlers and
moto's S3 and SageMaker. What moto lacks (Lambda without Docker, SageMaker ``.sync``, ResultWriter
result files) is faked in :mod:`tests.moto_stepfunctions` the way AWS behaves, never by changing
the definition. So a wrong JSONPath, a field one step writes and the next reads under another
name, or a parameter SageMaker would reject fails here rather than in a user's first run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import boto3  # type: ignore[import-untyped]
import pytest
from moto import mock_aws

from mme_shared import naming, s3_layout
from mme_shared.housing_data import generate_location_dataset, to_csv
from mme_shared.model_pointer import ModelPointer
from tests.cfn_render import ACCOUNT, REGION, TemplateRenderer
from tests.conftest import STORAGE_EXPORTS, SynthesizedApp
from tests.moto_stepfunctions import (
    LOCATION_TAG,
    VALIDATION_METRIC,
    InstalledFakes,
    artifact_bytes,
    install,
    validation_loss,
)

BUCKET: Final = STORAGE_EXPORTS["MmeStorage-ArtifactBucketName"]
KEY_ARN: Final = STORAGE_EXPORTS["MmeStorage-KeyArn"]
LOCATIONS: Final = ["NewYork_NY", "Houston_TX", "Chicago_IL"]
RUN_ID: Final = "run-20261125-test"
EXECUTION_TIMEOUT_SECONDS: Final = 30.0
"""Far above a healthy run (about two seconds). Reached only when a wiring error sends a state into
a Retry with a long interval; the test then fails with the execution history."""
TERMINAL_STATUSES: Final = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


@dataclass(frozen=True)
class FinishedExecution:
    name: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    history: list[dict[str, Any]]

    def entered_states(self) -> list[str]:
        return [
            event["stateEnteredEventDetails"]["name"]
            for event in self.history
            if "stateEnteredEventDetails" in event
        ]

    def explain(self) -> str:
        """The states entered and every failure event with its error and cause, one line each."""
        lines = [f"execution {self.name} ended {self.status} ({self.error}: {self.cause})"]
        for event in self.history:
            details: dict[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            if "stateEnteredEventDetails" in event or "error" in details:
                text = (
                    f"{event['id']:>4} {event['type']} {details.get('name', '')} {details.get('error', '')}"
                )
                lines.append(f"{text} {str(details.get('cause', ''))[:600]}".rstrip())
        return "\n".join(lines)


@dataclass(frozen=True)
class Flow:
    """A mocked account holding the artifact bucket and the training state machine."""

    state_machine_arn: str
    sfn: Any
    s3: Any
    sagemaker: Any
    fakes: InstalledFakes

    def run(self, name: str, execution_input: dict[str, Any]) -> FinishedExecution:
        """Start an execution and wait (bounded) until it ends."""
        arn = self.sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(execution_input)
        )["executionArn"]
        deadline = time.monotonic() + EXECUTION_TIMEOUT_SECONDS
        while (described := self.sfn.describe_execution(executionArn=arn))["status"] not in TERMINAL_STATUSES:
            if time.monotonic() > deadline:
                self.sfn.stop_execution(executionArn=arn, error="TestTimeout")
                pytest.fail(
                    f"still running after {EXECUTION_TIMEOUT_SECONDS:.0f} s\n"
                    + self._finished(name, arn).explain()
                )
            time.sleep(0.02)
        return self._finished(name, arn, described)

    def _finished(self, name: str, arn: str, described: dict[str, Any] | None = None) -> FinishedExecution:
        described = described or self.sfn.describe_execution(executionArn=arn)
        history = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return FinishedExecution(
            name=name,
            status=described["status"],
            output=json.loads(described["output"]) if "output" in described else None,
            error=described.get("error"),
            cause=described.get("cause"),
            history=history,
        )

    def succeeded(self, name: str, execution_input: dict[str, Any]) -> FinishedExecution:
        execution = self.run(name, execution_input)
        if execution.status != "SUCCEEDED":
            pytest.fail(execution.explain())
        return execution

    def read(self, key: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return body

    def read_json(self, key: str) -> Any:
        return json.loads(self.read(key))

    def keys(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return sorted(keys)


@pytest.fixture
def flow(
    synthesized: SynthesizedApp, training_definition: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flow]:
    """moto with execution enabled, the fakes installed, the bucket and the state machine created."""
    template = synthesized.template("training")
    (machine,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    role_arn = TemplateRenderer(template, STORAGE_EXPORTS).render(machine["Properties"]["RoleArn"])

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # The rendered ARNs (functions, roles, key) name this account, so moto keeps everything in it.
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        fakes = install(monkeypatch, template, STORAGE_EXPORTS)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        # As the storage stack configures it: versioned, SSE-KMS with the project key by default.
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(
            Bucket=BUCKET,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": KEY_ARN,
                        }
                    }
                ]
            },
        )
        sfn = boto3.client("stepfunctions", region_name=REGION)
        state_machine_arn = sfn.create_state_machine(
            name="TrainingStateMachine",
            definition=json.dumps(training_definition),
            roleArn=role_arn,
            type="STANDARD",
        )["stateMachineArn"]
        yield Flow(
            state_machine_arn=state_machine_arn,
            sfn=sfn,
            s3=s3,
            sagemaker=boto3.client("sagemaker", region_name=REGION),
            fakes=fakes,
        )


def _succeeded_entry(location: str, run_id: str) -> dict[str, Any]:
    job = naming.training_job_name(location, run_id)
    return {
        "location": location,
        "training_job_name": job,
        "target_model": s3_layout.target_model_name(location, job),
        "model_version": job,
        "validation_metrics": {VALIDATION_METRIC: validation_loss(job)},
    }


def _assert_promoted(flow: Flow, location: str, run_id: str) -> None:
    """The location's model is under its own versioned key, and its pointer names that version."""
    job = naming.training_job_name(location, run_id)
    pointer = ModelPointer.from_json(flow.read(s3_layout.current_pointer_key(location)))
    assert (pointer.location, pointer.version, pointer.training_job_name) == (location, job, job)
    assert pointer.key == s3_layout.model_version_key(location, job)
    assert flow.keys(s3_layout.location_models_prefix(location)) == [pointer.key]
    assert flow.read(pointer.key) == artifact_bytes(job)
    assert pointer.size == len(artifact_bytes(job))
    assert pointer.validation_metrics == {VALIDATION_METRIC: validation_loss(job)}


def _assert_not_promoted(flow: Flow, location: str) -> None:
    assert flow.keys(s3_layout.location_models_prefix(location)) == []
    assert flow.keys(s3_layout.current_pointer_key(location)) == []


def test_inline_run_trains_and_promotes_every_location(flow: Flow, synthesized: SynthesizedApp) -> None:
    execution = flow.succeeded(RUN_ID, {"locations": LOCATIONS})

    # The execution's output is the summary Lambda's bounded result.
    succeeded = [_succeeded_entry(location, RUN_ID) for location in sorted(LOCATIONS)]
    assert execution.output == {
        "run_id": RUN_ID,
        "summary_key": s3_layout.run_summary_key(RUN_ID),
        "succeeded_count": 3,
        "failed_count": 0,
        "succeeded": succeeded,
        "failed": [],
        "truncated": False,
        "nothing_promoted": False,
    }
    assert flow.read_json(s3_layout.run_summary_key(RUN_ID)) == {
        "run_id": RUN_ID,
        "succeeded": succeeded,
        "failed": [],
        "succeeded_count": 3,
        "failed_count": 0,
        "nothing_promoted": False,
    }

    # The plan: one item per location, in input order.
    plan = flow.read_json(s3_layout.run_plan_key(RUN_ID))
    assert [item["location"] for item in plan] == LOCATIONS
    items = {item["location"]: item for item in plan}

    # Raw data: the generator's bytes for the configured houses, seed and split (the template's
    # environment reached the handler).
    data = synthesized.config.data
    for location in LOCATIONS:
        splits = generate_location_dataset(
            location,
            houses=data.houses_per_location,
            seed=data.seed,
            validation_fraction=data.validation_fraction,
            test_fraction=data.test_fraction,
        ).splits()
        for split in s3_layout.SPLITS:
            assert (
                flow.read(s3_layout.raw_data_key(RUN_ID, location, split)) == to_csv(splits[split]).encode()
            )

    # SageMaker saw the plan's names and URIs: the preprocessor fits all locations' training data,
    # its model serves the artifact it wrote, and each location's transforms feed its training job.
    preprocessor = naming.preprocessor_job_name(RUN_ID)
    fit = flow.sagemaker.describe_training_job(TrainingJobName=preprocessor)
    train_prefix = s3_layout.raw_data_split_prefix(RUN_ID, "train")
    assert [c["DataSource"]["S3DataSource"]["S3Uri"] for c in fit["InputDataConfig"]] == [
        s3_layout.s3_uri(BUCKET, train_prefix)
    ]
    assert flow.keys(train_prefix) == sorted(
        s3_layout.raw_data_key(RUN_ID, loc, "train") for loc in LOCATIONS
    )
    model = flow.sagemaker.describe_model(ModelName=preprocessor)
    assert model["PrimaryContainer"]["ModelDataUrl"] == fit["ModelArtifacts"]["S3ModelArtifacts"]
    for location, item in items.items():
        for split in ("train", "validation"):
            transform = flow.sagemaker.describe_transform_job(
                TransformJobName=item[f"transform_{split}_job_name"]
            )
            assert transform["ModelName"] == preprocessor
            assert (
                transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == item[f"raw_{split}_uri"]
            )
            assert transform["TransformOutput"]["S3OutputPath"] == item[f"preprocessed_{split}_uri"]
        job = flow.sagemaker.describe_training_job(TrainingJobName=item["training_job_name"])
        assert {
            c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]
        } == {
            "train": item["preprocessed_train_uri"],
            "validation": item["preprocessed_validation_uri"],
        }
        tags = flow.sagemaker.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]
        assert {"Key": LOCATION_TAG, "Value": location} in tags

    # Promotion: every location's model and pointer, and the shared preprocessor at its stable key.
    for location in LOCATIONS:
        _assert_promoted(flow, location, RUN_ID)
    assert flow.read(s3_layout.PREPROCESSOR_ARTIFACT_KEY) == artifact_bytes(preprocessor)


def test_manifest_run_reads_its_locations_from_s3(flow: Flow) -> None:
    run_id = "run-20261125-manifest"
    manifest_key = f"{s3_layout.LOCATION_MANIFESTS_PREFIX}two-cities.json"
    locations = ["Chicago_IL", "NewYork_NY"]
    flow.s3.put_object(Bucket=BUCKET, Key=manifest_key, Body=json.dumps(locations).encode())

    execution = flow.succeeded(run_id, {"locations_manifest_key": manifest_key})

    assert "PlanFromManifest" in execution.entered_states()
    assert flow.fakes.lambdas.events_of("TrainingPipelinePlanRun") == [
        {"run_id": run_id, "locations_manifest_key": manifest_key}
    ]
    assert execution.output["succeeded"] == [_succeeded_entry(location, run_id) for location in locations]
    assert (execution.output["succeeded_count"], execution.output["failed_count"]) == (2, 0)
    assert [item["location"] for item in flow.read_json(s3_layout.run_plan_key(run_id))] == locations
    for location in locations:
        _assert_promoted(flow, location, run_id)
    _assert_not_promoted(flow, "Houston_TX")


FAILURE_REASON: Final = "AlgorithmError: no validation rows could be parsed (simulated)"


@pytest.mark.parametrize(
    ("failure", "failed_step", "error", "reason"),
    [
        pytest.param("training", "train", "States.TaskFailed", FAILURE_REASON, id="training-job-failed"),
        pytest.param(
            "artifact", "promote", "ArtifactMissing", "no object exists there", id="promotion-raised"
        ),
    ],
)
def test_one_failing_location_does_not_stop_the_others(
    flow: Flow, failure: str, failed_step: str, error: str, reason: str
) -> None:
    if failure == "training":
        flow.fakes.sagemaker.failing_locations["Houston_TX"] = FAILURE_REASON
    else:
        flow.fakes.sagemaker.locations_without_artifact.add("Houston_TX")

    execution = flow.succeeded(RUN_ID, {"locations": LOCATIONS})

    others = ["Chicago_IL", "NewYork_NY"]
    assert execution.output["succeeded"] == [_succeeded_entry(location, RUN_ID) for location in others]
    assert (execution.output["succeeded_count"], execution.output["failed_count"]) == (2, 1)
    (returned,) = execution.output["failed"]
    assert (returned["location"], returned["failed_step"], returned["error"]) == (
        "Houston_TX",
        failed_step,
        error,
    )

    summary = flow.read_json(s3_layout.run_summary_key(RUN_ID))
    assert [entry["location"] for entry in summary["succeeded"]] == others
    (failed,) = summary["failed"]
    assert (failed["location"], failed["failed_step"], failed["error"]) == ("Houston_TX", failed_step, error)
    assert reason in failed["cause"]
    if failure == "artifact":  # a Lambda error's cause is the function's error payload
        assert json.loads(failed["cause"])["errorType"] == "ArtifactMissing"

    for location in others:
        _assert_promoted(flow, location, RUN_ID)
    _assert_not_promoted(flow, "Houston_TX")
    assert flow.read(s3_layout.PREPROCESSOR_ARTIFACT_KEY) == artifact_bytes(
        naming.preprocessor_job_name(RUN_ID)
    )


def test_a_run_that_promotes_nothing_fails_and_changes_nothing_served(flow: Flow) -> None:
    for location in LOCATIONS:
        flow.fakes.sagemaker.failing_locations[location] = FAILURE_REASON

    execution = flow.run(RUN_ID, {"locations": LOCATIONS})

    assert (execution.status, execution.error) == ("FAILED", "NothingPromoted"), execution.explain()
    assert execution.cause is not None
    assert "No location of this run was promoted" in execution.cause
    assert "summary.json" in execution.cause
    assert "PromotePreprocessor" not in execution.entered_states()
    # Nothing that the endpoint reads changed: no model, no pointer, no preprocessor.
    for location in LOCATIONS:
        _assert_not_promoted(flow, location)
    assert flow.keys(s3_layout.PREPROCESSOR_ARTIFACT_KEY) == []
    # The summary says so, and why each location failed.
    summary = flow.read_json(s3_layout.run_summary_key(RUN_ID))
    assert (summary["succeeded_count"], summary["failed_count"], summary["nothing_promoted"]) == (0, 3, True)
    assert sorted(entry["location"] for entry in summary["failed"]) == sorted(LOCATIONS)
    assert all(FAILURE_REASON in entry["cause"] for entry in summary["failed"])


@pytest.mark.parametrize(
    "execution_input",
    [{}, {"locations": ["NewYork_NY"], "locations_manifest_key": "location-manifests/all.json"}],
    ids=["neither", "both"],
)
def test_input_needs_exactly_one_location_source(flow: Flow, execution_input: dict[str, Any]) -> None:
    execution = flow.run("run-20261125-empty", execution_input)

    assert (execution.status, execution.error) == ("FAILED", "InvalidRunRequest"), execution.explain()
    assert execution.cause is not None
    assert "needs exactly one of 'locations'" in execution.cause
    assert execution.entered_states() == ["LocationsInlineOrManifest", "InvalidInput"]
    assert flow.fakes.lambdas.invocations == []
    assert flow.keys() == []


def test_invalid_location_fails_the_run_with_the_plans_error(flow: Flow) -> None:
    execution = flow.run("run-20261125-invalid", {"locations": ["NewYork_NY", "Not a location!"]})

    assert (execution.status, execution.error) == ("FAILED", "InvalidRunRequest"), execution.explain()
    assert execution.entered_states() == ["LocationsInlineOrManifest", "PlanFromList", "RunFailed"]
    assert execution.cause is not None
    payload = json.loads(execution.cause)
    assert payload["errorType"] == "InvalidRunRequest"
    assert "locations[1]" in payload["errorMessage"]
    assert flow.keys() == []  # a rejected request writes nothing


def test_generation_results_stay_apart_from_the_training_results(flow: Flow) -> None:
    """The generation Map writes where the layout (and the state machine's role) say it does."""
    flow.succeeded(RUN_ID, {"locations": ["Chicago_IL"]})

    generation = flow.keys(s3_layout.run_generation_results_prefix(RUN_ID))
    assert [key.rsplit("/", 1)[-1] for key in generation] == ["SUCCEEDED_0.json", "manifest.json"]
    training = flow.keys(s3_layout.run_results_prefix(RUN_ID))
    assert [key.rsplit("/", 1)[-1] for key in training] == ["SUCCEEDED_0.json", "manifest.json"]
