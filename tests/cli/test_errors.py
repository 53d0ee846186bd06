"""Failures on the AWS side end in one sentence and a non-zero exit (``--debug``: the traceback too);
``mme --version`` and shell completion.

The table builds each botocore exception the way botocore raises it. The end-to-end tests go through
the real SDK wherever it can fail here: a closed port on localhost for "no network", an SSO profile
that never logged in, half of a key pair in the environment, a malformed region; a botocore
``before-send`` handler stands in for AWS where AWS itself has to answer (throttling), and a
Stubber where AWS refuses.
"""

from __future__ import annotations

import socket
import tomllib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3  # type: ignore[import-untyped]
import botocore.endpoint  # type: ignore[import-untyped]
import pytest
from botocore.awsrequest import AWSResponse  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
    SSOTokenLoadError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)
from botocore.stub import Stubber  # type: ignore[import-untyped]

from mme_cli import errors, main
from mme_cli.cdk import CdkFailed
from mme_cli.context import CliContext
from mme_cli.deployment import CliError
from tests.cli.conftest import BUCKET, REGION, CliResult

RunCli = Callable[..., CliResult]
ROOT = Path(__file__).resolve().parents[2]
CFN_URL = "https://cloudformation.us-east-1.amazonaws.com/"
CALLER = "arn:aws:sts::123456789012:assumed-role/Developer/alice"
STACK_ARN = "arn:aws:cloudformation:us-east-1:123456789012:stack/MmeStorage/*"


def client_error(code: str, message: str, operation: str, **metadata: Any) -> ClientError:
    """A ClientError as botocore raises it: the parsed error response and the operation's name."""
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 400, "RetryAttempts": 0, **metadata},
    }
    return ClientError(response, operation)


def socket_error() -> OSError:
    return OSError(111, "Connection refused")


# --------------------------------------------------------------------------------------------------
# describe: every exception, its sentence


