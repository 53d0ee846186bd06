"""Fixtures for the Lambda handler tests: the handler modules and a moto account (S3, SageMaker).

``lambda`` is a Python keyword, so the handlers cannot be imported as a package: their folders go
on ``sys.path`` (as in the Lambda asset, where each handler sits next to ``mme_shared``) and the
tests import them by module name through :func:`importlib.import_module`.

moto's training jobs are born ``Completed`` with a fixed ``train:progress`` metric. The real
service reports other states, failure reasons and validation metrics, so :func:`set_job_fields`
sets those fields on moto's job record; everything else the handlers see (S3 objects, versions,
checksums, tags, error responses) is moto's own behaviour.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3  # type: ignore[import-untyped]
import pytest
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.sagemaker.models import sagemaker_backends

REPO_ROOT = Path(__file__).resolve().parents[2]
HANDLER_DIRS = (REPO_ROOT / "lambda" / "promote_artifact", REPO_ROOT / "lambda" / "generate_data")
for _handler_dir in HANDLER_DIRS:
    if str(_handler_dir) not in sys.path:
        sys.path.insert(0, str(_handler_dir))

promote_artifact = importlib.import_module("promote_artifact")
generate_data = importlib.import_module("generate_data")

REGION = "us-east-1"
BUCKET = "mme-artifacts-test"
RUN_ID = "run-20250501"
GENERATION = f"pp-{RUN_ID}"
"""The preprocessor generation a per-location job trained on (its ``mme:preprocessor-generation`` tag)."""
ROLE_ARN = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/sagemaker-execution"
KMS_KEY_ARN = f"arn:aws:kms:{REGION}:{DEFAULT_ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
LINEAR_LEARNER_IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"
ALGORITHM = "linear-learner"
"""The deployment's ``training.algorithm`` (the functions' ALGORITHM) unless a test says otherwise."""


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and region (never a real account), and fresh cached clients per test."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    promote_artifact._clients.cache_clear()
    generate_data._s3_client.cache_clear()
    yield
    promote_artifact._clients.cache_clear()
    generate_data._s3_client.cache_clear()


@dataclass(frozen=True)
class S3Call:
    """One S3 API call as the client was asked to make it."""

    operation: str
    key: str | None
    copy_source_key: str | None
    params: dict[str, Any]


def _copy_source_key(source: object) -> str | None:
    """The key of a CopySource, which botocore has already turned into ``bucket/key[?versionId=]``."""
    if isinstance(source, dict):
        return str(source["Key"])
    if isinstance(source, str):
        return unquote(source.split("?versionId=")[0].split("/", 1)[1])
    return None


class S3CallRecorder:
    """Records every S3 call a client makes (thread-safe: managed copies run in a thread pool)."""

    def __init__(self) -> None:
        self._calls: list[S3Call] = []
        self._lock = threading.Lock()

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        call = S3Call(
            operation=str(model.name),
            key=params.get("Key"),
            copy_source_key=_copy_source_key(params.get("CopySource")),
            params=dict(params),
        )
        with self._lock:
            self._calls.append(call)

    @property
    def calls(self) -> list[S3Call]:
        with self._lock:
            return list(self._calls)

    def operations(self) -> list[str]:
        return [call.operation for call in self.calls]

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()


@dataclass
class MotoAccount:
    """A mocked account: the versioned artifact bucket, the project key and recording clients."""

    s3: Any
    """The client handed to the code under test; every call it makes is recorded."""
    sagemaker: Any
    inspect_s3: Any
    """A second client for the tests' own reads and writes, so they never show up in the record."""
    kms_key_arn: str
    recorder: S3CallRecorder

    def environment(self) -> dict[str, str]:
        return {"BUCKET_NAME": BUCKET, "KMS_KEY_ARN": self.kms_key_arn, "ALGORITHM": ALGORITHM}

    def bucket_state(self) -> tuple[list[tuple[str, str, str]], list[str]]:
        """Every object version and delete marker, plus unfinished multipart uploads.

        Any write (even an overwrite with identical bytes) adds a version in a versioned bucket,
        so equal states before and after a call prove the call wrote nothing.
        """
        versions: list[tuple[str, str, str]] = []
        for page in self.inspect_s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET):
            versions += [(v["Key"], v["VersionId"], v["ETag"]) for v in page.get("Versions", [])]
            versions += [(m["Key"], m["VersionId"], "delete-marker") for m in page.get("DeleteMarkers", [])]
        uploads = self.inspect_s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
        return sorted(versions), sorted(u["Key"] for u in uploads)

    def object_keys(self) -> list[str]:
        response = self.inspect_s3.list_objects_v2(Bucket=BUCKET)
        return sorted(obj["Key"] for obj in response.get("Contents", []))

    def read(self, key: str) -> bytes:
        body: bytes = self.inspect_s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return body

    def put(self, key: str, body: bytes) -> None:
        self.inspect_s3.put_object(Bucket=BUCKET, Key=key, Body=body)

    def put_many(self, keys: Iterable[str], body: bytes) -> None:
        """Seed objects straight into moto's S3 store: the keys, bodies and versions a
        ``put_object`` each would leave (without the CRC32 checksum, which no reader here asks for),
        but without an HTTP round trip each (16 us against 1.2 ms), for setups of thousands of keys,
        such as several list pages."""
        store = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for key in keys:
            store.put_object(BUCKET, key, body)


