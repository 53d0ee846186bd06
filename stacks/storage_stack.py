"""Stateful stack: the artifact store. Termination protection on; RETAIN unless configured."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnOutput, Duration, Environment, Fn, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mme_constructs.artifact_store import ArtifactStore
from mme_shared.stack_names import ARTIFACT_BUCKET_ARN, ARTIFACT_BUCKET_NAME, KEY_ARN, MODEL_PREFIX_URI
from project_config.model import StorageConfig


@dataclass(frozen=True)
class StorageExports:
    """Names of the CloudFormation exports through which stateless stacks use the artifact store.

    Explicit exports (rather than CDK's automatic cross-stack references) give every consumer the
    same readable values (``{"Fn::ImportValue": "MmeStorage-ArtifactBucketArn"}``), so the
    consuming stacks' IAM policies and their cdk-nag acknowledgments are known at construction time.
    CloudFormation refuses to delete or change an export that is imported, which is what a stateful
    dependency should do.
    """

    stack_name: str

    @property
    def bucket_name(self) -> str:
        return f"{self.stack_name}-{ARTIFACT_BUCKET_NAME.key}"

    @property
    def bucket_arn(self) -> str:
        return f"{self.stack_name}-{ARTIFACT_BUCKET_ARN.key}"

    @property
    def key_arn(self) -> str:
        return f"{self.stack_name}-{KEY_ARN.key}"

    def import_bucket(self, scope: Construct) -> s3.IBucket:
        return s3.Bucket.from_bucket_attributes(
            scope,
            "ArtifactBucket",
            bucket_arn=Fn.import_value(self.bucket_arn),
            bucket_name=Fn.import_value(self.bucket_name),
        )

    def import_key(self, scope: Construct) -> kms.IKey:
        return kms.Key.from_key_arn(scope, "ProjectKey", Fn.import_value(self.key_arn))


class StorageStack(Stack):
    """The bucket and key every other stack reads from and writes to.

    Kept apart from the stateless stacks so those can be destroyed and redeployed freely while
    the data, the models and the key survive.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConfig,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=env,
            termination_protection=True,
            description="SageMaker multi-model endpoint project: artifact bucket, access logs and KMS key",
        )
        removal_policy = (
            RemovalPolicy.DESTROY if storage.removal_policy == "destroy" else RemovalPolicy.RETAIN
        )
        self.artifact_store = ArtifactStore(
            self,
            "ArtifactStore",
            removal_policy=removal_policy,
            noncurrent_version_expiration=Duration.days(storage.noncurrent_version_expiration_days),
            abort_incomplete_multipart_upload_after=Duration.days(
                storage.abort_incomplete_multipart_upload_days
            ),
            access_log_expiration=Duration.days(storage.access_log_expiration_days),
        )
        self.bucket = self.artifact_store.bucket
        self.key = self.artifact_store.key
        self.exports = StorageExports(stack_name=self.stack_name)

        CfnOutput(
            self,
            ARTIFACT_BUCKET_NAME.key,
            value=self.bucket.bucket_name,
            export_name=self.exports.bucket_name,
            description="Bucket holding data, training outputs and the multi-model prefix",
        )
        CfnOutput(
            self,
            ARTIFACT_BUCKET_ARN.key,
            value=self.bucket.bucket_arn,
            export_name=self.exports.bucket_arn,
            description="ARN of the artifact bucket",
        )
        CfnOutput(
            self,
            MODEL_PREFIX_URI.key,
            value=self.artifact_store.model_prefix_uri,
            description="S3 prefix the multi-model endpoint serves models from",
        )
        CfnOutput(
            self,
            KEY_ARN.key,
            value=self.key.key_arn,
            export_name=self.exports.key_arn,
            description="Customer-managed KMS key encrypting the project's data",
        )
