"""``mme destroy``: stack order, stopping at a failure, storage kept or deleted completely, leftovers.

The stacks are real moto CloudFormation stacks with the resources the CLI reads (the storage stack's
two RETAIN buckets and RETAIN key with termination protection on, the training stack's job role among
its other roles), so deleting a stack leaves exactly what CloudFormation would leave. moto does not
implement UpdateTerminationProtection; a botocore ``before-call`` hook answers it and updates moto's
stack. The CDK CLI is a recording fake that deletes the named stack in moto (refusing a protected one,
as CloudFormation does) or fails with a chosen exit code.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from moto.cloudformation.models import cloudformation_backends
from moto.s3.models import s3_backends

from mme_cli.commands import destroy
from mme_cli.context import CliContext
from tests.cli.conftest import ACCOUNT, REGION, CliResult

ENDPOINT = "mme-endpoint-test"
JOB_ROLE_ID = "TrainingPipelineJobRoleD39A2349"
RUN = "run1"
OTHER_RUN = "run9"
LOCATION = "Chicago_IL"

OUR_TRAINING_STREAMS = (f"pp-{RUN}/algo-1-1700000000", f"ll-Chicago-IL-{RUN}/algo-1-1700000001")
OUR_TRANSFORM_STREAMS = (f"tt-Chicago-IL-{RUN}/i-0abc", f"tv-Chicago-IL-{RUN}/i-0abc/data-log")
OTHER_TRAINING_STREAMS = (
    f"pp-{OTHER_RUN}/algo-1-1",
    f"ll-Chicago-IL-{RUN}x/algo-1-1",
    "xgboost-job/algo-1-1",
)
OTHER_TRANSFORM_STREAMS = (f"tt-Houston-TX-{OTHER_RUN}/i-0def",)


def _stack(name: str, resources: dict[str, Any], outputs: dict[str, Any], *, protected: bool = False) -> None:
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=name,
        TemplateBody=json.dumps(
            {"Resources": resources, "Outputs": {k: {"Value": v} for k, v in outputs.items()}}
        ),
        EnableTerminationProtection=protected,
    )


def _role(name: str = "sagemaker") -> dict[str, Any]:
    trust = {"Effect": "Allow", "Principal": {"Service": f"{name}.amazonaws.com"}, "Action": "sts:AssumeRole"}
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [trust]}},
    }


ARTIFACT_VERSIONS = 7
"""Two versions of a model, an object and its delete marker, serving.json, a plan and a summary."""
PLACEHOLDER = {"Placeholder": {"Type": "AWS::SNS::Topic"}}


@dataclass
class World:
    """Names of what the fixture created."""

    prefix: str
    bucket: str = ""
    log_bucket: str = ""
    key_id: str = ""
    job_role_arn: str = ""
    other_role_arn: str = ""
    tenant_stacks: tuple[str, ...] = ()

    @property
    def stateless(self) -> list[str]:
        return [
            *sorted(self.tenant_stacks),
            *(f"{self.prefix}{s}" for s in ("Monitoring", "Endpoint", "Training")),
        ]


def _deploy(prefix: str, *, tenants: Sequence[str] = (), leftovers: bool = True) -> World:
    """A complete deployment of ``prefix`` in moto, with data and runs, and (``leftovers``) the
    account's SageMaker log groups and models."""
    retain = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
    versioned = {"VersioningConfiguration": {"Status": "Enabled"}}
    _stack(
        f"{prefix}Storage",
        {
            "ArtifactStoreAccessLogBucketC3CDD40C": {
                "Type": "AWS::S3::Bucket",
                "Properties": versioned,
                **retain,
            },
            "ArtifactStoreBucket47CE7D81": {"Type": "AWS::S3::Bucket", "Properties": versioned, **retain},
            "ArtifactStoreKey28E2B6CF": {
                "Type": "AWS::KMS::Key",
                # a string: moto's CloudFormation stores a policy object unserialised
                "Properties": {"KeyPolicy": json.dumps({"Version": "2012-10-17", "Statement": []})},
                **retain,
            },
        },
        {
            "ArtifactBucketName": {"Ref": "ArtifactStoreBucket47CE7D81"},
            "KeyArn": {"Fn::GetAtt": ["ArtifactStoreKey28E2B6CF", "Arn"]},
        },
        protected=True,
    )
    _stack(
        f"{prefix}Training",
        {
            JOB_ROLE_ID: _role(),
            "TrainingPipelineStateMachineRoleAA3E56D2": _role("states"),
        },
        {"StateMachineArn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{prefix}-training"},
    )
    _stack(
        f"{prefix}Endpoint",
        PLACEHOLDER,
        {"EndpointName": ENDPOINT, "VariantName": "AllTraffic", "Algorithm": "linear-learner"},
    )
    _stack(f"{prefix}Monitoring", PLACEHOLDER, {"DashboardName": "dashboard"})
    for tenant_stack in tenants:
        _stack(tenant_stack, PLACEHOLDER, {"TenantRoleCompanyA": "arn:aws:iam::123456789012:role/a"})

    cloudformation = boto3.client("cloudformation", region_name=REGION)
    storage = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.list_stack_resources(StackName=f"{prefix}Storage")["StackResourceSummaries"]
    }
    world = World(
        prefix=prefix,
        bucket=storage["ArtifactStoreBucket47CE7D81"],
        log_bucket=storage["ArtifactStoreAccessLogBucketC3CDD40C"],
        key_id=storage["ArtifactStoreKey28E2B6CF"],
        tenant_stacks=tuple(tenants),
    )
    training = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.list_stack_resources(StackName=f"{prefix}Training")["StackResourceSummaries"]
    }
    iam = boto3.client("iam", region_name=REGION)
    world.job_role_arn = iam.get_role(RoleName=training[JOB_ROLE_ID])["Role"]["Arn"]
    world.other_role_arn = iam.create_role(
        RoleName=f"{prefix}-lookalike-job-role", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]

    s3 = boto3.client("s3", region_name=REGION)
    for bucket in (world.bucket, world.log_bucket):  # moto ignores VersioningConfiguration in templates
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for version in (b"v1", b"v2"):
        s3.put_object(Bucket=world.bucket, Key="models/pp-run1/Chicago_IL/Chicago_IL-1.tar.gz", Body=version)
    s3.put_object(Bucket=world.bucket, Key="raw-data/run1/train/Chicago_IL.csv", Body=b"1,2")
    s3.delete_object(Bucket=world.bucket, Key="raw-data/run1/train/Chicago_IL.csv")  # a delete marker
    s3.put_object(Bucket=world.bucket, Key="preprocessor/serving.json", Body=b"{}")
    plan = [
        {
            "run_id": RUN,
            "location": LOCATION,
            "generation": f"pp-{RUN}",
            "training_job_name": f"ll-Chicago-IL-{RUN}",
            "transform_train_job_name": f"tt-Chicago-IL-{RUN}",
            "transform_validation_job_name": f"tv-Chicago-IL-{RUN}",
        }
    ]
    s3.put_object(Bucket=world.bucket, Key=f"pipeline-runs/{RUN}/plan.json", Body=json.dumps(plan).encode())
    s3.put_object(Bucket=world.bucket, Key="pipeline-runs/refused/summary.json", Body=b"{}")  # no plan
    s3.put_object(Bucket=world.log_bucket, Key="artifact-bucket/2025-01-01-00-00-00-ABC", Body=b"log")
    if leftovers:
        _create_leftovers(world)
    return world