SENTENCES: list[tuple[BaseException, str]] = [
    # The network
    (
        EndpointConnectionError(endpoint_url=CFN_URL, error=socket_error()),
        f"Cannot reach {CFN_URL} (no network, a proxy, or a wrong region?): check your connection and "
        "--region.",
    ),
    (
        ConnectTimeoutError(endpoint_url=CFN_URL, error=socket_error()),
        f"Cannot reach {CFN_URL} (no network, a proxy, or a wrong region?): check your connection and "
        "--region.",
    ),
    (
        ReadTimeoutError(endpoint_url=CFN_URL, error=socket_error()),
        f"{CFN_URL} did not answer in time (a slow network or a proxy?): check your connection and run "
        "the command again.",
    ),
    (
        ConnectionClosedError(endpoint_url=CFN_URL, error=socket_error(), request=None),
        f"{CFN_URL} closed the connection before answering (a flaky network or a proxy?): check your "
        "connection and run the command again.",
    ),
    (
        ProxyConnectionError(proxy_url="http://***:***@proxy.example:3128", error=socket_error()),
        "Cannot reach the proxy http://***:***@proxy.example:3128: check HTTPS_PROXY and HTTP_PROXY (or "
        "unset them) and your connection.",
    ),
    (
        SSLError(endpoint_url=CFN_URL, error=socket_error()),
        f"Cannot verify the TLS certificate of {CFN_URL} (a proxy that inspects TLS?): point "
        "AWS_CA_BUNDLE at its CA certificate, or check your connection.",
    ),
    # Credentials
    (
        NoCredentialsError(),
        "No AWS credentials found: run `aws configure` (or `aws sso login` for an SSO profile), or pass "
        "--profile or set AWS_PROFILE to a configured profile.",
    ),
    (
        PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
        "The AWS credentials in the environment are incomplete, AWS_SECRET_ACCESS_KEY is missing: add it, "
        "or remove the partial credentials and use a complete --profile.",
    ),
    (
        PartialCredentialsError(provider="shared-credentials-file", cred_var="aws_access_key_id"),
        "The AWS credentials in ~/.aws/credentials are incomplete, aws_access_key_id is missing: add it, "
        "or remove the partial credentials and use a complete --profile.",
    ),
    (
        CredentialRetrievalError(provider="custom-process", error_msg="the process exited with 1"),
        "Could not get AWS credentials from custom-process (the process exited with 1): fix the "
        "profile's credential source, or use another --profile.",
    ),
    (
        client_error("ExpiredToken", "The security token included in the request is expired", "GetObject"),
        "The AWS credentials have expired (ExpiredToken from GetObject): refresh them (`aws sso login` for "
        "an SSO profile, or new temporary keys) and run the command again.",
    ),
    (
        client_error("ExpiredTokenException", "The security token is expired", "DescribeEndpoint"),
        "The AWS credentials have expired (ExpiredTokenException from DescribeEndpoint): refresh them "
        "(`aws sso login` for an SSO profile, or new temporary keys) and run the command again.",
    ),
    (
        client_error("RequestExpired", "Request has expired.", "DescribeStacks"),
        "The AWS credentials have expired (RequestExpired from DescribeStacks): refresh them (`aws sso "
        "login` for an SSO profile, or new temporary keys) and run the command again.",
    ),
    (
        client_error("InvalidClientTokenId", "The security token included in the request is invalid.", "X"),
        "AWS rejected the credentials (InvalidClientTokenId from X): fix the access key with `aws "
        "configure` or use another --profile.",
    ),
    (
        TokenRetrievalError(provider="sso", error_msg="Token has expired and refresh failed"),
        "The AWS SSO session has expired or was never started: run `aws sso login` and run the command "
        "again.",
    ),
    (
        SSOTokenLoadError(error_msg="Token for corp does not exist"),
        "The AWS SSO session has expired or was never started: run `aws sso login` and run the command "
        "again.",
    ),
    (
        UnauthorizedSSOTokenError(),
        "The AWS SSO session has expired or was never started: run `aws sso login` and run the command "
        "again.",
    ),
    # The region and the profile
    (
        InvalidRegionError(region_name="us east"),
        "The AWS region 'us east' is not a region name: use one shaped like us-east-1 (letters, digits and "
        "hyphens) with --region, AWS_REGION or the profile's region.",
    ),
    (NoRegionError(), "No AWS region: pass --region, set AWS_REGION, or set `region` in the config."),
    (
        ProfileNotFound(profile="prod"),
        "AWS profile 'prod' is not configured (see `aws configure list-profiles`).",
    ),
    # Throttling, after the SDK's retries
    *(
        (
            client_error(code, "Rate exceeded", "ListModels", RetryAttempts=4, MaxAttemptsReached=True),
            f"AWS is throttling ListModels ({code}, 5 attempts): wait a minute and run it again (or lower "
            "concurrency).",
        )
        for code in ("Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded")
    ),
    (
        client_error(
            "SlowDown", "Please reduce your request rate.", "PutObject", **{errors.SERVICE_KEY: "s3"}
        ),
        "AWS is throttling s3:PutObject (SlowDown): wait a minute and run it again (or lower concurrency).",
    ),
    # Access denied: the caller and the permission, from the message or the client's service
    (
        client_error(
            "AccessDenied",
            f"User: {CALLER} is not authorized to perform: cloudformation:DescribeStacks on resource: "
            f"{STACK_ARN} because no identity-based policy allows the cloudformation:DescribeStacks action",
            "DescribeStacks",
        ),
        f"Your credentials ({CALLER}) are not allowed to call cloudformation:DescribeStacks: use a role or "
        f"policy that allows cloudformation:DescribeStacks on {STACK_ARN}, or another --profile.",
    ),
    (
        client_error(
            "AccessDeniedException",
            f"User: {CALLER} is not authorized to perform: sagemaker:InvokeEndpoint on resource: "
            "arn:aws:sagemaker:us-east-1:123456789012:endpoint/mme with an explicit deny in a service "
            "control policy",
            "InvokeEndpoint",
        ),
        f"Your credentials ({CALLER}) are not allowed to call sagemaker:InvokeEndpoint: an explicit deny "
        "in a service control policy blocks sagemaker:InvokeEndpoint: ask your AWS administrator, or use "
        "another --profile.",
    ),
    (
        client_error("AccessDenied", "Access Denied", "ListObjectsV2", **{errors.SERVICE_KEY: "s3"}),
        "Your credentials are not allowed to call s3:ListObjectsV2: use a role or policy that allows "
        "s3:ListBucket, or another --profile.",
    ),
    (
        client_error("403", "Forbidden", "HeadObject", **{errors.SERVICE_KEY: "s3"}),
        "Your credentials are not allowed to call s3:HeadObject: use a role or policy that allows "
        "s3:GetObject, or another --profile.",
    ),
    (
        client_error(
            "AccessDenied",
            f"User: {CALLER} is not authorized to perform: kms:Decrypt on resource: "
            "arn:aws:kms:us-east-1:123456789012:key/k because no identity-based policy allows it",
            "GetObject",
            **{errors.SERVICE_KEY: "s3"},
        ),
        f"Your credentials ({CALLER}) are not allowed to call s3:GetObject: use a role or policy that "
        "allows kms:Decrypt on arn:aws:kms:us-east-1:123456789012:key/k, or another --profile.",
    ),
    (
        client_error(
            "UnauthorizedOperation", "You are not authorized to perform this operation.", "DescribeVpcs"
        ),
        "Your credentials are not allowed to call DescribeVpcs: use a role or policy that allows "
        "DescribeVpcs, or another --profile.",
    ),
    # Anything else AWS or the SDK says
    (
        client_error("ValidationError", "Stack with id MmeStorage\n does not exist", "DescribeStacks"),
        "AWS refused DescribeStacks: ValidationError: Stack with id MmeStorage does not exist",
    ),
    (
        ParamValidationError(report='Invalid bucket name "a b": Bucket name must match the regex'),
        'The AWS SDK failed with ParamValidationError: Parameter validation failed: Invalid bucket name "a '
        'b": Bucket name must match the regex',
    ),
    # Ours
    (
        CliError("Stack MmeStorage is not deployed in us-east-1: run `make deploy`."),
        "Stack MmeStorage is not deployed in us-east-1: run `make deploy`.",
    ),
    (KeyboardInterrupt(), "Interrupted."),
]


