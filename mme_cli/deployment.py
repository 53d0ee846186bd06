"""Find a deployment's names from its CloudFormation outputs: nothing is copy-pasted.

Stack names derive from the config's ``stack_prefix`` (``<prefix>Storage``, ``<prefix>Training``,
``<prefix>Endpoint``, ``<prefix>Monitoring``, and the tenant stacks); every name the CLI needs
(bucket, state machine, endpoint, tenant roles) is an output of one of them. Both the stack names
and the output keys are the ones the app uses, from :mod:`mme_shared.stack_names`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mme_constructs.algorithms import ALGORITHMS, Algorithm
from mme_shared import s3_layout, stack_names
from mme_shared.stack_names import StackOutput, StackRole, is_tenant_role_output, is_tenant_shard


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

    def stack_name(self, role: StackRole) -> str:
        return stack_names.stack_name(self.prefix, role)

    def outputs_of(self, role: StackRole) -> Mapping[str, str] | None:
        """The outputs of the deployment's stack of this role; None when it is not deployed."""
        return self.outputs.get(self.stack_name(role))

    def output(self, output: StackOutput) -> str:
        stack, key = self.stack_name(output.role), output.key
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
        return self.output(stack_names.ARTIFACT_BUCKET_NAME)

    @property
    def key_arn(self) -> str:
        """The project's KMS key: what every object the CLI writes (pointers) is encrypted with."""
        return self.output(stack_names.KEY_ARN)

    @property
    def model_prefix_uri(self) -> str:
        return s3_layout.s3_uri(self.bucket, s3_layout.MULTI_MODEL_PREFIX)

    @property
    def state_machine_arn(self) -> str:
        return self.output(stack_names.STATE_MACHINE_ARN)

    @property
    def endpoint_name(self) -> str:
        return self.output(stack_names.ENDPOINT_NAME)

    @property
    def variant_name(self) -> str:
        return self.output(stack_names.VARIANT_NAME)

    @property
    def algorithm(self) -> Algorithm:
        """The algorithm the deployed endpoint serves (its answers' format)."""
        name = self.output(stack_names.ALGORITHM)
        if name not in ALGORITHMS:
            raise CliError(
                f"Stack {self.stack_name(StackRole.ENDPOINT)} serves algorithm {name!r}, which this version "
                f"of the project does not know ({', '.join(ALGORITHMS)}): use the version that deployed it."
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
    for role in StackRole:
        name = stack_names.stack_name(prefix, role)
        found = _stack_outputs(cloudformation, name)
        if found is not None:
            outputs[name] = found
    tenant_roles: dict[str, str] = {}
    paginator = cloudformation.get_paginator("list_stacks")
    for page in paginator.paginate(StackStatusFilter=_LIVE_STATUSES):
        for summary in page["StackSummaries"]:
            name = summary["StackName"]
            if is_tenant_shard(prefix, name):
                found = _stack_outputs(cloudformation, name)
                if found is not None:
                    outputs[name] = found
    for stack_outputs in outputs.values():
        tenant_roles.update({k: v for k, v in stack_outputs.items() if is_tenant_role_output(k)})
    return Deployment(prefix=prefix, region=region, outputs=outputs, tenant_roles=tenant_roles)


_LIVE_STATUSES = [
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
]
