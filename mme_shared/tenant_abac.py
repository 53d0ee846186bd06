"""The attribute-based (ABAC) tenant pattern, defined once for the stacks, the CLI and the diagram.

In ``tenants.mode: abac`` one role serves every tenant: the caller assumes it with the session tag
``tenant=<name>``, the role's trust policy requires exactly that tag, and its invoke policy allows
``sagemaker:TargetModel`` values under ``${aws:PrincipalTag/tenant}/*`` (IAM substitutes the
session's tag value), so a session tagged ``company_a`` reaches ``company_a/...`` models only
("Passing session tags in AWS STS" and "IAM policy elements: Variables and tags", IAM User Guide).
"""

from __future__ import annotations

from typing import Final

TENANT_TAG: Final = "tenant"
"""The session tag naming the tenant (``sts:AssumeRole`` ``Tags``)."""
TARGET_MODEL_KEY: Final = "sagemaker:TargetModel"
"""SageMaker's condition key for the model an InvokeEndpoint request names."""
PRINCIPAL_TAG_KEY: Final = f"aws:PrincipalTag/{TENANT_TAG}"
"""The condition key holding the calling session's tenant tag."""
REQUEST_TAG_KEY: Final = f"aws:RequestTag/{TENANT_TAG}"
"""The condition key holding the tenant tag an AssumeRole request passes."""
ABAC_TARGET_MODEL_PATTERN: Final = f"${{{PRINCIPAL_TAG_KEY}}}/*"
"""The TargetModel pattern of the ABAC role: every model under the caller's tenant folder."""


def session_tags(tenant: str) -> list[dict[str, str]]:
    """The ``Tags`` of an ``AssumeRole`` request for ``tenant`` on the ABAC role."""
    return [{"Key": TENANT_TAG, "Value": tenant}]
