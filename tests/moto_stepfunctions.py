"""Run the training state machine's real definition in moto's Step Functions executor.

moto 5.2 interprets Amazon States Language for real (JSONPath, Parameters, ResultSelector,
ResultPath, Choice, Parallel, Distributed Map with an S3 ItemReader, Retry, Catch, Fail). What it
lacks for this definition is supplied here by test-only fakes of *AWS*, never by changing the
definition; each item names the moto 5.2.5 code that shows the gap:

1. **Lambda runs no code.** Without Docker, ``LambdaSimpleBackend.invoke`` returns the request
   payload (or a result queued through moto's API) and never reports a function error.
   :class:`LambdaDispatcher` runs the invoked function's real handler module (the template's
   ``Handler``) with that function's environment variables from the template, and reports an
   uncaught exception as Lambda does: the ``X-Amz-Function-Error`` header and a payload
   ``{"errorType": <exception class name>, "errorMessage": ..., "stackTrace": ...}``, whose
   ``errorType`` Step Functions makes the error name a Retry or Catch matches.
2. **No SageMaker ``.sync``.** ``state_task_service_factory`` lists ``sagemaker`` as unsupported:
   ``StateTaskServiceUnsupported`` forwards a request-response call (with
   ``parameter_validation=False``) and refuses ``.sync`` ("Unsupported sync callback procedure").
   :class:`SageMakerService` sends the task's parameters to moto's SageMaker through a validating
   client and, for ``.sync``, returns the Describe* output, or fails the task with
   ``States.TaskFailed`` (cause: that output as JSON) when the job did not complete, as Step
   Functions does.
3. **SageMaker jobs write nothing.** moto completes every job when it is created
   (``FakeTrainingJob``: ``Completed``, ``ModelArtifacts`` at ``<S3OutputPath>/<job>/output/
   model.tar.gz``, ``FinalMetricDataList`` only ``train:progress``; ``FakeTransformJob``:
   ``Completed``) but runs no container, so no object appears. :class:`SageMakerFake` writes what the
   containers would: a training job's ``model.tar.gz`` (:func:`artifact_bytes`) and its algorithm's
   held-out metric (:data:`HELD_OUT_METRICS`); a batch transform's ``<input name>.out`` per input
   file, in the layout its ``MME_PREPROCESSOR_MODE`` asks the preprocessor for. Tests can make a
   location's training job fail, leave out its artifact, or have its rows rejected.
4. **ResultWriter writes no result files and misreads its Parameters.**
   ``ResourceEvalS3._handle_put_object`` drops the Map's results ("TODO: results") and writes a
   manifest whose ``ResultFiles`` are empty; ``ResultWriter._eval_body`` evaluates ``Parameters``
   against those results instead of the state input, so ``"Prefix.$"`` fails with States.Runtime.
   The patched writer evaluates them against the state input and adds ``SUCCEEDED_0.json`` to the
   manifest: one record per child with what ``summarize_run`` reads, ``Status``, ``Input`` and
   ``Output`` as JSON strings. ``Output`` is the result moto hands the writer; ``Input`` (the
   ItemSelector's output) is captured in ``DistributedItemProcessorWorker._eval_input``, as moto's
   ``MapRunRecord`` keeps only counters. A child that did not succeed stops the writer: moto's worker
   swallows it (its result is None and the Map Run succeeds; ``ToleratedFailure*`` is not
   implemented) where AWS fails the Map, which tolerates no failure in this definition.

Known moto limitation left as it is: a Fail state whose ``ErrorPath`` yields a ``States.*`` name
(e.g. ``RunFailed`` after a whole-run task ended ``States.TaskFailed``) ends the execution with
``States.Runtime`` in moto ("Custom Error Names MUST NOT begin with the prefix 'States.'").

:func:`install` applies all of it with a ``pytest.MonkeyPatch`` (undone after the test).
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import sys
import tarfile
import threading
import traceback
import types
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import boto3  # type: ignore[import-untyped]
import pytest
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.sagemaker.models import sagemaker_backends
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
    distributed_item_processor_worker,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer import result_writer_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_callback,
    state_task_service_factory,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
    ResourceCondition,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.parser.utils import camel_to_snake_case

from mme_shared.transform_output import (
    LABELLED_TRANSFORM_MODE,
    PREPROCESSOR_MODE_ENV,
    TRANSFORM_ERROR_MARKER,
    UNLABELLED_TRANSFORM_MODE,
)
from tests.cfn_render import ACCOUNT, REGION, TemplateRenderer

HANDLERS_DIR: Final = Path(__file__).resolve().parent.parent / "lambda"

LOCATION_TAG: Final = "mme:location"
"""The tag the definition puts on every per-location training job."""
HELD_OUT_METRICS: Final = {
    "linear-learner": ("validation", "validation:absolute_loss"),  # loss=absolute_loss
    "sagemaker-xgboost": ("validation", "validation:rmse"),  # eval_metric=rmse
    "knn": ("test", "test:mse"),  # a regressor's metric, on its only held-out channel
}
"""By the training image's repository: the held-out channel a built-in algorithm measures on and the
final metric it reports for it. Random Cut Forest (trained on ``train`` alone) and the scikit-learn
preprocessor report none."""


# --------------------------------------------------------------------------------------------------
# 1. Lambda: the real handler of each function in the template


@dataclass(frozen=True)
class _Function:
    logical_id: str
    handler: Callable[[Any, Any], Any]


class LambdaDispatcher:
    """Stands in for ``LambdaSimpleBackend.invoke``: runs the invoked function's real handler.

    Each handler module is imported fresh, under a unique module name, so nothing it caches (its
    boto3 clients) outlives the test. Its ``os.environ`` is exactly the function's environment
    variables, in a stand-in ``os`` module of its own: the process environment is never changed.
    Setting the variables in ``os.environ`` per invocation raced with moto's worker threads, which
    read the process environment (for a new boto3 client) while another invocation changed it, and a
    location's task ended ``States.Runtime`` with the cause ``'KMS_KEY_ARN'`` under CPU load.
    Invocations still run one at a time.
    """

    def __init__(
        self, template: Mapping[str, Any], exports: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        renderer = TemplateRenderer(template, exports)
        self._monkeypatch = monkeypatch
        self._lock = threading.Lock()
        self._functions: dict[str, _Function] = {}  # by ARN, as the definition's FunctionName has it
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::Lambda::Function":
                properties = resource["Properties"]
                variables = renderer.render(properties.get("Environment", {}).get("Variables", {}))
                arn = str(renderer.render({"Fn::GetAtt": [logical_id, "Arn"]}))
                environment = {str(name): str(value) for name, value in variables.items()}
                handler = self._import(str(properties["Handler"]))
                self._with_environment(handler, environment)
                self._functions[arn] = _Function(logical_id, handler)
        self.events: list[tuple[str, Any]] = []
        """Every invocation's (logical ID, event), in order."""

    def _import(self, handler: str) -> Callable[[Any, Any], Any]:
        module_name, function = handler.rsplit(".", 1)
        source = HANDLERS_DIR / module_name / f"{module_name}.py"
        unique = f"_flow_{module_name}_{uuid.uuid4().hex}"
        spec = importlib.util.spec_from_file_location(unique, source)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        # Registered while the test runs: dataclasses and typing look modules up by name.
        self._monkeypatch.setitem(sys.modules, unique, module)
        spec.loader.exec_module(module)
        entry: Callable[[Any, Any], Any] = getattr(module, function)
        return entry

    @staticmethod
    def _with_environment(entry: Callable[[Any, Any], Any], environment: Mapping[str, str]) -> None:
        """Give the handler's module an ``os`` whose ``environ`` is ``environment`` (a copy)."""
        stand_in = types.ModuleType("os")
        stand_in.__dict__.update(os.__dict__)
        setattr(stand_in, "environ", dict(environment))  # noqa: B010 (mypy cannot know the attribute)
        entry.__globals__["os"] = stand_in

    def invoke(self, function_arn: str, body: bytes, response_headers: dict[str, str]) -> bytes:
        function = self._functions[function_arn]
        self.events.append((function.logical_id, json.loads(body)))
        with self._lock:
            try:
                result = function.handler(json.loads(body), None)
            except Exception as error:  # Lambda reports every uncaught exception the same way
                response_headers["x-amz-function-error"] = "Unhandled"
                payload = {
                    "errorMessage": str(error),
                    "errorType": type(error).__name__,
                    "stackTrace": traceback.format_tb(error.__traceback__),
                }
                return json.dumps(payload).encode()
        return json.dumps(result).encode()

    def events_of(self, logical_id_prefix: str) -> list[Any]:
        """The events the functions whose logical ID starts with the prefix received, in order."""
        return [event for logical_id, event in self.events if logical_id.startswith(logical_id_prefix)]


