"""Fine-grained assertions on the artifact store: encryption, public access, TLS, lifecycle, logs."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Capture, Match, Matcher

from app import build_app
from project_config import load_default_config
from tests.conftest import SynthesizedApp, one_statement

BUCKET_ID = "ArtifactStoreBucket47CE7D81"
KEY_ID = "ArtifactStoreKey28E2B6CF"
LOG_BUCKET_ID = "ArtifactStoreAccessLogBucketC3CDD40C"


def _arn_of(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def test_logical_ids_of_stateful_resources_are_pinned(synthesized: SynthesizedApp) -> None:
    """A refactor that renames the bucket or key would make CloudFormation replace (and orphan) them."""
    template = synthesized.assertions("storage")
    assert template.find_resources("AWS::KMS::Key").keys() == {KEY_ID}
    assert template.find_resources("AWS::S3::Bucket").keys() == {BUCKET_ID, LOG_BUCKET_ID}


def test_key_is_customer_managed_with_rotation(synthesized: SynthesizedApp) -> None:
    synthesized.assertions("storage").has_resource(
        "AWS::KMS::Key",
        {
            "Properties": Match.object_like({"EnableKeyRotation": True}),
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )


def test_bucket_encrypted_with_project_key_and_bucket_key(synthesized: SynthesizedApp) -> None:
    encryption = Match.object_equals(
        {
            "ServerSideEncryptionConfiguration": [
                {
                    "BucketKeyEnabled": True,
                    "ServerSideEncryptionByDefault": {
                        "KMSMasterKeyID": _arn_of(KEY_ID),
                        "SSEAlgorithm": "aws:kms",
                    },
                }
            ]
        }
    )
    buckets = synthesized.assertions("storage").find_resources(
        "AWS::S3::Bucket", {"Properties": {"BucketEncryption": encryption}}
    )
    assert buckets.keys() == {BUCKET_ID}


@pytest.mark.parametrize("bucket_id", [BUCKET_ID, LOG_BUCKET_ID])
def test_buckets_block_all_public_access_and_acls(synthesized: SynthesizedApp, bucket_id: str) -> None:
    locked_down = {
        "DeletionPolicy": "Retain",
        "Properties": {
            "PublicAccessBlockConfiguration": Match.object_equals(
                {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                }
            ),
            "OwnershipControls": Match.object_equals({"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}),
            "VersioningConfiguration": Match.object_equals({"Status": "Enabled"}),
        },
    }
    assert bucket_id in synthesized.assertions("storage").find_resources("AWS::S3::Bucket", locked_down)


@pytest.mark.parametrize("bucket_id", [BUCKET_ID, LOG_BUCKET_ID])
def test_bucket_policy_denies_plain_http_and_old_tls(synthesized: SynthesizedApp, bucket_id: str) -> None:
    template = synthesized.assertions("storage")
    bucket = Match.object_equals({"Ref": bucket_id})
    template.resource_properties_count_is("AWS::S3::BucketPolicy", {"Bucket": bucket}, 1)

    def deny(condition: dict[str, Any]) -> Matcher:
        return Match.object_like(
            {
                "Effect": "Deny",
                "Action": "s3:*",
                "Principal": Match.object_equals({"AWS": "*"}),
                "Resource": Match.exact([_arn_of(bucket_id), {"Fn::Join": ["", [_arn_of(bucket_id), "/*"]]}]),
                "Condition": Match.object_equals(condition),
            }
        )

    # Nothing but the TLS denies and (on the log bucket) the log-delivery service may appear.
    log_delivery = Match.object_like(
        {"Effect": "Allow", "Principal": Match.object_equals({"Service": "logging.s3.amazonaws.com"})}
    )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": bucket,
            "PolicyDocument": {
                "Statement": [
                    deny({"Bool": {"aws:SecureTransport": "false"}}),
                    deny({"NumericLessThan": {"s3:TlsVersion": 1.2}}),
                    *([log_delivery] if bucket_id == LOG_BUCKET_ID else []),
                ]
            },
        },
    )


def test_access_logs_go_to_the_separate_log_bucket(synthesized: SynthesizedApp) -> None:
    template = synthesized.assertions("storage")
    logging = Match.object_equals(
        {"DestinationBucketName": {"Ref": LOG_BUCKET_ID}, "LogFilePrefix": "artifact-bucket/"}
    )
    assert template.find_resources(
        "AWS::S3::Bucket", {"Properties": {"LoggingConfiguration": logging}}
    ).keys() == {BUCKET_ID}
    # S3 can deliver server access logs only to SSE-S3 buckets.
    sse_s3 = Match.exact([{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}])
    log_bucket = {
        "LoggingConfiguration": Match.absent(),
        "BucketEncryption": {"ServerSideEncryptionConfiguration": sse_s3},
    }
    assert LOG_BUCKET_ID in template.find_resources("AWS::S3::Bucket", {"Properties": log_bucket})
    delivery = Capture()
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": LOG_BUCKET_ID},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "logging.s3.amazonaws.com"},
                                "Action": "s3:PutObject",
                                "Condition": delivery,
                            }
                        )
                    ]
                )
            },
        },
    )
    assert delivery.as_object()["ArnLike"]["aws:SourceArn"] == _arn_of(BUCKET_ID)


def test_lifecycle_rules(synthesized: SynthesizedApp) -> None:
    rules = Match.exact(
        [
            {
                "Id": "AbortIncompleteMultipartUploads",
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                "Status": "Enabled",
            },
            {
                "Id": "ExpireNoncurrentVersions",
                "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                "Status": "Enabled",
            },
        ]
    )
    buckets = synthesized.assertions("storage").find_resources(
        "AWS::S3::Bucket", {"Properties": {"LifecycleConfiguration": {"Rules": rules}}}
    )
    assert BUCKET_ID in buckets


def test_stack_is_termination_protected_and_environment_agnostic(synthesized: SynthesizedApp) -> None:
    stack = synthesized.stacks["storage"]
    assert stack.termination_protection is True
    assert cdk.Token.is_unresolved(stack.account)
    assert cdk.Token.is_unresolved(stack.region)
    template_text = str(synthesized.template("storage"))
    for region in ("us-east-1", "eu-west-1"):
        assert region not in template_text


def test_outputs_name_the_bucket_prefix_and_key(synthesized: SynthesizedApp) -> None:
    template = synthesized.assertions("storage")
    template.has_output("ArtifactBucketName", {"Value": Match.exact({"Ref": BUCKET_ID})})
    template.has_output("KeyArn", {"Value": Match.exact(_arn_of(KEY_ID))})
    template.has_output(
        "ModelPrefixUri",
        {"Value": Match.exact({"Fn::Join": ["", ["s3://", {"Ref": BUCKET_ID}, "/models/"]]})},
    )


def test_throwaway_environment_destroys_everything(synthesized_throwaway: SynthesizedApp) -> None:
    template = synthesized_throwaway.assertions("storage")
    stack = synthesized_throwaway.stacks["storage"]
    assert stack.stack_name == "SandboxStorage"
    assert (stack.account, stack.region) == ("111122223333", "eu-west-1")
    deleted = {"DeletionPolicy": "Delete"}
    assert template.find_resources("AWS::S3::Bucket", deleted).keys() == {BUCKET_ID, LOG_BUCKET_ID}
    key = {**deleted, "Properties": {"PendingWindowInDays": 7}}
    assert template.find_resources("AWS::KMS::Key", key).keys() == {KEY_ID}
    # One auto-delete resource per bucket: two in all, and each bucket has one.
    template.resource_count_is("Custom::S3AutoDeleteObjects", 2)
    for bucket_id in (BUCKET_ID, LOG_BUCKET_ID):
        template.has_resource_properties("Custom::S3AutoDeleteObjects", {"BucketName": {"Ref": bucket_id}})
    expire = {"Id": "ExpireNoncurrentVersions", "NoncurrentVersionExpiration": {"NoncurrentDays": 3},
              "Status": "Enabled"}  # fmt: skip
    rules = {"LifecycleConfiguration": {"Rules": Match.array_with([Match.object_equals(expire)])}}
    assert BUCKET_ID in template.find_resources("AWS::S3::Bucket", {"Properties": rules})


def test_build_app_wires_every_stack_into_the_app(cdk_context: dict[str, Any]) -> None:
    """Stack names derive from stack_prefix, so two deployments can share an account."""
    app = cdk.App(context=cdk_context)
    config = load_default_config().model_copy(update={"stack_prefix": "Staging"})
    stacks = build_app(app, config)
    assert {role: s.stack_name for role, s in stacks.items()} == {
        "storage": "StagingStorage",
        "training": "StagingTraining",
        "endpoint": "StagingEndpoint",
        "monitoring": "StagingMonitoring",
    }
    assert {c.node.id for c in app.node.children if isinstance(c, cdk.Stack)} == {
        "StagingStorage",
        "StagingTraining",
        "StagingEndpoint",
        "StagingMonitoring",
    }
    assert stacks["storage"] in stacks["training"].dependencies
    assert stacks["training"] in stacks["endpoint"].dependencies


def test_stateless_stacks_use_the_store_through_named_exports(synthesized: SynthesizedApp) -> None:
    storage = synthesized.assertions("storage")
    exports = {
        "ArtifactBucketName": "MmeStorage-ArtifactBucketName",
        "ArtifactBucketArn": "MmeStorage-ArtifactBucketArn",
        "KeyArn": "MmeStorage-KeyArn",
    }
    assert storage.find_outputs("*").keys() == {*exports, "ModelPrefixUri"}
    for name, export in exports.items():
        storage.has_output(name, {"Export": {"Name": export}})
    storage.has_output("ModelPrefixUri", {"Export": Match.absent()})
    training = json.dumps(synthesized.template("training"))
    assert "Fn::GetStackOutput" not in training
    assert '{"Fn::ImportValue": "MmeStorage-KeyArn"}' in training


def test_key_lets_cloudwatch_logs_encrypt_only_this_accounts_log_groups(synthesized: SynthesizedApp) -> None:
    template = synthesized.assertions("storage")
    log_group_arn = Capture()
    logs = {
        "Sid": "AllowCloudWatchLogsOfThisAccount",
        "Principal": Match.object_equals(
            {"Service": {"Fn::Join": ["", ["logs.", {"Ref": "AWS::Region"}, ".", {"Ref": "AWS::URLSuffix"}]]}}
        ),
        "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": {"Fn::Join": ["", log_group_arn]}}},
    }
    # Exactly one such statement: one as follows, and no two with its Sid.
    for statements in one_statement({"Sid": logs["Sid"]}, logs):
        keys = template.find_resources(
            "AWS::KMS::Key", {"Properties": {"KeyPolicy": {"Statement": statements}}}
        )
        assert KEY_ID in keys
    assert log_group_arn.as_array()[-1] == ":log-group:*"
