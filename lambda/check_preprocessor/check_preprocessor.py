"""CloudFormation custom resource: refuse to go on until the promoted preprocessor artifact exists.

The endpoint stack's SageMaker Model reads ``preprocessor/current/model.tar.gz``, which only a
training run produces. Without this check a premature ``cdk deploy`` of the endpoint stack would
create the model and then spend about 20 minutes failing to start the endpoint; with it, the stack
fails within seconds and the resource's Reason says what to run.

CloudFormation invokes this function directly (the resource's ``ServiceToken`` is the function's
ARN; no Provider framework), and waits for the answer PUT to the request's pre-signed
``ResponseURL``. Every path therefore ends in exactly one response, FAILED included, so a stack is
never left waiting for CloudFormation's one-hour timeout.

Request (the fields CloudFormation sends; the resource's own properties)::

    RequestType: Create | Update | Delete, ResponseURL, StackId, RequestId, LogicalResourceId,
    PhysicalResourceId (Update, Delete), ResourceProperties: {ServiceToken, ArtifactKey?, Nonce?}

``ArtifactKey`` (optional) states in the template which key is checked; it must be
``preprocessor/current/model.tar.gz``, the one key this function checks and may read. ``Nonce``
(optional string) exists only to make CloudFormation send an Update, which checks again and
refreshes the data below: CloudFormation sends an Update only when a property changes. Any other
property is refused, so a misspelt ``Nonce`` cannot silently disable the re-check.

Response::

    Create/Update, artifact present: SUCCESS, PhysicalResourceId "<bucket>/<key>",
        Data {"VersionId": <S3 version id, "null" if unversioned>, "ETag": <without quotes>}
    Create/Update, artifact missing: FAILED, Reason = one sentence saying what to run
    Delete: SUCCESS without calling S3 (a check never blocks a stack deletion or rollback)
    anything unexpected: FAILED with the error

Environment: ``BUCKET_NAME`` (the artifact bucket). The key is ``s3_layout.PREPROCESSOR_ARTIFACT_KEY``.

Permissions: ``s3:GetObject`` on ``arn:<partition>:s3:::<bucket>/preprocessor/current/model.tar.gz``
(HeadObject is authorised as GetObject) and ``s3:ListBucket`` on ``arn:<partition>:s3:::<bucket>``,
without which S3 answers a missing object with 403 instead of 404 (the 403 is still reported
clearly, but cannot say which of the two it is). HeadObject returns metadata only and decrypts
nothing, so no KMS permission is asked for (not verifiable offline: should a real deploy report 403
for an artifact that exists, add ``kms:Decrypt`` on the project key). The response goes to a
pre-signed S3 URL, which needs no permission.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeAlias

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mme_shared import s3_layout
from mme_shared.handler_input import BUCKET_NAME_RE as _BUCKET_NAME_RE

LOGGER = logging.getLogger(__name__)
LOGGER.setLevel(logging.INFO)

S3Client: TypeAlias = Any
"""A boto3 S3 client (boto3 ships no type information; the Lambda runtime provides boto3)."""

ARTIFACT_KEY: Final = s3_layout.PREPROCESSOR_ARTIFACT_KEY
ALLOWED_PROPERTIES: Final = ("ServiceToken", "ArtifactKey", "Nonce")
REQUEST_TYPES: Final = ("Create", "Update", "Delete")

RESPONSE_MAX_BYTES: Final = 4096
"""CloudFormation rejects a custom resource response body larger than 4 KB."""
SEND_TIMEOUT_SECONDS: Final = 10.0
SEND_ATTEMPTS: Final = 3
SEND_BACKOFF_SECONDS: Final = 1.0
"""Waits 1 s, then 2 s, between attempts: at most about 33 s in all, well inside a 1-minute timeout."""
FALLBACK_PHYSICAL_ID: Final = "preprocessor-check-not-created"
"""Only when a Create fails before the bucket is known: CloudFormation requires some id."""

_NOT_FOUND_CODES: Final = frozenset({"404", "NoSuchKey", "NotFound"})
_FORBIDDEN_CODES: Final = frozenset({"403", "AccessDenied", "Forbidden"})
_TRAIN_FIRST: Final = (
    "run `make deploy` (it deploys storage and training, trains, then deploys the endpoint) or start "
    "the training state machine and wait for it before deploying the endpoint stack"
)


class InvalidRequest(Exception):  # noqa: N818  (reads as what happened, like the other handlers)
    """The event or the environment is not what this function expects."""


Status: TypeAlias = Literal["SUCCESS", "FAILED"]


@dataclass(frozen=True)
class Outcome:
    """What to tell CloudFormation."""

    status: Status
    physical_resource_id: str
    reason: str
    data: dict[str, str] = field(default_factory=dict)


class Sender(Protocol):
    """Delivers the JSON response body to CloudFormation's pre-signed URL."""

    def __call__(self, url: str, body: bytes) -> None: ...


