"""Run the training state machine's real definition in moto's Step Functions executor.

moto 5.2 interprets Amazon States Language for real (JSONPath, Parameters, ResultSelector,
ResultPath, Choice, Parallel, Distributed Map with an S3 ItemReader, Retry, Catch, Fail), but some
of the AWS behaviours this definition relies on are missing or wrong there. Each is supplied here
by a test-only fake of *AWS*, never by changing the definition:

1. **Lambda** without Docker only echoes its payload. :class:`LambdaDispatcher` replaces the
   invocation with the real handler module of the invoked function (found through its ``Handler``
   property in the template), run with that function's environment variables from the template. An
   uncaught exception comes back as Lambda reports it: the ``X-Amz-Function-Error`` header and a
   payload ``{"errorType": <exception class name>, "errorMessage": ..., ...}``, from which Step
   Functions takes the error name a Retry or Catch matches.
2. **SageMaker** is an unsupported service in moto's executor (request-response only, no
   ``.sync``). :class:`SageMakerService` calls moto's SageMaker with the task's parameters (through a
   validating boto3 client) and, for ``.sync``, returns the Describe* output once the job is
   terminal and fails the task with ``States.TaskFailed`` (cause: that output as JSON) when the job
   ends Failed or Stopped, as Step Functions does. moto runs no containers, so :class:`SageMakerFake`
   also does what the service would: a batch transform writes one output per input file, in the
   layout its ``MME_PREPROCESSOR_MODE`` asks the preprocessor for (label first, or features only); a
   completed training job writes a small ``model.tar.gz`` at its ``ModelArtifacts.S3ModelArtifacts``
   and, when it has its algorithm's held-out channel, reports that algorithm's held-out metric
   (:data:`HELD_OUT_METRICS`). Tests can make a location's job fail or leave out its artifact.
3. **ResultWriter** in moto writes a manifest whose ``ResultFiles`` are empty. The patched writer
   also writes ``SUCCEEDED_0.json`` (and ``FAILED_0.json`` when a child failed) in AWS's documented
   format, one record per child execution: ``ExecutionArn``, ``Name``, ``Input`` and ``Output`` as
   JSON strings, ``Status``, dates, and ``Error``/``Cause`` for failures. The records come from what
   really ran: :class:`ChildExecutionRecorder` captures each child's input (the ItemSelector's output)
   and end state inside moto's Distributed Map worker, and they are checked against the Map results
   moto hands to the writer. moto also evaluates the ResultWriter's ``Parameters`` against the
   Map's results instead of the state input, so any JSONPath there (``"Prefix.$"``) fails; the
   patched writer evaluates them against the state input, as AWS does.

Known moto limitation left as it is: a Fail state whose ``ErrorPath`` yields a ``States.*`` name
(e.g. ``RunFailed`` after a whole-run task ended ``States.TaskFailed``) ends the execution with
``States.Runtime`` in moto ("Custom Error Names MUST NOT begin with the prefix 'States.'").

:func:`install` applies all of it with a ``pytest.MonkeyPatch`` (undone after the test).
"""

from __future__ import annotations

import copy
import datetime
import functools
import gzip
import importlib.util
import io
import json
import sys
import tarfile
import threading
import traceback
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.exceptions import ClientError, ParamValidationError  # type: ignore[import-untyped]
from moto.awslambda.exceptions import UnknownFunctionException
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.sagemaker.models import sagemaker_backends
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
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
from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
    resource_eval_s3,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_callback,
    state_task_service_factory,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
    ResourceCondition,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.eval.program_state import (
    ProgramEnded,
    ProgramError,
    ProgramStopped,
    ProgramTimedOut,
)
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

from mme_shared.transform_output import (
    LABELLED_TRANSFORM_MODE,
    PREPROCESSOR_MODE_ENV,
    TRANSFORM_ERROR_MARKER,
    UNLABELLED_TRANSFORM_MODE,
)
from tests.cfn_render import ACCOUNT, REGION, TemplateRenderer

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
HANDLERS_DIR: Final = REPO_ROOT / "lambda"

