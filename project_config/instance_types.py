"""Which SageMaker instance types each use in this project accepts, and one sentence when not.

Two rules, both checked before any construct is built:

1. **The API must accept the type for that use**: training jobs, batch transform jobs and endpoints
   each have their own list (``instance_type_table``, generated from botocore's enums). For
   example ``ml.t2.medium`` can host an endpoint but cannot run a training job.
2. **No local NVMe instance storage.** This project encrypts every ML storage volume with the
   project key (a job's ``VolumeKmsKeyId``, the endpoint config's ``KmsKeyId``), and SageMaker does
   not take a key on instance types whose storage is local NVMe (the ``d`` families such as
   ``ml.m5d`` and ``ml.g4dn``, and the newer accelerated families). botocore's ``ResourceConfig``
   and ``TransformResources`` documentation: "Certain Nitro-based instances include local storage,
   dependent on the instance type. Local storage volumes are encrypted using a hardware module on
   the instance. You can't request a VolumeKmsKeyId when using an instance type with local
   storage." The CreateEndpointConfig API reference on ``KmsKeyId`` (AWS SDK for Kotlin reference,
   https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/sagemaker/aws.sdk.kotlin.services.sagemaker.model/-create-endpoint-config-request/kms-key-id.html):
   "You can't request a KmsKeyId when using an instance type with local storage. If any of the
   models that you specify in the ProductionVariants parameter use nitro-based instances with local
   storage, do not specify a value for the KmsKeyId parameter. If you specify a value for KmsKeyId
   when using any nitro-based instances with local storage, the call to CreateEndpointConfig
   fails." (botocore 1.44.8's text instead says the key "does not encrypt instance local storage";
   either way the project key would not protect that storage.) Rejecting such a type is simpler and
   safer than leaving the key out for it: the templates keep one KMS setup that cdk-nag's NIST rules
   already check, and the hardware encryption of NVMe storage cannot use the project key anyway.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from project_config.instance_type_table import (
    HOSTING_INSTANCE_TYPES,
    TRAINING_INSTANCE_TYPES,
    TRANSFORM_INSTANCE_TYPES,
)

INSTANCE_STORAGE_FAMILIES: Final = frozenset({
    # CPU families with a 'd' (local NVMe SSD) in their name
    "c5d", "c6gd", "c6id", "m5d", "m6gd", "m6id", "r5d", "r6gd", "r6id", "r7gd",
    # accelerated families whose instances come with local NVMe SSDs (EC2 instance specifications)
    "dl1", "g4dn", "g5", "g6", "g6e", "g7", "g7e", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en",
    "p6-b200", "p6-b300", "p6e-gb200", "trn1", "trn1n", "trn2",
})  # fmt: skip
"""Families with local NVMe instance storage: SageMaker takes no KMS key for their storage."""

EBS_ONLY_FAMILIES: Final = frozenset({
    "c4", "c5", "c5n", "c6g", "c6gn", "c6i", "c6in", "c7g", "c7i", "c7i-flex", "c8g", "c8i",
    "c8i-flex", "inf1", "inf2", "m4", "m5", "m6g", "m6i", "m7i", "m7i-flex", "m8g", "m8i",
    "m8i-flex", "p2", "p3", "r5", "r6g", "r6i", "r7i", "r8g", "r8i", "r8i-flex", "t2", "t3",
})  # fmt: skip
"""Families whose storage is an EBS volume, which SageMaker encrypts with the given KMS key.
tests/test_config.py checks that every family in the instance type table is in exactly one set."""

PREFERRED_EXAMPLES: Final = (
    "ml.m5.large", "ml.c5.xlarge", "ml.m4.xlarge", "ml.c4.xlarge", "ml.m5.xlarge", "ml.c5.large",
)  # fmt: skip
"""Suggested in messages, in this order, when the use accepts them."""


@dataclass(frozen=True)
class InstanceUse:
    """One way this project runs instances: what the API accepts and which KMS key it sets."""

    description: str
    """As in "an instance type SageMaker <description> accept"."""
    api_types: frozenset[str]
    kms_key: str
    """The request member carrying the project key, as it is named in messages."""


TRAINING_JOB: Final = InstanceUse(
    "training jobs", TRAINING_INSTANCE_TYPES, "a training job's ResourceConfig.VolumeKmsKeyId"
)
TRANSFORM_JOB: Final = InstanceUse(
    "batch transform jobs", TRANSFORM_INSTANCE_TYPES, "a transform job's TransformResources.VolumeKmsKeyId"
)
ENDPOINT: Final = InstanceUse("endpoints", HOSTING_INSTANCE_TYPES, "the endpoint config's KmsKeyId")


def instance_family(instance_type: str) -> str:
    """``ml.m5d.large`` -> ``m5d`` (the name must have the ``ml.<family>.<size>`` form)."""
    return instance_type.split(".")[1]


def allowed_types(use: InstanceUse, families: Collection[str] | None = None) -> list[str]:
    """The types ``use`` accepts here (sorted), optionally only of some families."""
    return sorted(
        t
        for t in use.api_types
        if instance_family(t) not in INSTANCE_STORAGE_FAMILIES
        and (families is None or instance_family(t) in families)
    )


def examples(use: InstanceUse, families: Collection[str] | None = None) -> str:
    """A few allowed types, e.g. ``ml.m5.large, ml.c5.xlarge or ml.m4.xlarge``."""
    allowed = set(allowed_types(use, families))
    chosen = [t for t in PREFERRED_EXAMPLES if t in allowed][:3] or sorted(allowed)[:3]
    return ", ".join(chosen[:-1]) + f" or {chosen[-1]}" if len(chosen) > 1 else chosen[0]


def instance_type_problem(
    instance_type: str, use: InstanceUse, families: Collection[str] | None = None
) -> str | None:
    """Why ``use`` cannot run on ``instance_type`` here (a sentence without the key), or None.

    ``families``, when given, is checked by the caller; it only narrows the examples offered.
    """
    if instance_type not in use.api_types:
        return (
            f"{instance_type!r} is not an instance type SageMaker {use.description} accept; use one such "
            f"as {examples(use, families)}"
        )
    if instance_family(instance_type) in INSTANCE_STORAGE_FAMILIES:
        return (
            f"{instance_type!r} has local NVMe instance storage, which SageMaker encrypts with a hardware "
            f"key of its own and for which it refuses the project's KMS key ({use.kms_key}); use an "
            f"EBS-backed type such as {examples(use, families)}"
        )
    return None
