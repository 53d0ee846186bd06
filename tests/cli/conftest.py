"""Fixtures for CLI tests: a moto account holding a deployment's stacks and resources.

``deployed`` creates the project's stacks in moto CloudFormation with the outputs the real stacks
have (names only; the resources behind them are created in moto where a test needs them), and
``run_cli`` runs the console-script entry point with arguments, returning exit code and output.

The endpoint stack's ``Algorithm`` output is the ``deployed_algorithm`` fixture (linear learner); a
test parametrizes ``deployed_algorithm`` over :data:`ALGORITHM_NAMES` to run against each one, with
:func:`answer_body` giving the body that algorithm's container really answers with.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from moto import mock_aws
from pydantic import TypeAdapter

from mme_cli import output
from mme_cli.main import run
from mme_constructs.algorithms import ALGORITHMS
from mme_shared import s3_layout
from mme_shared import stack_names as names
from mme_shared.generation import CompleteGeneration, GenerationRef
from mme_shared.stack_names import StackRole, stack_name

REGION = "us-east-1"
PREFIX = "Mme"  # the default config's stack_prefix
ACCOUNT = "123456789012"  # moto's default account
BUCKET = "mme-artifacts-test"
ENDPOINT = "mme-endpoint-test"
STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:mme-training-test"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALGORITHM_NAMES = tuple(ALGORITHMS)
"""Every built-in algorithm, for ``@pytest.mark.parametrize("deployed_algorithm", ALGORITHM_NAMES)``."""


def answer_body(algorithm: str, values: Sequence[float], *, csv_separator: str = "\n") -> tuple[bytes, str]:
    """The body and content type the algorithm's container answers ``values`` (one per row) with.

    Written from each algorithm's documented inference format, not from the parsers in
    ``mme_constructs.algorithms``, so that a wrong parser fails these tests. XGBoost answers CSV:
    one number per row, separated by line breaks (``csv_separator``) or commas.
    """
    if algorithm == "xgboost":
        return csv_separator.join(f"{value}" for value in values).encode(), "text/csv"
    records: dict[str, tuple[str, str]] = {
        "linear-learner": ("predictions", "score"),
        "knn": ("predictions", "predicted_label"),
        "randomcutforest": ("scores", "score"),
    }
    key, field = records[algorithm]
    return json.dumps({key: [{field: value} for value in values]}).encode(), "application/json"


@pytest.fixture
def deployed_algorithm() -> str:
    """The endpoint stack's ``Algorithm`` output; parametrize it to deploy another algorithm."""
    return "linear-learner"


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def create_stack(name: str, outputs: Mapping[str, str]) -> None:
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},  # any resource moto can create
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=name, TemplateBody=json.dumps(template)
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for variable in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        share_clients(monkeypatch)
        yield


_SESSION = boto3.Session()
"""The session of every ``boto3.client`` call in a CLI test, so botocore parses each service model
once per worker. moto patches botocore itself, so its clients are mocked like any other."""


def share_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """``boto3.client(service, region_name=...)`` returns one client per service and region for the
    rest of the test, instead of building a new one (about 10 ms of CPU) at each of the hundreds of
    calls the fixtures make. A call with any other argument still gets a client of its own."""
    clients: dict[tuple[str, str | None], Any] = {}

    def client(service_name: str, region_name: str | None = None, **options: Any) -> Any:
        if options:
            return _SESSION.client(service_name, region_name=region_name, **options)
        if (service_name, region_name) not in clients:
            clients[service_name, region_name] = _SESSION.client(service_name, region_name=region_name)
        return clients[service_name, region_name]

    monkeypatch.setattr(boto3, "client", client)


