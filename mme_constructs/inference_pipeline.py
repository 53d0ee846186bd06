"""A serial SageMaker inference pipeline: up to 15 containers in one Model, checked at synth time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

MAX_PIPELINE_CONTAINERS: Final = 15


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
