"""Every SageMaker request the training state machine makes, checked against SageMaker's API model.

SageMaker rejects a bad request only at run time, minutes into a run (and Step Functions retries it
first, see the README). botocore's client-side validation checks required members and types, but
not the constraints that name rules live in: ``pattern``, ``min``/``max`` length and enums. So
this module checks them itself, on the requests the definition really produces:

1. :class:`Execution` walks the rendered definition (``training_definition_for_algorithm``: each
   algorithm's synthesized state machine with realistic ARNs) along its success path, the way Step
   Functions moves data: ``Parameters`` with their JSONPaths, ``ResultSelector``, ``ResultPath``,
   Choice rules, both Distributed Maps (S3 ItemReader and ItemSelector) and the Parallel state. Anything
   it does not implement (another JSONPath form, an intrinsic function, an ASL field that changes
   data) raises :class:`UnsupportedDefinitionError`, so a new construct in the definition fails
   here loudly instead of being skipped.
2. The plan step runs the real ``plan_run`` function of the Lambda (with a fake S3 holding the plan
   it writes, which the Maps then read) with the settings it reads from the environment the template
   gives it, so the job names and URIs are the ones a run of that deployment would get.
   The other Lambdas are stand-ins returning the fields the definition reads from their results.
3. Each ``arn:aws:states:::sagemaker:<action>[.sync]`` task's resolved Parameters are the API
   request (Step Functions passes them as the action's request members): they are validated with
   botocore's ParamValidator against ``<Action>``'s input shape, and every member's ``pattern``
   (``re.fullmatch``), ``min``/``max`` and enum is checked by walking the shape.

The names come from the edges of what the rules accept: the longest run id, the longest location
with ``_``, ``-`` and digits, a location that is only digits, locations ending in ``_`` or ``-``,
plus hypothesis examples drawn from the rules' own regular expressions. A name the rules refuse
must be refused by the plan step (the run then fails before any SageMaker request).

The runs are walked for each algorithm of :data:`~mme_constructs.algorithms.ALGORITHMS` (the
``deployment`` fixture): their training jobs differ in image, hyperparameters, channels and content
types, and their transforms in the preprocessor's mode. The checks of the checker itself (that it
catches bad requests and unsupported constructs) run once, on the default deployment.
"""

from __future__ import annotations

import copy
import functools
import importlib
import io
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import botocore.session  # type: ignore[import-untyped]
import pytest
from botocore.exceptions import ClientError, ParamValidationError  # type: ignore[import-untyped]
from botocore.validate import validate_parameters  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mme_constructs.algorithms import ALGORITHMS, Algorithm
from mme_shared import generation, naming, s3_layout
from project_config import ProjectConfig
from tests.cfn_render import TemplateRenderer
from tests.conftest import (
    REPO_ROOT,
    STORAGE_EXPORTS,
    SynthesizedApp,
    _synthesize,
    resources_of_type,
    training_definition_of,
)

_PLAN_RUN_DIR = REPO_ROOT / "lambda" / "plan_run"
if str(_PLAN_RUN_DIR) not in sys.path:
    sys.path.insert(0, str(_PLAN_RUN_DIR))
plan_run = importlib.import_module("plan_run")

BUCKET: Final = STORAGE_EXPORTS["MmeStorage-ArtifactBucketName"]
SAGEMAKER_RESOURCE_RE: Final = re.compile(
    r"arn:aws:states:::sagemaker:([a-zA-Z]+)(\.sync|\.waitForTaskToken)?"
)
LAMBDA_INVOKE: Final = "arn:aws:states:::lambda:invoke"
LAMBDA_FUNCTION_RE: Final = re.compile(r"arn:aws:lambda:[a-z0-9-]+:[0-9]{12}:function:([A-Za-z0-9_-]+)")
MANIFEST_KEY: Final = "location-manifests/edge-cases.json"

EDGE_LOCATIONS: Final = [
    "NewYork_NY",
    "Z9_-" * 8,  # 32 characters: the longest name, with every kind of character, ending in '-'
    "9" * 32,  # only digits, the longest
    "0",  # only one digit
    "q" + "_" * 31,  # ends in '_' (a '-' in job names), runs of '-' in the job name
    "A-" + "b" * 29 + "_",  # ends in '_' after a '-'
]
"""One run's locations: the unusual names the location rule accepts (and that do not collide)."""

RUN_ID_CANDIDATES: Final = [
    "r" * naming.RUN_ID_MAX_LENGTH,  # the longest
    "0" * naming.RUN_ID_MAX_LENGTH,  # only digits, the longest
    "7",  # the shortest
    "a" + "-" * (naming.RUN_ID_MAX_LENGTH - 2) + "z",  # runs of '-'
    "run-20250501-120000",  # what `mme train` generates
    "deploy-20250501-120000",  # what `make deploy` generates
    "run-1-",  # ends in '-': SageMaker job and model names must end in a letter or digit
    "r" * (naming.RUN_ID_MAX_LENGTH - 1) + "-",
    "-run",
    "r" * (naming.RUN_ID_MAX_LENGTH + 1),
]
"""Run ids at the edges of the rule, accepted or not: each must either be refused by the plan step
or give only valid requests (the first six must be accepted, see test_the_edge_names_are_accepted)."""


# --------------------------------------------------------------------------------------------------
# SageMaker's API model


@functools.cache
def sagemaker_model() -> Any:
    return botocore.session.get_session().get_service_model("sagemaker")


