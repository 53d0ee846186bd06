"""Preprocessor generations: which exist completely, which is newest, and which the endpoint serves.

A generation (see :mod:`mme_shared.s3_layout`) is one fitted preprocessor plus the models trained
on its output. Three small JSON documents say where each generation stands:

``preprocessor/<generation>/complete.json`` (:class:`CompleteGeneration`), written once by the run
that fitted the generation, after every location of that run was promoted into it::

    {"format_version": 1, "generation": "pp-refit-1", "run_id": "refit-1",
     "location_count": 4, "completed_at": "2026-12-01T12:00:00Z", "algorithm": "xgboost"}

``algorithm`` names the built-in algorithm its models were trained with (``training.algorithm``);
records written before there was a choice have no such field and hold linear-learner models. The
endpoint refuses to serve a generation of another algorithm than its MultiModel container's, and a
run of a deployment whose algorithm changed fits a new generation instead of adding to the old one.

``preprocessor/newest.json`` and ``preprocessor/serving.json`` (:class:`GenerationRef`): the newest
complete generation (written with ``complete.json``), and the generation the endpoint serves
(written by the endpoint stack only after CloudFormation has finished updating the endpoint to it,
so a client that reads it and then the generation's pointers invokes what is served)::

    {"format_version": 1, "generation": "pp-refit-1", "endpoint_name": "Endpoint-abc" | null,
     "updated_at": "2026-12-01T12:00:00Z", "next_generation": "pp-refit-2"}

``next_generation`` (serving.json only, optional: absent and null mean the same, and it is written
only while set, so newest.json and a settled serving.json keep their original four fields) names the
generation an endpoint update is switching to. The endpoint stack writes it *before* the update
starts, keeps ``generation`` = the one still served, and removes it once the endpoint serves the new
generation (``generation`` then names it) or the update was rolled back. While it is set, either
generation may be the one a request reaches: the client rule is

    invoke with ``generation``'s pointer; if that fails with "model not found", invoke with
    ``next_generation``'s pointer; if both fail so, re-read serving.json and start again.

A TargetModel the endpoint's current fleet does not serve is answered with SageMaker Runtime's
``ValidationError`` (HTTP 400; the request names an object under the MultiModel prefix that does not
exist), never with a prediction from another preprocessor.

Unknown or missing fields are errors, as for model pointers (only ``next_generation`` may be
absent). Standard library only: callers pass their boto3 S3 client, and S3's errors are caught as
that client's ``exceptions.ClientError``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from mme_shared import s3_layout
from mme_shared.naming import validate_generation, validate_run_id

GENERATION_FORMAT_VERSION: Final = 1
ALGORITHM_ENV: Final = "ALGORITHM"
"""The Lambda environment variable naming the deployment's algorithm (``training.algorithm``)."""
LEGACY_ALGORITHM: Final = "linear-learner"
"""The algorithm of a complete.json without an ``algorithm`` field (the only one there was)."""
_ALGORITHM_RE: Final = re.compile(r"[a-z][a-z0-9-]{0,31}")


def validate_algorithm_name(name: object, where: str = "algorithm") -> str:
    """Return ``name`` if it has the shape of a ``training.algorithm`` value, else raise."""
    if not isinstance(name, str) or _ALGORITHM_RE.fullmatch(name) is None:
        raise GenerationRecordError(
            f"{where} {name!r} is not an algorithm name (1 to 32 characters from a-z, 0-9 and '-', "
            "starting with a letter)"
        )
    return name


_NOT_FOUND_CODES: Final = frozenset({"404", "NoSuchKey", "NotFound"})


