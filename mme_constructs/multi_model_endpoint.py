"""The multi-model inference-pipeline endpoint: preprocessor container -> linear learner (MultiModel).

One SageMaker Model with two containers run serially: the scikit-learn serving container turns the
raw 8-field CSV row into the 10 features, and linear learner in ``MultiModel`` mode loads the
requested ``TargetModel`` from the multi-model prefix on demand. An EndpointConfig (ML storage
volume encrypted with the project key) and an Endpoint serve it; Application Auto Scaling tracks
``SageMakerVariantInvocationsPerInstance``.

The Model needs the promoted preprocessor artifact, which only a training run produces, so a small
custom resource checks for it first: deploying this stack before training fails in seconds with a
message saying what to run, instead of failing the endpoint after twenty minutes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from aws_cdk import ArnFormat, Aws, CfnCustomResource, Duration, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from mme_constructs import access
from mme_constructs.access import ScopedPolicy
from mme_constructs.algorithms import ALGORITHMS
from mme_constructs.handler_function import HandlerFunction
from mme_constructs.images import image_uris
from mme_constructs.preprocessor_source import ENTRY_POINT, PreprocessorSource
from mme_shared import s3_layout
from project_config.model import EndpointConfig, TrainingConfig

VARIANT_NAME: Final = "AllTraffic"
PREPROCESSOR_VERSION_ENV: Final = "MME_PREPROCESSOR_VERSION"
AUTOSCALING_SERVICE_LINKED_ROLE: Final = (
    "aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)
"""Application Auto Scaling's service-linked role for SageMaker (created by AWS on first use)."""
MAX_PIPELINE_CONTAINERS: Final = 15
ISOLATED_SUBMIT_DIRECTORY: Final = "/opt/ml/model/code"
"""Where the preprocessor artifact carries its own code (see ``preprocessor.CODE_DIR``)."""
LOG_LEVELS: Final = {"DEBUG": "10", "INFO": "20", "WARNING": "30", "ERROR": "40"}
VPC_ACTIONS: Final = (
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
)


@dataclass(frozen=True)
class PipelineContainer:
    """One container of an inference pipeline."""

    image: str
    model_data_url: str
    mode: Literal["SingleModel", "MultiModel"] = "SingleModel"
    environment: Mapping[str, str] = field(default_factory=dict)
    model_cache_enabled: bool = True


def check_pipeline(containers: Sequence[PipelineContainer]) -> None:
    """SageMaker's rules for a serial inference pipeline, checked at synth time."""
    if not 1 <= len(containers) <= MAX_PIPELINE_CONTAINERS:
        raise ValueError(
            f"an inference pipeline has 1 to {MAX_PIPELINE_CONTAINERS} containers, got {len(containers)}"
        )
    multi = [index for index, container in enumerate(containers) if container.mode == "MultiModel"]
    if len(multi) > 1:
        raise ValueError(
            "an inference pipeline may have at most one container in MultiModel mode, got "
            f"{len(multi)} (containers {', '.join(map(str, multi))})"
        )
    for index in multi:
        url = containers[index].model_data_url
        if not url.endswith("/"):
            raise ValueError(
                f"the MultiModel container's ModelDataUrl must be an S3 prefix ending in '/', got {url!r}"
            )