def operation_name(action: str) -> str:
    """The API operation of a Step Functions action: ``createTrainingJob`` -> ``CreateTrainingJob``."""
    return action[0].upper() + action[1:]


@functools.cache
def _compiled(pattern: str) -> Any:
    """A shape's pattern as a regular expression (Java syntax; Python's re reads most of it)."""
    try:
        return re.compile(pattern)
    except re.error:
        # Unicode classes such as \p{L} (tag keys and values): the `regex` package reads them. It is
        # installed with cfn-lint; if it is missing this fails loudly rather than skipping the check.
        import regex  # type: ignore[import-untyped]

        return regex.compile(pattern)


def constraint_problems(value: Any, shape: Any, path: str) -> list[str]:
    """What breaks ``shape``'s pattern, length, range and enum constraints (botocore checks none)."""
    problems: list[str] = []
    meta = shape.metadata
    kind = shape.type_name

    def check_range(size: int | float, what: str) -> None:
        if "min" in meta and size < meta["min"]:
            problems.append(f"{path}: {what} {size} is below the minimum {meta['min']} ({shape.name})")
        if "max" in meta and size > meta["max"]:
            problems.append(f"{path}: {what} {size} is above the maximum {meta['max']} ({shape.name})")

    if kind == "structure":
        if isinstance(value, Mapping):
            for name, member in value.items():
                if name in shape.members:
                    problems += constraint_problems(member, shape.members[name], f"{path}.{name}")
    elif kind == "list":
        if isinstance(value, list):
            check_range(len(value), "length")
            for index, item in enumerate(value):
                problems += constraint_problems(item, shape.member, f"{path}[{index}]")
    elif kind == "map":
        if isinstance(value, Mapping):
            check_range(len(value), "number of entries")
            for key, item in value.items():
                problems += constraint_problems(key, shape.key, f"{path} key {key!r}")
                problems += constraint_problems(item, shape.value, f"{path}[{key!r}]")
    elif kind == "string":
        if isinstance(value, str):
            check_range(len(value), "length")
            if shape.enum and value not in shape.enum:
                problems.append(
                    f"{path}: {value!r} is not one of the {len(shape.enum)} values of {shape.name}"
                )
            pattern = meta.get("pattern")
            if pattern is not None and _compiled(pattern).fullmatch(value) is None:
                problems.append(f"{path}: {value!r} does not match {shape.name}'s pattern {pattern!r}")
    elif kind in ("integer", "long", "float", "double"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            check_range(value, "value")
    elif kind != "boolean":
        raise UnsupportedDefinitionError(
            f"{path}: constraints of {kind} shapes ({shape.name}) are not checked here"
        )
    return problems


def request_problems(operation: str, parameters: Mapping[str, Any]) -> list[str]:
    """Why SageMaker would reject ``operation`` with these request members (empty when it would not)."""
    model = sagemaker_model()
    if operation not in model.operation_names:
        return [f"{operation} is not an operation of the SageMaker API"]
    shape = model.operation_model(operation).input_shape
    problems = []
    try:
        validate_parameters(dict(parameters), shape)
    except ParamValidationError as error:
        problems.append(str(error))
    return problems + constraint_problems(parameters, shape, operation)


# --------------------------------------------------------------------------------------------------
# Step Functions data flow


class UnsupportedDefinitionError(Exception):
    """The definition uses something this walk does not implement: extend it, never skip the state."""


_MISSING: Final = object()
_PATH_RE: Final = re.compile(r"\$(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class Context:
    """The context object (``$$``): the execution, and the Map item inside an ItemSelector."""

    execution_name: str
    map_item: Any = _MISSING
    map_index: int = 0

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"Execution": {"Name": self.execution_name}}
        if self.map_item is not _MISSING:
            document["Map"] = {"Item": {"Value": self.map_item, "Index": self.map_index}}
        return document


def read_path(path: str, data: Any, context: Context) -> Any:
    """A reference path (``$``, ``$.a.b``, ``$$.Execution.Name``); a missing field fails, as in AWS."""
    if path.startswith("$$"):
        root, rest = context.document(), path[1:]
    else:
        root, rest = data, path
    if _PATH_RE.fullmatch(rest) is None:
        raise UnsupportedDefinitionError(
            f"JSONPath {path!r} (only $, $.field.field and $$.field... are implemented)"
        )
    node = root
    for name in rest.split(".")[1:]:
        if not isinstance(node, Mapping) or name not in node:
            raise AssertionError(f"JSONPath {path!r} finds nothing in {json.dumps(root)[:400]}")
        node = node[name]
    return copy.deepcopy(node)


def resolve(template: Any, data: Any, context: Context) -> Any:
    """A Parameters/ItemSelector/ResultSelector template with its ``"x.$"`` fields evaluated."""
    if isinstance(template, list):
        return [resolve(item, data, context) for item in template]
    if not isinstance(template, Mapping):
        return template
    resolved: dict[str, Any] = {}
    for key, value in template.items():
        if key.endswith(".$"):
            if not isinstance(value, str):
                raise UnsupportedDefinitionError(f"{key}: a dynamic field needs a path string, got {value!r}")
            if value.startswith("States."):
                raise UnsupportedDefinitionError(
                    f"{key}: intrinsic function {value!r} is not implemented here"
                )
            resolved[key[:-2]] = read_path(value, data, context)
        else:
            resolved[key] = resolve(value, data, context)
    return resolved


def apply_result_path(data: Any, result: Any, state: Mapping[str, Any]) -> Any:
    path = state.get("ResultPath", "$")
    if path is None:
        return data
    if path == "$":
        return result
    if _PATH_RE.fullmatch(path) is None:
        raise UnsupportedDefinitionError(f"ResultPath {path!r}")
    names = path.split(".")[1:]
    output = copy.deepcopy(data)
    node = output
    for name in names[:-1]:
        node = node.setdefault(name, {})
    node[names[-1]] = result
    return output


def _choice_matches(rule: Mapping[str, Any], data: Any, context: Context) -> bool:
    if "And" in rule:
        return all(_choice_matches(r, data, context) for r in rule["And"])
    if "Or" in rule:
        return any(_choice_matches(r, data, context) for r in rule["Or"])
    if "Not" in rule:
        return not _choice_matches(rule["Not"], data, context)
    operators = set(rule) - {"Variable", "Next"}
    if operators == {"BooleanEquals"}:
        value = read_path(rule["Variable"], data, context)
        if not isinstance(value, bool):
            raise UnsupportedDefinitionError(f"BooleanEquals on {value!r}, not a boolean")
        return value is rule["BooleanEquals"]
    if operators == {"NumericGreaterThan"}:
        value = read_path(rule["Variable"], data, context)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UnsupportedDefinitionError(f"NumericGreaterThan on {value!r}, not a number")
        return bool(value > rule["NumericGreaterThan"])
    if operators != {"IsPresent"}:
        raise UnsupportedDefinitionError(
            f"Choice rule with {sorted(operators)} (only IsPresent, BooleanEquals, NumericGreaterThan, And, "
            "Or, Not)"
        )
    try:
        read_path(rule["Variable"], data, context)
        present = True
    except AssertionError:
        present = False
    return present is rule["IsPresent"]


class LambdaError(Exception):
    """A Lambda function raised: Step Functions reports the exception's class name as the error."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class ExecutionFailedError(Exception):
    def __init__(self, state: str, error: str | None, cause: str | None) -> None:
        super().__init__(f"the execution failed in {state}: {error}: {cause}")
        self.state = state
        self.error = error
        self.cause = cause


STATE_FIELDS: Final = {
    "Task": {"Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch", "TimeoutSeconds"},
    "Map": {
        "ItemReader", "ItemSelector", "ItemProcessor", "ResultWriter", "ResultPath", "MaxConcurrency",
        "Catch", "Retry", "Label",
    },
    "Parallel": {"Branches", "ResultPath", "ResultSelector", "Catch", "Retry"},
    "Pass": {"Parameters", "Result", "ResultPath", "InputPath"},
    "Choice": {"Choices", "Default"},
    "Fail": {"Error", "Cause", "ErrorPath", "CausePath"},
    "Succeed": set(),
}  # fmt: skip
"""Fields implemented per state type; any other (InputPath, ItemBatcher, ...) is unsupported."""


@dataclass(frozen=True)
class SageMakerRequest:
    state: str
    """The task's place in the definition, e.g. ``TransformSplits[1]/TransformValidation``."""
    action: str
    parameters: dict[str, Any]


class FakeS3:
    """The artifact bucket as the plan step uses it: conditional PutObject, GetObject and listing."""

    exceptions = type("Exceptions", (), {"ClientError": ClientError})

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, IfNoneMatch: str, **_: Any) -> None:  # noqa: N803
        assert IfNoneMatch == "*"
        if (Bucket, Key) in self.objects:
            raise ClientError({"Error": {"Code": "PreconditionFailed"}}, "PutObject")
        self.objects[(Bucket, Key)] = Body

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        if (Bucket, Key) not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")
        body = self.objects[(Bucket, Key)]
        return {"Body": io.BytesIO(body), "ContentLength": len(body)}

    def get_paginator(self, operation: str) -> Any:
        assert operation == "list_objects_v2"
        objects = self.objects

        class Paginator:
            def paginate(self, *, Bucket: str, Prefix: str) -> list[dict[str, Any]]:  # noqa: N803
                keys = sorted(key for bucket, key in objects if bucket == Bucket and key.startswith(Prefix))
                return [{"Contents": [{"Key": key} for key in keys]}]

        return Paginator()


