"""Stateful stack: the artifact store. Termination protection on; RETAIN unless configured."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, RemovalPolicy, Stack
from constructs import Construct

from mme_constructs.artifact_store import ArtifactStore
from project_config.model import StorageConfig


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

        CfnOutput(
            self,
            "ArtifactBucketName",
            value=self.bucket.bucket_name,
            description="Bucket holding data, training outputs and the multi-model prefix",
        )
        CfnOutput(
            self,
            "ModelPrefixUri",
            value=self.artifact_store.model_prefix_uri,
            description="S3 prefix the multi-model endpoint serves models from",
        )
        CfnOutput(
            self,
            "KeyArn",
            value=self.key.key_arn,
            description="Customer-managed KMS key encrypting the project's data",
        )
