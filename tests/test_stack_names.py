"""The stack and output names the CLI looks up (``mme_shared.stack_names``) are the synthesized ones.

The stacks and the CLI both spell these names through the one module; these tests read the
synthesized templates, so renaming an output or a stack on one side only fails here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template

from mme_cli.commands.status_models import alarm_name_prefixes
from mme_shared.stack_names import (
    OUTPUTS,
    TENANT_ABAC_ROLE_ARN,
    StackRole,
    is_deployment_stack,
    is_tenant_role_output,
    is_tenant_stack,
    stack_name,
    tenant_role_output_key,
    tenant_shard_stack_name,
)
from project_config.model import TenantsConfig
from stacks.storage_stack import StorageExports
from stacks.tenant_access_stack import build_tenant_stacks, shard_of
from tests.conftest import SynthesizedApp, resources_of_type

CDK_REFERENCE_OUTPUT = re.compile(r"(PublishOutput|ExportsOutput)(Ref|FnGetAtt)")
"""The outputs CDK adds for a cross-stack reference (read by the other stack, not by anyone else)."""


def _declared_outputs(template: Mapping[str, Any]) -> set[str]:
    return {key for key in template.get("Outputs", {}) if not CDK_REFERENCE_OUTPUT.match(key)}


def test_every_output_is_declared_by_the_stack_the_cli_reads_it_from(
    both_apps: list[SynthesizedApp],
) -> None:
    for app in both_apps:
        prefix = app.config.stack_prefix
        for output in OUTPUTS:
            if output.role is StackRole.TENANT_ACCESS:
                continue  # abac mode only: below
            Template.from_json(app.templates[stack_name(prefix, output.role)]).has_output(output.key, {})


def test_the_fixed_stacks_declare_no_output_the_names_module_does_not_know(
    both_apps: list[SynthesizedApp],
) -> None:
    for app in both_apps:
        for role in StackRole:
            name = stack_name(app.config.stack_prefix, role)
            if name not in app.templates:
                continue
            known = {output.key for output in OUTPUTS if output.role is role}
            assert _declared_outputs(app.templates[name]) == known, name


def test_each_tenants_role_is_an_output_of_its_shard_stack(synthesized_throwaway: SynthesizedApp) -> None:
    prefix = synthesized_throwaway.config.stack_prefix
    tenants = synthesized_throwaway.config.tenants.tenants
    assert tenants
    for tenant in tenants:
        template = synthesized_throwaway.templates[tenant_shard_stack_name(prefix, shard_of(tenant))]
        Template.from_json(template).has_output(tenant_role_output_key(tenant), {})
    shards = [name for name in synthesized_throwaway.templates if is_tenant_stack(prefix, name)]
    keys = {key for name in shards for key in _declared_outputs(synthesized_throwaway.templates[name])}
    assert keys == {tenant_role_output_key(tenant) for tenant in tenants}
    assert all(is_tenant_role_output(key) for key in keys)


def test_the_abac_role_is_an_output_of_the_tenant_access_stack(cdk_context: dict[str, Any]) -> None:
    tenants = TenantsConfig.model_validate(
        {
            "mode": "abac",
            "abac_trusted_principals": ["111122223333"],
            "shared_model_patterns": [],
            "tenants": {},
        }
    )
    app = cdk.App(context=cdk_context)
    (stack,) = build_tenant_stacks(
        app,
        "Mme",
        endpoint_arn="arn:aws:sagemaker:us-east-1:111122223333:endpoint/mme-endpoint",
        storage=StorageExports("MmeStorage"),
        tenants=tenants,
        env=None,
    )
    assert stack.stack_name == stack_name("Mme", TENANT_ABAC_ROLE_ARN.role)
    assert is_tenant_stack("Mme", stack.stack_name)
    template = Template.from_stack(stack)
    template.has_output(TENANT_ABAC_ROLE_ARN.key, {})
    assert all(is_tenant_role_output(key) for key in _declared_outputs(template.to_json()))


def test_the_cli_recognises_every_stack_of_a_deployment_and_no_other(both_apps: list[SynthesizedApp]) -> None:
    for app in both_apps:
        prefix = app.config.stack_prefix
        assert all(is_deployment_stack(prefix, name) for name in app.templates), sorted(app.templates)
        assert not any(is_deployment_stack(f"{prefix}Dev", name) for name in app.templates)
    assert not is_deployment_stack("Mme", "MmeTenantsEU")
    assert not is_deployment_stack("Mme", "MmeDevStorage")


def test_the_cli_finds_the_endpoint_stacks_rollback_alarms_by_name(synthesized: SynthesizedApp) -> None:
    prefix = synthesized.config.stack_prefix
    endpoint = stack_name(prefix, StackRole.ENDPOINT)
    alarms = resources_of_type(synthesized.templates[endpoint], "AWS::CloudWatch::Alarm").values()
    names = [alarm["Properties"]["AlarmName"] for alarm in alarms]
    assert len(names) == 2
    assert all(name.startswith(alarm_name_prefixes(prefix)[endpoint]) for name in names), names