# --------------------------------------------------------------------------------------------------
# 2. SageMaker: request-response and .sync


class SageMakerService(state_task_service_callback.StateTaskServiceCallback):
    """``arn:aws:states:::sagemaker:<action>[.sync]``, bound to a :class:`SageMakerFake`."""

    def __init__(self, fake: SageMakerFake) -> None:
        # WaitForTaskToken too, as moto's Batch and ECS services: its .sync machinery interrupts that
        # pattern's callback endpoint when the task ends.
        patterns = (ResourceCondition.WaitForTaskToken, ResourceCondition.Sync)
        super().__init__(supported_integration_patterns={ResourceCondition(p) for p in patterns})
        self._fake = fake

    def _validate_service_integration_is_supported(self) -> None:
        """Every SageMaker action goes to moto's SageMaker (which rejects an unknown one)."""

    def _eval_service_task(
        self,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> None:
        action = self._get_boto_service_action()  # e.g. create_training_job
        response = getattr(self._fake.sagemaker, action)(**normalised_parameters)
        response.pop("ResponseMetadata")
        if action == "create_training_job":
            self._fake.train(normalised_parameters)
        elif action == "create_transform_job":
            self._fake.transform(normalised_parameters)
        env.stack.append(response)

    def _build_sync_resolver(
        self,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> Callable[[], Any]:
        env.stack.pop()  # the Create* output: .sync returns the Describe* output instead
        job = self.resource.api_action.removeprefix("create")  # TrainingJob, TransformJob
        describe = getattr(self._fake.sagemaker, f"describe_{camel_to_snake_case(job)}")
        name = {f"{job}Name": normalised_parameters[f"{job}Name"]}

        def resolve() -> Any:
            output = describe(**name)
            output.pop("ResponseMetadata")
            if output[f"{job}Status"] == "Completed":  # moto's jobs end when created: none in progress
                return output
            details = TaskFailedEventDetails(
                error=StatesErrorNameType.StatesTaskFailed.to_name(),
                cause=to_json_str(output),
                resource=self._get_sfn_resource(),
                resourceType=self._get_sfn_resource_type(),
            )
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=cast(EventDetails, {"taskFailedEventDetails": details}),
                )
            )

        return resolve


