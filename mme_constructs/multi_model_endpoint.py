"""The multi-model inference-pipeline endpoint: preprocessor container -> the algorithm (MultiModel).

One SageMaker Model with two containers run serially: the scikit-learn serving container turns the
raw 8-field CSV row into the 10 features (as ``text/csv``), and the built-in algorithm of
``training.algorithm`` (``mme_constructs.algorithms``) in ``MultiModel`` mode loads the
requested ``TargetModel`` from the multi-model prefix on demand. An EndpointConfig (ML storage
volume encrypted with the project key) and an Endpoint serve it; Application Auto Scaling tracks
``SageMakerVariantInvocationsPerInstance``.

The endpoint serves exactly one preprocessor generation (``mme_shared.s3_layout``): its first
container reads ``preprocessor/<generation>/model.tar.gz`` and its MultiModel container the
generation's own prefix ``models/<generation>/``, so a TargetModel can only load a model trained on
the preprocessor in front of it. Two custom resources backed by one Lambda
(``lambda/serving_generation``) frame the deploy:

- ``PreprocessorGeneration`` (``Action: resolve``) turns the requested generation (a pinned id, or
  ``newest``) into the id the Model is built from, and fails the deploy in seconds, with a sentence
  saying what to run, when that generation cannot be served (not trained, incomplete, artifact
  missing, or it would stop serving locations the served generation has). The Model reads its
  ``Generation`` attribute, so a new generation changes both ModelDataUrls: CloudFormation replaces
  the Model, then the EndpointConfig, and SageMaker moves the endpoint over blue/green.
- ``ServingGenerationRecord`` (``Action: record-serving``) depends on the Endpoint (and its
  autoscaling), so CloudFormation reaches it only once the endpoint serves the new generation; it
  then writes ``preprocessor/serving.json``, which clients read to find the pointers of what is
  served. On a rollback CloudFormation sends it the old properties and it rewrites the old
  generation; on stack deletion it removes the record if it still names this endpoint.
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
from mme_constructs.artifact_store import generation_key
from mme_constructs.handler_function import HandlerFunction
from mme_constructs.images import image_uris
from mme_constructs.observability import RollbackAlarms
from mme_constructs.preprocessor_source import ENTRY_POINT, PreprocessorSource
from mme_shared import naming, s3_layout
from mme_shared.generation import ALGORITHM_ENV
from project_config.model import AlarmsConfig, EndpointConfig, TrainingConfig

VARIANT_NAME: Final = "AllTraffic"
ALL_AT_ONCE: Final = "ALL_AT_ONCE"
PREPROCESSOR_GENERATION_ENV: Final = "MME_PREPROCESSOR_GENERATION"
"""Names the served generation on the Model itself (the CLI reads it from the first container)."""
NEWEST_GENERATION: Final = "newest"
"""The requested generation that means "whatever preprocessor/newest.json names" (the Lambda's NEWEST)."""
RESOLVE_ACTION: Final = "resolve"
RECORD_SERVING_ACTION: Final = "record-serving"
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
        alarms: AlarmsConfig,
        preprocessor_generation: str = NEWEST_GENERATION,
    ) -> None:
        """``preprocessor_generation``: a generation id (``pp-<run id>``) to pin, or ``newest``.

        ``alarms``: the thresholds of the rollback alarms an endpoint update watches.

        ``make deploy`` always pins one, so the template names the generation it deploys and a
        rollback re-resolves exactly the generation that was served before.
        """
        super().__init__(scope, construct_id)
        if preprocessor_generation != NEWEST_GENERATION:
            naming.validate_generation(preprocessor_generation)
        stack = Stack.of(self)
        self._bucket = bucket
        images = image_uris(
            stack,
            sklearn_framework_version=training.sklearn_framework_version,
            algorithm=training.algorithm_image,
            sklearn_scope="inference",
        )
        source = PreprocessorSource(self, "PreprocessorSource")
        self.serving_generation_function = self._serving_generation_function(bucket, key, training)
        resolver = self._custom_resource(
            "PreprocessorGeneration", RESOLVE_ACTION, Generation=preprocessor_generation
        )
        self.preprocessor_generation = resolver.get_att("Generation").to_string()
        """The generation the Model is built from (a token: the resolver's answer)."""
        preprocessor_url = s3_layout.s3_uri(
            bucket.bucket_name,
            generation_key(s3_layout.preprocessor_artifact_key, self.preprocessor_generation),
        )
        self.model_prefix_uri = s3_layout.s3_uri(
            bucket.bucket_name,
            generation_key(s3_layout.generation_models_prefix, self.preprocessor_generation),
        )

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=access.service_principal("sagemaker.amazonaws.com"),
            description="SageMaker execution role of the multi-model inference pipeline",
        )
        permissions = ScopedPolicy(
            self, "ExecutionPermissions", role=self.role, description="What the endpoint's containers may do"
        )
        # Every generation, not only the resolved one: during SageMaker's blue/green switch the old
        # fleet keeps loading models of the old generation while the new one starts, and this
        # policy (updated before the Model) must serve both.
        permissions.allow_objects(
            bucket,
            access.S3_READ,
            [f"{s3_layout.MULTI_MODEL_PREFIX}*"],
            why_wildcard="The endpoint loads any model version promoted under its generation's prefix "
            "models/<generation>/; the old and the new generation are both served during a switch.",
        )
        permissions.allow_objects(
            bucket,
            access.S3_READ,
            [generation_key(s3_layout.preprocessor_artifact_key, "*")],
            why_wildcard="The first container reads its generation's immutable artifact "
            "preprocessor/<generation>/model.tar.gz (the old and the new one during a switch); the "
            "generation records beside it stay unreadable.",
        )
        if not endpoint.network_isolation:
            permissions.allow(access.S3_READ, [source.bucket.arn_for_objects(source.s3_object_key)])
        permissions.allow_key(key, access.KMS_READ)
        permissions.allow_image_pull([images.sklearn, images.algorithm])
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
                        PREPROCESSOR_GENERATION_ENV: self.preprocessor_generation,
                    },
                ),
                PipelineContainer(
                    image=images.algorithm,
                    model_data_url=self.model_prefix_uri,
                    mode="MultiModel",
                    model_cache_enabled=endpoint.model_cache_enabled,
                ),
            ],
            role=self.role,
            network_isolation=endpoint.network_isolation,
            vpc_config=vpc_config,
        )
        # The resolver is a dependency already (GetAtt); the role must be able to read before the
        # Model is created, because SageMaker checks access to the artifacts on CreateModel.
        self.pipeline.model.node.add_dependency(permissions)

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
        # The endpoint's name is the stack's (a prefix of letters and digits plus "Endpoint": a valid
        # endpoint name, unique per account and region like the stack's): the rollback alarms its
        # DeploymentConfig names are keyed by it, so they can be created BEFORE the endpoint that
        # refers to them, whether or not CreateEndpoint checks that they exist. The name never
        # changes, and a new endpoint config is an update, not a replacement.
        endpoint_name = stack.stack_name
        self.rollback_alarms = RollbackAlarms(
            self, "RollbackAlarms", endpoint_name=endpoint_name, variant_name=VARIANT_NAME, alarms=alarms
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            # Keep what autoscaling changed (the instance count) across an update instead of resetting
            # the fleet to InitialInstanceCount. Only DesiredInstanceCount, DesiredWeight and
            # DataCaptureConfig are "variant properties" (API VariantProperty); the instance type is
            # not one, so a new instance type always takes effect. Without autoscaling the config's
            # initial_instance_count is the only source of the count, so it is excluded from what is
            # retained. https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_VariantProperty.html
            retain_all_variant_properties=True,
            exclude_retained_variant_properties=(
                None
                if endpoint.autoscaling.enabled
                else [
                    sagemaker.CfnEndpoint.VariantPropertyProperty(
                        variant_property_type="DesiredInstanceCount"
                    )
                ]
            ),
        )
        self.endpoint_name = self.endpoint.attr_endpoint_name
        self.endpoint_arn = self.endpoint.ref  # Ref of AWS::SageMaker::Endpoint is its ARN
        self.variant_name = VARIANT_NAME
        self.endpoint.deployment_config = self._deployment_config(endpoint, self.rollback_alarms.alarm_names)
        self.endpoint.node.add_dependency(self.rollback_alarms)
        # SageMaker's guide asks that the execution role may read the rollback alarms ("Auto-Rollback
        # Configuration and Monitoring"). Their ARNs are built from the names, so the policy (which the
        # Model waits for) does not wait for the alarms (which wait for the Endpoint).
        # https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html
        permissions.allow(["cloudwatch:DescribeAlarms"], self.rollback_alarms.alarm_arns)

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

        # Last: only once the endpoint (and its autoscaling, so nothing after it can fail and roll
        # back) serves the generation does serving.json say so. GetAtt EndpointName orders it after
        # the Endpoint.
        self.serving_record = self._custom_resource(
            "ServingGenerationRecord",
            RECORD_SERVING_ACTION,
            Generation=self.preprocessor_generation,
            EndpointName=self.endpoint_name,
        )
        if self.scalable_target is not None:
            self.serving_record.node.add_dependency(self.scalable_target)
        # Likewise the rollback alarms, created after the Endpoint: if one fails, nothing is recorded.
        self.serving_record.node.add_dependency(self.rollback_alarms)

    @staticmethod
    def _deployment_config(
        endpoint: EndpointConfig, alarm_names: Sequence[str]
    ) -> sagemaker.CfnEndpoint.DeploymentConfigProperty:
        """Blue/green, all traffic at once, a baking period watched by the rollback alarms.

        ALL_AT_ONCE is the only routing that suits a generation switch: the old fleet serves only the
        old generation's TargetModels and the new fleet only the new one's, so canary or linear
        shifting (and rolling updates) would send a client's requests to both fleets for the whole
        shift, and every other request would be "model not found". All at once keeps the window to the
        one shift, and a rollback shifts everything back at once too. The guardrails apply to
        multi-model endpoints (the exclusions are Marketplace containers and Inf1 instances, plus,
        for rolling updates only, serverless and multi-variant endpoints):
        https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-exclusions.html

        With all at once there is one step, so the baking period is ``TerminationWaitInSeconds``:
        the old fleet is kept that long after the shift, and an alarm firing meanwhile moves the
        traffic back to it. ``WaitIntervalInSeconds`` (the wait between steps, which the API requires)
        is 0. https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-blue-green-all-at-once.html
        Property names and ranges: AWS::SageMaker::Endpoint BlueGreenUpdatePolicy (TerminationWait
        0-3600, MaximumExecutionTimeout 600-28800), TrafficRoutingConfig, AutoRollbackConfig (alarm
        names, at most 10):
        https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-sagemaker-endpoint-bluegreenupdatepolicy.html
        """
        return sagemaker.CfnEndpoint.DeploymentConfigProperty(
            blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
                traffic_routing_configuration=sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
                    type=ALL_AT_ONCE, wait_interval_in_seconds=0
                ),
                termination_wait_in_seconds=endpoint.update_baking_period_seconds,
                maximum_execution_timeout_in_seconds=endpoint.update_timeout_seconds,
            ),
            auto_rollback_configuration=sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
                alarms=[sagemaker.CfnEndpoint.AlarmProperty(alarm_name=name) for name in alarm_names]
            ),
        )

    def _serving_generation_function(
        self, bucket: s3.IBucket, key: kms.IKey, training: TrainingConfig
    ) -> HandlerFunction:
        """The Lambda behind both custom resources, with exactly the S3 access its handler documents."""
        function = HandlerFunction(
            self,
            "ServingGenerationFunction",
            handler_name="serving_generation",
            description="Resolves the preprocessor generation the endpoint deploys; records it once served",
            environment={
                "BUCKET_NAME": bucket.bucket_name,
                "KMS_KEY_ARN": key.key_arn,
                ALGORITHM_ENV: training.algorithm,
            },
            key=key,
            log_retention_days=training.log_retention_days,
            timeout=Duration.seconds(60),
            invoked_by="CloudFormation during a deploy of this stack",
            dlq_reason="CloudFormation invokes this custom resource and waits for its response; a failed "
            "invocation fails the deploy, so a dead-letter queue would hold nothing anyone acts on.",
        )
        permissions = function.permissions
        records = [s3_layout.NEWEST_GENERATION_KEY, s3_layout.SERVING_GENERATION_KEY]
        permissions.allow(access.S3_READ, [bucket.arn_for_objects(record) for record in records])
        permissions.allow_objects(
            bucket,
            access.S3_READ,
            [
                generation_key(s3_layout.generation_record_key, "*"),
                generation_key(s3_layout.preprocessor_artifact_key, "*"),
            ],
            why_wildcard="Any generation may be requested: its complete.json is read and its artifact "
            "checked with HeadObject (metadata only, authorised as GetObject).",
        )
        # ListBucket only for the prefixes the handler lists: the keys it asks about under
        # preprocessor/ (it tests existence by listing the exact key, so it needs no bucket-wide
        # ListBucket to get 404 instead of 403) and the generations' pointers.
        permissions.allow(
            ["s3:ListBucket"],
            [bucket.bucket_arn],
            conditions={
                "StringLike": {
                    "s3:prefix": [
                        *records,
                        generation_key(s3_layout.generation_record_key, "*"),
                        generation_key(s3_layout.preprocessor_artifact_key, "*"),
                        f"{s3_layout.MODEL_POINTERS_PREFIX}*",
                    ]
                }
            },
        )
        # Writes and deletes exactly one key: serving.json (SSE-KMS, hence GenerateDataKey).
        permissions.allow(
            ["s3:PutObject", "s3:DeleteObject"], [bucket.arn_for_objects(s3_layout.SERVING_GENERATION_KEY)]
        )
        permissions.allow_key(key, access.KMS_WRITE)
        return function

    def _custom_resource(self, construct_id: str, action: str, **properties: str) -> CfnCustomResource:
        """One request to the serving-generation Lambda, answered directly (no Provider framework)."""
        resource = CfnCustomResource(
            self, construct_id, service_token=self.serving_generation_function.function.function_arn
        )
        resource.add_property_override("Action", action)
        for name, value in properties.items():
            resource.add_property_override(name, value)
        resource.node.add_dependency(self.serving_generation_function.permissions)
        return resource