LOCATION_TAG: Final = "mme:location"
"""The tag the definition puts on every per-location training job."""
GENERATION_TAG: Final = "mme:preprocessor-generation"
"""The tag naming the preprocessor generation a per-location job trained on."""
VALIDATION_METRIC: Final = "validation:absolute_loss"
"""What linear learner reports for a validation channel with ``loss=absolute_loss``."""
HELD_OUT_METRICS: Final = {
    "linear-learner": ("validation", VALIDATION_METRIC),
    "sagemaker-xgboost": ("validation", "validation:rmse"),  # eval_metric=rmse
    "knn": ("test", "test:mse"),  # a regressor's metric, on its only held-out channel
}
"""By the training image's repository: the held-out channel a built-in algorithm measures on and the
final metric it reports for it. Random Cut Forest (trained on ``train`` alone) and the scikit-learn
preprocessor report none."""


# --------------------------------------------------------------------------------------------------
# 1. Lambda: the real handler of each function in the template


@dataclass(frozen=True)
class FunctionSpec:
    """One ``AWS::Lambda::Function`` of the template, as the dispatcher needs it."""

    logical_id: str
    function_name: str
    """The name in the rendered ARN that the definition's ``FunctionName`` holds."""
    handler: str
    """The template's ``Handler``, ``<module>.<function>``."""
    source: Path
    environment: dict[str, str]


def function_specs(template: Mapping[str, Any], exports: Mapping[str, str]) -> dict[str, FunctionSpec]:
    """Every Lambda function of the template by function name, with its rendered environment."""
    renderer = TemplateRenderer(template, exports)
    specs = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        properties = resource["Properties"]
        module = str(properties["Handler"]).rsplit(".", 1)[0]
        arn = str(renderer.render({"Fn::GetAtt": [logical_id, "Arn"]}))
        variables = renderer.render(properties.get("Environment", {}).get("Variables", {}))
        spec = FunctionSpec(
            logical_id=logical_id,
            function_name=arn.split(":")[6],
            handler=str(properties["Handler"]),
            source=HANDLERS_DIR / module / f"{module}.py",
            environment={str(name): str(value) for name, value in variables.items()},
        )
        if not spec.source.is_file():
            raise FileNotFoundError(f"{logical_id}'s handler {spec.handler} has no source at {spec.source}")
        specs[spec.function_name] = spec
    return specs


@dataclass(frozen=True)
class LambdaContext:
    """The parts of the Lambda context object a handler may read."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str
    memory_limit_in_mb: int = 128

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass(frozen=True)
class Invocation:
    """One dispatched invocation: which function, its event, and its result or error type."""

    logical_id: str
    event: Any
    result: Any
    error_type: str | None


class LambdaDispatcher:
    """Stands in for ``LambdaSimpleBackend.invoke``: runs the invoked function's real handler.

    Each handler module is imported fresh, under a unique module name, when the dispatcher is
    created (inside the mock), so the boto3 clients it caches talk to moto. Invocations run one at
    a time with exactly the function's environment variables set, so concurrent Map children of
    different functions could never see each other's settings.
    """

    def __init__(self, specs: Mapping[str, FunctionSpec], monkeypatch: pytest.MonkeyPatch) -> None:
        self._specs = dict(specs)
        self._monkeypatch = monkeypatch
        self._lock = threading.Lock()
        self._variables = {name for spec in specs.values() for name in spec.environment}
        self._handlers = {name: self._load(spec) for name, spec in self._specs.items()}
        self.invocations: list[Invocation] = []

    def _load(self, spec: FunctionSpec) -> Callable[[Any, Any], Any]:
        module_name, function = spec.handler.rsplit(".", 1)
        unique = f"_flow_{module_name}_{uuid.uuid4().hex}"
        module_spec = importlib.util.spec_from_file_location(unique, spec.source)
        assert module_spec is not None
        assert module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        # Registered while the test runs: dataclasses and typing look modules up by name.
        self._monkeypatch.setitem(sys.modules, unique, module)
        module_spec.loader.exec_module(module)
        handler: Callable[[Any, Any], Any] = getattr(module, function)
        return handler

    def _function_name(self, name_or_arn: str) -> str:
        name = name_or_arn.split(":")[6] if name_or_arn.startswith("arn:") else name_or_arn
        if name not in self._specs:
            raise UnknownFunctionException(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
        return name

    def invoke(
        self,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        name = self._function_name(function_name)
        spec = self._specs[name]
        text = body.decode("utf-8") if isinstance(body, bytes) else (body or "{}")
        event = json.loads(text)
        context = LambdaContext(
            function_name=name,
            invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
            aws_request_id=str(uuid.uuid4()),
        )
        with self._lock:
            for variable in self._variables - spec.environment.keys():
                self._monkeypatch.delenv(variable, raising=False)
            for variable, value in spec.environment.items():
                self._monkeypatch.setenv(variable, value)
            try:
                result = self._handlers[name](copy.deepcopy(event), context)
            except Exception as error:  # Lambda reports every uncaught exception the same way
                response_headers["x-amz-function-error"] = "Unhandled"
                self.invocations.append(Invocation(spec.logical_id, event, None, type(error).__name__))
                return json.dumps(
                    {
                        "errorMessage": str(error),
                        "errorType": type(error).__name__,
                        "requestId": context.aws_request_id,
                        "stackTrace": traceback.format_list(traceback.extract_tb(error.__traceback__)),
                    }
                ).encode("utf-8")
            self.invocations.append(Invocation(spec.logical_id, event, result, None))
        return json.dumps(result).encode("utf-8")

    def events_of(self, logical_id_prefix: str) -> list[Any]:
        """The events the functions whose logical ID starts with the prefix received, in order."""
        return [i.event for i in self.invocations if i.logical_id.startswith(logical_id_prefix)]


# --------------------------------------------------------------------------------------------------
# 2. SageMaker: request-response and .sync, plus what the service would write


def _s3_location(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def validation_loss(job_name: str) -> float:
    """The fake's (deterministic) validation metric of a training job."""
    return float(zlib.crc32(job_name.encode("utf-8")) % 100_000) / 10