# --------------------------------------------------------------------------------------------------
# 3. SageMaker jobs: what their containers would write


def _s3_location(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _encryption(output_config: Mapping[str, Any]) -> dict[str, str]:
    """What SageMaker passes to S3 for an output config with a KMS key."""
    key = output_config.get("KmsKeyId")
    return {} if key is None else {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key}


def validation_loss(job_name: str) -> float:
    """The fake's (deterministic) held-out metric of a training job."""
    return float(zlib.crc32(job_name.encode()) % 100_000) / 10


def artifact_bytes(job_name: str) -> bytes:
    """The fake's ``model.tar.gz`` of a training job: a reproducible tarball naming the job."""
    content = f"model of training job {job_name}\n".encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        member = tarfile.TarInfo("model")
        member.size = len(content)
        tar.addfile(member, io.BytesIO(content))
    return gzip.compress(archive.getvalue(), mtime=0)


def held_out_metric(training_image: str) -> tuple[str, str] | None:
    """``(channel, metric name)`` a training image reports its held-out metric for, if any."""
    repository = training_image.split("/", 1)[-1].split(":", 1)[0]
    return HELD_OUT_METRICS.get(repository)


@dataclass
class SageMakerFake:
    """What SageMaker's containers do with a job that moto has created (and completed).

    ``failing_locations`` maps a location to a FailureReason: its training job ends ``Failed``.
    ``locations_without_artifact``: their training jobs complete but write no ``model.tar.gz``.
    ``rejected_locations`` maps a location to the reason the preprocessor rejects its rows: the
    transform writes the preprocessor's marker line for that file instead of its rows.
    """

    sagemaker: Any
    s3: Any
    failing_locations: dict[str, str] = field(default_factory=dict)
    locations_without_artifact: set[str] = field(default_factory=set)
    rejected_locations: dict[str, str] = field(default_factory=dict)

    def transform(self, request: Mapping[str, Any]) -> None:
        """What batch transform does with SplitType Line: one ``<input name>.out`` per input object
        under the input prefix, here the rows with the label moved first (``labelled-transform``) or
        left out (``unlabelled-transform``) (the preprocessor's own arithmetic is tested with the
        real container toolkit, tests/contract), or the preprocessor's marker line for a location
        whose rows it rejects."""
        mode = request.get("Environment", {}).get(PREPROCESSOR_MODE_ENV)
        if mode not in (LABELLED_TRANSFORM_MODE, UNLABELLED_TRANSFORM_MODE):
            # Only the two transform modes read raw training rows (unset, the preprocessor serves).
            raise RuntimeError(
                f"transform job {request['TransformJobName']} sets {PREPROCESSOR_MODE_ENV}={mode!r}"
            )
        bucket, prefix = _s3_location(request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"])
        output_bucket, output_prefix = _s3_location(request["TransformOutput"]["S3OutputPath"])
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                location = name.removesuffix(".csv")
                if location in self.rejected_locations:
                    body = f"{TRANSFORM_ERROR_MARKER} {self.rejected_locations[location]}\n"
                else:
                    text = self.s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
                    cells = [row.split(",") for row in text.splitlines()]
                    body = "".join(
                        ",".join([row[-1], *row[:-1]] if mode == LABELLED_TRANSFORM_MODE else row[:-1]) + "\n"
                        for row in cells
                    )
                self.s3.put_object(
                    Bucket=output_bucket,
                    Key=f"{output_prefix.rstrip('/')}/{name}.out",
                    Body=body.encode(),
                    **_encryption(request["TransformOutput"]),
                )

    def train(self, request: Mapping[str, Any]) -> None:
        """Fail the created job, or write its artifact and report its held-out metric."""
        name = request["TrainingJobName"]
        job: Any = sagemaker_backends[ACCOUNT][REGION].training_jobs[name]
        location = {tag["Key"]: tag["Value"] for tag in request.get("Tags", [])}.get(LOCATION_TAG)
        if location in self.failing_locations:
            job.training_job_status = "Failed"
            job.failure_reason = self.failing_locations[location]
            return
        if location not in self.locations_without_artifact:
            bucket, key = _s3_location(job.model_artifacts["S3ModelArtifacts"])
            self.s3.put_object(
                Bucket=bucket, Key=key, Body=artifact_bytes(name), **_encryption(request["OutputDataConfig"])
            )
        channels = {channel["ChannelName"] for channel in request["InputDataConfig"]}
        held_out = held_out_metric(request["AlgorithmSpecification"]["TrainingImage"])
        if held_out is not None and held_out[0] in channels:
            job.final_metric_data_list = [
                *job.final_metric_data_list,
                {"MetricName": held_out[1], "Value": validation_loss(name), "Timestamp": job.creation_time},
            ]


# --------------------------------------------------------------------------------------------------
# 4. ResultWriter: Parameters against the state input, and the result files


def _install_result_writer(monkeypatch: pytest.MonkeyPatch, s3: Any) -> None:
    child_inputs: dict[tuple[str, int], str] = {}  # (Map Run ARN, child index) -> its Input
    worker_class = distributed_item_processor_worker.DistributedItemProcessorWorker
    original_eval_input = worker_class._eval_input

    def eval_input(worker: Any, env_frame: Any) -> None:
        original_eval_input(worker, env_frame)
        index = env_frame.states.context_object.context_object_data["Map"]["Item"]["Index"]
        child_inputs[worker._map_run_record.map_run_arn, index] = json.dumps(env_frame.states.get_input())

    def eval_body(writer: Any, env: Any) -> None:
        results = env.stack.pop()  # below them, the Map state's input
        writer.parargs.eval(env=env)
        env.stack.insert(-1, results)  # moto's S3 writer pops the Parameters, then the results
        writer.resource_eval.eval_resource(env=env)
        written = env.stack[-1]
        map_run_arn = written["MapRunArn"]
        if None in results:
            raise RuntimeError(f"a child execution of {map_run_arn} failed: AWS would fail the Map")
        records = [
            {"Status": "SUCCEEDED", "Input": child_inputs[map_run_arn, index], "Output": json.dumps(result)}
            for index, result in enumerate(results)
        ]
        bucket, manifest_key = written["ResultWriterDetails"]["Bucket"], written["ResultWriterDetails"]["Key"]
        key = f"{manifest_key.rsplit('/', 1)[0]}/SUCCEEDED_0.json"
        body = json.dumps(records).encode()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
        manifest["ResultFiles"]["SUCCEEDED"] = [{"Key": key, "Size": len(body)}]
        s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest, indent=2).encode())

    monkeypatch.setattr(worker_class, "_eval_input", eval_input)
    monkeypatch.setattr(result_writer_decl.ResultWriter, "_eval_body", eval_body)


