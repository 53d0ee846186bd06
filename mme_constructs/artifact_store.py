"""The artifact store: one KMS-encrypted bucket for every artifact of the project, plus its logs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from aws_cdk import Acknowledgment, Aws, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mme_shared import s3_layout

_PLACEHOLDER_GENERATION: Final = "pp-GENERATION"


def generation_key(layout: Callable[[str], str], generation: str) -> str:
    """A key of the layout for a generation that is not a literal id: a CDK token or ``*``.

    ``s3_layout`` validates generation ids, so it cannot take the resolver's token (or an IAM
    wildcard) directly; it builds the key for a placeholder generation, which is then replaced. The
    layout stays defined in one place.
    """
    key = layout(_PLACEHOLDER_GENERATION)
    if key.count(_PLACEHOLDER_GENERATION) != 1:
        raise ValueError(f"{layout.__name__} must name the generation exactly once, got {key!r}")
    return key.replace(_PLACEHOLDER_GENERATION, generation)


def _acknowledge(construct: Construct, rule_id: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))


class ArtifactStore(Construct):
    """Bucket, customer-managed key and access-log bucket.

    The one bucket holds raw data, preprocessed data, training outputs, the preprocessor artifact
    and the multi-model prefix (layout: ``mme_shared.s3_layout``). Every object is encrypted with
    ``self.key`` (with an S3 bucket key, so KMS is not called per object), versioned, reachable
    only over TLS 1.2+, never public, and every request is logged to ``self.access_log_bucket``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: RemovalPolicy,
        noncurrent_version_expiration: Duration,
        abort_incomplete_multipart_upload_after: Duration,
        access_log_expiration: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        destroy = removal_policy == RemovalPolicy.DESTROY
        self.key = kms.Key(
            self,
            "Key",
            description="Encrypts the SageMaker multi-model project's artifacts, logs and volumes",
            enable_key_rotation=True,
            removal_policy=removal_policy,
            pending_window=Duration.days(7) if destroy else None,
        )
        self._allow_cloudwatch_logs()
        self._allow_alarm_topics()
        self.access_log_bucket = self._access_log_bucket(
            removal_policy=removal_policy,
            expiration=access_log_expiration,
            abort_incomplete_multipart_upload_after=abort_incomplete_multipart_upload_after,
        )
        self.bucket = self._artifact_bucket(
            removal_policy=removal_policy,
            noncurrent_version_expiration=noncurrent_version_expiration,
            abort_incomplete_multipart_upload_after=abort_incomplete_multipart_upload_after,
        )

    def _allow_cloudwatch_logs(self) -> None:
        """CloudWatch Logs encrypts the project's log groups (state machine, Lambdas) with the key.

        The encryption context pins the grant to log groups of this account and region.
        """
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.{Aws.URL_SUFFIX}")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
                        )
                    }
                },
            )
        )

    def _allow_alarm_topics(self) -> None:
        """CloudWatch alarms publish to the project's SNS topic, which the key encrypts."""
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublishToEncryptedTopics",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )

    def _access_log_bucket(
        self,
        *,
        removal_policy: RemovalPolicy,
        expiration: Duration,
        abort_incomplete_multipart_upload_after: Duration,
    ) -> s3.Bucket:
        """The server access logs of the artifact bucket.

        Server access logs can only be delivered to an SSE-S3 bucket (S3 does not write logs to
        SSE-KMS targets), so this bucket uses S3-managed keys; it holds request metadata only.
        """
        bucket = s3.Bucket(
            self,
            "AccessLogBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs",
                    expiration=expiration,
                    noncurrent_version_expiration=Duration.days(1),
                    abort_incomplete_multipart_upload_after=abort_incomplete_multipart_upload_after,
                )
            ],
            removal_policy=removal_policy,
            auto_delete_objects=removal_policy == RemovalPolicy.DESTROY,
        )
        _acknowledge(
            bucket,
            "NIST.800.53.R5::NIST.800.53.R5-S3DefaultEncryptionKMS",
            "S3 server access log delivery supports only SSE-S3 destination buckets.",
        )
        _acknowledge(
            bucket,
            "NIST.800.53.R5::NIST.800.53.R5-S3BucketReplicationEnabled",
            "Access logs are audit copies kept for a fixed period; cross-region replication "
            "is an account-level decision left to the operator.",
        )
        return bucket

    def _artifact_bucket(
        self,
        *,
        removal_policy: RemovalPolicy,
        noncurrent_version_expiration: Duration,
        abort_incomplete_multipart_upload_after: Duration,
    ) -> s3.Bucket:
        """The bucket every artifact lives in, encrypted with the key and logged to the log bucket."""
        bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix="artifact-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="AbortIncompleteMultipartUploads",
                    abort_incomplete_multipart_upload_after=abort_incomplete_multipart_upload_after,
                ),
                s3.LifecycleRule(
                    id="ExpireNoncurrentVersions",
                    noncurrent_version_expiration=noncurrent_version_expiration,
                ),
            ],
            removal_policy=removal_policy,
            auto_delete_objects=removal_policy == RemovalPolicy.DESTROY,
        )
        _acknowledge(
            bucket,
            "NIST.800.53.R5::NIST.800.53.R5-S3BucketReplicationEnabled",
            "Every object is reproducible by rerunning the training pipeline and versioning "
            "protects against overwrites; cross-region replication is left to the operator.",
        )
        return bucket

    @property
    def bucket_name(self) -> str:
        return self.bucket.bucket_name

    @property
    def model_prefix_uri(self) -> str:
        """``s3://<bucket>/models/``: the multi-model endpoint's ModelDataUrl."""
        return s3_layout.s3_uri(self.bucket.bucket_name, s3_layout.MULTI_MODEL_PREFIX)