def artifact_bytes(job_name: str) -> bytes:
    """The fake's ``model.tar.gz`` of a training job: a reproducible tarball naming the job."""
    content = f"model of training job {job_name}\n".encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        member = tarfile.TarInfo("model")
        member.size, member.mtime = len(content), 0
        tar.addfile(member, io.BytesIO(content))
    return gzip.compress(archive.getvalue(), mtime=0)


@dataclass
class SageMakerFake:
    """What SageMaker does with a job once it is created, which moto (no containers) leaves out.

    ``failing_locations`` maps a location to a FailureReason: its training job ends ``Failed``.
    ``locations_without_artifact``: their training jobs complete but write no ``model.tar.gz``.
    ``rejected_locations`` maps a location to the reason the preprocessor rejects its rows: the
    transform writes the preprocessor's marker line for that file instead of its rows.
    ``transform_jobs`` records every transform job's name.
    """

    account_id: str
    region: str
    failing_locations: dict[str, str] = field(default_factory=dict)
    locations_without_artifact: set[str] = field(default_factory=set)
    rejected_locations: dict[str, str] = field(default_factory=dict)
    transform_jobs: list[str] = field(default_factory=list)
    training_jobs: list[str] = field(default_factory=list)

    def _training_job(self, name: str) -> Any:
        return sagemaker_backends[self.account_id][self.region].training_jobs[name]

    def run_transform_job(self, request: Mapping[str, Any]) -> None:
        """What batch transform does with SplitType Line: one ``<input name>.out`` per input object
        under the input prefix, here the rows with the label moved first (``labelled-transform``) or
        left out (``unlabelled-transform``) (the preprocessor's own arithmetic is tested with the
        real container toolkit, tests/contract), or the preprocessor's marker line for a location
        whose rows it rejects."""
        self.transform_jobs.append(str(request["TransformJobName"]))
        mode = request.get("Environment", {}).get(PREPROCESSOR_MODE_ENV)
        if mode not in (LABELLED_TRANSFORM_MODE, UNLABELLED_TRANSFORM_MODE):
            # Only the two transform modes read raw training rows (unset, the preprocessor serves).
            raise RuntimeError(
                f"transform job {request['TransformJobName']} sets {PREPROCESSOR_MODE_ENV}={mode!r}"
            )
        s3 = _client("s3", self.region)
        bucket, prefix = _s3_location(request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"])
        output_bucket, output_prefix = _s3_location(request["TransformOutput"]["S3OutputPath"])
        output = request["TransformOutput"]
        encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": output["KmsKeyId"]}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                location = name.removesuffix(".csv")
                if location in self.rejected_locations:
                    body = f"{TRANSFORM_ERROR_MARKER} {self.rejected_locations[location]}\n"
                else:
                    rows = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode().splitlines()
                    cells = [row.split(",") for row in rows]
                    body = "".join(
                        ",".join([row[-1], *row[:-1]] if mode == LABELLED_TRANSFORM_MODE else row[:-1]) + "\n"
                        for row in cells
                    )
                s3.put_object(
                    Bucket=output_bucket,
                    Key=f"{output_prefix.rstrip('/')}/{name}.out",
                    Body=body.encode(),
                    **(encryption if "KmsKeyId" in output else {}),
                )

    def run_training_job(self, name: str, request: Mapping[str, Any]) -> None:
        """Let the created job run: fail it, or write its artifact and report its metrics."""
        self.training_jobs.append(name)
        job = self._training_job(name)
        tags = {tag["Key"]: tag["Value"] for tag in request.get("Tags", [])}
        location = tags.get(LOCATION_TAG)
        if location in self.failing_locations:
            job.training_job_status = "Failed"
            job.secondary_status = "Failed"
            job.failure_reason = self.failing_locations[location]
            del job.model_artifacts
            return
        if location not in self.locations_without_artifact:
            bucket, key = _s3_location(job.model_artifacts["S3ModelArtifacts"])
            output = request["OutputDataConfig"]
            encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": output["KmsKeyId"]}
            _client("s3", self.region).put_object(
                Bucket=bucket,
                Key=key,
                Body=artifact_bytes(name),
                **(encryption if "KmsKeyId" in output else {}),
            )
        channels = {channel["ChannelName"] for channel in request["InputDataConfig"]}
        held_out = held_out_metric(request["AlgorithmSpecification"]["TrainingImage"])
        if held_out is not None and held_out[0] in channels:
            job.final_metric_data_list = [
                *job.final_metric_data_list,
                {"MetricName": held_out[1], "Value": validation_loss(name), "Timestamp": job.creation_time},
            ]


def held_out_metric(training_image: str) -> tuple[str, str] | None:
    """``(channel, metric name)`` a training image reports its held-out metric for, if any."""
    repository = training_image.split("/", 1)[-1].split(":", 1)[0]
    return HELD_OUT_METRICS.get(repository)


def _json_ready(value: Any) -> Any:
    """A boto3 response as Step Functions hands it on: timestamps as epoch milliseconds."""
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items() if key != "ResponseMetadata"}
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    return value


