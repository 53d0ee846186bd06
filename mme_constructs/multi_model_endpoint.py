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
the preprocessor in front of it. Two custom resources frame the deploy, both answered by one Lambda
(``lambda/serving_generation``) behind CDK's custom resource Provider framework
(``mme_constructs.serving_generation``: the framework speaks CloudFormation's protocol, the handler
returns its answer or raises one sentence, which becomes the resource's FAILED reason):

- ``PreprocessorGeneration`` (``Action: resolve``) turns the requested generation (a pinned id, or
  ``newest``) into the id the Model is built from, and fails the deploy in seconds, with a sentence
  saying what to run, when that generation cannot be served (not trained, incomplete, of another
  algorithm, artifact missing, or it would stop serving locations the served generation has). The
  Model reads its ``Generation`` attribute, so a new generation changes both ModelDataUrls:
  CloudFormation replaces the Model, then the EndpointConfig, and SageMaker moves the endpoint over
  blue/green.
- ``ServingGenerationRecord`` (``Action: record-serving``) depends on the Endpoint (and its
  autoscaling and rollback alarms), so CloudFormation reaches it only once the endpoint serves the
  new generation; it then writes ``preprocessor/serving.json``, which clients read to find the
  pointers of what is served. On a rollback CloudFormation sends it the old properties and it
  rewrites the old generation; on stack deletion it removes the record if it still names this
  endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from aws_cdk import ArnFormat, Aws, CustomResource, Duration, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from mme_constructs import access
from mme_constructs.access import ScopedPolicy
from mme_constructs.artifact_store import generation_key
from mme_constructs.image_table import ImageUris
from mme_constructs.images import image_uris
from mme_constructs.inference_pipeline import InferencePipelineModel, PipelineContainer
from mme_constructs.metrics import EndpointMetrics
from mme_constructs.observability import RollbackAlarms
from mme_constructs.preprocessor_source import ENTRY_POINT, PreprocessorSource
from mme_constructs.serving_generation import (
    NEWEST_GENERATION,
    RECORD_SERVING_ACTION,
    RESOLVE_ACTION,
    ServingGenerationProvider,
    serving_generation_function,
)
from mme_shared import naming, s3_layout
from project_config.model import AlarmsConfig, AutoscalingConfig, EndpointConfig, TrainingConfig

__all__ = ["NEWEST_GENERATION", "RECORD_SERVING_ACTION", "RESOLVE_ACTION", "MultiModelEndpoint"]

VARIANT_NAME: Final = "AllTraffic"
ALL_AT_ONCE: Final = "ALL_AT_ONCE"
PREPROCESSOR_GENERATION_ENV: Final = "MME_PREPROCESSOR_GENERATION"
"""Names the served generation on the Model itself (the CLI reads it from the first container)."""
AUTOSCALING_SERVICE_LINKED_ROLE: Final = (
    "aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)
"""Application Auto Scaling's service-linked role for SageMaker (created by AWS on first use)."""
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
        images = image_uris(
            Stack.of(self),
            sklearn_framework_version=training.sklearn_framework_version,
            algorithm=training.algorithm_image,
            sklearn_scope="inference",
        )
        source = PreprocessorSource(self, "PreprocessorSource")
        self.serving_generation = self._serving_generation(bucket, key, training)
        resolver = self.serving_generation.request(
            self, "PreprocessorGeneration", RESOLVE_ACTION, Generation=preprocessor_generation
        )
        self.preprocessor_generation = resolver.get_att_string("Generation")
        """The generation the Model is built from (a token: the resolver's answer)."""
        self.model_prefix_uri = self._generation_uri(bucket, s3_layout.generation_models_prefix)

        self.role, permissions = self._execution_role(bucket, key, source, images, endpoint)
        self.pipeline = self._pipeline(bucket, source, images, endpoint)
        # The resolver is a dependency already (GetAtt); the role must be able to read before the
        # Model is created, because SageMaker checks access to the artifacts on CreateModel.
        self.pipeline.model.node.add_dependency(permissions)
        self.endpoint_config = self._endpoint_config(key, endpoint)

        # The endpoint's name is the stack's (a prefix of letters and digits plus "Endpoint": a valid
        # endpoint name, unique per account and region like the stack's): the rollback alarms its
        # DeploymentConfig names are keyed by it, so they can be created BEFORE the endpoint that
        # refers to them, whether or not CreateEndpoint checks that they exist. The name never
        # changes, and a new endpoint config is an update, not a replacement.
        endpoint_name = Stack.of(self).stack_name
        self.rollback_alarms = RollbackAlarms(
            self, "RollbackAlarms", endpoint_name=endpoint_name, variant_name=VARIANT_NAME, alarms=alarms
        )
        self.endpoint = self._endpoint(endpoint, endpoint_name)
        self.endpoint_name = self.endpoint.attr_endpoint_name
        self.endpoint_arn = self.endpoint.ref  # Ref of AWS::SageMaker::Endpoint is its ARN
        self.variant_name = VARIANT_NAME
        self.metrics = EndpointMetrics(self.endpoint_name, self.variant_name)
        """The endpoint's CloudWatch metrics (what the monitoring stack charts and alarms on)."""
        # SageMaker's guide asks that the execution role may read the rollback alarms ("Auto-Rollback
        # Configuration and Monitoring"). Their ARNs are built from the names, so the policy (which the
        # Model waits for) does not wait for the alarms (which wait for the Endpoint).
        # https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html
        permissions.allow(["cloudwatch:DescribeAlarms"], self.rollback_alarms.alarm_arns)
        self.scalable_target = self._scalable_target(endpoint.autoscaling)
        self.serving_record = self._serving_record()

    def _serving_generation(
        self, bucket: s3.IBucket, key: kms.IKey, training: TrainingConfig
    ) -> ServingGenerationProvider:
        """The serving-generation handler (at the construct path it had before the Provider, so its
        role, policy and log group stay) and the Provider framework in front of it."""
        handler = serving_generation_function(
            self, "ServingGenerationFunction", bucket=bucket, key=key, training=training
        )
        return ServingGenerationProvider(
            self,
            "ServingGenerationProvider",
            handler=handler,
            key=key,
            log_retention_days=training.log_retention_days,
        )

    def _generation_uri(self, bucket: s3.IBucket, layout: Callable[[str], str]) -> str:
        """``s3://<bucket>/<layout(resolved generation)>``."""
        return s3_layout.s3_uri(bucket.bucket_name, generation_key(layout, self.preprocessor_generation))

    def _serving_record(self) -> CustomResource:
        """serving.json, written last: only once the endpoint (and its autoscaling, so nothing after it
        can fail and roll back) serves the generation does it say so. GetAtt EndpointName orders it
        after the Endpoint; the rollback alarms, created after the Endpoint, come before it too (if one
        fails, nothing is recorded)."""
        record = self.serving_generation.request(
            self,
            "ServingGenerationRecord",
            RECORD_SERVING_ACTION,
            Generation=self.preprocessor_generation,
            EndpointName=self.endpoint_name,
        )
        if self.scalable_target is not None:
            record.node.add_dependency(self.scalable_target)
        record.node.add_dependency(self.rollback_alarms)
        return record

    def _execution_role(
        self,
        bucket: s3.IBucket,
        key: kms.IKey,
        source: PreprocessorSource,
        images: ImageUris,
        endpoint: EndpointConfig,
    ) -> tuple[iam.Role, ScopedPolicy]:
        """The SageMaker execution role of the Model and its one policy (the endpoint adds the alarms)."""
        role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=access.service_principal("sagemaker.amazonaws.com"),
            description="SageMaker execution role of the multi-model inference pipeline",
        )
        permissions = ScopedPolicy(
            self, "ExecutionPermissions", role=role, description="What the endpoint's containers may do"
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
                Stack.of(self).format_arn(
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
        if endpoint.vpc is not None:
            permissions.allow(
                VPC_ACTIONS,
                ["*"],
                why_wildcard="SageMaker creates and describes the endpoint's network interfaces in the "
                "configured subnets; these EC2 APIs take no resource-level scope at creation.",
            )
        return role, permissions

    def _pipeline(
        self, bucket: s3.IBucket, source: PreprocessorSource, images: ImageUris, endpoint: EndpointConfig
    ) -> InferencePipelineModel:
        """The preprocessor of the resolved generation in front of its models (MultiModel)."""
        preprocessor_url = self._generation_uri(bucket, s3_layout.preprocessor_artifact_key)
        vpc_config = None
        if endpoint.vpc is not None:
            vpc_config = sagemaker.CfnModel.VpcConfigProperty(
                security_group_ids=list(endpoint.vpc.security_group_ids),
                subnets=list(endpoint.vpc.subnet_ids),
            )
        return InferencePipelineModel(
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

    def _endpoint_config(self, key: kms.IKey, endpoint: EndpointConfig) -> sagemaker.CfnEndpointConfig:
        """One variant of the pipeline Model; the ML storage volume encrypted with the project key."""
        return sagemaker.CfnEndpointConfig(
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

    def _endpoint(self, endpoint: EndpointConfig, endpoint_name: str) -> sagemaker.CfnEndpoint:
        """The endpoint, updated blue/green and watched by the rollback alarms (created before it)."""
        resource = sagemaker.CfnEndpoint(
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
        resource.deployment_config = self._deployment_config(endpoint, self.rollback_alarms.alarm_names)
        resource.node.add_dependency(self.rollback_alarms)
        return resource

    def _scalable_target(self, scaling: AutoscalingConfig) -> appscaling.ScalableTarget | None:
        """Target tracking on invocations per instance, or None when autoscaling is disabled."""
        if not scaling.enabled:
            return None
        target = appscaling.ScalableTarget(
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
                Stack.of(self).format_arn(
                    service="iam",
                    region="",
                    resource="role",
                    resource_name=AUTOSCALING_SERVICE_LINKED_ROLE,
                ),
                mutable=False,
            ),
        )
        target.scale_to_track_metric(
            "InvocationsPerInstance",
            target_value=scaling.target_invocations_per_instance,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_in_cooldown=Duration.seconds(scaling.scale_in_cooldown_seconds),
            scale_out_cooldown=Duration.seconds(scaling.scale_out_cooldown_seconds),
        )
        return target

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