@dataclass
class Execution:
    """One execution of the definition along its success path, recording every SageMaker request."""

    definition: Mapping[str, Any]
    name: str
    plan_settings: Any
    """The plan Lambda's ``PlanSettings``, as it reads them from its environment."""
    s3: FakeS3 = field(default_factory=FakeS3)
    requests: list[SageMakerRequest] = field(default_factory=list)

    def run(self, execution_input: Any) -> Any:
        return self._run_states(self.definition, execution_input, Context(self.name), "")

    # -- Lambda functions ---------------------------------------------------------------------

    def _lambda(self, function: str, payload: Any) -> Any:
        match = LAMBDA_FUNCTION_RE.fullmatch(function)
        if match is None:
            raise UnsupportedDefinitionError(f"Lambda function {function!r} is not a function ARN")
        handlers: dict[str, Callable[[Any], Any]] = {
            "PlanRun": self._plan_run,
            "GenerateData": lambda event: {"location": event["location"], "splits": list(s3_layout.SPLITS)},
            "CheckTransform": lambda event: {
                "location": event["location"],
                "rows": {"train": 1, "validation": 1},
            },
            "PromoteArtifact": self._promote,
            # The success path: every SageMaker request of the walk succeeds, so every location did.
            "SummarizeRun": lambda event: {
                "run_id": event["run_id"],
                "generation": event["generation"],
                "refit": event["refit"],
                "succeeded_count": event["location_count"],
                "nothing_promoted": False,
                "generation_complete": event["refit"],
            },
        }
        kinds = [kind for kind in handlers if kind in match.group(1)]
        if len(kinds) != 1:
            raise UnsupportedDefinitionError(f"no fake (or several) for Lambda function {match.group(1)}")
        return handlers[kinds[0]](payload)

    def _plan_run(self, event: Any) -> Any:
        """The real plan function (what the Lambda handler runs), against the fake bucket."""
        try:
            request = plan_run.parse_run_event(event)
            return plan_run.plan_run(request, s3=self.s3, settings=self.plan_settings)
        except plan_run.PlanRunError as error:
            raise LambdaError(type(error).__name__, str(error)) from None

    @staticmethod
    def _promote(event: Mapping[str, Any]) -> dict[str, Any]:
        job = event["training_job_name"]
        if event.get("artifact") == "preprocessor":
            return {
                "training_job_name": job,
                "generation": job,
                "key": s3_layout.preprocessor_artifact_key(job),
            }
        location = event["location"]
        return {
            "location": location,
            "training_job_name": job,
            "version": job,
            "target_model": s3_layout.target_model_name(location, job),
            "validation_metrics": {"validation:absolute_loss": 1.0},
        }

    # -- SageMaker --------------------------------------------------------------------------

    def _sagemaker(self, where: str, action: str, parameters: dict[str, Any]) -> Any:
        """Record the request; answer as the integration does (``.sync``: the Describe* output)."""
        self.requests.append(SageMakerRequest(where, action, parameters))
        if action == "createTrainingJob":
            job = parameters["TrainingJobName"]
            output = parameters["OutputDataConfig"]["S3OutputPath"].rstrip("/")
            return {
                "TrainingJobName": job,
                "TrainingJobStatus": "Completed",
                "ModelArtifacts": {"S3ModelArtifacts": f"{output}/{job}/output/model.tar.gz"},
            }
        if action == "createTransformJob":
            return {"TransformJobName": parameters["TransformJobName"], "TransformJobStatus": "Completed"}
        if action == "createModel":
            return {"ModelArn": f"arn:aws:sagemaker:us-east-1:111122223333:model/{parameters['ModelName']}"}
        raise UnsupportedDefinitionError(f"no fake response for SageMaker action {action}")

    # -- states -----------------------------------------------------------------------------

    def _run_states(self, machine: Mapping[str, Any], data: Any, context: Context, where: str) -> Any:
        name = machine["StartAt"]
        while True:
            state = machine["States"][name]
            here = f"{where}{name}"
            try:
                data, next_name = self._run_state(state, data, context, here)
            except LambdaError as error:
                catcher = next(
                    (
                        c
                        for c in state.get("Catch", [])
                        if {"States.ALL", error.error} & set(c["ErrorEquals"])
                    ),
                    None,
                )
                if catcher is None:
                    raise ExecutionFailedError(here, error.error, error.cause) from None
                data = apply_result_path(data, {"Error": error.error, "Cause": error.cause}, catcher)
                next_name = catcher["Next"]
            if next_name is None:
                return data
            name = next_name

    def _run_state(
        self, state: Mapping[str, Any], data: Any, context: Context, here: str
    ) -> tuple[Any, str | None]:
        kind = state["Type"]
        unknown = set(state) - {"Type", "Next", "End", "Comment"} - STATE_FIELDS.get(kind, set())
        if kind not in STATE_FIELDS or unknown:
            raise UnsupportedDefinitionError(f"{here}: {kind} state with {sorted(unknown)}")
        following = state.get("Next")
        if kind == "Choice":
            rule = next((r for r in state["Choices"] if _choice_matches(r, data, context)), None)
            return data, rule["Next"] if rule is not None else state["Default"]
        if kind == "Fail":
            error = (
                read_path(state["ErrorPath"], data, context) if "ErrorPath" in state else state.get("Error")
            )
            cause = (
                read_path(state["CausePath"], data, context) if "CausePath" in state else state.get("Cause")
            )
            raise ExecutionFailedError(here, error, cause)
        if kind == "Succeed":
            return data, None
        if kind == "Pass":
            if "InputPath" in state:
                data = read_path(state["InputPath"], data, context)
            result = (
                resolve(state["Parameters"], data, context)
                if "Parameters" in state
                else state.get("Result", data)
            )
            return apply_result_path(data, result, state), following
        if kind == "Task":
            parameters = resolve(state.get("Parameters", {}), data, context)
            result = self._task(here, state["Resource"], parameters)
        elif kind == "Parallel":
            result = [
                self._run_states(branch, copy.deepcopy(data), context, f"{here}[{index}]/")
                for index, branch in enumerate(state["Branches"])
            ]
        else:
            result = self._map(state, data, context, here)
        if "ResultSelector" in state:
            result = resolve(state["ResultSelector"], result, context)
        return apply_result_path(data, result, state), following

    def _task(self, here: str, resource: str, parameters: dict[str, Any]) -> Any:
        sagemaker = SAGEMAKER_RESOURCE_RE.fullmatch(resource)
        if sagemaker is not None:
            return self._sagemaker(here, sagemaker.group(1), parameters)
        if resource == LAMBDA_INVOKE:
            payload = self._lambda(parameters["FunctionName"], parameters["Payload"])
            return {"Payload": payload, "StatusCode": 200, "ExecutedVersion": "$LATEST"}
        if LAMBDA_FUNCTION_RE.fullmatch(resource):
            return self._lambda(resource, parameters)
        raise UnsupportedDefinitionError(f"{here}: task resource {resource!r}")

    def _map(self, state: Mapping[str, Any], data: Any, context: Context, here: str) -> Any:
        reader = state.get("ItemReader")
        if reader is None or reader["Resource"] != "arn:aws:states:::s3:getObject":
            raise UnsupportedDefinitionError(f"{here}: a Map without an S3 getObject ItemReader")
        if reader.get("ReaderConfig") != {"InputType": "JSON"}:
            raise UnsupportedDefinitionError(f"{here}: ItemReader config {reader.get('ReaderConfig')}")
        location = resolve(reader["Parameters"], data, context)
        items = json.loads(self.s3.get_object(Bucket=location["Bucket"], Key=location["Key"])["Body"].read())
        processor = state["ItemProcessor"]
        if processor.get("ProcessorConfig", {}).get("Mode") != "DISTRIBUTED":
            raise UnsupportedDefinitionError(f"{here}: an inline Map")
        for index, item in enumerate(items):
            item_context = Context(context.execution_name, map_item=item, map_index=index)
            item_input = (
                resolve(state["ItemSelector"], data, item_context) if "ItemSelector" in state else item
            )
            # A Distributed Map's items run as child executions, with names of their own.
            child = Context(execution_name=f"{index:08x}-child-execution")
            self._run_states(processor, item_input, child, f"{here}/")
        if "ResultWriter" not in state:
            raise UnsupportedDefinitionError(f"{here}: a Distributed Map without a ResultWriter")
        writer = resolve(state["ResultWriter"]["Parameters"], data, context)
        return {
            "MapRunArn": f"arn:aws:states:us-east-1:111122223333:mapRun:machine/{here}:0",
            "ResultWriterDetails": {"Bucket": writer["Bucket"], "Key": f"{writer['Prefix']}0/manifest.json"},
        }