@dataclass(frozen=True)
class _MotoSession:
    mock: Any
    sagemaker: Any
    inspect_s3: Any


@pytest.fixture(scope="package")
def _moto() -> Iterator[_MotoSession]:
    """One moto mock (and the clients that never change) for this package, reset before every test.

    Starting a fresh ``mock_aws`` and new clients per test costs about 0.3 s a test; resetting
    moto's backends gives the same isolation in milliseconds. Package scope stops the mock before
    any other test package runs.
    """
    mock = mock_aws()
    mock.start()
    yield _MotoSession(
        mock=mock,
        sagemaker=boto3.client("sagemaker", region_name=REGION),
        inspect_s3=boto3.client("s3", region_name=REGION),
    )
    mock.stop()


@pytest.fixture
def aws(_moto: _MotoSession) -> MotoAccount:
    """An empty account per test: the versioned artifact bucket and nothing else.

    The project key is only an ARN here: moto's S3 records SSE-KMS settings without calling KMS,
    and creating a moto KMS key generates an RSA key pair (about 50 ms) for nothing.
    """
    _moto.mock.reset()
    _moto.inspect_s3.create_bucket(Bucket=BUCKET)
    _moto.inspect_s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3 = boto3.client("s3", region_name=REGION)  # fresh per test: tests register hooks on it
    recorder = S3CallRecorder()
    s3.meta.events.register("before-parameter-build.s3", recorder)
    return MotoAccount(
        s3=s3,
        sagemaker=_moto.sagemaker,
        inspect_s3=_moto.inspect_s3,
        kms_key_arn=KMS_KEY_ARN,
        recorder=recorder,
    )


def set_job_fields(job_name: str, **fields: Any) -> None:
    """Set fields of moto's record of a training job (snake_case, e.g. training_job_status)."""
    job = sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION].training_jobs[job_name]
    for name, value in fields.items():
        setattr(job, name, value)


TrainingJobFactory = Callable[..., str]


@pytest.fixture
def training_job(aws: MotoAccount) -> TrainingJobFactory:
    """Create a Completed training job whose artifact exists; returns the artifact's key.

    ``location`` becomes the ``mme:location`` tag (None: no tag); a location's job is also tagged
    with ``generation`` (None: no tag), whose preprocessor artifact is then put in place as the
    pipeline would have promoted it; ``artifact`` is the object's bytes (None: no object). Extra
    keyword arguments are moto job fields (see :func:`set_job_fields`).
    """

    def create(
        job_name: str,
        *,
        location: str | None,
        artifact: bytes | None = b"model.tar.gz bytes of a linear learner model",
        extra_tags: dict[str, str] | None = None,
        generation: str | None = GENERATION,
        **fields: Any,
    ) -> str:
        tags = dict(extra_tags or {})
        if location is not None:
            tags[promote_artifact.LOCATION_TAG_KEY] = location
            if generation is not None:
                tags[promote_artifact.GENERATION_TAG_KEY] = generation
                aws.put(f"preprocessor/{generation}/model.tar.gz", b"the generation's preprocessor")
        aws.sagemaker.create_training_job(
            TrainingJobName=job_name,
            AlgorithmSpecification={"TrainingImage": LINEAR_LEARNER_IMAGE, "TrainingInputMode": "File"},
            RoleArn=ROLE_ARN,
            OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/training-output/{RUN_ID}"},
            ResourceConfig={"InstanceType": "ml.c4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
            StoppingCondition={"MaxRuntimeInSeconds": 3600},
            Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
        )
        set_job_fields(job_name, **fields)
        key = f"training-output/{RUN_ID}/{job_name}/output/model.tar.gz"
        if artifact is not None:
            aws.put(key, artifact)
        return key

    return create


def handler_environment(aws: MotoAccount, **overrides: str) -> dict[str, str]:
    """The environment the stack gives the functions (values overridable per test)."""
    return {**aws.environment(), **overrides}


@pytest.fixture
def lambda_environment(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    """Replace the handler-visible environment variables for one test."""
    names = (
        "BUCKET_NAME",
        "KMS_KEY_ARN",
        "ALGORITHM",
        "HOUSES_PER_LOCATION",
        "SEED",
        "VALIDATION_FRACTION",
        "TEST_FRACTION",
    )

    def apply(environment: dict[str, str]) -> None:
        for name in names:
            monkeypatch.delenv(name, raising=False)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)

    return apply