@dataclass(frozen=True)
class _SageMakerAction:
    operation: str
    """The API operation, e.g. ``CreateTrainingJob``."""
    method: str
    describe: str | None
    """The Describe* method a ``.sync`` task polls (None: request-response only)."""
    name_parameter: str
    status_field: str | None


_SAGEMAKER_ACTIONS: Final = {
    action.operation.lower(): action
    for action in (
        _SageMakerAction(
            "CreateTrainingJob", "create_training_job", "describe_training_job", "TrainingJobName",
            "TrainingJobStatus",
        ),
        _SageMakerAction(
            "CreateTransformJob", "create_transform_job", "describe_transform_job", "TransformJobName",
            "TransformJobStatus",
        ),
        _SageMakerAction("CreateModel", "create_model", None, "ModelName", None),
    )
}  # fmt: skip
_TERMINAL_STATUSES: Final = frozenset({"Completed", "Failed", "Stopped"})
_SUCCESS_STATUS: Final = "Completed"
_MODELED_SAGEMAKER_ERRORS: Final = {
    "ResourceLimitExceeded": "ResourceLimitExceededException",
    "ResourceInUse": "ResourceInUseException",
    "ResourceNotFound": "ResourceNotFoundException",
    "ConflictException": "ConflictException",
}
"""SageMaker error codes the AWS SDK models as their own exception classes."""


def sagemaker_error_name(code: str) -> str:
    """The error name Step Functions gives a SageMaker API error: the SDK exception's class name,
    ``AmazonSageMakerException`` for every error code without a class of its own (validation,
    throttling, ...)."""
    return f"SageMaker.{_MODELED_SAGEMAKER_ERRORS.get(code, 'AmazonSageMakerException')}"


