"""The training state machine's data flow, executed: the synthesized definition in moto's executor.

The definition is the one CloudFormation would receive (the session's synthesized template with its
tokens rendered), run by moto's Step Functions interpreter with the five real Lambda handlers and
moto's S3 and SageMaker. What moto lacks (Lambda without Docker, SageMaker ``.sync`` and what the
jobs write, ResultWriter result files) is faked in :mod:`tests.moto_stepfunctions` the way AWS
behaves, never by changing the definition. So a wrong JSONPath, a field one step writes and the
next reads under another name, or a parameter SageMaker would reject fails here rather than in a
user's first run.

The first run is executed for each algorithm (``flow`` parametrized indirectly with its name): the
jobs, channels, transform mode, promotion and pointers differ between them. The rest of the flow
matrix (partial runs, refits, failures) runs with the default algorithm: that logic is the same
whatever the algorithm.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import boto3  # type: ignore[import-untyped]
import pytest
from moto import mock_aws
from moto.stepfunctions.parser.utils import TMP_THREADS

from mme_constructs.algorithms import ALGORITHMS, Algorithm
from mme_shared import generation, naming, s3_layout
from mme_shared.housing_data import generate_location_dataset, to_csv
from mme_shared.model_pointer import ModelPointer
from tests.cfn_render import ACCOUNT, REGION, TemplateRenderer
from tests.conftest import STORAGE_EXPORTS, SynthesizedApp
from tests.moto_stepfunctions import (
    LOCATION_TAG,
    InstalledFakes,
    artifact_bytes,
    held_out_metric,
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
GENERATION_TAG: Final = "mme:preprocessor-generation"
"""The tag naming the preprocessor generation a per-location job trained on."""
FIRST_GENERATION: Final = naming.preprocessor_job_name(RUN_ID)
"""The first run ever fits the first generation, named after its preprocessor job."""


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
    app: SynthesizedApp
    """The synthesized deployment whose state machine this is."""

    @property
    def algorithm(self) -> Algorithm:
        return self.app.config.training.algorithm_spec

    def job_name(self, location: str, run_id: str) -> str:
        """A location's training job: ``<the algorithm's step>-<location>-<run>``."""
        return naming.training_job_name(location, run_id, self.algorithm.job_step)

    def held_out_metrics(self, job: str) -> dict[str, float]:
        """What the fake SageMaker reports for a job of this algorithm (none for Random Cut Forest)."""
        image = self.sagemaker.describe_training_job(TrainingJobName=job)["AlgorithmSpecification"]
        metric = held_out_metric(str(image["TrainingImage"]))
        return {} if metric is None else {metric[1]: validation_loss(job)}

    def run(
        self, name: str, execution_input: dict[str, Any], *, timeout: float = EXECUTION_TIMEOUT_SECONDS
    ) -> FinishedExecution:
        """Start an execution and wait (bounded) for the thread moto runs it in to end."""
        threads_before = len(TMP_THREADS)  # moto's ExecutionWorker.start adds its thread there
        arn = self.sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(execution_input)
        )["executionArn"]
        execution = next(t for t in TMP_THREADS[threads_before:] if t.name.endswith("(_execution_logic)"))
        execution.join(timeout)
        if execution.is_alive():
            self.sfn.stop_execution(executionArn=arn, error="TestTimeout")
            pytest.fail(f"still running after {timeout:.0f} s\n" + self._finished(name, arn).explain())
        return self._finished(name, arn)

    def _finished(self, name: str, arn: str) -> FinishedExecution:
        described = self.sfn.describe_execution(executionArn=arn)
        history = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return FinishedExecution(
            name=name,
            status=described["status"],
            output=json.loads(described["output"]) if "output" in described else None,
            error=described.get("error"),
            cause=described.get("cause"),
            history=history,
        )

    def succeeded(
        self, name: str, execution_input: dict[str, Any], *, timeout: float = EXECUTION_TIMEOUT_SECONDS
    ) -> FinishedExecution:
        execution = self.run(name, execution_input, timeout=timeout)
        if execution.status != "SUCCEEDED":
            pytest.fail(execution.explain())
        return execution

    def job_names(self, kind: str) -> list[str]:
        """Every SageMaker job of a kind (``Training``, ``Transform``) in the account, sorted."""
        pages = self.sagemaker.get_paginator(f"list_{kind.lower()}_jobs").paginate()
        return sorted(job[f"{kind}JobName"] for page in pages for job in page[f"{kind}JobSummaries"])

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
    request: pytest.FixtureRequest,
    synthesized: SynthesizedApp,
    synthesized_for_algorithm: Callable[[str], SynthesizedApp],
    training_definition_for_algorithm: Callable[[str], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Flow]:
    """moto with execution enabled, the fakes installed, the bucket and the state machine created:
    the default app's, or (indirect parametrization) the app of the algorithm named by the param."""
    algorithm = str(getattr(request, "param", synthesized.config.training.algorithm))
    app = synthesized_for_algorithm(algorithm)
    training_definition = training_definition_for_algorithm(algorithm)
    template = app.template("training")
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
            app=app,
        )