class GenerationRecordError(ValueError):
    """A generation document (or the values for a new one) does not follow the format above."""


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_timestamp(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise GenerationRecordError(f"{where} must be an ISO 8601 string, got {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise GenerationRecordError(f"{where} {value!r} is not an ISO 8601 timestamp") from None
    if moment.utcoffset() is None:
        raise GenerationRecordError(f"{where} {value!r} has no time zone; use UTC with 'Z'")
    return moment.astimezone(UTC)


def _check_fields(
    document: object, fields: frozenset[str], what: str, optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise GenerationRecordError(f"{what} must be a JSON object, got {type(document).__name__}")
    if not fields <= document.keys() <= fields | optional:
        missing, unknown = fields - document.keys(), document.keys() - fields - optional
        raise GenerationRecordError(
            f"{what} must have exactly the fields {', '.join(sorted(fields))}"
            + (f" (optional: {', '.join(sorted(optional))})" if optional else "")
            + (f"; missing {', '.join(sorted(missing))}" if missing else "")
            + (f"; unknown {', '.join(sorted(map(str, unknown)))}" if unknown else "")
        )
    if document["format_version"] != GENERATION_FORMAT_VERSION or isinstance(
        document["format_version"], bool
    ):
        raise GenerationRecordError(
            f"{what} format_version {document['format_version']!r} is not supported; this reader "
            f"understands {GENERATION_FORMAT_VERSION}"
        )
    return document


def _checked_generation(generation: object) -> str:
    try:
        return validate_generation(generation)
    except ValueError as error:
        raise GenerationRecordError(str(error)) from None


def _encode(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, sort_keys=True, indent=2) + "\n").encode("utf-8")


def _decode(body: bytes, what: str) -> object:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise GenerationRecordError(f"{what} is not valid JSON: {error}") from None


@dataclass(frozen=True)
class CompleteGeneration:
    """``complete.json``: the generation has a promoted model for every location of its run."""

    generation: str
    run_id: str
    location_count: int
    completed_at: datetime
    algorithm: str = LEGACY_ALGORITHM
    """The algorithm every model of the generation was trained with."""

    _FIELDS = frozenset({"format_version", "generation", "run_id", "location_count", "completed_at"})
    _OPTIONAL = frozenset({"algorithm"})

    def __post_init__(self) -> None:
        _checked_generation(self.generation)
        validate_algorithm_name(self.algorithm, "a generation's algorithm")
        try:
            validate_run_id(self.run_id)
        except ValueError as error:
            raise GenerationRecordError(str(error)) from None
        count = self.location_count
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise GenerationRecordError(f"location_count must be a positive integer, got {count!r}")
        if not isinstance(self.completed_at, datetime) or self.completed_at.utcoffset() is None:
            raise GenerationRecordError(
                f"completed_at must be a timezone-aware datetime, got {self.completed_at!r}"
            )
        object.__setattr__(self, "completed_at", self.completed_at.astimezone(UTC).replace(microsecond=0))

    @property
    def key(self) -> str:
        return s3_layout.generation_record_key(self.generation)

    def to_json(self) -> bytes:
        return _encode(
            {
                "format_version": GENERATION_FORMAT_VERSION,
                "generation": self.generation,
                "run_id": self.run_id,
                "location_count": self.location_count,
                "completed_at": _timestamp(self.completed_at),
                "algorithm": self.algorithm,
            }
        )

    @classmethod
    def from_json(cls, body: bytes) -> CompleteGeneration:
        what = "a generation's complete.json"
        document = _check_fields(_decode(body, what), cls._FIELDS, what, cls._OPTIONAL)
        return cls(
            generation=_checked_generation(document["generation"]),
            run_id=document["run_id"],
            location_count=document["location_count"],
            completed_at=_parse_timestamp(document["completed_at"], f"{what} completed_at"),
            algorithm=validate_algorithm_name(
                document.get("algorithm", LEGACY_ALGORITHM), f"{what} algorithm"
            ),
        )


@dataclass(frozen=True)
class GenerationRef:
    """``newest.json`` or ``serving.json``: names one generation (and, when served, the endpoint).

    ``next_generation``: only in serving.json, only while an endpoint update switches to it.
    """

    generation: str
    updated_at: datetime
    endpoint_name: str | None = None
    next_generation: str | None = None

    _FIELDS = frozenset({"format_version", "generation", "endpoint_name", "updated_at"})
    _OPTIONAL_FIELDS = frozenset({"next_generation"})

    def __post_init__(self) -> None:
        _checked_generation(self.generation)
        if self.next_generation is not None:
            _checked_generation(self.next_generation)
            if self.next_generation == self.generation:
                raise GenerationRecordError(
                    f"next_generation must differ from generation {self.generation!r} (or be null)"
                )
        if self.endpoint_name is not None and (
            not isinstance(self.endpoint_name, str) or not self.endpoint_name
        ):
            raise GenerationRecordError(
                f"endpoint_name must be a non-empty string or null, got {self.endpoint_name!r}"
            )
        if not isinstance(self.updated_at, datetime) or self.updated_at.utcoffset() is None:
            raise GenerationRecordError(
                f"updated_at must be a timezone-aware datetime, got {self.updated_at!r}"
            )
        object.__setattr__(self, "updated_at", self.updated_at.astimezone(UTC).replace(microsecond=0))

    def to_json(self) -> bytes:
        document: dict[str, Any] = {
            "format_version": GENERATION_FORMAT_VERSION,
            "generation": self.generation,
            "endpoint_name": self.endpoint_name,
            "updated_at": _timestamp(self.updated_at),
        }
        if self.next_generation is not None:
            document["next_generation"] = self.next_generation
        return _encode(document)

    @classmethod
    def from_json(cls, body: bytes, *, key: str = "a generation reference") -> GenerationRef:
        document = _check_fields(_decode(body, key), cls._FIELDS, key, cls._OPTIONAL_FIELDS)
        following = document.get("next_generation")
        return cls(
            generation=_checked_generation(document["generation"]),
            endpoint_name=document["endpoint_name"],
            updated_at=_parse_timestamp(document["updated_at"], f"{key} updated_at"),
            next_generation=None if following is None else _checked_generation(following),
        )


# --------------------------------------------------------------------------------------------------
# Reading and writing (the caller's boto3 S3 client)


def _get(s3: Any, bucket: str, key: str) -> bytes | None:
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.ClientError as error:
        if str(error.response.get("Error", {}).get("Code", "")) in _NOT_FOUND_CODES:
            return None
        raise
    return body


def _put(s3: Any, bucket: str, key: str, body: bytes, kms_key_arn: str) -> None:
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/json",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=kms_key_arn,
    )


def read_ref(s3: Any, bucket: str, key: str) -> GenerationRef | None:
    """``newest.json`` or ``serving.json`` (pass the key), or None when it does not exist."""
    if key not in (s3_layout.NEWEST_GENERATION_KEY, s3_layout.SERVING_GENERATION_KEY):
        raise ValueError(f"{key!r} is not a generation reference key")
    body = _get(s3, bucket, key)
    return None if body is None else GenerationRef.from_json(body, key=f"s3://{bucket}/{key}")


def write_ref(s3: Any, bucket: str, key: str, ref: GenerationRef, *, kms_key_arn: str) -> None:
    """Write ``newest.json`` or ``serving.json``, SSE-KMS under the project key."""
    if key not in (s3_layout.NEWEST_GENERATION_KEY, s3_layout.SERVING_GENERATION_KEY):
        raise ValueError(f"{key!r} is not a generation reference key")
    _put(s3, bucket, key, ref.to_json(), kms_key_arn)


def read_complete(s3: Any, bucket: str, generation: str) -> CompleteGeneration | None:
    """The generation's ``complete.json``, or None while the generation is not complete."""
    body = _get(s3, bucket, s3_layout.generation_record_key(generation))
    if body is None:
        return None
    record = CompleteGeneration.from_json(body)
    if record.generation != generation:
        raise GenerationRecordError(
            f"s3://{bucket}/{s3_layout.generation_record_key(generation)} names generation "
            f"{record.generation!r}, not {generation!r}"
        )
    return record


def write_complete(s3: Any, bucket: str, record: CompleteGeneration, *, kms_key_arn: str) -> None:
    """Write the generation's ``complete.json``, SSE-KMS under the project key."""
    _put(s3, bucket, record.key, record.to_json(), kms_key_arn)
