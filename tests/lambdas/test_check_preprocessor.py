"""The preprocessor-check custom resource: its decisions against moto S3, and the response it PUTs.

The reasons are spelled out literally here, so a reworded message (which users read in the
CloudFormation console) is a deliberate change to this file too.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
import threading
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.stub import Stubber  # type: ignore[import-untyped]

from tests.lambdas.conftest import BUCKET, MotoAccount

_HANDLER_DIR = Path(__file__).resolve().parents[2] / "lambda" / "check_preprocessor"
if str(_HANDLER_DIR) not in sys.path:
    sys.path.insert(0, str(_HANDLER_DIR))
check_preprocessor = importlib.import_module("check_preprocessor")

KEY = "preprocessor/current/model.tar.gz"
PHYSICAL_ID = f"{BUCKET}/{KEY}"
RESPONSE_URL = (
    "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/"
    "arn%3Aaws%3Acloudformation%3Aus-east-1%3A123456789012%3Astack/MmeEndpoint/abc%7CCheck%7Creq-1"
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=7199&X-Amz-Signature=0123abcd"
)
STACK_ID = (
    "arn:aws:cloudformation:us-east-1:123456789012:stack/MmeEndpoint/6d5c5e40-0000-11f0-9e1b-0a1b2c3d4e5f"
)
MISSING_REASON = (
    f"The preprocessor artifact s3://{BUCKET}/preprocessor/current/model.tar.gz does not exist yet: run "
    "`make deploy` (it deploys storage and training, trains, then deploys the endpoint) or start the "
    "training state machine and wait for it before deploying the endpoint stack."
)
FORBIDDEN_REASON = (
    f"The preprocessor artifact s3://{BUCKET}/preprocessor/current/model.tar.gz does not exist yet or "
    "this check may not read it (S3 answered 403 AccessDenied): run `make deploy` (it deploys storage "
    "and training, trains, then deploys the endpoint) or start the training state machine and wait for "
    "it before deploying the endpoint stack; if training has already succeeded, give the check's role "
    "s3:GetObject on that key and s3:ListBucket on the bucket."
)


@pytest.fixture(autouse=True)
def _fresh_client() -> Iterator[None]:
    check_preprocessor._s3_client.cache_clear()
    yield
    check_preprocessor._s3_client.cache_clear()


def request(request_type: str, **overrides: Any) -> dict[str, Any]:
    """A CloudFormation custom resource request as CloudFormation sends it."""
    event: dict[str, Any] = {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:MmeEndpoint-CheckPreprocessor",
        "ResponseURL": RESPONSE_URL,
        "StackId": STACK_ID,
        "RequestId": "5f1c0f6e-1b1d-4a5e-9c0a-6f0e7d1c2b3a",
        "LogicalResourceId": "PreprocessorCheck",
        "ResourceType": "Custom::PreprocessorArtifact",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:MmeEndpoint-CheckPreprocessor",
            "ArtifactKey": KEY,
        },
    }
    if request_type != "Create":
        event["PhysicalResourceId"] = PHYSICAL_ID
    if request_type == "Update":
        event["OldResourceProperties"] = dict(event["ResourceProperties"])
    event.update(overrides)
    return event


@dataclass
class CapturingSender:
    """Stands in for the HTTP PUT: records what would have been sent."""

    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def __call__(self, url: str, body: bytes) -> None:
        self.sizes.append(len(body))
        self.sent.append((url, json.loads(body)))

    @property
    def only(self) -> dict[str, Any]:
        assert len(self.sent) == 1, self.sent
        url, body = self.sent[0]
        assert url == RESPONSE_URL
        return body


def run(
    event: object,
    s3: Any,
    *,
    environ: dict[str, str] | None = None,
    log_stream: str | None = None,
) -> CapturingSender:
    sender = CapturingSender()
    returned = check_preprocessor.process_request(
        event,
        get_s3=lambda: s3,
        environ={"BUCKET_NAME": BUCKET} if environ is None else environ,
        send=sender,
        log_stream=log_stream,
    )
    assert returned == sender.only
    return sender


def envelope(event: dict[str, Any]) -> dict[str, Any]:
    """The fields every response must echo from the request."""
    return {
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
    }


# --------------------------------------------------------------------------------------------------
# Create / Update


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_existing_artifact_succeeds_with_its_version_and_etag(aws: MotoAccount, request_type: str) -> None:
    artifact = b"preprocessor model.tar.gz bytes"
    version = aws.inspect_s3.put_object(Bucket=BUCKET, Key=KEY, Body=artifact)["VersionId"]
    event = request(request_type)

    body = run(event, aws.s3).only

    assert body == {
        "Status": "SUCCESS",
        "Reason": f"Found s3://{BUCKET}/{KEY} (version {version}).",
        "PhysicalResourceId": PHYSICAL_ID,
        **envelope(event),
        "Data": {"VersionId": version, "ETag": hashlib.md5(artifact).hexdigest()},  # noqa: S324
    }
    assert [(c.operation, c.key) for c in aws.recorder.calls] == [("HeadObject", KEY)]


def test_a_newly_promoted_preprocessor_changes_the_data_but_not_the_id(aws: MotoAccount) -> None:
    first = aws.inspect_s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"first fit")["VersionId"]
    created = run(request("Create"), aws.s3).only
    second = aws.inspect_s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"second fit")["VersionId"]
    updated = run(
        request(
            "Update", ResourceProperties={"ServiceToken": "arn:token", "Nonce": "deploy-20250501-120000"}
        ),
        aws.s3,
    ).only

    assert created["Data"]["VersionId"] == first
    assert updated["Data"]["VersionId"] == second != first
    assert updated["Data"]["ETag"] != created["Data"]["ETag"]
    assert created["PhysicalResourceId"] == updated["PhysicalResourceId"] == PHYSICAL_ID


def test_unversioned_bucket_reports_the_null_version(aws: MotoAccount) -> None:
    """Also: ArtifactKey is optional (the key is the handler's own)."""
    aws.inspect_s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
    aws.put(KEY, b"x")

    body = run(request("Create", ResourceProperties={"ServiceToken": "arn:token"}), aws.s3).only

    assert (body["Status"], body["Data"]["VersionId"]) == ("SUCCESS", "null")


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_missing_artifact_fails_saying_what_to_run(aws: MotoAccount, request_type: str) -> None:
    aws.put("preprocessor/current/other-file.tar.gz", b"not the artifact")
    event = request(request_type)

    body = run(event, aws.s3).only

    assert body == {
        "Status": "FAILED",
        "Reason": MISSING_REASON,
        "PhysicalResourceId": PHYSICAL_ID,
        **envelope(event),
        "Data": {},
    }


def test_access_denied_is_reported_as_missing_or_unreadable(aws: MotoAccount) -> None:
    """Without s3:ListBucket, S3 answers a missing object with 403 (moto never does, hence the stub)."""
    with Stubber(aws.s3) as stub:
        stub.add_client_error(
            "head_object",
            service_error_code="403",
            service_message="Forbidden",
            http_status_code=403,
            expected_params={"Bucket": BUCKET, "Key": KEY},
        )
        body = run(request("Create"), aws.s3).only
        stub.assert_no_pending_responses()

    assert (body["Status"], body["Reason"]) == ("FAILED", FORBIDDEN_REASON)


def test_other_s3_errors_fail_with_the_code(aws: MotoAccount) -> None:
    body = run(request("Create"), aws.s3, environ={"BUCKET_NAME": "no-such-bucket-here"}).only

    assert body["Status"] == "FAILED"
    assert body["PhysicalResourceId"] == f"no-such-bucket-here/{KEY}"
    assert body["Reason"].startswith(
        f"Could not check the preprocessor artifact s3://no-such-bucket-here/{KEY}: S3 answered "
    )


# --------------------------------------------------------------------------------------------------
# Delete


@pytest.mark.parametrize(
    "physical_id", [PHYSICAL_ID, check_preprocessor.FALLBACK_PHYSICAL_ID], ids=["created", "failed-create"]
)
def test_delete_always_succeeds_without_touching_s3(aws: MotoAccount, physical_id: str) -> None:
    """Also with a broken environment and unknown properties: nothing may block a deletion."""

    def no_s3() -> Any:
        raise AssertionError("Delete must not create or use an S3 client")

    event = request("Delete", PhysicalResourceId=physical_id, ResourceProperties={"Bogus": "1"})
    sender = CapturingSender()
    check_preprocessor.process_request(event, get_s3=no_s3, environ={}, send=sender)

    assert sender.only == {
        "Status": "SUCCESS",
        "Reason": "Nothing to delete: the check created nothing.",
        "PhysicalResourceId": physical_id,
        **envelope(event),
        "Data": {},
    }
    assert aws.recorder.calls == []


# --------------------------------------------------------------------------------------------------
# Anything unexpected still gets an answer


class ExplodingS3:
    def head_object(self, **_: Any) -> Any:
        raise RuntimeError("connection pool is closed")


def test_unexpected_exception_fails_instead_of_leaving_cloudformation_waiting() -> None:
    body = run(request("Create"), ExplodingS3(), log_stream="2025/05/01/[$LATEST]abc123").only

    assert body == {
        "Status": "FAILED",
        "Reason": "The preprocessor check failed: RuntimeError: connection pool is closed "
        "(log stream 2025/05/01/[$LATEST]abc123)",
        "PhysicalResourceId": PHYSICAL_ID,
        **envelope(request("Create")),
        "Data": {},
    }


def test_a_failing_update_keeps_the_existing_physical_id() -> None:
    """Reporting another id on Update would make CloudFormation treat it as a replacement."""
    event = request("Update", PhysicalResourceId="older-bucket/preprocessor/current/model.tar.gz")

    body = run(event, ExplodingS3()).only

    assert (body["Status"], body["PhysicalResourceId"]) == (
        "FAILED",
        "older-bucket/preprocessor/current/model.tar.gz",
    )


def test_client_creation_failure_is_answered(aws: MotoAccount) -> None:
    def broken_factory() -> Any:
        raise ValueError("Invalid endpoint: https://s3..amazonaws.com")

    sender = CapturingSender()
    check_preprocessor.process_request(
        request("Create"), get_s3=broken_factory, environ={"BUCKET_NAME": BUCKET}, send=sender
    )

    assert sender.only["Status"] == "FAILED"
    assert sender.only["Reason"] == (
        "The preprocessor check failed: ValueError: Invalid endpoint: https://s3..amazonaws.com"
    )


@pytest.mark.parametrize(
    ("event_changes", "environ", "reason", "physical_id"),
    [
        (
            {},
            {},
            "The preprocessor check failed: InvalidRequest: Environment variable BUCKET_NAME '' is not an "
            "S3 bucket name; the stack must set it to the artifact bucket.",
            check_preprocessor.FALLBACK_PHYSICAL_ID,
        ),
        (
            {"ResourceProperties": {"ServiceToken": "arn:token", "nonce": "1", "Key": "x"}},
            {"BUCKET_NAME": BUCKET},
            "The preprocessor check failed: InvalidRequest: Unknown resource properties Key, nonce; "
            "allowed: ServiceToken, ArtifactKey, Nonce.",
            PHYSICAL_ID,
        ),
        (
            {"ResourceProperties": {"ServiceToken": "arn:token", "ArtifactKey": "models/x.tar.gz"}},
            {"BUCKET_NAME": BUCKET},
            "The preprocessor check failed: InvalidRequest: The ArtifactKey property 'models/x.tar.gz' is "
            "not 'preprocessor/current/model.tar.gz', the one key this check checks and may read.",
            PHYSICAL_ID,
        ),
        (
            {"ResourceProperties": {"ServiceToken": "arn:token", "Nonce": 7}},
            {"BUCKET_NAME": BUCKET},
            "The preprocessor check failed: InvalidRequest: The Nonce property must be a string.",
            PHYSICAL_ID,
        ),
        (
            {"RequestType": "Replace"},
            {"BUCKET_NAME": BUCKET},
            "The preprocessor check failed: InvalidRequest: RequestType 'Replace' is not one of Create, "
            "Update, Delete.",
            PHYSICAL_ID,
        ),
    ],
    ids=["no-bucket-env", "unknown-property", "other-key", "nonce-not-string", "unknown-request-type"],
)
def test_bad_requests_and_environments_fail_with_a_message(
    aws: MotoAccount, event_changes: dict[str, Any], environ: dict[str, str], reason: str, physical_id: str
) -> None:
    aws.put(KEY, b"present, so only the bad input can fail the check")

    body = run(request("Create", **event_changes), aws.s3, environ=environ).only

    assert (body["Status"], body["Reason"], body["PhysicalResourceId"]) == ("FAILED", reason, physical_id)
    assert aws.recorder.calls == []


def test_a_huge_error_message_is_cut_so_the_response_fits_in_4_kb() -> None:
    class VerboseS3:
        def head_object(self, **_: Any) -> Any:
            raise RuntimeError("é" * 5000)

    sender = run(request("Create"), VerboseS3())

    assert sender.sizes[0] <= 4096
    assert sender.sizes[0] > 4000  # cut to the limit, not far below it
    assert sender.only["Reason"].startswith("The preprocessor check failed: RuntimeError: éé")
    assert sender.only["Reason"].endswith("é...")


@pytest.mark.parametrize("event", [None, [], {"RequestType": "Create"}, {"ResponseURL": 3}])
def test_an_event_without_a_response_url_cannot_be_answered(event: object) -> None:
    sender = CapturingSender()
    with pytest.raises(check_preprocessor.InvalidRequest, match="no ResponseURL"):
        check_preprocessor.process_request(
            event, get_s3=ExplodingS3, environ={"BUCKET_NAME": BUCKET}, send=sender
        )
    assert sender.sent == []


def test_handler_wires_environment_client_and_sender(
    aws: MotoAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Lambda entry point with its own cached client (moto) and the sender swapped for a recorder."""
    aws.put(KEY, b"artifact")
    sender = CapturingSender()
    monkeypatch.setattr(check_preprocessor, "send_response", sender)
    monkeypatch.setenv("BUCKET_NAME", BUCKET)

    returned = check_preprocessor.handler(request("Create"), SimpleNamespace(log_stream_name="s"))

    assert returned == sender.only
    assert (returned["Status"], returned["PhysicalResourceId"]) == ("SUCCESS", PHYSICAL_ID)


# --------------------------------------------------------------------------------------------------
# Sending


@dataclass
class ScriptedOpener:
    """A stand-in for urlopen that fails as scripted, then succeeds."""

    failures: list[Exception]
    requests: list[Any] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)

    def __call__(self, request: Any, *, timeout: float) -> Any:
        self.requests.append(request)
        self.timeouts.append(timeout)
        if self.failures:
            raise self.failures.pop(0)
        return _Response()


class _Response:
    status = 200

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *_: object) -> None:
        return None


def _http_error(code: int) -> urllib.error.HTTPError:
    return urllib.error.HTTPError(RESPONSE_URL, code, "error", Message(), None)


def test_network_errors_and_5xx_are_retried_with_backoff() -> None:
    opener = ScriptedOpener([urllib.error.URLError("timed out"), _http_error(503)])
    sleeps: list[float] = []

    check_preprocessor.send_response(RESPONSE_URL, b"{}", urlopen=opener, sleep=sleeps.append)

    assert len(opener.requests) == 3
    assert sleeps == [1.0, 2.0]
    assert opener.timeouts == [10.0, 10.0, 10.0]
    assert {r.get_method() for r in opener.requests} == {"PUT"}


def test_giving_up_after_the_last_attempt_raises() -> None:
    opener = ScriptedOpener([_http_error(500), _http_error(500), _http_error(500), _http_error(500)])
    sleeps: list[float] = []

    with pytest.raises(urllib.error.HTTPError):
        check_preprocessor.send_response(RESPONSE_URL, b"{}", urlopen=opener, sleep=sleeps.append)

    assert len(opener.requests) == 3
    assert sleeps == [1.0, 2.0]


def test_a_4xx_answer_is_not_retried() -> None:
    """403 means an expired or altered pre-signed URL: retrying cannot help."""
    opener = ScriptedOpener([_http_error(403)])
    sleeps: list[float] = []

    with pytest.raises(urllib.error.HTTPError):
        check_preprocessor.send_response(RESPONSE_URL, b"{}", urlopen=opener, sleep=sleeps.append)

    assert (len(opener.requests), sleeps) == (1, [])


@pytest.mark.parametrize("url", ["http://example.com/x", "file:///etc/passwd", "ftp://host/x"])
def test_only_https_urls_are_used(url: str) -> None:
    opener = ScriptedOpener([])
    with pytest.raises(ValueError, match="ResponseURL must be an https URL"):
        check_preprocessor.send_response(url, b"{}", urlopen=opener)
    assert opener.requests == []


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def _recording_server() -> tuple[ThreadingHTTPServer, list[ReceivedRequest]]:
    received: list[ReceivedRequest] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(
                ReceivedRequest(
                    method=self.command,
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=self.rfile.read(length),
                )
            )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler), received


def test_the_response_really_arrives_as_an_http_put(aws: MotoAccount) -> None:
    """End to end over a real socket: method, path and query, the empty Content-Type, the JSON body."""
    aws.put(KEY, b"artifact")
    server, received = _recording_server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        path = "/arn%3Aaws%3Acloudformation%3Aus-east-1/stack%7CCheck?X-Amz-Expires=7199&X-Amz-Signature=ab12"
        event = request("Create", ResponseURL=f"http://{host!s}:{port}{path}")

        def send(url: str, body: bytes) -> None:
            check_preprocessor.send_response(url, body, allowed_schemes=("http",))

        returned = check_preprocessor.process_request(
            event, get_s3=lambda: aws.s3, environ={"BUCKET_NAME": BUCKET}, send=send
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    (put,) = received
    assert put.method == "PUT"
    assert put.path == path
    assert put.headers["content-type"] == ""
    assert put.headers["content-length"] == str(len(put.body))
    assert json.loads(put.body) == returned
    assert returned["Status"] == "SUCCESS"