def _succeeded_entry(flow: Flow, location: str, run_id: str) -> dict[str, Any]:
    job = flow.job_name(location, run_id)
    return {
        "location": location,
        "training_job_name": job,
        "target_model": s3_layout.target_model_name(location, job),
        "model_version": job,
        "validation_metrics": flow.held_out_metrics(job),
    }


def _assert_promoted(flow: Flow, location: str, run_id: str, generation_id: str) -> None:
    """The location's model is under its own versioned key in the generation, named by its pointer."""
    job = flow.job_name(location, run_id)
    pointer = ModelPointer.from_json(flow.read(s3_layout.current_pointer_key(generation_id, location)))
    assert (pointer.preprocessor_generation, pointer.location, pointer.version) == (
        generation_id,
        location,
        job,
    )
    assert pointer.training_job_name == job
    assert pointer.key == s3_layout.model_version_key(generation_id, location, job)
    assert pointer.key in flow.keys(s3_layout.location_models_prefix(generation_id, location))
    assert flow.read(pointer.key) == artifact_bytes(job)
    assert pointer.size == len(artifact_bytes(job))
    assert pointer.validation_metrics == flow.held_out_metrics(job)


def _assert_not_promoted(flow: Flow, location: str, generation_id: str) -> None:
    assert flow.keys(s3_layout.location_models_prefix(generation_id, location)) == []
    assert flow.keys(s3_layout.current_pointer_key(generation_id, location)) == []


def _serve(flow: Flow, generation_id: str) -> None:
    """What the endpoint stack writes once CloudFormation has switched the endpoint to a generation."""
    ref = generation.GenerationRef(generation=generation_id, updated_at=datetime.now(UTC), endpoint_name="ep")
    generation.write_ref(flow.s3, BUCKET, s3_layout.SERVING_GENERATION_KEY, ref, kms_key_arn=KEY_ARN)


def _served_objects(flow: Flow, generation_id: str) -> dict[str, bytes]:
    """Everything a served generation consists of: its preprocessor, models and pointers, byte for byte."""
    keys = [
        s3_layout.preprocessor_artifact_key(generation_id),
        *flow.keys(s3_layout.generation_models_prefix(generation_id)),
        *flow.keys(s3_layout.generation_pointers_prefix(generation_id)),
    ]
    return {key: flow.read(key) for key in keys}


EXPECTED_TRAINING: Final = {
    # algorithm: (job-name step, {channel: split feeding it}, the transforms' preprocessor mode,
    #             the held-out metric the fake reports, as the algorithm names it)
    "linear-learner": ("ll", {"train": "train", "validation": "validation"}, "labelled-transform",
                       "validation:absolute_loss"),
    "xgboost": ("xg", {"train": "train", "validation": "validation"}, "labelled-transform",
                "validation:rmse"),
    "knn": ("kn", {"train": "train", "test": "validation"}, "labelled-transform", "test:mse"),
    "randomcutforest": ("rc", {"train": "train"}, "unlabelled-transform", None),
}  # fmt: skip
"""Spelled out rather than read from ``ALGORITHMS``, so a changed description fails here too."""


def test_every_algorithm_runs_a_first_flow() -> None:
    assert sorted(EXPECTED_TRAINING) == sorted(ALGORITHMS)


