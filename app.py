#!/usr/bin/env python3
"""CDK entry point: load the validated config once, build the stacks, add the cdk-nag packs and the
CloudFormation template size check."""

from __future__ import annotations

import sys

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks

from mme_constructs.cloudformation_limits import CloudFormationLimits
from mme_constructs.multi_model_endpoint import NEWEST_GENERATION
from mme_shared.stack_names import StackRole, stack_name
from project_config import ConfigError, ProjectConfig, load_config
from project_config.loader import (
    CONTEXT_KEY,
    OVERRIDE_CONTEXT_KEY,
    PREPROCESSOR_GENERATION_CONTEXT_KEY,
    load_preprocessor_generation,
)
from stacks.endpoint_stack import EndpointStack
from stacks.monitoring_stack import MonitoringStack
from stacks.storage_stack import StorageStack
from stacks.tenant_access_stack import build_tenant_stacks
from stacks.training_stack import TrainingStack


def build_app(
    app: cdk.App, config: ProjectConfig, *, preprocessor_generation: str = NEWEST_GENERATION
) -> dict[str, cdk.Stack]:
    """Add every stack of one deployment to ``app``; returns them by role for tests.

    ``preprocessor_generation``: the generation the endpoint serves (an id, or ``newest``).
    """
    env = (
        cdk.Environment(account=config.account, region=config.region)
        if config.account or config.region
        else None
    )
    prefix = config.stack_prefix
    storage = StorageStack(app, stack_name(prefix, StackRole.STORAGE), storage=config.storage, env=env)
    training = TrainingStack(
        app,
        stack_name(prefix, StackRole.TRAINING),
        storage=storage.exports,
        training=config.training,
        data=config.data,
        env=env,
    )
    endpoint = EndpointStack(
        app,
        stack_name(prefix, StackRole.ENDPOINT),
        storage=storage.exports,
        endpoint=config.endpoint,
        training=config.training,
        alarms=config.alarms,
        preprocessor_generation=preprocessor_generation,
        env=env,
    )
    monitoring = MonitoringStack(
        app,
        stack_name(prefix, StackRole.MONITORING),
        storage=storage.exports,
        endpoint=endpoint.endpoint.metrics,
        state_machine=training.pipeline.state_machine,
        promotion_function=training.pipeline.promote_artifact.function,
        alarms=config.alarms,
        env=env,
    )
    tenant_stacks = build_tenant_stacks(
        app,
        prefix,
        endpoint_arn=endpoint.endpoint.endpoint_arn,
        storage=storage.exports,
        tenants=config.tenants,
        env=env,
    )
    training.add_stack_dependency(storage)
    # Not a data dependency: the endpoint serves what training promotes, so deploy training first.
    endpoint.add_stack_dependency(training)
    cdk.Tags.of(app).add("project", "sagemaker-mme")
    add_compliance_checks(app)
    stacks: dict[str, cdk.Stack] = {
        "storage": storage,
        "training": training,
        "endpoint": endpoint,
        "monitoring": monitoring,
    }
    stacks.update({stack.stack_name: stack for stack in tenant_stacks})
    return stacks


def add_compliance_checks(app: cdk.App) -> None:
    """cdk-nag's AWS Solutions and NIST 800-53 rev 5 packs, and CloudFormation's template size quota
    (:mod:`mme_constructs.cloudformation_limits`), as validation plugins.

    Any finding that is not acknowledged on its own resource, and any template over 1 MB, fails
    ``app.synth()`` (and therefore ``cdk synth`` and ``cdk deploy``); the report is written to
    ``cdk.out/validation-report.json``.
    """
    cdk.Validations.of(app).add_plugins(
        AwsSolutionsChecks(app), NIST80053R5Checks(app), CloudFormationLimits()
    )


def main() -> None:
    app = cdk.App()
    try:
        config = load_config(
            app.node.try_get_context(CONTEXT_KEY), app.node.try_get_context(OVERRIDE_CONTEXT_KEY)
        )
        generation = load_preprocessor_generation(
            app.node.try_get_context(PREPROCESSOR_GENERATION_CONTEXT_KEY), NEWEST_GENERATION
        )
    except ConfigError as error:
        print(f"Invalid configuration: {error}.", file=sys.stderr)
        sys.exit(1)
    build_app(app, config, preprocessor_generation=generation)
    app.synth()


if __name__ == "__main__":
    main()