@pytest.fixture
def deployed(aws: None, deployed_algorithm: str) -> None:
    """The four stacks of the default config (prefix Mme), with the outputs the CLI reads."""
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    create_stack(
        stack_name(PREFIX, StackRole.STORAGE),
        {
            names.ARTIFACT_BUCKET_NAME.key: BUCKET,
            names.MODEL_PREFIX_URI.key: f"s3://{BUCKET}/models/",
            names.KEY_ARN.key: KEY_ARN,
        },
    )
    create_stack(stack_name(PREFIX, StackRole.TRAINING), {names.STATE_MACHINE_ARN.key: STATE_MACHINE_ARN})
    create_stack(
        stack_name(PREFIX, StackRole.ENDPOINT),
        {
            names.ENDPOINT_NAME.key: ENDPOINT,
            names.VARIANT_NAME.key: "AllTraffic",
            names.ENDPOINT_ARN.key: f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}",
            names.ALGORITHM.key: deployed_algorithm,
        },
    )
    create_stack(
        stack_name(PREFIX, StackRole.MONITORING),
        {names.DASHBOARD_NAME.key: "mme-dashboard", names.ALARM_TOPIC_ARN.key: "arn:aws:sns:x"},
    )


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    def invoke(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["mme", *args])
        try:
            run()
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(exit_code=code, stdout=captured.out, stderr=captured.err)

    return invoke


GENERATION = "pp-run1"
"""The generation the tests' endpoint serves (``preprocessor/serving.json``)."""
OLD_GENERATION = "pp-run0"
NEW_GENERATION = "pp-run2"
RECORDED_AT = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def record_complete(
    generation: str, *, newest: bool = True, location_count: int = 3, algorithm: str = "linear-learner"
) -> None:
    """Write the generation's preprocessor artifact and complete.json (and newest.json)."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key=s3_layout.preprocessor_artifact_key(generation), Body=b"preprocessor")
    record = CompleteGeneration(
        generation=generation,
        run_id=generation.removeprefix("pp-"),
        location_count=location_count,
        completed_at=RECORDED_AT,
        algorithm=algorithm,
    )
    s3.put_object(Bucket=BUCKET, Key=record.key, Body=record.to_json())
    if newest:
        ref = GenerationRef(generation=generation, updated_at=RECORDED_AT)
        s3.put_object(Bucket=BUCKET, Key=s3_layout.NEWEST_GENERATION_KEY, Body=ref.to_json())


def record_serving(generation: str, endpoint_name: str | None = None) -> None:
    """Write ``preprocessor/serving.json`` as the endpoint stack does after an update."""
    ref = GenerationRef(generation=generation, updated_at=RECORDED_AT, endpoint_name=endpoint_name)
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=BUCKET, Key=s3_layout.SERVING_GENERATION_KEY, Body=ref.to_json()
    )


@pytest.fixture
def served(deployed: None, deployed_algorithm: str) -> None:
    """GENERATION is complete (trained with the endpoint's algorithm), newest and served by the endpoint."""
    record_complete(GENERATION, algorithm=deployed_algorithm)
    record_serving(GENERATION, ENDPOINT)


UNREADABLE_ANSWERS: dict[str, tuple[bytes, str]] = {
    # Another algorithm's answer, or none: what a mix-up of formats looks like.
    "linear-learner": (
        b'{"predictions": [{"predicted_label": 1.0}]}',
        '{"predictions": [{"score": <price>}, ...]}',
    ),
    "xgboost": (
        b'{"predictions": [{"score": 1.0}]}',
        "one number per row, separated by commas or line breaks",
    ),
    "knn": (b'{"predictions": [{"score": 1.0}]}', '{"predictions": [{"predicted_label": <price>}, ...]}'),
    "randomcutforest": (
        b'{"predictions": [{"score": 1.0}]}',
        '{"scores": [{"score": <anomaly score>}, ...]}',
    ),
}
"""Per deployed algorithm: a body in another algorithm's format, and the shape the error names."""


_ADAPTERS: dict[str, TypeAdapter[Any]] = {}


def json_document(result: CliResult, schema: str) -> Any:
    """The command's stdout as the one JSON document of ``schema`` (``mme.status/1``...).

    Validated strictly against the schema's TypedDict in :mod:`mme_cli.output`: anything besides one
    JSON document on stdout, a missing or extra key, a value of another type or another schema
    version fails the test. Returns the document as parsed.
    """
    assert result.exit_code in {0, 1}, result.stderr
    if schema not in _ADAPTERS:
        _ADAPTERS[schema] = TypeAdapter(output.SCHEMAS[schema])
    _ADAPTERS[schema].validate_json(result.stdout)
    document = json.loads(result.stdout)
    assert document["schema"] == schema
    return document
