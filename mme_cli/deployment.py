"""Find a deployment's names from its CloudFormation outputs: nothing is copy-pasted.

Stack names derive from the config's ``stack_prefix`` (``<prefix>Storage``, ``<prefix>Training``,
``<prefix>Endpoint``, ``<prefix>Monitoring``, and the tenant stacks); every name the CLI needs
(bucket, state machine, endpoint, tenant roles) is an output of one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mme_constructs.algorithms import ALGORITHMS, Algorithm
from mme_shared import s3_layout


class CliError(Exception):
    """A problem the user can fix; ``str(error)`` is one sentence saying what and how."""


@dataclass(frozen=True)
class Deployment:
    """The outputs of one deployment's stacks, read once."""

    prefix: str
    region: str
    outputs: Mapping[str, Mapping[str, str]]
    """Stack name -> output key -> value, for the stacks that are deployed."""
    tenant_roles: Mapping[str, str] = field(default_factory=dict)
    """Tenant output key (``TenantRoleCompanyA`` or ``TenantAbacRoleArn``) -> role ARN."""

    def output(self, stack_suffix: str, key: str) -> str:
        stack = f"{self.prefix}{stack_suffix}"
        if stack not in self.outputs:
            raise CliError(
                f"Stack {stack} is not deployed in {self.region}: run `make deploy` (or check --region, "
                "--profile and --config)."
            )
        value = self.outputs[stack].get(key)
        if value is None:
            raise CliError(
                f"Stack {stack} has no output {key}: redeploy it with this version of the project."
            )
        return value

    @property
    def bucket(self) -> str:
        return self.output("Storage", "ArtifactBucketName")

    @property
    def key_arn(self) -> str:
        """The project's KMS key: what every object the CLI writes (pointers) is encrypted with."""
        return self.output("Storage", "KeyArn")

    @property
    def model_prefix_uri(self) -> str:
        return s3_layout.s3_uri(self.bucket, s3_layout.MULTI_MODEL_PREFIX)

    @property
    def state_machine_arn(self) -> str:
        return self.output("Training", "StateMachineArn")

    @property
    def endpoint_name(self) -> str:
        return self.output("Endpoint", "EndpointName")

    @property
    def variant_name(self) -> str:
        return self.output("Endpoint", "VariantName")

    @property
    def algorithm(self) -> Algorithm:
        """The algorithm the deployed endpoint serves (its answers' format)."""
        name = self.output("Endpoint", "Algorithm")
        if name not in ALGORITHMS:
            raise CliError(
                f"Stack {self.prefix}Endpoint serves algorithm {name!r}, which this version of the project "
                f"does not know ({', '.join(ALGORITHMS)}): use the version that deployed it."
            )
        return ALGORITHMS[name]


def _stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str] | None:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def discover(cloudformation: Any, *, prefix: str, region: str) -> Deployment:
    """Read the outputs of every stack of the deployment named ``prefix`` that exists."""
    outputs: dict[str, dict[str, str]] = {}
    for suffix in ("Storage", "Training", "Endpoint", "Monitoring", "TenantAccess"):
        found = _stack_outputs(cloudformation, f"{prefix}{suffix}")
        if found is not None:
            outputs[f"{prefix}{suffix}"] = found
    tenant_roles: dict[str, str] = {}
    paginator = cloudformation.get_paginator("list_stacks")
    for page in paginator.paginate(StackStatusFilter=_LIVE_STATUSES):
        for summary in page["StackSummaries"]:
            name = summary["StackName"]
            if name.startswith(f"{prefix}Tenants") and name[len(prefix) + len("Tenants") :].isdigit():
                found = _stack_outputs(cloudformation, name)
                if found is not None:
                    outputs[name] = found
    for stack_outputs in outputs.values():
        tenant_roles.update(
            {k: v for k, v in stack_outputs.items() if k.startswith("TenantRole") or k == "TenantAbacRoleArn"}
        )
    return Deployment(prefix=prefix, region=region, outputs=outputs, tenant_roles=tenant_roles)


_LIVE_STATUSES = [
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
]