def sagemaker_task_states(
    machine: Mapping[str, Any], where: str = ""
) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """``(place, action, state)`` of every SageMaker task anywhere in the definition, reachable or not."""
    for name, state in machine["States"].items():
        here = f"{where}{name}"
        match = SAGEMAKER_RESOURCE_RE.fullmatch(str(state.get("Resource", "")))
        if state["Type"] == "Task" and match is not None:
            yield here, match.group(1), state
        if "ItemProcessor" in state:
            yield from sagemaker_task_states(state["ItemProcessor"], f"{here}/")
        if "Iterator" in state:
            yield from sagemaker_task_states(state["Iterator"], f"{here}/")
        for index, branch in enumerate(state.get("Branches", [])):
            yield from sagemaker_task_states(branch, f"{here}[{index}]/")


def sagemaker_tasks(machine: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(place, action)`` of every SageMaker task anywhere in the definition, reachable or not."""
    return ((place, action) for place, action, _ in sagemaker_task_states(machine))


SERVED_GENERATION: Final = "pp-" + "s" * naming.RUN_ID_MAX_LENGTH
"""The generation a partial run reuses: the longest name the generation rule accepts."""


@dataclass(frozen=True)
class Deployment:
    """One algorithm's deployment: its settings, training definition and plan Lambda settings."""

    algorithm: Algorithm
    config: ProjectConfig
    definition: dict[str, Any]
    plan_settings: Any
    """``plan_run.load_plan_settings`` of the PlanRun function's environment in the template."""


def plan_environment(app: SynthesizedApp) -> dict[str, str]:
    """The environment the training template gives the PlanRun function, rendered to literals."""
    template = app.template("training")
    (function,) = [
        f
        for f in resources_of_type(template, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "plan_run.handler"
    ]
    variables = TemplateRenderer(template, STORAGE_EXPORTS).render(
        function["Properties"]["Environment"]["Variables"]
    )
    return {str(name): str(value) for name, value in variables.items()}


DEFAULT_ALGORITHM: Final = "linear-learner"


@pytest.fixture(scope="module")
def deployment_for(
    synthesized_for_algorithm: Callable[[str], SynthesizedApp],
    training_definition_for_algorithm: Callable[[str], dict[str, Any]],
) -> Callable[[str], Deployment]:
    def deployment_of(name: str) -> Deployment:
        app = synthesized_for_algorithm(name)
        return Deployment(
            algorithm=ALGORITHMS[name],
            config=app.config,
            definition=training_definition_for_algorithm(name),
            plan_settings=plan_run.load_plan_settings(plan_environment(app)),
        )

    return deployment_of


@pytest.fixture(scope="module", params=list(ALGORITHMS))
def deployment(request: pytest.FixtureRequest, deployment_for: Callable[[str], Deployment]) -> Deployment:
    """Each algorithm's deployment in turn (tests using it run once per algorithm)."""
    return deployment_for(str(request.param))


@pytest.fixture(scope="module")
def default_deployment(deployment_for: Callable[[str], Deployment]) -> Deployment:
    return deployment_for(DEFAULT_ALGORITHM)


def execute(
    deployment: Deployment,
    run_id: str,
    locations: list[str],
    *,
    manifest: bool,
    partial: bool = False,
    definition: Mapping[str, Any] | None = None,
) -> Execution:
    """Walk one run: the first run (it fits a generation), or with ``partial`` a run reusing one
    (the served generation, trained with the deployment's algorithm)."""
    execution = Execution(definition or deployment.definition, run_id, deployment.plan_settings)
    if partial:
        ref = json.dumps({"format_version": 1, "generation": SERVED_GENERATION, "endpoint_name": "e",
                          "updated_at": "2026-12-01T00:00:00Z"})  # fmt: skip
        execution.s3.objects[(BUCKET, s3_layout.SERVING_GENERATION_KEY)] = ref.encode()
        record = generation.CompleteGeneration(
            generation=SERVED_GENERATION,
            run_id=SERVED_GENERATION.removeprefix("pp-"),
            location_count=len(locations),
            completed_at=datetime(2026, 12, 1, tzinfo=UTC),
            algorithm=deployment.config.training.algorithm,
        )
        execution.s3.objects[(BUCKET, record.key)] = record.to_json()
    if manifest:
        execution.s3.objects[(BUCKET, MANIFEST_KEY)] = json.dumps(locations).encode()
        execution.run({"locations_manifest_key": MANIFEST_KEY})
    else:
        execution.run({"locations": locations})
    return execution


def all_problems(execution: Execution) -> list[str]:
    return [
        f"{request.state}: {problem}"
        for request in execution.requests
        for problem in request_problems(operation_name(request.action), request.parameters)
    ]


def accepted_run_id(run_id: str) -> bool:
    try:
        naming.validate_run_id(run_id)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("manifest", [False, True], ids=["inline", "manifest"])
@pytest.mark.parametrize("run_id", RUN_ID_CANDIDATES)
def test_every_request_of_a_run_is_valid_or_the_run_is_refused_first(
    deployment: Deployment, run_id: str, manifest: bool
) -> None:
    if not accepted_run_id(run_id):
        with pytest.raises(ExecutionFailedError) as failed:
            execute(deployment, run_id, EDGE_LOCATIONS, manifest=manifest)
        assert failed.value.error == "InvalidRunRequest", failed.value
        assert failed.value.state == "RunFailed"
        return

    execution = execute(deployment, run_id, EDGE_LOCATIONS, manifest=manifest)

    # N + O(1): the fit, its model, one transform per split, one training job per location.
    assert len(execution.requests) == 4 + len(EDGE_LOCATIONS)
    assert all_problems(execution) == []


def test_a_partial_run_with_the_edge_names_makes_only_valid_requests(deployment: Deployment) -> None:
    execution = execute(deployment, "r" * naming.RUN_ID_MAX_LENGTH, EDGE_LOCATIONS, manifest=False,
                        partial=True)  # fmt: skip

    assert len(execution.requests) == 3 + len(EDGE_LOCATIONS)  # no fit: the served one is reused
    assert all_problems(execution) == []


def test_the_edge_names_are_accepted() -> None:
    """The edge cases above are accepted by the rules, so the request check is not vacuous."""
    assert [accepted_run_id(run_id) for run_id in RUN_ID_CANDIDATES[:6]] == [True] * 6
    assert [naming.location_name_problem(name) for name in EDGE_LOCATIONS] == [None] * len(EDGE_LOCATIONS)
    assert max(map(len, EDGE_LOCATIONS)) == naming.LOCATION_NAME_MAX_LENGTH
    assert max(len(r) for r in RUN_ID_CANDIDATES[:6]) == naming.RUN_ID_MAX_LENGTH


def test_a_run_id_ending_in_a_hyphen_is_refused() -> None:
    with pytest.raises(ValueError, match="starting and ending with a letter or digit"):
        naming.validate_run_id("run-1-")


EDGE_ALPHABET: Final = "aZ09-_"
"""Few characters, so separators often come first, last and in runs (the cases that break names)."""
_PROPERTY_SETTINGS: Final = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_PROPERTY_SETTINGS
@given(
    run_id=st.from_regex(naming.RUN_ID_RE, fullmatch=True, alphabet=EDGE_ALPHABET),
    locations=st.lists(
        st.from_regex(naming.LOCATION_NAME_RE, fullmatch=True, alphabet=EDGE_ALPHABET),
        min_size=1,
        max_size=4,
        unique_by=naming.location_collision_key,
    ),
)
def test_whatever_the_rules_accept_gives_valid_requests(
    deployment: Deployment, run_id: str, locations: list[str]
) -> None:
    if not accepted_run_id(run_id):  # RUN_ID_RE is the character rule; validate_run_id may add more
        return
    execution = execute(deployment, run_id, locations, manifest=False)
    assert all_problems(execution) == []


def test_every_sagemaker_task_of_the_definition_is_checked(deployment: Deployment) -> None:
    tasks = sorted(sagemaker_tasks(deployment.definition))
    execution = execute(deployment, "run-1", ["Chicago_IL"], manifest=False)

    checked = sorted((request.state, request.action) for request in execution.requests)
    assert checked == tasks  # one location: every task made exactly one request, none was skipped
    assert tasks == [
        ("CreatePreprocessorModel", "createModel"),
        ("FitPreprocessor", "createTrainingJob"),
        ("TrainLocations/TrainModel", "createTrainingJob"),
        ("TransformSplits[0]/TransformTrain", "createTransformJob"),
        ("TransformSplits[1]/TransformValidation", "createTransformJob"),
    ]
    # A partial run makes every request but the fit, and they are valid as well.
    partial = execute(deployment, "run-1", ["Chicago_IL"], manifest=False, partial=True)
    assert sorted((request.state, request.action) for request in partial.requests) == [
        task for task in tasks if task[0] != "FitPreprocessor"
    ]
    assert all_problems(partial) == []


def test_the_constraint_check_catches_bad_requests(default_deployment: Deployment) -> None:
    """The checks above could pass vacuously if the shape walk missed constraints: it does not."""
    execution = execute(default_deployment, "run-1", ["Chicago_IL"], manifest=False)
    by_action = {request.action: request.parameters for request in execution.requests}
    good = by_action["createTrainingJob"]
    assert request_problems("CreateTrainingJob", good) == []

    def problems_with(path: tuple[str | int, ...], value: Any) -> list[str]:
        request = copy.deepcopy(good)
        node: Any = request
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
        return request_problems("CreateTrainingJob", request)

    assert problems_with(("TrainingJobName",), "pp-run-1-") == [
        "CreateTrainingJob.TrainingJobName: 'pp-run-1-' does not match TrainingJobName's pattern "
        "'[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}'"
    ]
    assert problems_with(("TrainingJobName",), "x" * 64)[0].startswith(
        "CreateTrainingJob.TrainingJobName: length 64 is above the maximum 63"
    )
    assert problems_with(("ResourceConfig", "InstanceType"), "ml.t2.medium") == [
        "CreateTrainingJob.ResourceConfig.InstanceType: 'ml.t2.medium' is not one of the "
        f"{len(sagemaker_model().shape_for('TrainingInstanceType').enum)} values of TrainingInstanceType"
    ]
    assert (  # botocore checks the minimum of numbers too
        "CreateTrainingJob.ResourceConfig.VolumeSizeInGB: value -1 is below the minimum 0 "
        "(OptionalVolumeSizeInGB)" in problems_with(("ResourceConfig", "VolumeSizeInGB"), -1)
    )
    assert problems_with(("Tags", 0, "Value"), "a" * 257) == [
        "CreateTrainingJob.Tags[0].Value: length 257 is above the maximum 256 (TagValue)"
    ]
    assert "does not match TagValue's pattern" in problems_with(("Tags", 0, "Value"), "tab\there")[0]
    assert problems_with(("EnableNetworkIsolation",), "yes")[0].startswith("Parameter validation failed")
    missing = copy.deepcopy(good)
    del missing["RoleArn"]
    assert (
        'Missing required parameter in input: "RoleArn"' in request_problems("CreateTrainingJob", missing)[0]
    )
    model = by_action["createModel"]
    assert request_problems("CreateModel", {**model, "ModelName": "pp-run-1-"}) == [
        "CreateModel.ModelName: 'pp-run-1-' does not match ModelName's pattern "
        + repr(r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?")
    ]
    assert request_problems("CreateTrainingJobs", good) == [
        "CreateTrainingJobs is not an operation of the SageMaker API"
    ]


def test_unsupported_definitions_fail_loudly(default_deployment: Deployment) -> None:
    """A construct the walk does not implement raises instead of passing a state unchecked."""
    changed = copy.deepcopy(default_deployment.definition)
    parameters = changed["States"]["FitPreprocessor"]["Parameters"]
    parameters["TrainingJobName.$"] = "States.Format('pp-{}', $.plan.run_id)"
    with pytest.raises(UnsupportedDefinitionError, match="intrinsic function"):
        execute(default_deployment, "run-1", ["Chicago_IL"], manifest=False, definition=changed)

    changed = copy.deepcopy(default_deployment.definition)
    changed["States"]["FitPreprocessor"]["InputPath"] = "$.plan"
    with pytest.raises(UnsupportedDefinitionError, match=r"FitPreprocessor: Task state with \['InputPath'\]"):
        execute(default_deployment, "run-1", ["Chicago_IL"], manifest=False, definition=changed)

    changed = copy.deepcopy(default_deployment.definition)
    changed["States"]["FitPreprocessor"]["Parameters"]["TrainingJobName.$"] = (
        "$.plan['preprocessor_job_name']"
    )
    with pytest.raises(UnsupportedDefinitionError, match="JSONPath"):
        execute(default_deployment, "run-1", ["Chicago_IL"], manifest=False, definition=changed)


def test_the_walk_reads_what_the_plan_lambda_wrote(deployment: Deployment) -> None:
    """The requests carry the plan's names and URIs (so the walk really follows the data)."""
    execution = execute(deployment, "run-1", ["NewYork_NY"], manifest=False)
    plan = json.loads(execution.s3.objects[(BUCKET, s3_layout.run_plan_key("run-1"))])
    (item,) = plan
    names = {
        request.state.rsplit("/", 1)[-1]: request.parameters.get("TrainingJobName")
        or request.parameters.get("TransformJobName")
        or request.parameters.get("ModelName")
        for request in execution.requests
    }
    assert names == {
        "FitPreprocessor": "pp-run-1",
        "CreatePreprocessorModel": "pp-run-1",
        "TransformTrain": "tt-run-1",
        "TransformValidation": "tv-run-1",
        "TrainModel": item["training_job_name"],
    }
    model = next(r for r in execution.requests if r.action == "createModel").parameters
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{BUCKET}/preprocessor/pp-run-1/model.tar.gz"
    train = next(r for r in execution.requests if r.state.endswith("TrainModel")).parameters
    assert {"Key": "mme:preprocessor-generation", "Value": "pp-run-1"} in train["Tags"]

    partial = execute(deployment, "run-1", ["NewYork_NY"], manifest=False, partial=True)
    model = next(r for r in partial.requests if r.action == "createModel").parameters
    assert model["PrimaryContainer"]["ModelDataUrl"] == (
        f"s3://{BUCKET}/preprocessor/{SERVED_GENERATION}/model.tar.gz"
    )
    train = next(r for r in partial.requests if r.state.endswith("TrainModel")).parameters
    assert {"Key": "mme:preprocessor-generation", "Value": SERVED_GENERATION} in train["Tags"]


# --------------------------------------------------------------------------------------------------
# What differs between the algorithms, as the requests carry it

EXPECTED_TRAINING: Final = {
    # algorithm: (image in us-east-1, {channel: split that feeds it}, ContentType, transform mode)
    "linear-learner": (
        "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1",
        {"train": "train", "validation": "validation"},
        "text/csv;label_size=1",
        "labelled-transform",
    ),
    "xgboost": (
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        {"train": "train", "validation": "validation"},
        "text/csv",
        "labelled-transform",
    ),
    # k-NN has no validation channel: its held-out "test" channel gets the validation split.
    "knn": (
        "382416733822.dkr.ecr.us-east-1.amazonaws.com/knn:1",
        {"train": "train", "test": "validation"},
        "text/csv;label_size=1",
        "labelled-transform",
    ),
    # Random Cut Forest trains on the features alone, from one channel.
    "randomcutforest": (
        "382416733822.dkr.ecr.us-east-1.amazonaws.com/randomcutforest:1",
        {"train": "train"},
        "text/csv;label_size=0",
        "unlabelled-transform",
    ),
}
"""Spelled out here rather than read from ``ALGORITHMS``, so a changed description fails a test."""


def test_every_algorithm_is_expected() -> None:
    assert sorted(EXPECTED_TRAINING) == sorted(ALGORITHMS)


def test_each_algorithms_training_job_and_transforms(deployment: Deployment) -> None:
    name = deployment.config.training.algorithm
    image, channels, content_type, mode = EXPECTED_TRAINING[name]
    execution = execute(deployment, "run-1", ["Chicago_IL"], manifest=False)
    (item,) = json.loads(execution.s3.objects[(BUCKET, s3_layout.run_plan_key("run-1"))])
    (train,) = [r.parameters for r in execution.requests if r.state.endswith("/TrainModel")]

    assert train["TrainingJobName"] == f"{deployment.algorithm.job_step}-Chicago-IL-run-1"
    assert train["AlgorithmSpecification"] == {"TrainingImage": image, "TrainingInputMode": "File"}
    assert train["HyperParameters"] == deployment.config.training.training_hyperparameters
    assert all(isinstance(value, str) for value in train["HyperParameters"].values())
    assert [c["ChannelName"] for c in train["InputDataConfig"]] == list(channels)
    for channel in train["InputDataConfig"]:
        source = channel["DataSource"]["S3DataSource"]
        split = channels[channel["ChannelName"]]
        assert channel["ContentType"] == content_type
        assert (source["S3DataType"], source["S3Uri"]) == ("S3Prefix", item[f"preprocessed_{split}_uri"])
        # Random Cut Forest accepts only ShardedByS3Key on its train channel (one instance: same bytes).
        assert source["S3DataDistributionType"] == (
            "ShardedByS3Key" if name == "randomcutforest" else "FullyReplicated"
        )
    assert request_problems("CreateTrainingJob", train) == []

    transforms = [r.parameters for r in execution.requests if r.action == "createTransformJob"]
    assert [t["Environment"] for t in transforms] == [{"MME_PREPROCESSOR_MODE": mode}] * 2
    # The fit does not depend on the algorithm: the preprocessor always learns from the labelled rows.
    (fit,) = [r.parameters for r in execution.requests if r.state == "FitPreprocessor"]
    assert fit["HyperParameters"]["feature_dim"] == "10"


def test_hyperparameters_set_in_the_config_reach_the_request(
    cdk_context: dict[str, Any], tmp_path: Path
) -> None:
    """Overrides of an algorithm's defaults (here XGBoost's) are what CreateTrainingJob gets."""
    app = _synthesize(
        cdk_context,
        {"training": {"algorithm": "xgboost", "hyperparameters": {"num_round": 40, "early_stopping_rounds": 5,
                                                                    "eta": 0.05}}},
        tmp_path,
    )  # fmt: skip
    deployment = Deployment(
        algorithm=ALGORITHMS["xgboost"],
        config=app.config,
        definition=training_definition_of(app),
        plan_settings=plan_run.load_plan_settings(plan_environment(app)),
    )
    execution = execute(deployment, "run-1", ["Chicago_IL"], manifest=False)
    (train,) = [r.parameters for r in execution.requests if r.state.endswith("/TrainModel")]

    assert train["HyperParameters"] == {
        "num_round": "40",
        "objective": "reg:squarederror",
        "eta": "0.05",
        "max_depth": "5",
        "min_child_weight": "1.0",
        "subsample": "0.8",
        "gamma": "0.0",
        "eval_metric": "rmse",
        "early_stopping_rounds": "5",
    }
    assert all_problems(execution) == []