@pytest.mark.parametrize(
    ("error", "sentence"), SENTENCES, ids=[f"{i}-{type(e).__name__}" for i, (e, _) in enumerate(SENTENCES)]
)
def test_each_failure_is_one_sentence(error: BaseException, sentence: str) -> None:
    assert errors.describe(error) == sentence
    assert "\n" not in sentence


@pytest.mark.parametrize(
    ("error", "sentence"),
    [
        (
            UnauthorizedSSOTokenError(),
            "The AWS SSO session has expired or was never started: run `aws sso login --profile dev` and run "
            "the command again.",
        ),
        (
            client_error(
                "ExpiredToken", "The security token included in the request is expired", "GetObject"
            ),
            "The AWS credentials have expired (ExpiredToken from GetObject): refresh them (`aws sso login "
            "--profile dev` for an SSO profile, or new temporary keys) and run the command again.",
        ),
        (
            NoCredentialsError(),
            "No AWS credentials found for profile dev: run `aws configure --profile dev` (or `aws sso login "
            "--profile dev` for an SSO profile).",
        ),
        (
            PartialCredentialsError(provider="shared-credentials-file", cred_var="aws_secret_access_key"),
            "The AWS credentials in ~/.aws/credentials (profile dev) are incomplete, aws_secret_access_key "
            "is missing: add it, or remove the partial credentials and use a complete --profile.",
        ),
    ],
    ids=["sso", "expired", "no-credentials", "partial"],
)
def test_the_fix_names_the_profile_in_use(error: BaseException, sentence: str) -> None:
    assert errors.describe(error, profile="dev") == sentence


def test_bugs_are_not_described() -> None:
    """Anything else is a bug: describe knows nothing about it, so its traceback stays."""
    assert errors.describe(ValueError("boom")) is None
    assert errors.describe(KeyError("x")) is None


def test_exit_codes() -> None:
    assert errors.exit_code(client_error("Throttling", "Rate exceeded", "ListModels")) == 1
    assert errors.exit_code(CdkFailed("cdk deploy failed.", 3)) == 3
    assert errors.exit_code(KeyboardInterrupt()) == 130


@pytest.mark.parametrize(
    ("service", "operation", "method", "call"),
    [
        ("cloudwatch", "GetMetricData", "get_metric_data", "cloudwatch:GetMetricData"),  # signs as monitoring
        ("stepfunctions", "ListExecutions", "list_executions", "states:ListExecutions"),
        ("sagemaker-runtime", "InvokeEndpoint", "invoke_endpoint", "sagemaker:InvokeEndpoint"),
        ("s3", "GetObject", "get_object", "s3:GetObject"),
    ],
)
def test_a_recorded_client_names_its_service(
    aws: None, service: str, operation: str, method: str, call: str
) -> None:
    """AWS's message often names no action ("Access Denied"); the client's IAM prefix fills it in."""
    client = errors.record_service(boto3.Session(region_name=REGION).client(service))
    with Stubber(client) as stubber:
        stubber.add_client_error(method, "AccessDenied", "Access Denied", http_status_code=403)
        with pytest.raises(ClientError) as refused:
            getattr(client, method)(**_PARAMS[method])
    assert refused.value.operation_name == operation
    assert errors.describe(refused.value) == (
        f"Your credentials are not allowed to call {call}: use a role or policy that allows {call}, or "
        "another --profile."
    )