class InferencePipelineModel(Construct):
    """An ``AWS::SageMaker::Model`` running ``containers`` serially (``InferenceExecutionConfig``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        containers: Sequence[PipelineContainer],
        role: iam.IRole,
        network_isolation: bool,
        vpc_config: sagemaker.CfnModel.VpcConfigProperty | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        check_pipeline(containers)
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=role.role_arn,
            containers=[
                sagemaker.CfnModel.ContainerDefinitionProperty(
                    image=container.image,
                    model_data_url=container.model_data_url,
                    mode=container.mode,
                    environment=dict(container.environment) or None,
                    multi_model_config=(
                        sagemaker.CfnModel.MultiModelConfigProperty(model_cache_setting="Disabled")
                        if container.mode == "MultiModel" and not container.model_cache_enabled
                        else None
                    ),
                )
                for container in containers
            ],
            inference_execution_config=sagemaker.CfnModel.InferenceExecutionConfigProperty(mode="Serial"),
            enable_network_isolation=network_isolation,
            vpc_config=vpc_config,
        )


class MultiModelEndpoint(Construct):
    """Model, endpoint config, endpoint and autoscaling of the multi-model inference pipeline."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        key: kms.IKey,
        endpoint: EndpointConfig,
        training: TrainingConfig,
        preprocessor_nonce: str | None = None,
    ) -> None:
        """``preprocessor_nonce`` (set by ``make deploy`` after a training run) re-runs the check."""
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self._bucket = bucket
        images = image_uris(
            stack,
            sklearn_framework_version=training.sklearn_framework_version,
            linear_learner_tag=training.linear_learner_image_tag,
            sklearn_scope="inference",
        )
        source = PreprocessorSource(self, "PreprocessorSource")
        preprocessor_url = s3_layout.s3_uri(bucket.bucket_name, s3_layout.PREPROCESSOR_ARTIFACT_KEY)
        self.model_prefix_uri = s3_layout.s3_uri(bucket.bucket_name, s3_layout.MULTI_MODEL_PREFIX)

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=access.service_principal("sagemaker.amazonaws.com"),
            description="SageMaker execution role of the multi-model inference pipeline",
        )
        permissions = ScopedPolicy(
            self, "ExecutionPermissions", role=self.role, description="What the endpoint's containers may do"
        )
        permissions.allow_objects(
            bucket,
            access.S3_READ,
            [f"{s3_layout.MULTI_MODEL_PREFIX}*"],
            why_wildcard="The endpoint loads any model version promoted under the multi-model prefix "
            "models/.",
        )
        permissions.allow(access.S3_READ, [bucket.arn_for_objects(s3_layout.PREPROCESSOR_ARTIFACT_KEY)])
        if not endpoint.network_isolation:
            permissions.allow(access.S3_READ, [source.bucket.arn_for_objects(source.s3_object_key)])
        permissions.allow_key(key, access.KMS_READ)
        permissions.allow_image_pull([images.sklearn, images.linear_learner])
        permissions.allow(
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [
                stack.format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name="/aws/sagemaker/Endpoints/*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
            why_wildcard="SageMaker writes to /aws/sagemaker/Endpoints/<endpoint name>; the name is "
            "generated by CloudFormation.",
        )
        permissions.allow_sagemaker_metrics()
        vpc_config = None
        if endpoint.vpc is not None:
            vpc_config = sagemaker.CfnModel.VpcConfigProperty(
                security_group_ids=list(endpoint.vpc.security_group_ids),
                subnets=list(endpoint.vpc.subnet_ids),
            )
            permissions.allow(
                VPC_ACTIONS,
                ["*"],
                why_wildcard="SageMaker creates and describes the endpoint's network interfaces in the "
                "configured subnets; these EC2 APIs take no resource-level scope at creation.",
            )

        check = self._preprocessor_check(bucket, key, training, preprocessor_nonce)
        self.pipeline = InferencePipelineModel(
            self,
            "Pipeline",
            containers=[
                PipelineContainer(
                    image=images.sklearn,
                    model_data_url=preprocessor_url,
                    environment={
                        "SAGEMAKER_PROGRAM": ENTRY_POINT,
                        "SAGEMAKER_SUBMIT_DIRECTORY": (
                            ISOLATED_SUBMIT_DIRECTORY if endpoint.network_isolation else source.s3_object_url
                        ),
                        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
                        "SAGEMAKER_REGION": Aws.REGION,
                        "SAGEMAKER_CONTAINER_LOG_LEVEL": LOG_LEVELS[endpoint.container_log_level],
                        # A promoted preprocessor with a new S3 version replaces the model (and so
                        # rolls the endpoint) instead of leaving instances on a cached old copy.
                        PREPROCESSOR_VERSION_ENV: check.get_att("VersionId").to_string(),
                    },
                ),
                PipelineContainer(
                    image=ALGORITHMS[training.algorithm].image(images),
                    model_data_url=self.model_prefix_uri,
                    mode="MultiModel",
                    model_cache_enabled=endpoint.model_cache_enabled,
                ),
            ],
            role=self.role,
            network_isolation=endpoint.network_isolation,
            vpc_config=vpc_config,
        )
        self.pipeline.model.node.add_dependency(check, permissions)

        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            kms_key_id=key.key_arn,
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT_NAME,
                    model_name=self.pipeline.model.attr_model_name,
                    initial_instance_count=endpoint.initial_instance_count,
                    instance_type=endpoint.instance_type,
                    initial_variant_weight=1,
                )
            ],
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_config_name=self.endpoint_config.attr_endpoint_config_name
        )
        self.endpoint_name = self.endpoint.attr_endpoint_name
        self.endpoint_arn = self.endpoint.ref  # Ref of AWS::SageMaker::Endpoint is its ARN
        self.variant_name = VARIANT_NAME

        scaling = endpoint.autoscaling
        self.scalable_target: appscaling.ScalableTarget | None = None
        if scaling.enabled:
            self.scalable_target = appscaling.ScalableTarget(
                self,
                "ScalableTarget",
                service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
                resource_id=f"endpoint/{self.endpoint_name}/variant/{VARIANT_NAME}",
                scalable_dimension="sagemaker:variant:DesiredInstanceCount",
                min_capacity=scaling.min_capacity,
                max_capacity=scaling.max_capacity,
                role=iam.Role.from_role_arn(
                    self,
                    "AutoScalingServiceLinkedRole",
                    stack.format_arn(
                        service="iam",
                        region="",
                        resource="role",
                        resource_name=AUTOSCALING_SERVICE_LINKED_ROLE,
                    ),
                    mutable=False,
                ),
            )
            self.scalable_target.scale_to_track_metric(
                "InvocationsPerInstance",
                target_value=scaling.target_invocations_per_instance,
                predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
                scale_in_cooldown=Duration.seconds(scaling.scale_in_cooldown_seconds),
                scale_out_cooldown=Duration.seconds(scaling.scale_out_cooldown_seconds),
            )

    def _preprocessor_check(
        self, bucket: s3.IBucket, key: kms.IKey, training: TrainingConfig, nonce: str | None
    ) -> CfnCustomResource:
        """Fail the deploy in seconds, with instructions, when training has not run yet."""
        checker = HandlerFunction(
            self,
            "CheckPreprocessorFunction",
            handler_name="check_preprocessor",
            description="Fails the endpoint deploy early when the preprocessor artifact does not exist yet",
            environment={"BUCKET_NAME": bucket.bucket_name},
            key=key,
            log_retention_days=training.log_retention_days,
            timeout=Duration.seconds(60),
            invoked_by="CloudFormation during a deploy of this stack",
            dlq_reason="CloudFormation invokes this custom resource and waits for its response; a failed "
            "invocation fails the deploy, so a dead-letter queue would hold nothing anyone acts on.",
        )
        checker.permissions.allow(
            ["s3:GetObject"], [bucket.arn_for_objects(s3_layout.PREPROCESSOR_ARTIFACT_KEY)]
        )
        # Without ListBucket, S3 answers a HeadObject on a missing key with 403 instead of 404.
        checker.permissions.allow(["s3:ListBucket"], [bucket.bucket_arn])
        check = CfnCustomResource(
            self, "PreprocessorArtifactCheck", service_token=checker.function.function_arn
        )
        check.add_property_override("ArtifactKey", s3_layout.PREPROCESSOR_ARTIFACT_KEY)
        if nonce is not None:
            check.add_property_override("Nonce", nonce)
        check.node.add_dependency(checker.permissions)
        return check
