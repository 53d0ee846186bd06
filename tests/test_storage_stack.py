"""Fine-grained assertions on the artifact store: encryption, public access, TLS, lifecycle, logs."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Capture, Match, Template

from app import build_app
from project_config import load_default_config
from tests.conftest import SynthesizedApp, resources_of_type

BUCKET_ID = "ArtifactStoreBucket47CE7D81"
KEY_ID = "ArtifactStoreKey28E2B6CF"
LOG_BUCKET_ID = "ArtifactStoreAccessLogBucketC3CDD40C"


def test_logical_ids_of_stateful_resources_are_pinned(synthesized: SynthesizedApp) -> None:
    """A refactor that renames the bucket or key would make CloudFormation replace (and orphan) them."""
    template = synthesized.template("storage")
    assert resources_of_type(template, "AWS::KMS::Key").keys() == {KEY_ID}
    assert resources_of_type(template, "AWS::S3::Bucket").keys() == {BUCKET_ID, LOG_BUCKET_ID}


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
    bucket = synthesized.template("storage")["Resources"][BUCKET_ID]["Properties"]
    assert bucket["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {
                "BucketKeyEnabled": True,
                "ServerSideEncryptionByDefault": {
                    "KMSMasterKeyID": {"Fn::GetAtt": [KEY_ID, "Arn"]},
                    "SSEAlgorithm": "aws:kms",
                },
            }
        ]
    }


@pytest.mark.parametrize("bucket_id", [BUCKET_ID, LOG_BUCKET_ID])
def test_buckets_block_all_public_access_and_acls(synthesized: SynthesizedApp, bucket_id: str) -> None:
    bucket = synthesized.template("storage")["Resources"][bucket_id]
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["DeletionPolicy"] == "Retain"


@pytest.mark.parametrize("bucket_id", [BUCKET_ID, LOG_BUCKET_ID])
def test_bucket_policy_denies_plain_http_and_old_tls(synthesized: SynthesizedApp, bucket_id: str) -> None:
    template = synthesized.template("storage")
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in resources_of_type(template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    assert len(policies) == 1
    statements = policies[0]
    denies = [s for s in statements if s["Effect"] == "Deny"]
    conditions = [s["Condition"] for s in denies]
    assert {"Bool": {"aws:SecureTransport": "false"}} in conditions
    assert {"NumericLessThan": {"s3:TlsVersion": 1.2}} in conditions
    for statement in denies:
        assert statement["Action"] == "s3:*"
        assert statement["Principal"] == {"AWS": "*"}
        assert statement["Resource"] == [
            {"Fn::GetAtt": [bucket_id, "Arn"]},
            {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/*"]]},
        ]
    # Nothing but the TLS denies and (on the log bucket) the log-delivery service may appear.
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert all(s["Principal"] == {"Service": "logging.s3.amazonaws.com"} for s in allows)


def test_access_logs_go_to_the_separate_log_bucket(synthesized: SynthesizedApp) -> None:
    template = synthesized.template("storage")
    bucket = template["Resources"][BUCKET_ID]["Properties"]
    assert bucket["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": LOG_BUCKET_ID},
        "LogFilePrefix": "artifact-bucket/",
    }
    log_bucket = template["Resources"][LOG_BUCKET_ID]["Properties"]
    assert "LoggingConfiguration" not in log_bucket
    # S3 can deliver server access logs only to SSE-S3 buckets.
    assert log_bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    delivery = Capture()
    Template.from_json(template).has_resource_properties(
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
    assert delivery.as_object()["ArnLike"]["aws:SourceArn"] == {"Fn::GetAtt": [BUCKET_ID, "Arn"]}


def test_lifecycle_rules(synthesized: SynthesizedApp) -> None:
    rules = synthesized.template("storage")["Resources"][BUCKET_ID]["Properties"]["LifecycleConfiguration"]
    assert rules["Rules"] == [
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


def test_stack_is_termination_protected_and_environment_agnostic(synthesized: SynthesizedApp) -> None:
    stack = synthesized.stacks["storage"]
    assert stack.termination_protection is True
    assert cdk.Token.is_unresolved(stack.account)
    assert cdk.Token.is_unresolved(stack.region)
    template_text = str(synthesized.template("storage"))
    for region in ("us-east-1", "eu-west-1"):
        assert region not in template_text


def test_outputs_name_the_bucket_prefix_and_key(synthesized: SynthesizedApp) -> None:
    outputs = synthesized.template("storage")["Outputs"]
    assert outputs["ArtifactBucketName"]["Value"] == {"Ref": BUCKET_ID}
    assert outputs["KeyArn"]["Value"] == {"Fn::GetAtt": [KEY_ID, "Arn"]}
    assert outputs["ModelPrefixUri"]["Value"] == {"Fn::Join": ["", ["s3://", {"Ref": BUCKET_ID}, "/models/"]]}


def test_throwaway_environment_destroys_everything(synthesized_throwaway: SynthesizedApp) -> None:
    template = synthesized_throwaway.template("storage")
    stack = synthesized_throwaway.stacks["storage"]
    assert stack.stack_name == "SandboxStorage"
    assert (stack.account, stack.region) == ("111122223333", "eu-west-1")
    for logical_id in (BUCKET_ID, LOG_BUCKET_ID, KEY_ID):
        assert template["Resources"][logical_id]["DeletionPolicy"] == "Delete"
    auto_delete = resources_of_type(template, "Custom::S3AutoDeleteObjects")
    assert sorted(r["Properties"]["BucketName"]["Ref"] for r in auto_delete.values()) == sorted(
        [BUCKET_ID, LOG_BUCKET_ID]
    )
    assert template["Resources"][KEY_ID]["Properties"]["PendingWindowInDays"] == 7
    rules = template["Resources"][BUCKET_ID]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert {"Id": "ExpireNoncurrentVersions", "NoncurrentVersionExpiration": {"NoncurrentDays": 3},
            "Status": "Enabled"} in rules  # fmt: skip


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
    outputs = synthesized.template("storage")["Outputs"]
    assert {name: o.get("Export", {}).get("Name") for name, o in outputs.items()} == {
        "ArtifactBucketName": "MmeStorage-ArtifactBucketName",
        "ArtifactBucketArn": "MmeStorage-ArtifactBucketArn",
        "KeyArn": "MmeStorage-KeyArn",
        "ModelPrefixUri": None,
    }
    training = json.dumps(synthesized.template("training"))
    assert "Fn::GetStackOutput" not in training
    assert '{"Fn::ImportValue": "MmeStorage-KeyArn"}' in training


def test_key_lets_cloudwatch_logs_encrypt_only_this_accounts_log_groups(synthesized: SynthesizedApp) -> None:
    statements = synthesized.template("storage")["Resources"][KEY_ID]["Properties"]["KeyPolicy"]["Statement"]
    (logs,) = [s for s in statements if s.get("Sid") == "AllowCloudWatchLogsOfThisAccount"]
    assert logs["Principal"] == {
        "Service": {"Fn::Join": ["", ["logs.", {"Ref": "AWS::Region"}, ".", {"Ref": "AWS::URLSuffix"}]]}
    }
    condition = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert condition["Fn::Join"][1][-1] == ":log-group:*"