UrlOpener: TypeAlias = Callable[..., Any]


# --------------------------------------------------------------------------------------------------
# The check


def missing_reason(bucket: str) -> str:
    """The FAILED reason when the artifact does not exist (one sentence)."""
    uri = s3_layout.s3_uri(bucket, ARTIFACT_KEY)
    return f"The preprocessor artifact {uri} does not exist yet: {_TRAIN_FIRST}."


def forbidden_reason(bucket: str) -> str:
    """The FAILED reason when S3 answers 403: a missing object, or a role that may not read it."""
    uri = s3_layout.s3_uri(bucket, ARTIFACT_KEY)
    return (
        f"The preprocessor artifact {uri} does not exist yet or this check may not read it (S3 answered "
        f"403 AccessDenied): {_TRAIN_FIRST}; if training has already succeeded, give the check's role "
        "s3:GetObject on that key and s3:ListBucket on the bucket."
    )


def physical_resource_id(bucket: str) -> str:
    """The resource's id while the artifact exists: the same for every check of one bucket."""
    return f"{bucket}/{ARTIFACT_KEY}"


def check_artifact(s3: S3Client, bucket: str) -> Outcome:
    """HeadObject the preprocessor artifact; SUCCESS with its version and ETag, or FAILED saying why."""
    try:
        head = s3.head_object(Bucket=bucket, Key=ARTIFACT_KEY)
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _NOT_FOUND_CODES:
            return Outcome("FAILED", physical_resource_id(bucket), missing_reason(bucket))
        if code in _FORBIDDEN_CODES:
            return Outcome("FAILED", physical_resource_id(bucket), forbidden_reason(bucket))
        message = error.response.get("Error", {}).get("Message", "")
        return Outcome(
            "FAILED",
            physical_resource_id(bucket),
            f"Could not check the preprocessor artifact {s3_layout.s3_uri(bucket, ARTIFACT_KEY)}: "
            f"S3 answered {code or 'an error'}{f' ({message})' if message else ''}.",
        )
    version_id = str(head.get("VersionId") or "null")
    etag = str(head.get("ETag", "")).strip('"')
    return Outcome(
        "SUCCESS",
        physical_resource_id(bucket),
        f"Found {s3_layout.s3_uri(bucket, ARTIFACT_KEY)} (version {version_id}).",
        {"VersionId": version_id, "ETag": etag},
    )


def load_bucket(environ: Mapping[str, str]) -> str:
    """BUCKET_NAME, validated; raise InvalidRequest naming the variable otherwise."""
    bucket = environ.get("BUCKET_NAME", "")
    if _BUCKET_NAME_RE.fullmatch(bucket) is None:
        raise InvalidRequest(
            f"Environment variable BUCKET_NAME {bucket!r} is not an S3 bucket name; the stack must set "
            "it to the artifact bucket."
        )
    return bucket


def _check_properties(event: Mapping[str, Any]) -> None:
    properties = event.get("ResourceProperties") or {}
    if not isinstance(properties, Mapping):
        raise InvalidRequest("ResourceProperties must be an object.")
    unknown = sorted(str(name) for name in properties if name not in ALLOWED_PROPERTIES)
    if unknown:
        raise InvalidRequest(
            f"Unknown resource propert{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}; "
            f"allowed: {', '.join(ALLOWED_PROPERTIES)}."
        )
    key = properties.get("ArtifactKey", ARTIFACT_KEY)
    if key != ARTIFACT_KEY:
        raise InvalidRequest(
            f"The ArtifactKey property {key!r} is not {ARTIFACT_KEY!r}, the one key this check checks "
            "and may read."
        )
    nonce = properties.get("Nonce")
    if nonce is not None and not isinstance(nonce, str):
        raise InvalidRequest("The Nonce property must be a string.")


def evaluate(
    event: Mapping[str, Any], *, get_s3: Callable[[], S3Client], environ: Mapping[str, str]
) -> Outcome:
    """Decide the response for a well-formed request; may raise (the caller turns that into FAILED)."""
    request_type = event.get("RequestType")
    if request_type == "Delete":
        existing = str(event.get("PhysicalResourceId") or FALLBACK_PHYSICAL_ID)
        return Outcome("SUCCESS", existing, "Nothing to delete: the check created nothing.")
    if request_type not in REQUEST_TYPES:
        raise InvalidRequest(f"RequestType {request_type!r} is not one of {', '.join(REQUEST_TYPES)}.")
    _check_properties(event)
    return check_artifact(get_s3(), load_bucket(environ))


