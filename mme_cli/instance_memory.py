"""Memory (GiB) of the endpoint instance types a multi-model endpoint of this project may use.

A small committed table, so that ``mme plan`` needs no AWS call. Values are the instances' memory as
AWS publishes it on the EC2 instance type pages (an ``ml.`` type has the memory of the EC2 type of
the same name) and in the SageMaker AI pricing tables, which list vCPU and memory per ``ml.`` type:

- https://aws.amazon.com/ec2/instance-types/ (General purpose: M4, M5, M6i, M7i, T2; Compute
  optimized: C4, C5, C6i, C7i; Memory optimized: R5, R6i, R7i)
- https://aws.amazon.com/sagemaker/pricing/ (Real-time inference, instance tables)

tests/cli/test_planner.py checks that it covers exactly the types ``endpoint.instance_type`` accepts
(``project_config.instance_types.allowed_types`` for the multi-model CPU families), so a new type in
botocore's table or a new allowed family fails a test until its memory is added here.
"""

from __future__ import annotations

from typing import Final

ENDPOINT_MEMORY_GIB: Final[dict[str, dict[str, float]]] = {
    # Compute optimized
    "c4": {"large": 3.75, "xlarge": 7.5, "2xlarge": 15, "4xlarge": 30, "8xlarge": 60},
    "c5": {"large": 4, "xlarge": 8, "2xlarge": 16, "4xlarge": 32, "9xlarge": 72, "18xlarge": 144},
    "c6i": {"large": 4, "xlarge": 8, "2xlarge": 16, "4xlarge": 32, "8xlarge": 64, "12xlarge": 96,
            "16xlarge": 128, "24xlarge": 192, "32xlarge": 256},
    "c7i": {"large": 4, "xlarge": 8, "2xlarge": 16, "4xlarge": 32, "8xlarge": 64, "12xlarge": 96,
            "16xlarge": 128, "24xlarge": 192, "48xlarge": 384},
    # General purpose
    "m4": {"xlarge": 16, "2xlarge": 32, "4xlarge": 64, "10xlarge": 160, "16xlarge": 256},
    "m5": {"large": 8, "xlarge": 16, "2xlarge": 32, "4xlarge": 64, "12xlarge": 192, "24xlarge": 384},
    "m6i": {"large": 8, "xlarge": 16, "2xlarge": 32, "4xlarge": 64, "8xlarge": 128, "12xlarge": 192,
            "16xlarge": 256, "24xlarge": 384, "32xlarge": 512},
    "m7i": {"large": 8, "xlarge": 16, "2xlarge": 32, "4xlarge": 64, "8xlarge": 128, "12xlarge": 192,
            "16xlarge": 256, "24xlarge": 384, "48xlarge": 768},
    "t2": {"medium": 4, "large": 8, "xlarge": 16, "2xlarge": 32},
    # Memory optimized
    "r5": {"large": 16, "xlarge": 32, "2xlarge": 64, "4xlarge": 128, "12xlarge": 384, "24xlarge": 768},
    "r6i": {"large": 16, "xlarge": 32, "2xlarge": 64, "4xlarge": 128, "8xlarge": 256, "12xlarge": 384,
            "16xlarge": 512, "24xlarge": 768, "32xlarge": 1024},
    "r7i": {"large": 16, "xlarge": 32, "2xlarge": 64, "4xlarge": 128, "8xlarge": 256, "12xlarge": 384,
            "16xlarge": 512, "24xlarge": 768, "48xlarge": 1536},
}  # fmt: skip
"""Family -> size -> memory in GiB."""


def memory_gib(instance_type: str) -> float | None:
    """``ml.m4.xlarge`` -> 16.0; None for a type the table does not hold."""
    parts = instance_type.split(".")
    if len(parts) != 3 or parts[0] != "ml":
        return None
    size = ENDPOINT_MEMORY_GIB.get(parts[1], {}).get(parts[2])
    return None if size is None else float(size)


def table_types() -> list[str]:
    """Every type in the table, sorted."""
    return sorted(f"ml.{family}.{size}" for family, sizes in ENDPOINT_MEMORY_GIB.items() for size in sizes)