@pytest.mark.parametrize("flow", list(ALGORITHMS), indirect=True)
def test_the_first_run_fits_the_first_generation_and_completes_it(flow: Flow) -> None:
    step, channels, mode, metric = EXPECTED_TRAINING[flow.app.config.training.algorithm]
    execution = flow.succeeded(RUN_ID, {"locations": LOCATIONS})

    # The execution's output is the summary Lambda's bounded result.
    succeeded = [_succeeded_entry(flow, location, RUN_ID) for location in sorted(LOCATIONS)]
    assert execution.output == {
        "run_id": RUN_ID,
        "generation": FIRST_GENERATION,
        "refit": True,
        "generation_complete": True,
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
        "generation": FIRST_GENERATION,
        "refit": True,
        "succeeded": succeeded,
        "failed": [],
        "succeeded_count": 3,
        "failed_count": 0,
        "nothing_promoted": False,
        "generation_complete": True,
    }

    # The plan: one item per location, in input order.
    plan = flow.read_json(s3_layout.run_plan_key(RUN_ID))
    assert [item["location"] for item in plan] == LOCATIONS
    items = {item["location"]: item for item in plan}

    # Raw data: the generator's bytes for the configured houses, seed and split (the template's
    # environment reached the handler).
    data = flow.app.config.data
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
    # becomes the generation's immutable artifact, the run's model serves exactly that artifact,
    # one batch transform per split covers every location, and each location's output file feeds
    # its training job.
    fit = flow.sagemaker.describe_training_job(TrainingJobName=FIRST_GENERATION)
    train_prefix = s3_layout.raw_data_split_prefix(RUN_ID, "train")
    assert [c["DataSource"]["S3DataSource"]["S3Uri"] for c in fit["InputDataConfig"]] == [
        s3_layout.s3_uri(BUCKET, train_prefix)
    ]
    assert flow.keys(train_prefix) == sorted(
        s3_layout.raw_data_key(RUN_ID, loc, "train") for loc in LOCATIONS
    )
    artifact_key = s3_layout.preprocessor_artifact_key(FIRST_GENERATION)
    assert flow.read(artifact_key) == artifact_bytes(FIRST_GENERATION)
    model = flow.sagemaker.describe_model(ModelName=naming.preprocessor_job_name(RUN_ID))
    assert model["PrimaryContainer"]["ModelDataUrl"] == s3_layout.s3_uri(BUCKET, artifact_key)
    for split in ("train", "validation"):
        transform = flow.sagemaker.describe_transform_job(
            TransformJobName=naming.transform_job_name(split, RUN_ID)
        )
        assert transform["ModelName"] == model["ModelName"]
        assert transform["Environment"] == {"MME_PREPROCESSOR_MODE": mode}
        assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == s3_layout.s3_uri(
            BUCKET, s3_layout.raw_data_split_prefix(RUN_ID, split)
        )
        assert transform["TransformOutput"]["S3OutputPath"] == s3_layout.s3_uri(
            BUCKET, s3_layout.preprocessed_split_prefix(RUN_ID, split)
        )
    # The algorithm's jobs: named with its step, fed its channels, reporting its held-out metric.
    assert flow.job_names("Training") == sorted(
        [
            FIRST_GENERATION,
            *(f"{step}-{naming.job_name_fragment(location)}-{RUN_ID}" for location in LOCATIONS),
        ]
    )
    for location, item in items.items():
        assert item["training_job_name"] == f"{step}-{naming.job_name_fragment(location)}-{RUN_ID}"
        job = flow.sagemaker.describe_training_job(TrainingJobName=item["training_job_name"])
        assert {
            c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]
        } == {channel: item[f"preprocessed_{split}_uri"] for channel, split in channels.items()}
        metrics = {m["MetricName"] for m in job.get("FinalMetricDataList", [])} - {"train:progress"}
        assert metrics == ({metric} if metric else set())
        # Each channel holds what its content type says: the label first, or the features alone.
        raw = flow.read(s3_layout.raw_data_key(RUN_ID, location, "train")).decode().splitlines()[0].split(",")
        fed = flow.read(s3_layout.preprocessed_output_key(RUN_ID, location, "train")).decode()
        first = fed.splitlines()[0].split(",")
        assert first == ([raw[-1], *raw[:-1]] if mode == "labelled-transform" else raw[:-1])
        tags = flow.sagemaker.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]
        assert {"Key": LOCATION_TAG, "Value": location} in tags
        assert {"Key": GENERATION_TAG, "Value": FIRST_GENERATION} in tags

    # Promotion: every location's model and pointer in the generation, which is now complete.
    for location in LOCATIONS:
        _assert_promoted(flow, location, RUN_ID, FIRST_GENERATION)
    complete = generation.read_complete(flow.s3, BUCKET, FIRST_GENERATION)
    assert complete is not None
    assert (complete.run_id, complete.location_count) == (RUN_ID, 3)
    newest = generation.read_ref(flow.s3, BUCKET, s3_layout.NEWEST_GENERATION_KEY)
    assert newest is not None
    assert newest.generation == FIRST_GENERATION
    # Serving it is the endpoint stack's job, after CloudFormation has switched the endpoint.
    assert flow.keys(s3_layout.SERVING_GENERATION_KEY) == []