_PARAMS: dict[str, dict[str, Any]] = {
    "get_metric_data": {"MetricDataQueries": [], "StartTime": 0, "EndTime": 1},
    "list_executions": {"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:m"},
    "invoke_endpoint": {"EndpointName": "e", "Body": b"1"},
    "get_object": {"Bucket": BUCKET, "Key": "k"},
}


# --------------------------------------------------------------------------------------------------
# The CLI end to end, through the real SDK


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No AWS configuration but what a test writes to the returned config file; no metadata service;
    the SDK's retry back-off does not sleep (the retries still happen)."""
    for variable in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "MME_DEBUG",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # ~/.aws/sso/cache is empty
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", REGION)
    (tmp_path / "config").write_text("")
    return tmp_path / "config"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The SDK's back-off delays between retries (botocore.endpoint is the one caller of time.sleep)."""
    delays: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=delays.append))
    return delays


@pytest.fixture
def unreachable(offline: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every AWS endpoint is a closed port on localhost: the connection is refused, as offline."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    return f"http://127.0.0.1:{port}/"


def cannot_reach(url: str) -> str:
    return (
        f"Error: Cannot reach {url} (no network, a proxy, or a wrong region?): check your connection and "
        "--region.\n"
    )


def test_no_network_is_one_line_after_the_retries(
    unreachable: str, sleeps: list[float], run_cli: RunCli
) -> None:
    result = run_cli("status")

    assert result.exit_code == 1
    assert result.stderr == cannot_reach(unreachable)
    assert len(sleeps) == 5  # the first attempt and context._RETRIES's 5 retries, then the sentence


@pytest.mark.parametrize("switch", ["--debug", "MME_DEBUG=1"])
def test_debug_shows_the_traceback(
    unreachable: str, sleeps: list[float], run_cli: RunCli, monkeypatch: pytest.MonkeyPatch, switch: str
) -> None:
    if switch == "--debug":
        result = run_cli("--debug", "status")
    else:
        monkeypatch.setenv("MME_DEBUG", "1")
        result = run_cli("status")

    assert result.exit_code == 1
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert (
        "botocore.exceptions.EndpointConnectionError: Could not connect to the endpoint URL" in result.stderr
    )
    assert result.stderr.endswith(cannot_reach(unreachable))


def test_throttling_after_the_sdk_retries(
    offline: Path, sleeps: list[float], run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CloudFormation answers Throttling to every request; botocore retries, then the sentence."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    body = (
        b'<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error><Type>Sender'
        b"</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId>"
        b"</ErrorResponse>"
    )
    requests: list[str] = []

    def throttle(request: Any, **_: Any) -> AWSResponse:
        requests.append(request.url)
        return AWSResponse(request.url, 400, {}, SimpleNamespace(stream=lambda: iter([body])))

    create_client = CliContext.client

    def client(self: CliContext, service: str) -> Any:
        created = create_client(self, service)
        created.meta.events.register("before-send", throttle)
        return created

    monkeypatch.setattr(CliContext, "client", client)

    result = run_cli("status")

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: AWS is throttling cloudformation:DescribeStacks (Throttling, 6 attempts): wait a minute and "
        "run it again (or lower concurrency).\n"
    )
    assert len(requests) == 6  # the first attempt and context._RETRIES's 5 retries
    assert len(sleeps) == 5


