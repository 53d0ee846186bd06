"""Fixtures for CLI tests: a moto account holding a deployment's stacks and resources.

``deployed`` creates the project's stacks in moto CloudFormation with the outputs the real stacks
have (names only; the resources behind them are created in moto where a test needs them), and
``run_cli`` runs the console-script entry point with arguments, returning exit code and output.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import boto3  # type: ignore[import-untyped]
import pytest
from moto import mock_aws

from mme_cli.main import run

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
BUCKET = "mme-artifacts-test"
ENDPOINT = "mme-endpoint-test"
STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:mme-training-test"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


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
        yield


@pytest.fixture
def deployed(aws: None) -> None:
    """The four stacks of the default config (prefix Mme), with the outputs the CLI reads."""
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    create_stack(
        "MmeStorage",
        {"ArtifactBucketName": BUCKET, "ModelPrefixUri": f"s3://{BUCKET}/models/", "KeyArn": KEY_ARN},
    )
    create_stack("MmeTraining", {"StateMachineArn": STATE_MACHINE_ARN})
    create_stack(
        "MmeEndpoint",
        {
            "EndpointName": ENDPOINT,
            "VariantName": "AllTraffic",
            "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}",
        },
    )
    create_stack("MmeMonitoring", {"DashboardName": "mme-dashboard", "AlarmTopicArn": "arn:aws:sns:x"})


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
