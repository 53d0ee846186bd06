"""CloudFormation's template size quota, checked on every synthesized template.

A template over 1 MB synthesizes and then fails at deploy time. CDK only warns about it (the
``@aws-cdk/core:Stack.templateSize`` annotation), so this validation plugin makes it fail
``app.synth()``, and therefore ``cdk synth`` and ``cdk deploy``, as a cdk-nag finding does. It names
the template and its size, and it writes its report into ``cdk.out/validation-report.json``.

CDK already refuses the other per-template quotas this app could reach. A stack of more than 500
resources fails synth (``TooManyResourcesInStack``). More than 200 outputs is rule F0004 of CDK's
built-in "CloudFormation Validate" plugin, which is an error under cdk.json's
``@aws-cdk/core:validateAgainstDefaultRules``.

The quota is from "CloudFormation quotas" in the CloudFormation User Guide
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html):
"Template body size in an Amazon S3 object: 1 MB". ``cdk deploy`` uploads the template to S3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import aws_cdk as cdk
import jsii

TEMPLATE_BYTES: Final = 1_000_000
"""The most bytes a template file may have. This is CDK's own ``TEMPLATE_BODY_MAXIMUM_SIZE``, measured
on the file that is uploaded."""

PLUGIN_NAME: Final = "CloudFormationLimits"
TEMPLATE_SIZE_RULE: Final = "TemplateSize"
ADVICE: Final = (
    "Split the stack's resources over more stacks. For a tenant stack, give its tenants fewer or "
    "shorter model patterns and trusted principals, or use tenants.mode 'abac'."
)


def oversize(template_path: Path) -> str | None:
    """One sentence saying by how much the template file exceeds the quota; None if it does not."""
    size = template_path.stat().st_size
    if size <= TEMPLATE_BYTES:
        return None
    return (
        f"{template_path.name} is {size:,} bytes, more than the {TEMPLATE_BYTES:,} bytes "
        "CloudFormation accepts for a template."
    )


@jsii.implements(cdk.IPolicyValidationPlugin)
class CloudFormationLimits:
    """The validation plugin: one violation per synthesized template over the size quota."""

    @property
    def name(self) -> str:
        return PLUGIN_NAME

    @property
    def version(self) -> str | None:
        return None

    @property
    def rule_ids(self) -> list[str]:
        return [TEMPLATE_SIZE_RULE]

    def validate(self, context: cdk.IPolicyValidationContext) -> cdk.PolicyValidationPluginReport:
        violations = []
        for path in context.template_paths:
            description = oversize(Path(path))
            if description is not None:
                # The whole template is at fault, not one resource, so the report names the file.
                violations.append(
                    cdk.PolicyViolation(
                        rule_name=TEMPLATE_SIZE_RULE,
                        description=description,
                        fix=ADVICE,
                        violating_resources=[
                            cdk.PolicyViolatingResource(
                                resource_logical_id="Resources", template_path=path, locations=["Resources"]
                            )
                        ],
                    )
                )
        return cdk.PolicyValidationPluginReport(success=not violations, violations=violations)