def failure_physical_id(event: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """The id to report with an unexpected failure: keep an existing one, else the usual one."""
    existing = event.get("PhysicalResourceId")
    if isinstance(existing, str) and existing:
        return existing
    bucket = environ.get("BUCKET_NAME", "")
    return physical_resource_id(bucket) if _BUCKET_NAME_RE.fullmatch(bucket) else FALLBACK_PHYSICAL_ID


# --------------------------------------------------------------------------------------------------
# The response


def response_body(event: Mapping[str, Any], outcome: Outcome) -> dict[str, Any]:
    """The JSON document CloudFormation expects at the ResponseURL, its Reason cut to fit 4 KB."""
    body = {
        "Status": outcome.status,
        "Reason": "",
        "PhysicalResourceId": outcome.physical_resource_id,
        "StackId": event.get("StackId", ""),
        "RequestId": event.get("RequestId", ""),
        "LogicalResourceId": event.get("LogicalResourceId", ""),
        "Data": dict(outcome.data),
    }
    budget = RESPONSE_MAX_BYTES - len(encode_body(body))
    body["Reason"] = _shorten(outcome.reason, budget)
    return body


def _json_size(text: str) -> int:
    return len(json.dumps(text)) - 2


def _shorten(text: str, limit: int) -> str:
    """``text``, or its start plus "...", taking at most ``limit`` bytes inside a JSON string."""
    if _json_size(text) <= limit:
        return text
    kept, size = [], 3
    for char in text:
        size += _json_size(char)
        if size > limit:
            break
        kept.append(char)
    return "".join(kept) + "..."


def encode_body(body: Mapping[str, Any]) -> bytes:
    """Compact JSON (ASCII escapes, so the byte count is what CloudFormation measures)."""
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def send_response(
    url: str,
    body: bytes,
    *,
    urlopen: UrlOpener = urllib.request.urlopen,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = SEND_ATTEMPTS,
    timeout: float = SEND_TIMEOUT_SECONDS,
    allowed_schemes: Collection[str] = ("https",),
) -> None:
    """PUT ``body`` to the pre-signed URL, retrying network errors and 5xx answers.

    The Content-Type must be empty: the URL is signed for exactly that. A 4xx answer (an expired or
    wrong URL) is not retried because it cannot get better. Raises the last error when every
    attempt fails.
    """
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in allowed_schemes:
        raise ValueError(f"ResponseURL must be an {'/'.join(allowed_schemes)} URL, got scheme {scheme!r}.")
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(  # noqa: S310  (scheme checked above)
            url,
            data=body,
            method="PUT",
            headers={"Content-Type": "", "Content-Length": str(len(body))},
        )
        try:
            with urlopen(request, timeout=timeout) as response:
                LOGGER.info("CloudFormation response delivered (HTTP %s).", response.status)
                return
        except urllib.error.HTTPError as error:
            if error.code < 500 or attempt == attempts:
                raise
            LOGGER.warning("Response attempt %d got HTTP %s; retrying.", attempt, error.code)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            if attempt == attempts:
                raise
            LOGGER.warning("Response attempt %d failed (%s); retrying.", attempt, error)
        sleep(SEND_BACKOFF_SECONDS * 2 ** (attempt - 1))


# --------------------------------------------------------------------------------------------------
# Entry point


def process_request(
    event: object,
    *,
    get_s3: Callable[[], S3Client],
    environ: Mapping[str, str],
    send: Sender,
    log_stream: str | None = None,
) -> dict[str, Any]:
    """Answer one CloudFormation request; return the response body that was sent.

    Only an event without a usable ResponseURL raises: there is nobody to answer.
    """
    if not isinstance(event, Mapping) or not isinstance(event.get("ResponseURL"), str):
        raise InvalidRequest(
            "The event is not a CloudFormation custom resource request (no ResponseURL); this function "
            "is meant to be the ServiceToken of a custom resource."
        )
    try:
        outcome = evaluate(event, get_s3=get_s3, environ=environ)
    except Exception as error:
        LOGGER.exception("The preprocessor check failed unexpectedly")
        where = f" (log stream {log_stream})" if log_stream else ""
        outcome = Outcome(
            "FAILED",
            failure_physical_id(event, environ),
            f"The preprocessor check failed: {type(error).__name__}: {error}{where}",
        )
    body = response_body(event, outcome)
    LOGGER.info(
        "%s %s -> %s: %s",
        event.get("RequestType"),
        event.get("LogicalResourceId"),
        body["Status"],
        body["Reason"],
    )
    send(event["ResponseURL"], encode_body(body))
    return body


@functools.cache
def _s3_client() -> S3Client:
    """Short timeouts and few retries: the whole answer must fit well inside the function's timeout."""
    config = Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard", "max_attempts": 2})
    return boto3.client("s3", config=config)


def handler(event: object, context: object) -> dict[str, Any]:
    """Lambda entry point (invoked by CloudFormation). The ResponseURL is never logged: it is a
    pre-signed URL that would let anyone answer for this resource."""
    return process_request(
        event,
        get_s3=_s3_client,
        environ=os.environ,
        send=send_response,
        log_stream=getattr(context, "log_stream_name", None),
    )