def test_manifest_run_reads_its_locations_from_s3(flow: Flow) -> None:
    run_id = "run-20261125-manifest"
    manifest_key = f"{s3_layout.LOCATION_MANIFESTS_PREFIX}two-cities.json"
    locations = ["Chicago_IL", "NewYork_NY"]
    flow.s3.put_object(Bucket=BUCKET, Key=manifest_key, Body=json.dumps(locations).encode())

    execution = flow.succeeded(run_id, {"locations_manifest_key": manifest_key})

    # The plan Lambda gets the execution input unchanged and validates it itself.
    assert flow.fakes.lambdas.events_of("TrainingPipelinePlanRun") == [
        {"run_id": run_id, "request": {"locations_manifest_key": manifest_key}}
    ]
    assert execution.output["succeeded"] == [
        _succeeded_entry(flow, location, run_id) for location in locations
    ]
    assert (execution.output["succeeded_count"], execution.output["failed_count"]) == (2, 0)
    assert [item["location"] for item in flow.read_json(s3_layout.run_plan_key(run_id))] == locations
    generation_id = naming.preprocessor_job_name(run_id)
    for location in locations:
        _assert_promoted(flow, location, run_id, generation_id)
    _assert_not_promoted(flow, "Houston_TX", generation_id)


# --------------------------------------------------------------------------------------------------
# Partial runs and refits against a served generation


PARTIAL_RUN: Final = "run-20261126-partial"
REFIT_RUN: Final = "run-20261127-refit"
REFIT_GENERATION: Final = naming.preprocessor_job_name(REFIT_RUN)


@pytest.fixture
def served(flow: Flow) -> dict[str, bytes]:
    """The first generation trained, completed and served (as after `make deploy`); its objects."""
    flow.succeeded(RUN_ID, {"locations": LOCATIONS})
    _serve(flow, FIRST_GENERATION)
    return _served_objects(flow, FIRST_GENERATION)