def _create_leftovers(world: World) -> None:

    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=f"/aws/sagemaker/Endpoints/{ENDPOINT}")
    logs.create_log_group(logGroupName="/aws/sagemaker/Endpoints/someone-elses-endpoint")
    for group, streams in (
        ("/aws/sagemaker/TrainingJobs", OUR_TRAINING_STREAMS + OTHER_TRAINING_STREAMS),
        ("/aws/sagemaker/TransformJobs", OUR_TRANSFORM_STREAMS + OTHER_TRANSFORM_STREAMS),
    ):
        logs.create_log_group(logGroupName=group)
        for stream in streams:
            logs.create_log_stream(logGroupName=group, logStreamName=stream)

    sagemaker = boto3.client("sagemaker", region_name=REGION)
    container = {"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sklearn:1"}
    for name, role in (
        (f"pp-{RUN}", world.job_role_arn),
        ("pp-run2", world.job_role_arn),
        (f"pp-{OTHER_RUN}", world.other_role_arn),
        ("unrelated-model", world.job_role_arn),
    ):
        sagemaker.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer=container)


def _set_termination_protection(stack_name: str, enabled: bool) -> None:
    backend = cloudformation_backends[ACCOUNT][REGION]
    for stack in backend.stacks.values():
        if stack_name in (stack.name, stack.stack_id) and stack.status != "DELETE_COMPLETE":
            stack.enable_termination_protection = enabled