def _sagemaker_service_class(fake: SageMakerFake) -> type[Any]:
    """A StateTaskService for ``arn:aws:states:::sagemaker:*`` bound to ``fake``."""

    class SageMakerService(state_task_service_callback.StateTaskServiceCallback):
        """Optimised SageMaker integration: request-response and ``.sync`` (cf. moto's Glue/Batch)."""

        def __init__(self) -> None:
            # As moto's Batch and ECS services: its callback machinery needs WaitForTaskToken too.
            patterns = (ResourceCondition.WaitForTaskToken, ResourceCondition.Sync)
            super().__init__(supported_integration_patterns={ResourceCondition(p) for p in patterns})

        def _action(self) -> _SageMakerAction:
            return _SAGEMAKER_ACTIONS[self.resource.api_action.lower()]

        def _get_supported_parameters(self) -> set[str] | None:
            action = _SAGEMAKER_ACTIONS.get(self.resource.api_action.lower())
            if action is None:
                return None  # moto then rejects the resource as not recognised, like AWS
            model = _sagemaker_client(fake.region).meta.service_model.operation_model(action.operation)
            return set(model.input_shape.members)

        def _task_failed(self, env: Any, error_name: ErrorName, error: str, cause: str) -> FailureEvent:
            details = TaskFailedEventDetails(
                error=error,
                cause=cause,
                resource=self._get_sfn_resource(),
                resourceType=self._get_sfn_resource_type(),
            )
            return FailureEvent(
                env=env,
                error_name=error_name,
                event_type=HistoryEventType.TaskFailed,
                event_details=cast(EventDetails, {"taskFailedEventDetails": details}),
            )

        def _from_error(self, env: Any, ex: Exception) -> Any:
            if isinstance(ex, ClientError):
                code = str(ex.response["Error"]["Code"])
                message = str(ex.response["Error"].get("Message", ""))
            elif isinstance(ex, ParamValidationError):
                code, message = "ValidationException", str(ex)
            else:
                return super()._from_error(env=env, ex=ex)
            name = sagemaker_error_name(code)
            cause = f"{message} (Service: AmazonSageMaker; Status Code: 400; Error Code: {code})"
            return self._task_failed(env, CustomErrorName(name), name, cause)

        def _eval_service_task(
            self,
            env: Any,
            resource_runtime_part: Any,
            normalised_parameters: dict[str, Any],
            state_credentials: Any,
        ) -> None:
            action = self._action()
            client = _sagemaker_client(resource_runtime_part.region)
            response = getattr(client, action.method)(**normalised_parameters)
            if action.operation == "CreateTrainingJob":
                fake.run_training_job(normalised_parameters[action.name_parameter], normalised_parameters)
            if action.operation == "CreateTransformJob":
                fake.run_transform_job(normalised_parameters)
            env.stack.append(_json_ready(response))

        def _build_sync_resolver(
            self,
            env: Any,
            resource_runtime_part: Any,
            normalised_parameters: dict[str, Any],
            state_credentials: Any,
        ) -> Callable[[], Any]:
            action = self._action()
            describe, status_field = action.describe, action.status_field
            if describe is None or status_field is None:
                raise RuntimeError(f"{self.resource.resource_arn} has no .sync integration")
            env.stack.pop()  # the Create* output; .sync returns the Describe* output instead
            client = _sagemaker_client(resource_runtime_part.region)
            job_name = normalised_parameters[action.name_parameter]

            def resolve() -> Any:
                job = _json_ready(getattr(client, describe)(**{action.name_parameter: job_name}))
                status = job[status_field]
                if status not in _TERMINAL_STATUSES:
                    return None
                if status == _SUCCESS_STATUS:
                    return job
                # As Step Functions reports a job that ended Failed or Stopped.
                error_name = StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed)
                raise FailureEventException(
                    self._task_failed(
                        env, error_name, StatesErrorNameType.StatesTaskFailed.to_name(), to_json_str(job)
                    )
                )

            return resolve

    return SageMakerService


def _sagemaker_client(region: str) -> Any:
    """A validating client (moto's own task clients skip parameter validation; AWS does not).

    Cached: building a SageMaker client loads its large service model (about 0.1 s), and
    ``mock_aws`` intercepts whichever client calls while it is active.
    """
    return _client("sagemaker", region)


_CLIENT_LOCK: Final = threading.Lock()


@functools.cache
def _cached_client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region)


def _client(service: str, region: str) -> Any:
    """The one client of a service for the fakes, created under a lock and kept.

    The fakes run inside moto's worker threads (Map children, Parallel branches), and boto3's default
    session is not thread-safe: two ``boto3.client()`` calls at once can fail, which showed up under
    CPU load as a location's task ending in States.Runtime. Clients themselves are thread-safe.
    """
    with _CLIENT_LOCK:
        return _cached_client(service, region)