def test_a_partial_run_reuses_the_served_preprocessor_and_never_refits(
    flow: Flow, served: dict[str, bytes]
) -> None:
    execution = flow.succeeded(PARTIAL_RUN, {"locations": ["Chicago_IL"]})

    assert (execution.output["generation"], execution.output["refit"]) == (FIRST_GENERATION, False)
    assert execution.output["generation_complete"] is False
    entered = execution.entered_states()
    assert "FitPreprocessor" not in entered
    assert "StorePreprocessor" not in entered
    # No preprocessor was fitted: the run's transform model serves the served generation's artifact.
    with pytest.raises(flow.sagemaker.exceptions.ClientError):
        flow.sagemaker.describe_training_job(TrainingJobName=naming.preprocessor_job_name(PARTIAL_RUN))
    model = flow.sagemaker.describe_model(ModelName=naming.preprocessor_job_name(PARTIAL_RUN))
    assert model["PrimaryContainer"]["ModelDataUrl"] == s3_layout.s3_uri(
        BUCKET, s3_layout.preprocessor_artifact_key(FIRST_GENERATION)
    )
    for split in ("train", "validation"):
        transform = flow.sagemaker.describe_transform_job(
            TransformJobName=naming.transform_job_name(split, PARTIAL_RUN)
        )
        assert transform["ModelName"] == model["ModelName"]

    # Chicago's new version joined the served generation and is live; nothing else changed.
    _assert_promoted(flow, "Chicago_IL", PARTIAL_RUN, FIRST_GENERATION)
    now = _served_objects(flow, FIRST_GENERATION)
    chicago_pointer = s3_layout.current_pointer_key(FIRST_GENERATION, "Chicago_IL")
    new_version = s3_layout.model_version_key(
        FIRST_GENERATION, "Chicago_IL", flow.job_name("Chicago_IL", PARTIAL_RUN)
    )
    assert set(now) == set(served) | {new_version}
    assert {key: value for key, value in now.items() if key not in (chicago_pointer, new_version)} == {
        key: value for key, value in served.items() if key != chicago_pointer
    }
    assert flow.keys(s3_layout.PREPROCESSOR_PREFIX) == sorted(
        [
            s3_layout.generation_record_key(FIRST_GENERATION),
            s3_layout.preprocessor_artifact_key(FIRST_GENERATION),
            s3_layout.NEWEST_GENERATION_KEY,
            s3_layout.SERVING_GENERATION_KEY,
        ]
    )


def test_a_refit_builds_a_new_generation_beside_the_served_one(flow: Flow, served: dict[str, bytes]) -> None:
    execution = flow.succeeded(REFIT_RUN, {"locations": ["Boston_MA"], "refit": True})

    assert (execution.output["generation"], execution.output["refit"]) == (REFIT_GENERATION, True)
    assert execution.output["generation_complete"] is True
    assert "FitPreprocessor" in execution.entered_states()
    # It retrained every served location as well as the requested one, into the new generation.
    plan = flow.read_json(s3_layout.run_plan_key(REFIT_RUN))
    assert [item["location"] for item in plan] == ["Boston_MA", *sorted(LOCATIONS)]
    fit = flow.sagemaker.describe_training_job(TrainingJobName=REFIT_GENERATION)
    assert fit["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == s3_layout.s3_uri(
        BUCKET, s3_layout.raw_data_split_prefix(REFIT_RUN, "train")
    )
    for location in ["Boston_MA", *LOCATIONS]:
        _assert_promoted(flow, location, REFIT_RUN, REFIT_GENERATION)
    # Complete and newest, but not served: the served generation is untouched, byte for byte, and
    # its pointers still name its own models until the endpoint is deployed with the new one.
    assert generation.read_complete(flow.s3, BUCKET, REFIT_GENERATION) is not None
    newest = generation.read_ref(flow.s3, BUCKET, s3_layout.NEWEST_GENERATION_KEY)
    assert newest is not None
    assert newest.generation == REFIT_GENERATION
    serving = generation.read_ref(flow.s3, BUCKET, s3_layout.SERVING_GENERATION_KEY)
    assert serving is not None
    assert serving.generation == FIRST_GENERATION
    assert _served_objects(flow, FIRST_GENERATION) == served