@pytest.fixture
def termination_protection(monkeypatch: pytest.MonkeyPatch, aws: None) -> list[dict[str, Any]]:
    """Answer UpdateTerminationProtection (not in moto) on the CLI's CloudFormation clients."""
    calls: list[dict[str, Any]] = []
    original = CliContext.client

    @dataclass
    class Http:
        status_code: int = 200

    def answer(params: dict[str, Any], **_: Any) -> tuple[Http, dict[str, Any]]:
        body = params[
            "body"
        ]  # the query-protocol form: {"StackName": ..., "EnableTerminationProtection": "false"}
        enabled = body["EnableTerminationProtection"] == "true"
        calls.append({"StackName": body["StackName"], "EnableTerminationProtection": enabled})
        _set_termination_protection(body["StackName"], enabled)
        return Http(), {"StackId": body["StackName"]}

    def client(self: CliContext, service: str) -> Any:
        made = original(self, service)
        if service == "cloudformation":
            made.meta.events.register("before-call.cloudformation.UpdateTerminationProtection", answer)
        return made

    monkeypatch.setattr(CliContext, "client", client)
    return calls


@pytest.fixture(autouse=True)
def _no_real_cdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may start the real CDK CLI (the ``cdk`` fixture replaces this with the recording fake)."""

    def refuse(region: str) -> Any:
        raise AssertionError("the real CDK CLI must not run in tests")

    monkeypatch.setattr(destroy, "CDK_FACTORY", refuse)


@dataclass
class FakeCdk:
    """Records each ``cdk`` call; deletes the named stack in moto or fails with a chosen exit code."""

    fail: dict[str, int] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)

    def __call__(self, args: Sequence[str]) -> int:
        self.calls.append(list(args))
        stack = args[1]
        if stack in self.fail:
            return self.fail[stack]
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        if cloudformation.describe_stacks(StackName=stack)["Stacks"][0].get("EnableTerminationProtection"):
            return 1  # CloudFormation refuses to delete a protected stack
        cloudformation.delete_stack(StackName=stack)
        return 0

    @property
    def destroyed(self) -> list[str]:
        return [call[1] for call in self.calls]


@pytest.fixture
def cdk(monkeypatch: pytest.MonkeyPatch) -> FakeCdk:
    fake = FakeCdk()

    def factory(region: str) -> FakeCdk:
        fake.regions.append(region)
        return fake

    monkeypatch.setattr(destroy, "CDK_FACTORY", factory)
    return fake


@pytest.fixture
def world(termination_protection: list[dict[str, Any]]) -> World:
    return _deploy("Mme", tenants=("MmeTenants11", "MmeTenants03"))


@pytest.fixture
def answer(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def typed(*lines: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{line}\n" for line in lines)))

    return typed


def _stack_names() -> set[str]:
    summaries = boto3.client("cloudformation", region_name=REGION).list_stacks()["StackSummaries"]
    return {s["StackName"] for s in summaries if s["StackStatus"] != "DELETE_COMPLETE"}


def _buckets() -> set[str]:
    return {b["Name"] for b in boto3.client("s3", region_name=REGION).list_buckets()["Buckets"]}


def _key_state(key_id: str) -> str:
    return str(boto3.client("kms", region_name=REGION).describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"])


def _models() -> set[str]:
    return {m["ModelName"] for m in boto3.client("sagemaker", region_name=REGION).list_models()["Models"]}


def _streams(group: str) -> set[str]:
    logs = boto3.client("logs", region_name=REGION)
    return {s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]}


def _groups() -> set[str]:
    return {
        g["logGroupName"] for g in boto3.client("logs", region_name=REGION).describe_log_groups()["logGroups"]
    }


def _versions(bucket: str) -> int:
    page = boto3.client("s3", region_name=REGION).list_object_versions(Bucket=bucket)
    return len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))


# --------------------------------------------------------------------------------------------------
# Stacks


def test_destroys_the_stateless_stacks_dependents_first_and_keeps_storage(
    world: World, cdk: FakeCdk, run_cli: Callable[..., CliResult], answer: Callable[..., None]
) -> None:
    answer("yes", "n")
    result = run_cli("destroy")
    assert result.exit_code == 0, result.stderr
    assert cdk.destroyed == ["MmeTenants03", "MmeTenants11", "MmeMonitoring", "MmeEndpoint", "MmeTraining"]
    assert cdk.calls[0] == ["destroy", "MmeTenants03", "--force", "--exclusively"]
    assert cdk.regions == [REGION]
    assert _stack_names() == {"MmeStorage"}
    assert {world.bucket, world.log_bucket} <= _buckets()
    assert _versions(world.bucket) == ARTIFACT_VERSIONS
    assert _key_state(world.key_id) == "Enabled"
    # The confirmation said what goes and what stays; the end says where the data is.
    assert "stack MmeTraining: the training state machine" in result.stdout
    assert f"Kept: stack MmeStorage with bucket {world.bucket}" in result.stdout
    assert f"s3://{world.bucket}/models/" in result.stdout


def test_declining_deletes_nothing(
    world: World, cdk: FakeCdk, run_cli: Callable[..., CliResult], answer: Callable[..., None]
) -> None:
    answer("no")
    result = run_cli("destroy")
    assert result.exit_code == 1
    assert result.stderr == "Error: Nothing was deleted: the deletion was not confirmed.\n"
    assert cdk.calls == []
    assert _stack_names() == {
        "MmeStorage",
        "MmeTraining",
        "MmeEndpoint",
        "MmeMonitoring",
        "MmeTenants03",
        "MmeTenants11",
    }


def test_stops_at_the_first_failing_stack_with_its_exit_code_and_a_second_run_finishes(
    world: World, cdk: FakeCdk, run_cli: Callable[..., CliResult]
) -> None:
    cdk.fail = {"MmeEndpoint": 3}
    first = run_cli("destroy", "--yes")
    assert first.exit_code == 3
    assert cdk.destroyed == ["MmeTenants03", "MmeTenants11", "MmeMonitoring", "MmeEndpoint"]
    assert "Deleted: MmeTenants03, MmeTenants11, MmeMonitoring." in first.stdout
    assert "Still there: MmeEndpoint, MmeTraining, MmeStorage." in first.stdout
    assert first.stderr.startswith(
        "Error: `cdk destroy MmeEndpoint --force --exclusively` failed with exit code 3;"
    )
    assert first.stderr.count("\n") == 1
    assert "Left behind" not in first.stdout  # nothing is cleaned up after a failure

    cdk.fail = {}
    cdk.calls.clear()
    second = run_cli("destroy", "--yes", "--clean-up")
    assert second.exit_code == 0, second.stderr
    assert cdk.destroyed == ["MmeEndpoint", "MmeTraining"]  # the deleted ones are skipped
    assert _stack_names() == {"MmeStorage"}
    # The second run still knows the names behind the stacks the first one deleted.
    assert f"/aws/sagemaker/Endpoints/{ENDPOINT}" not in _groups()


def test_nothing_left_is_not_an_error(world: World, cdk: FakeCdk, run_cli: Callable[..., CliResult]) -> None:
    assert run_cli("destroy", "--yes", "--clean-up").exit_code == 0
    cdk.calls.clear()
    again = run_cli("destroy", "--yes", "--clean-up")
    assert again.exit_code == 0, again.stderr
    assert cdk.calls == []
    assert "only stack MmeStorage is left, which is kept without --including-data." in again.stdout
    assert "Nothing else of this deployment is left behind." in again.stdout


def test_follows_the_configs_stack_prefix(
    termination_protection: list[dict[str, Any]],
    cdk: FakeCdk,
    run_cli: Callable[..., CliResult],
    tmp_path: Path,
) -> None:
    _deploy("Mme", leftovers=False)
    other = _deploy("Dev", tenants=("DevTenantAccess",))
    config = tmp_path / "dev.json"
    config.write_text(json.dumps({"stack_prefix": "Dev"}))
    result = run_cli("--config", str(config), "destroy", "--yes")
    assert result.exit_code == 0, result.stderr
    assert cdk.destroyed == other.stateless
    assert all(call[-2:] == ["-c", f"config={config.resolve()}"] for call in cdk.calls)
    assert _stack_names() == {"DevStorage", "MmeStorage", "MmeTraining", "MmeEndpoint", "MmeMonitoring"}


# --------------------------------------------------------------------------------------------------
# --including-data


def test_including_data_deletes_every_version_both_buckets_and_schedules_the_key(
    world: World,
    cdk: FakeCdk,
    run_cli: Callable[..., CliResult],
    answer: Callable[..., None],
    termination_protection: list[dict[str, Any]],
) -> None:
    answer(world.bucket, "n")
    result = run_cli("destroy", "--including-data")
    assert result.exit_code == 0, result.stderr
    assert cdk.destroyed == [*world.stateless, "MmeStorage"]
    assert termination_protection == [
        {"EnableTerminationProtection": False, "StackName": termination_protection[0]["StackName"]}
    ]
    assert _stack_names() == set()
    assert not {world.bucket, world.log_bucket} & _buckets()
    assert _key_state(world.key_id) == "PendingDeletion"
    assert f"Deleted {ARTIFACT_VERSIONS} object version(s) and delete marker(s) from bucket" in result.stdout
    assert f"aws kms cancel-key-deletion --key-id {world.key_id}" in result.stdout


def test_including_data_wants_the_bucket_name_typed(
    world: World, cdk: FakeCdk, run_cli: Callable[..., CliResult], answer: Callable[..., None]
) -> None:
    answer("yes")
    result = run_cli("destroy", "--including-data")
    assert result.exit_code == 1
    assert result.stderr == f"Error: Nothing was deleted: 'yes' is not the bucket name {world.bucket}.\n"
    assert cdk.calls == []
    assert _versions(world.bucket) == ARTIFACT_VERSIONS


def test_a_failing_storage_stack_deletes_no_data_and_says_protection_is_off(
    world: World, cdk: FakeCdk, run_cli: Callable[..., CliResult]
) -> None:
    cdk.fail = {"MmeStorage": 1}
    result = run_cli("destroy", "--including-data", "--yes")
    assert result.exit_code == 1
    assert _versions(world.bucket) == ARTIFACT_VERSIONS
    assert "no object was deleted; the stack's termination protection is off" in result.stdout
    # The second run deletes the rest, including the retained resources of the deleted stack.
    cdk.fail = {}
    again = run_cli("destroy", "--including-data", "--yes")
    assert again.exit_code == 0, again.stderr
    assert not {world.bucket, world.log_bucket} & _buckets()
    assert _key_state(world.key_id) == "PendingDeletion"


def test_a_second_run_finishes_the_buckets_and_key_of_an_already_deleted_storage_stack(
    world: World, cdk: FakeCdk, run_cli: Callable[..., CliResult]
) -> None:
    _set_termination_protection("MmeStorage", False)
    for stack in [*world.stateless, "MmeStorage"]:
        boto3.client("cloudformation", region_name=REGION).delete_stack(StackName=stack)
    assert world.bucket in _buckets()  # RETAIN

    result = run_cli("destroy", "--including-data", "--yes", "--clean-up")
    assert result.exit_code == 0, result.stderr
    assert cdk.calls == []
    assert not {world.bucket, world.log_bucket} & _buckets()
    assert _key_state(world.key_id) == "PendingDeletion"
    # The deleted endpoint stack's output still names the endpoint's log group. (Not checked here: the
    # models by the deleted training stack's job role, because moto makes up new physical ids for the
    # resources of a deleted stack; CloudFormation keeps them for 90 days.)
    assert f"/aws/sagemaker/Endpoints/{ENDPOINT}" not in _groups()
    assert _streams("/aws/sagemaker/TrainingJobs") == set(OTHER_TRAINING_STREAMS)


def test_empty_bucket_deletes_in_batches_of_1000(aws: None) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="many")
    s3.put_bucket_versioning(Bucket="many", VersioningConfiguration={"Status": "Enabled"})
    store = s3_backends[ACCOUNT]["aws"]  # moto's own store: the versions 1,001 puts leave, 80x faster
    for index in range(1001):
        store.put_object("many", f"k{index % 500}", b"x")
    s3.delete_object(Bucket="many", Key="k0")
    batches: list[int] = []
    s3.meta.events.register(
        "before-parameter-build.s3.DeleteObjects",
        lambda params, **_: batches.append(len(params["Delete"]["Objects"])),
    )
    assert destroy.empty_bucket(s3, "many") == 1002
    assert batches == [1000, 2]
    assert _versions("many") == 0


# --------------------------------------------------------------------------------------------------
# What AWS leaves behind


def test_leftovers_are_listed_and_kept_unless_asked(
    world: World, cdk: FakeCdk, run_cli: Callable[..., CliResult], answer: Callable[..., None]
) -> None:
    answer("yes", "n")
    result = run_cli("destroy")
    assert result.exit_code == 0, result.stderr
    assert f"  - log group /aws/sagemaker/Endpoints/{ENDPOINT} (the endpoint's logs)" in result.stdout
    assert "  - 2 log stream(s) of this deployment's jobs in /aws/sagemaker/TrainingJobs" in result.stdout
    assert "  - 2 log stream(s) of this deployment's jobs in /aws/sagemaker/TransformJobs" in result.stdout
    assert f"  - SageMaker model pp-{RUN} (" in result.stdout
    assert "jobs cannot be deleted" in result.stdout
    assert f"pp-{OTHER_RUN}" not in result.stdout
    assert _models() == {f"pp-{RUN}", "pp-run2", f"pp-{OTHER_RUN}", "unrelated-model"}
    assert f"/aws/sagemaker/Endpoints/{ENDPOINT}" in _groups()


def test_yes_without_clean_up_only_lists(
    world: World, cdk: FakeCdk, run_cli: Callable[..., CliResult]
) -> None:
    result = run_cli("destroy", "--yes")
    assert result.exit_code == 0, result.stderr
    assert "Run `mme destroy --clean-up` to delete them." in result.stdout
    assert len(_streams("/aws/sagemaker/TrainingJobs")) == 5


def test_clean_up_deletes_only_this_deployments_leftovers(
    world: World, cdk: FakeCdk, run_cli: Callable[..., CliResult], answer: Callable[..., None]
) -> None:
    answer("yes", "y")  # the prompt is the other way to clean up
    result = run_cli("destroy")
    assert result.exit_code == 0, result.stderr
    assert _models() == {f"pp-{OTHER_RUN}", "unrelated-model"}
    assert _groups() == {
        "/aws/sagemaker/Endpoints/someone-elses-endpoint",
        "/aws/sagemaker/TrainingJobs",
        "/aws/sagemaker/TransformJobs",
    }
    assert _streams("/aws/sagemaker/TrainingJobs") == set(OTHER_TRAINING_STREAMS)
    assert _streams("/aws/sagemaker/TransformJobs") == set(OTHER_TRANSFORM_STREAMS)
    assert f"Deleted SageMaker model pp-{RUN}." in result.stdout


def test_a_reuse_run_claims_no_preprocessor_job(
    world: World, cdk: FakeCdk, run_cli: Callable[..., CliResult]
) -> None:
    """A run that reused generation pp-run1 fitted nothing: a pp-<run> stream is someone else's."""
    plan = [{"run_id": "run3", "generation": f"pp-{RUN}", "training_job_name": "ll-Chicago-IL-run3"}]
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=world.bucket, Key="pipeline-runs/run3/plan.json", Body=json.dumps(plan).encode())
    logs = boto3.client("logs", region_name=REGION)
    for stream in ("pp-run3/algo-1-1", "ll-Chicago-IL-run3/algo-1-1"):
        logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream)
    assert run_cli("destroy", "--yes", "--clean-up").exit_code == 0
    assert _streams("/aws/sagemaker/TrainingJobs") == {*OTHER_TRAINING_STREAMS, "pp-run3/algo-1-1"}