# --------------------------------------------------------------------------------------------------
# 3. ResultWriter: result files with one record per child execution


@dataclass
class ChildExecution:
    """One child execution of a Distributed Map run, as it really ran in moto."""

    map_run_arn: str
    map_state_machine_arn: str
    index: int
    input: Any
    start_date: datetime.datetime
    stop_date: datetime.datetime | None = None
    status: str = "RUNNING"
    output: Any = None
    error: str | None = None
    cause: str | None = None

    @property
    def name(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.map_run_arn}#{self.index}"))

    @property
    def execution_arn(self) -> str:
        return f"{self.map_state_machine_arn.replace(':stateMachine:', ':execution:')}:{self.name}"

    def record(self) -> dict[str, Any]:
        """The child's record in a ResultWriter result file (AWS's documented fields)."""

        def timestamp(moment: datetime.datetime | None) -> str | None:
            return (
                None if moment is None else moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            )

        record: dict[str, Any] = {
            "ExecutionArn": self.execution_arn,
            "Input": json.dumps(self.input, separators=(",", ":")),
            "InputDetails": {"Included": True},
            "Name": self.name,
            "RedriveCount": 0,
            "RedriveStatus": "NOT_REDRIVABLE" if self.status == "SUCCEEDED" else "REDRIVABLE",
            "StartDate": timestamp(self.start_date),
            "StateMachineArn": self.map_state_machine_arn,
            "Status": self.status,
            "StopDate": timestamp(self.stop_date),
        }
        if self.status == "SUCCEEDED":
            record["Output"] = json.dumps(self.output, separators=(",", ":"))
            record["OutputDetails"] = {"Included": True}
        else:
            record["Error"] = self.error
            record["Cause"] = self.cause
        return record


class ChildExecutionRecorder:
    """Captures each Distributed Map child's input and end state inside moto's worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: dict[str, dict[int, ChildExecution]] = {}

    def started(self, map_run_record: Any, index: int, child_input: Any) -> None:
        child = ChildExecution(
            map_run_arn=map_run_record.map_run_arn,
            map_state_machine_arn=map_run_record.map_state_machine_arn,
            index=index,
            input=copy.deepcopy(child_input),
            start_date=datetime.datetime.now(tz=datetime.UTC),
        )
        with self._lock:
            self._children.setdefault(child.map_run_arn, {})[index] = child

    def ended(self, map_run_arn: str, index: int, program_state: Any, output: Any) -> None:
        with self._lock:
            child = self._children.get(map_run_arn, {}).get(index)
        if child is None:
            return  # never started (its input could not be built): the writer reports it
        child.stop_date = datetime.datetime.now(tz=datetime.UTC)
        if isinstance(program_state, ProgramEnded):
            child.status, child.output = "SUCCEEDED", copy.deepcopy(output)
        elif isinstance(program_state, ProgramError):
            details = program_state.error or {}
            child.status, child.error, child.cause = "FAILED", details.get("error"), details.get("cause")
        elif isinstance(program_state, ProgramStopped):
            child.status, child.error, child.cause = "ABORTED", program_state.error, program_state.cause
        elif isinstance(program_state, ProgramTimedOut):
            child.status, child.error = "TIMED_OUT", "States.Timeout"
        else:
            raise RuntimeError(f"child {index} of {map_run_arn} ended in {type(program_state).__name__}")

    def children(self, map_run_arn: str) -> list[ChildExecution]:
        with self._lock:
            return [child for _, child in sorted(self._children.get(map_run_arn, {}).items())]


def _install_child_recording(monkeypatch: pytest.MonkeyPatch, recorder: ChildExecutionRecorder) -> None:
    worker_class = distributed_item_processor_worker.DistributedItemProcessorWorker
    original_eval_input = worker_class._eval_input
    original_eval_job = worker_class._eval_job

    def eval_input(worker: Any, env_frame: Any) -> None:
        original_eval_input(worker, env_frame)
        index = env_frame.states.context_object.context_object_data["Map"]["Item"]["Index"]
        recorder.started(worker._map_run_record, index, env_frame.states.get_input())

    def eval_job(worker: Any, env: Any, job: Any) -> None:
        original_eval_job(worker, env, job)
        recorder.ended(worker._map_run_record.map_run_arn, job.job_index, env.program_state(), job.job_output)

    monkeypatch.setattr(worker_class, "_eval_input", eval_input)
    monkeypatch.setattr(worker_class, "_eval_job", eval_job)


def _install_result_writer_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Evaluate ResultWriter's Parameters against the Map state's input, as AWS does.

    moto evaluates them against the top of its stack, which by then holds the Map's results, so any
    JSONPath in them (``"Prefix.$": "$.plan.results_prefix"``) fails with States.Runtime.
    """

    def eval_body(writer: Any, env: Any) -> None:
        results = env.stack.pop()  # the stack below holds the Map state's (filtered) input
        writer.parargs.eval(env=env)
        parameters = env.stack.pop()
        env.stack.extend([results, parameters])
        writer.resource_eval.eval_resource(env=env)

    monkeypatch.setattr(result_writer_decl.ResultWriter, "_eval_body", eval_body)