def test_a_refit_with_a_failed_location_completes_nothing_and_the_served_generation_stays(
    flow: Flow, served: dict[str, bytes]
) -> None:
    flow.fakes.sagemaker.failing_locations["Houston_TX"] = FAILURE_REASON

    execution = flow.run(REFIT_RUN, {"locations": [], "refit": True})

    assert (execution.status, execution.error) == ("FAILED", "IncompleteGeneration"), execution.explain()
    assert execution.cause is not None
    assert "the generation that is served stays served" in execution.cause
    summary = flow.read_json(s3_layout.run_summary_key(REFIT_RUN))
    assert (summary["succeeded_count"], summary["failed_count"], summary["generation_complete"]) == (
        2,
        1,
        False,
    )
    assert generation.read_complete(flow.s3, BUCKET, REFIT_GENERATION) is None
    newest = generation.read_ref(flow.s3, BUCKET, s3_layout.NEWEST_GENERATION_KEY)
    assert newest is not None
    assert newest.generation == FIRST_GENERATION
    assert _served_objects(flow, FIRST_GENERATION) == served
    # The others' models are kept in the incomplete generation for inspection; nothing serves them.
    _assert_promoted(flow, "Chicago_IL", REFIT_RUN, REFIT_GENERATION)
    _assert_not_promoted(flow, "Houston_TX", REFIT_GENERATION)


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
    flow: Flow, served: dict[str, bytes], failure: str, failed_step: str, error: str, reason: str
) -> None:
    if failure == "training":
        flow.fakes.sagemaker.failing_locations["Houston_TX"] = FAILURE_REASON
    else:
        flow.fakes.sagemaker.locations_without_artifact.add("Houston_TX")

    execution = flow.succeeded(PARTIAL_RUN, {"locations": LOCATIONS})

    others = ["Chicago_IL", "NewYork_NY"]
    assert execution.output["succeeded"] == [
        _succeeded_entry(flow, location, PARTIAL_RUN) for location in others
    ]
    assert (execution.output["succeeded_count"], execution.output["failed_count"]) == (2, 1)
    (returned,) = execution.output["failed"]
    assert (returned["location"], returned["failed_step"], returned["error"]) == (
        "Houston_TX",
        failed_step,
        error,
    )

    summary = flow.read_json(s3_layout.run_summary_key(PARTIAL_RUN))
    assert [entry["location"] for entry in summary["succeeded"]] == others
    (failed,) = summary["failed"]
    assert (failed["location"], failed["failed_step"], failed["error"]) == ("Houston_TX", failed_step, error)
    assert reason in failed["cause"]
    if failure == "artifact":  # a Lambda error's cause is the function's error payload
        assert json.loads(failed["cause"])["errorType"] == "ArtifactMissing"

    for location in others:
        _assert_promoted(flow, location, PARTIAL_RUN, FIRST_GENERATION)
    # Houston keeps serving its previous model, and the shared preprocessor is the same bytes.
    houston = s3_layout.current_pointer_key(FIRST_GENERATION, "Houston_TX")
    assert flow.read(houston) == served[houston]
    artifact = s3_layout.preprocessor_artifact_key(FIRST_GENERATION)
    assert flow.read(artifact) == served[artifact]


def test_a_run_that_promotes_nothing_fails_and_changes_nothing_served(
    flow: Flow, served: dict[str, bytes]
) -> None:
    for location in LOCATIONS:
        flow.fakes.sagemaker.failing_locations[location] = FAILURE_REASON

    execution = flow.run(PARTIAL_RUN, {"locations": LOCATIONS})

    assert (execution.status, execution.error) == ("FAILED", "NothingPromoted"), execution.explain()
    assert execution.cause is not None
    assert "No location of this run was promoted" in execution.cause
    assert "summary.json" in execution.cause
    # Nothing that the endpoint reads changed: the served generation is the same, byte for byte.
    assert _served_objects(flow, FIRST_GENERATION) == served
    # The summary says so, and why each location failed.
    summary = flow.read_json(s3_layout.run_summary_key(PARTIAL_RUN))
    assert (summary["succeeded_count"], summary["failed_count"], summary["nothing_promoted"]) == (0, 3, True)
    assert sorted(entry["location"] for entry in summary["failed"]) == sorted(LOCATIONS)
    assert all(FAILURE_REASON in entry["cause"] for entry in summary["failed"]), summary["failed"]


def test_a_first_run_that_promotes_nothing_completes_no_generation(flow: Flow) -> None:
    for location in LOCATIONS:
        flow.fakes.sagemaker.failing_locations[location] = FAILURE_REASON

    execution = flow.run(RUN_ID, {"locations": LOCATIONS})

    assert (execution.status, execution.error) == ("FAILED", "NothingPromoted"), execution.explain()
    assert generation.read_complete(flow.s3, BUCKET, FIRST_GENERATION) is None
    assert flow.keys(s3_layout.NEWEST_GENERATION_KEY) == []
    for location in LOCATIONS:
        _assert_not_promoted(flow, location, FIRST_GENERATION)


# --------------------------------------------------------------------------------------------------
# Rejected input