def test_training_log_streams_are_looked_for_under_every_algorithms_step() -> None:
    assert destroy.JOB_LOG_GROUPS["/aws/sagemaker/TrainingJobs"] == ("pp", "ll", "xg", "kn", "rc")
    assert destroy.JOB_LOG_GROUPS["/aws/sagemaker/TransformJobs"] == ("tt", "tv")


def test_a_deployment_that_switched_algorithms_leaves_no_job_streams(
    world: World, cdk: FakeCdk, run_cli: Callable[..., CliResult]
) -> None:
    """Runs of XGBoost and Random Cut Forest before the current linear learner: their jobs' streams
    are this deployment's too; a look-alike of another run stays."""
    ours = {"run4": "xg-Chicago-IL-run4", "run5": "rc-Chicago-IL-run5", "run6": "kn-Chicago-IL-run6"}
    s3 = boto3.client("s3", region_name=REGION)
    logs = boto3.client("logs", region_name=REGION)
    for run, job in ours.items():
        plan = [{"run_id": run, "generation": f"pp-{RUN}", "training_job_name": job}]
        s3.put_object(
            Bucket=world.bucket, Key=f"pipeline-runs/{run}/plan.json", Body=json.dumps(plan).encode()
        )
        logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=f"{job}/algo-1-1")
    logs.create_log_stream(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName="xg-Chicago-IL-run7/algo-1-1"
    )

    result = run_cli("destroy", "--yes", "--clean-up")

    assert result.exit_code == 0, result.stderr
    assert _streams("/aws/sagemaker/TrainingJobs") == {*OTHER_TRAINING_STREAMS, "xg-Chicago-IL-run7/algo-1-1"}
