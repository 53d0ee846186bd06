"""Every expected failure as one sentence that says what went wrong and how to fix it.

:func:`describe` turns an exception into that sentence (None: not an expected failure, i.e. a bug,
whose traceback is worth seeing); :func:`handle` is what the ``mme`` command does with a failure:
print the sentence (with ``--debug`` the traceback first) and exit non-zero. Failures on the AWS
side arrive as botocore's exceptions from wherever a client is first used; they are mapped here and
nowhere else, after the SDK's standard retries have given up.
"""

from __future__ import annotations

import re
import traceback
from typing import Any, Final

import typer
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    HTTPClientError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
    SSOError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as SdkConnectionError

from mme_cli.cdk import CdkFailed
from mme_cli.deployment import CliError

ACCESS_DENIED_CODES: Final = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"}
)
EXPIRED_CODES: Final = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})
REJECTED_CODES: Final = frozenset(
    {"InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException", "AuthFailure"}
)
THROTTLING_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)
"""ClientError codes; botocore's standard retry mode has already retried the throttling ones."""

INTERRUPTED_EXIT_CODE: Final = 130
NO_REGION: Final = "No AWS region: pass --region, set AWS_REGION, or set `region` in the config."

SERVICE_KEY: Final = "MmeIamService"
"""Where :func:`record_service` puts the IAM prefix in a ClientError's ``response["ResponseMetadata"]``."""
_IAM_PREFIXES: Final = {"monitoring": "cloudwatch"}
"""Signing name -> IAM action prefix, where they differ (CloudWatch signs as ``monitoring``)."""
_S3_PERMISSIONS: Final = {
    "ListObjectsV2": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "HeadObject": "s3:GetObject",
    "ListObjectVersions": "s3:ListBucketVersions",
    "DeleteObjects": "s3:DeleteObject",
    "CopyObject": "s3:GetObject and s3:PutObject",
}
"""S3 operations whose IAM permission is not ``s3:<Operation>``."""
_CREDENTIAL_SOURCES: Final = {
    "env": "the environment",
    "shared-credentials-file": "~/.aws/credentials",
    "config-file": "~/.aws/config",
    "explicit": "the keys passed to the session",
}


def record_service(client: Any) -> Any:
    """Make ``client``'s ClientErrors carry its service's IAM prefix, for :func:`describe`; returns it.

    A ClientError knows its operation but not its service. botocore emits ``after-call`` just before
    it raises, with the parsed response that becomes the error's ``response``.
    """
    signing_name = str(client.meta.service_model.signing_name)
    prefix = _IAM_PREFIXES.get(signing_name, signing_name)

    def note_service(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if http_response is not None and http_response.status_code >= 300:
            parsed.setdefault("ResponseMetadata", {})[SERVICE_KEY] = prefix

    client.meta.events.register("after-call", note_service, unique_id="mme-errors-record-service")
    return client


def exit_code(error: BaseException) -> int:
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED_EXIT_CODE
    if isinstance(error, CdkFailed):
        return error.exit_code
    return 1


def handle(error: BaseException, *, debug: bool, profile: str | None) -> None:
    """Print ``error``'s sentence on stderr (after its traceback with ``debug``) and exit.

    Returns only for what :func:`describe` does not know, for the caller to re-raise: a bug keeps
    its traceback.
    """
    sentence = describe(error, profile=profile)
    if sentence is None:
        return
    if debug:
        traceback.print_exception(error)
    typer.echo(sentence if isinstance(error, KeyboardInterrupt) else f"Error: {sentence}", err=True)
    raise typer.Exit(exit_code(error))


def describe(error: BaseException, *, profile: str | None = None) -> str | None:
    """The one sentence for an expected failure (``profile``: the --profile in use), else None."""
    if isinstance(error, KeyboardInterrupt):
        return "Interrupted."
    if isinstance(error, CliError):
        return str(error)
    if isinstance(error, ClientError):
        return _client_error(error, profile)
    if isinstance(error, BotoCoreError):
        return _sdk_error(error, profile)
    return None


# --------------------------------------------------------------------------------------------------
# botocore's own errors: the network, credentials, the region


def _sdk_error(error: BotoCoreError, profile: str | None) -> str:
    kwargs: dict[str, Any] = getattr(error, "kwargs", {})
    url = kwargs.get("endpoint_url", "AWS")
    if isinstance(error, SSLError):
        return (
            f"Cannot verify the TLS certificate of {url} (a proxy that inspects TLS?): point AWS_CA_BUNDLE "
            "at its CA certificate, or check your connection."
        )
    if isinstance(error, ProxyConnectionError):
        return (
            f"Cannot reach the proxy {kwargs.get('proxy_url')}: check HTTPS_PROXY and HTTP_PROXY (or unset "
            "them) and your connection."
        )
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError):
        return (
            f"Cannot reach {url} (no network, a proxy, or a wrong region?): check your connection and "
            "--region."
        )
    if isinstance(error, ReadTimeoutError):
        return (
            f"{url} did not answer in time (a slow network or a proxy?): check your connection and run "
            "the command again."
        )
    if isinstance(error, ConnectionClosedError):
        return (
            f"{url} closed the connection before answering (a flaky network or a proxy?): check your "
            "connection and run the command again."
        )
    if isinstance(error, SdkConnectionError | HTTPClientError):
        return (
            f"The connection to AWS failed ({kwargs.get('error')}): check your connection and run the "
            "command again."
        )
    if isinstance(error, NoCredentialsError):
        if profile:
            return (
                f"No AWS credentials found for profile {profile}: run `aws configure --profile {profile}` "
                f"(or `aws sso login --profile {profile}` for an SSO profile)."
            )
        return (
            "No AWS credentials found: run `aws configure` (or `aws sso login` for an SSO profile), or "
            "pass --profile or set AWS_PROFILE to a configured profile."
        )
    if isinstance(error, PartialCredentialsError):
        provider = str(kwargs.get("provider"))
        source = _CREDENTIAL_SOURCES.get(provider, f"the {provider} credential provider")
        if profile and provider in {"shared-credentials-file", "config-file"}:
            source += f" (profile {profile})"
        missing = kwargs.get("cred_var")
        return (
            f"The AWS credentials in {source} are incomplete, {missing} is missing: add it, or remove the "
            "partial credentials and use a complete --profile."
        )
    if isinstance(error, SSOError | TokenRetrievalError):
        return _sso_expired(profile)
    if isinstance(error, CredentialRetrievalError):
        return (
            f"Could not get AWS credentials from {kwargs.get('provider')} ({kwargs.get('error_msg')}): "
            "fix the profile's credential source, or use another --profile."
        )
    if isinstance(error, InvalidRegionError):
        return (
            f"The AWS region {kwargs.get('region_name')!r} is not a region name: use one shaped like "
            "us-east-1 (letters, digits and hyphens) with --region, AWS_REGION or the profile's region."
        )
    if isinstance(error, NoRegionError):
        return NO_REGION
    if isinstance(error, ProfileNotFound):
        return f"AWS profile {kwargs.get('profile')!r} is not configured (see `aws configure list-profiles`)."
    return f"The AWS SDK failed with {type(error).__name__}: {_one_line(str(error))}"