# --------------------------------------------------------------------------------------------------
# All together


@dataclass(frozen=True)
class InstalledFakes:
    lambdas: LambdaDispatcher
    sagemaker: SageMakerFake


def install(
    monkeypatch: pytest.MonkeyPatch, template: Mapping[str, Any], exports: Mapping[str, str]
) -> InstalledFakes:
    """Patch moto for this test (inside an active ``mock_aws``); every patch is undone afterwards."""
    lambdas = LambdaDispatcher(template, exports, monkeypatch)

    def invoke(
        backend: Any, function_name: str, qualifier: Any, body: bytes, headers: Any, response_headers: Any
    ) -> bytes:
        return lambdas.invoke(function_name, body, response_headers)

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)

    # Clients made here, not in moto's worker threads: boto3's default session is not thread-safe.
    s3 = boto3.client("s3", region_name=REGION)
    fake = SageMakerFake(sagemaker=boto3.client("sagemaker", region_name=REGION), s3=s3)
    original_service_for = state_task_service_factory.state_task_service_for

    def state_task_service_for(service_name: str) -> Any:
        return SageMakerService(fake) if service_name == "sagemaker" else original_service_for(service_name)

    monkeypatch.setattr(state_task_factory, "state_task_service_for", state_task_service_for)
    _install_result_writer(monkeypatch, s3)
    return InstalledFakes(lambdas=lambdas, sagemaker=fake)