@pytest.mark.parametrize(
    ("execution_input", "message"),
    [
        pytest.param({}, "must have exactly one of locations and locations_manifest_key", id="neither"),
        pytest.param(
            {"locations": ["NewYork_NY"], "locations_manifest_key": "location-manifests/all.json"},
            "must have exactly one of locations and locations_manifest_key",
            id="both",
        ),
        pytest.param(
            {"locations": ["NewYork_NY"], "refit": "yes"}, "refit must be true or false", id="refit"
        ),
        pytest.param({"locations": ["NewYork_NY", "Not a location!"]}, "locations[1]", id="bad-location"),
    ],
)
def test_invalid_input_fails_the_run_with_the_plans_error_and_writes_nothing(
    flow: Flow, execution_input: dict[str, Any], message: str
) -> None:
    execution = flow.run("run-20261125-invalid", execution_input)

    assert (execution.status, execution.error) == ("FAILED", "InvalidRunRequest"), execution.explain()
    assert execution.entered_states() == ["PlanRun", "RunFailed"]
    assert execution.cause is not None
    payload = json.loads(execution.cause)
    assert payload["errorType"] == "InvalidRunRequest"
    assert message in payload["errorMessage"]
    assert flow.keys() == []  # a rejected request writes nothing


def test_generation_results_stay_apart_from_the_training_results(flow: Flow) -> None:
    """The generation Map writes where the layout (and the state machine's role) say it does."""
    flow.succeeded(RUN_ID, {"locations": ["Chicago_IL"]})

    generation_results = flow.keys(s3_layout.run_generation_results_prefix(RUN_ID))
    assert [key.rsplit("/", 1)[-1] for key in generation_results] == ["SUCCEEDED_0.json", "manifest.json"]
    training = flow.keys(s3_layout.run_results_prefix(RUN_ID))
    assert [key.rsplit("/", 1)[-1] for key in training] == ["SUCCEEDED_0.json", "manifest.json"]


# --------------------------------------------------------------------------------------------------
# Jobs per run: N + O(1)


@pytest.mark.parametrize("count", [3, 50])
def test_a_run_makes_n_plus_a_constant_number_of_jobs(flow: Flow, count: int) -> None:
    locations = [f"City{index:02d}_ST" for index in range(count)]

    # 50 locations run 50 child executions in moto's threads: the bound only catches a wiring
    # error that sends a state into a long retry, so it is generous for a loaded machine.
    execution = flow.succeeded(RUN_ID, {"locations": locations}, timeout=300 + 10 * count)

    assert execution.output["succeeded_count"] == count
    # A first run: one preprocessor fit and one training job per location; two transforms in all.
    assert flow.job_names("Training") == sorted(
        [FIRST_GENERATION, *(flow.job_name(location, RUN_ID) for location in locations)]
    )
    assert flow.job_names("Transform") == [
        naming.transform_job_name(s, RUN_ID) for s in ("train", "validation")
    ]
    # Every location's output file came from the one transform of its split.
    for split in ("train", "validation"):
        assert len(flow.keys(s3_layout.preprocessed_split_prefix(RUN_ID, split))) == count


def test_a_location_whose_rows_are_rejected_fails_alone_with_the_reason(
    flow: Flow, served: dict[str, bytes]
) -> None:
    reason = "Row 3, column BEDROOMS: 'many' is not a number."
    flow.fakes.sagemaker.rejected_locations["Houston_TX"] = reason

    execution = flow.succeeded(PARTIAL_RUN, {"locations": LOCATIONS})

    assert (execution.output["succeeded_count"], execution.output["failed_count"]) == (2, 1)
    (failed,) = execution.output["failed"]
    assert (failed["location"], failed["failed_step"], failed["error"]) == (
        "Houston_TX",
        "transform",
        "LocationRowsRejected",
    )
    assert reason in failed["cause"]
    # Houston's training job never started; the others trained and were promoted.
    with pytest.raises(flow.sagemaker.exceptions.ClientError):
        flow.sagemaker.describe_training_job(TrainingJobName=flow.job_name("Houston_TX", PARTIAL_RUN))
    for location in ("Chicago_IL", "NewYork_NY"):
        _assert_promoted(flow, location, PARTIAL_RUN, FIRST_GENERATION)
    houston = s3_layout.current_pointer_key(FIRST_GENERATION, "Houston_TX")
    assert flow.read(houston) == served[houston]