def _install_result_files(monkeypatch: pytest.MonkeyPatch, recorder: ChildExecutionRecorder) -> None:
    writer_class = resource_eval_s3.ResourceEvalS3
    original_put_object = writer_class._handle_put_object

    def put_object(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        results = copy.deepcopy(env.stack[-2])  # what moto's writer pops and drops ("TODO: results")
        original_put_object(env, resource_runtime_part, state_credentials)
        written = env.stack[-1]
        bucket, manifest_key = written["ResultWriterDetails"]["Bucket"], written["ResultWriterDetails"]["Key"]
        children = recorder.children(written["MapRunArn"])
        if [child.index for child in children] != list(range(len(results))):
            raise RuntimeError(
                f"Map run {written['MapRunArn']} has {len(results)} results but child executions "
                f"{[child.index for child in children]} started"
            )
        for child, result in zip(children, results, strict=True):
            if child.status == "SUCCEEDED" and child.output != result:
                raise RuntimeError(
                    f"child {child.index}'s output {child.output!r} is not its result {result!r}"
                )

        s3 = writer_class._get_s3_client(
            resource_runtime_part=resource_runtime_part, state_credentials=state_credentials
        )
        folder = manifest_key.rsplit("/", 1)[0]
        result_files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        for status in ("SUCCEEDED", "FAILED"):
            # FAILED_<n>.json holds every unsuccessful child: failed, timed out or aborted.
            records = [
                child.record()
                for child in children
                if (child.status == "SUCCEEDED") == (status == "SUCCEEDED")
            ]
            if not records:
                continue
            key = f"{folder}/{status}_0.json"
            body = json.dumps(records).encode("utf-8")
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            result_files[status].append({"Key": key, "Size": len(body)})
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
        manifest["ResultFiles"] = result_files
        s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest, indent=2).encode("utf-8"))

    monkeypatch.setattr(writer_class, "_handle_put_object", staticmethod(put_object))


# --------------------------------------------------------------------------------------------------
# All together


@dataclass(frozen=True)
class InstalledFakes:
    lambdas: LambdaDispatcher
    sagemaker: SageMakerFake
    children: ChildExecutionRecorder


def install(
    monkeypatch: pytest.MonkeyPatch,
    template: Mapping[str, Any],
    exports: Mapping[str, str],
    *,
    account_id: str = ACCOUNT,
    region: str = REGION,
) -> InstalledFakes:
    """Patch moto for this test (inside an active ``mock_aws``); every patch is undone afterwards."""
    lambdas = LambdaDispatcher(function_specs(template, exports), monkeypatch)

    def invoke(
        backend: Any,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> bytes:
        return lambdas.invoke(function_name, qualifier, body, headers, response_headers)

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)

    fake = SageMakerFake(account_id=account_id, region=region)
    service_class = _sagemaker_service_class(fake)
    original_service_for = state_task_service_factory.state_task_service_for

    def state_task_service_for(service_name: str) -> Any:
        return service_class() if service_name == "sagemaker" else original_service_for(service_name)

    monkeypatch.setattr(state_task_factory, "state_task_service_for", state_task_service_for)

    recorder = ChildExecutionRecorder()
    _install_child_recording(monkeypatch, recorder)
    _install_result_writer_parameters(monkeypatch)
    _install_result_files(monkeypatch, recorder)
    return InstalledFakes(lambdas=lambdas, sagemaker=fake, children=recorder)