def test_access_denied_names_the_permission(
    deployed: None, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stacks are in moto; S3 refuses the first GetObject with its usual bare "Access Denied"."""
    create_client = CliContext.client

    def client(self: CliContext, service: str) -> Any:
        created = create_client(self, service)
        if service == "s3":
            stubber = Stubber(created)
            stubber.add_client_error("get_object", "AccessDenied", "Access Denied", http_status_code=403)
            stubber.activate()
        return created

    monkeypatch.setattr(CliContext, "client", client)

    result = run_cli("status")

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Your credentials are not allowed to call s3:GetObject: use a role or policy that allows "
        "s3:GetObject, or another --profile.\n"
    )


def test_an_sso_profile_that_never_logged_in(offline: Path, run_cli: RunCli) -> None:
    offline.write_text(
        "[profile dev]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Admin\n"
        "region = us-east-1\n\n[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\n"
        "sso_region = us-east-1\n"
    )

    result = run_cli("--profile", "dev", "status")

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: The AWS SSO session has expired or was never started: run `aws sso login --profile dev` "
        "and run the command again.\n"
    )


def test_half_a_key_pair(offline: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")

    result = run_cli("status")

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: The AWS credentials in the environment are incomplete, AWS_SECRET_ACCESS_KEY is missing: "
        "add it, or remove the partial credentials and use a complete --profile.\n"
    )


def test_no_credentials(offline: Path, run_cli: RunCli) -> None:
    result = run_cli("status")

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: No AWS credentials found: run `aws configure` (or `aws sso login` for an SSO profile), or "
        "pass --profile or set AWS_PROFILE to a configured profile.\n"
    )


def test_an_unknown_profile(offline: Path, run_cli: RunCli) -> None:
    result = run_cli("--profile", "prod", "status")

    assert result.exit_code == 1
    assert (
        result.stderr == "Error: AWS profile 'prod' is not configured (see `aws configure list-profiles`).\n"
    )


@pytest.mark.parametrize(
    ("arguments", "profile_region", "shown"),
    [
        (["--region", "us east", "status"], None, "us east"),
        (["--region", "us-east-1.", "models", "list"], None, "us-east-1."),
        (["--profile", "odd", "status"], "us_east_1", "us_east_1"),
    ],
    ids=["option", "option-another-command", "profile"],
)
def test_a_malformed_region_fails_first(
    offline: Path,
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
    arguments: list[str],
    profile_region: str | None,
    shown: str,
) -> None:
    monkeypatch.delenv("AWS_REGION")
    if profile_region is not None:
        offline.write_text(f"[profile odd]\nregion = {profile_region}\n")

    result = run_cli(*arguments)

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: The AWS region {shown!r} is not a region name: use one shaped like us-east-1 (letters, "
        "digits and hyphens) with --region, AWS_REGION or the profile's region.\n"
    )


def test_ctrl_c_is_interrupted(aws: None, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(self: CliContext, service: str) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(CliContext, "client", interrupt)

    result = run_cli("status")

    assert result.exit_code == 130
    assert result.stderr == "Interrupted.\n"


def test_a_bug_keeps_its_traceback(aws: None, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: CliContext, service: str) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(CliContext, "client", broken)

    with pytest.raises(RuntimeError, match="a bug"):
        run_cli("status")


# --------------------------------------------------------------------------------------------------
# --version and shell completion


def test_version_is_the_installed_distributions() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert metadata.version(project["name"]) == project["version"]  # installed from this checkout


def test_version(run_cli: RunCli) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    result = run_cli("--version")

    assert result.exit_code == 0
    assert result.stdout == f"mme {metadata.version(project['name'])}\n"


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o default -F _mme_completion mme"),
        ("zsh", "#compdef mme"),
        ("fish", "complete --command mme"),
    ],
)
def test_show_completion(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch, shell: str, marker: str) -> None:
    """typer detects the shell from the parent processes; its test switch takes the name instead.
    typer reads the switch when it builds the command tree, which ``mme`` builds once per process."""
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    main._command.cache_clear()
    try:
        result = run_cli("--show-completion", shell)
    finally:
        main._command.cache_clear()

    assert result.exit_code == 0
    assert marker in result.stdout
    assert f"_MME_COMPLETE=complete_{shell}" in result.stdout


@pytest.mark.parametrize(
    ("words", "expected"),
    [("mme sta", ["status"]), ("mme models p", ["promote", "prune"]), ("mme --deb", ["--debug"])],
)
def test_completion_completes(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch, words: str, expected: list[str]
) -> None:
    """What the installed bash script asks ``mme`` for on every <TAB>."""
    monkeypatch.setenv("_MME_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", str(len(words.split()) - 1))

    result = run_cli()

    assert result.exit_code == 0
    assert result.stdout.split() == expected