def _sso_expired(profile: str | None) -> str:
    login = f"aws sso login --profile {profile}" if profile else "aws sso login"
    return f"The AWS SSO session has expired or was never started: run `{login}` and run the command again."


# --------------------------------------------------------------------------------------------------
# What AWS answered


def _client_error(error: ClientError, profile: str | None) -> str:
    details = error.response.get("Error", {})
    metadata = error.response.get("ResponseMetadata", {})
    code = str(details.get("Code", "Error"))
    message = _one_line(str(details.get("Message", error)))
    operation = str(error.operation_name)
    call = f"{metadata[SERVICE_KEY]}:{operation}" if SERVICE_KEY in metadata else _call(operation, message)

    if code in EXPIRED_CODES:
        login = f"aws sso login --profile {profile}" if profile else "aws sso login"
        return (
            f"The AWS credentials have expired ({code} from {operation}): refresh them (`{login}` for an "
            "SSO profile, or new temporary keys) and run the command again."
        )
    if code in REJECTED_CODES:
        return (
            f"AWS rejected the credentials ({code} from {operation}): fix the access key with "
            "`aws configure` or use another --profile."
        )
    if code in THROTTLING_CODES:
        attempts = f", {metadata['RetryAttempts'] + 1} attempts" if metadata.get("MaxAttemptsReached") else ""
        return (
            f"AWS is throttling {call} ({code}{attempts}): wait a minute and run it again (or lower "
            "concurrency)."
        )
    if code in ACCESS_DENIED_CODES:
        return _access_denied(call, operation, message)
    return f"AWS refused {operation}: {code}: {message}"


_PERFORM = re.compile(r"perform: ([a-z0-9-]+:[A-Za-z0-9*]+)")
_CALLER = re.compile(r"\b(arn:aws[a-z-]*:(?:iam|sts)::\d{12}:\S+)")
_RESOURCE = re.compile(r"on resource: (\S+?)[.,]?(?:\s|$)")
_EXPLICIT_DENY = re.compile(r"explicit deny in an? ([a-z -]+?) policy")


def _call(operation: str, message: str) -> str:
    """``service:Operation`` when the message names that action, else the operation alone."""
    named = _PERFORM.search(message)
    if named is not None and named.group(1).endswith(f":{operation}"):
        return named.group(1)
    return operation


def _access_denied(call: str, operation: str, message: str) -> str:
    caller = _CALLER.search(message)
    who = f" ({caller.group(1)})" if caller else ""
    named = _PERFORM.search(message)
    if named is not None:
        permission = named.group(1)
    elif call.startswith("s3:"):
        permission = _S3_PERMISSIONS.get(operation, call)
    else:
        permission = call
    deny = _EXPLICIT_DENY.search(message)
    if deny is not None:
        fix = (
            f"an explicit deny in a {deny.group(1)} policy blocks {permission}: ask your AWS administrator, "
            "or use another --profile"
        )
    else:
        resource = _RESOURCE.search(message)
        on = f" on {resource.group(1)}" if resource else ""
        fix = f"use a role or policy that allows {permission}{on}, or another --profile"
    return f"Your credentials{who} are not allowed to call {call}: {fix}."


def _one_line(text: str) -> str:
    return " ".join(text.split())
