"""GENERATED: the instance types SageMaker's API accepts per use, from botocore's service model.

Do not edit by hand: ``.venv/bin/python -m project_config.instance_type_table`` rewrites this file
from the installed botocore, and tests/test_config.py fails when it no longer equals botocore's
``TrainingInstanceType``, ``TransformInstanceType`` and ``ProductionVariantInstanceType`` enums.
The table is committed (not read from botocore at synth time) because botocore is not a runtime
dependency of the app (requirements.txt), and so that a change is reviewed in a diff.
"""

from __future__ import annotations

from typing import Final


def _types(sizes_by_family: dict[str, str]) -> frozenset[str]:
    return frozenset(
        f"ml.{family}.{size}" for family, sizes in sizes_by_family.items() for size in sizes.split()
    )


BOTOCORE_VERSION: Final = "1.44.8"
TRAINING_INSTANCE_TYPES: Final = _types(  # TrainingInstanceType
    {
        "c4": "xlarge 2xlarge 4xlarge 8xlarge",
        "c5": "xlarge 2xlarge 4xlarge 9xlarge 18xlarge",
        "c5n": "xlarge 2xlarge 4xlarge 9xlarge 18xlarge",
        "c6i": "xlarge 2xlarge 8xlarge 4xlarge 12xlarge 16xlarge 24xlarge 32xlarge",
        "c7i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "c7i-flex": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "c8i": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge 48xlarge 96xlarge",
        "c8i-flex": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "g4dn": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "g5": "xlarge 2xlarge 4xlarge 8xlarge 16xlarge 12xlarge 24xlarge 48xlarge",
        "g6": "xlarge 2xlarge 4xlarge 8xlarge 16xlarge 12xlarge 24xlarge 48xlarge",
        "g6e": "xlarge 2xlarge 4xlarge 8xlarge 16xlarge 12xlarge 24xlarge 48xlarge",
        "g7": "2xlarge 4xlarge 8xlarge 12xlarge 24xlarge 48xlarge",
        "g7e": "2xlarge 4xlarge 8xlarge 12xlarge 24xlarge 48xlarge",
        "m4": "xlarge 2xlarge 4xlarge 10xlarge 16xlarge",
        "m5": "large xlarge 2xlarge 4xlarge 12xlarge 24xlarge",
        "m6i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge",
        "m7i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "m7i-flex": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "m8i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge 48xlarge 96xlarge",
        "m8i-flex": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "p2": "xlarge 8xlarge 16xlarge",
        "p3": "2xlarge 8xlarge 16xlarge",
        "p3dn": "24xlarge",
        "p4d": "24xlarge",
        "p4de": "24xlarge",
        "p5": "48xlarge 4xlarge",
        "p5e": "48xlarge",
        "p5en": "48xlarge",
        "p6-b200": "48xlarge",
        "p6-b300": "48xlarge",
        "p6e-gb200": "36xlarge",
        "r5": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge",
        "r5d": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge",
        "r6i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge",
        "r7i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "r8i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge 48xlarge 96xlarge",
        "r8i-flex": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "t3": "medium large xlarge 2xlarge",
        "trn1": "2xlarge 32xlarge",
        "trn1n": "32xlarge",
        "trn2": "48xlarge",
    }
)
TRANSFORM_INSTANCE_TYPES: Final = _types(  # TransformInstanceType
    {
        "c4": "xlarge 2xlarge 4xlarge 8xlarge",
        "c5": "xlarge 2xlarge 4xlarge 9xlarge 18xlarge",
        "c6i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge",
        "c7i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "g4dn": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "g5": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "g6": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "g6e": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "inf2": "xlarge 8xlarge 24xlarge 48xlarge",
        "m4": "xlarge 2xlarge 4xlarge 10xlarge 16xlarge",
        "m5": "large xlarge 2xlarge 4xlarge 12xlarge 24xlarge",
        "m6i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge",
        "m7i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "p2": "xlarge 8xlarge 16xlarge",
        "p3": "2xlarge 8xlarge 16xlarge",
        "r6i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge",
        "r7i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "trn1": "2xlarge 32xlarge",
    }
)
HOSTING_INSTANCE_TYPES: Final = _types(  # ProductionVariantInstanceType
    {
        "c4": "large xlarge 2xlarge 4xlarge 8xlarge",
        "c5": "large xlarge 2xlarge 4xlarge 9xlarge 18xlarge",
        "c5d": "large xlarge 2xlarge 4xlarge 9xlarge 18xlarge",
        "c6g": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "c6gd": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "c6gn": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "c6i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge",
        "c6in": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge",
        "c7g": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "c7i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "c8g": "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "dl1": "24xlarge",
        "g4dn": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "g5": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "g6": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "g6e": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "g7": "2xlarge 4xlarge 8xlarge 12xlarge 24xlarge 48xlarge",
        "g7e": "2xlarge 4xlarge 8xlarge 12xlarge 24xlarge 48xlarge",
        "inf1": "xlarge 2xlarge 6xlarge 24xlarge",
        "inf2": "xlarge 8xlarge 24xlarge 48xlarge",
        "m4": "xlarge 2xlarge 4xlarge 10xlarge 16xlarge",
        "m5": "large xlarge 2xlarge 4xlarge 12xlarge 24xlarge",
        "m5d": "large xlarge 2xlarge 4xlarge 12xlarge 24xlarge",
        "m6g": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "m6gd": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "m6i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge",
        "m7i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "m8g": "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "p2": "xlarge 8xlarge 16xlarge",
        "p3": "2xlarge 8xlarge 16xlarge",
        "p4d": "24xlarge",
        "p4de": "24xlarge",
        "p5": "48xlarge 4xlarge",
        "p5e": "48xlarge",
        "p5en": "48xlarge",
        "p6-b200": "48xlarge",
        "p6-b300": "48xlarge",
        "p6e-gb200": "36xlarge",
        "r5": "large xlarge 2xlarge 4xlarge 12xlarge 24xlarge",
        "r5d": "large xlarge 2xlarge 4xlarge 12xlarge 24xlarge",
        "r6g": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "r6gd": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "r6i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge",
        "r7gd": "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge",
        "r7i": "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "r8g": "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
        "t2": "medium large xlarge 2xlarge",
        "trn1": "2xlarge 32xlarge",
        "trn1n": "32xlarge",
        "trn2": "48xlarge",
    }
)


def _render() -> str:  # pragma: no cover - run by hand after upgrading botocore
    """This file's text with the tables of the installed botocore."""
    import json
    from pathlib import Path

    import botocore  # type: ignore[import-untyped]
    import botocore.session  # type: ignore[import-untyped]

    model = botocore.session.get_session().get_service_model("sagemaker")
    source = Path(__file__).read_text(encoding="utf-8")
    head = source.partition("BOTOCORE_VERSION: Final = ")[0]
    tail = source.partition("\n\n\ndef _render")[2]
    lines = [f"{head}BOTOCORE_VERSION: Final = {json.dumps(botocore.__version__)}"]
    for name, shape in (
        ("TRAINING_INSTANCE_TYPES", "TrainingInstanceType"),
        ("TRANSFORM_INSTANCE_TYPES", "TransformInstanceType"),
        ("HOSTING_INSTANCE_TYPES", "ProductionVariantInstanceType"),
    ):
        families: dict[str, list[str]] = {}
        for value in model.shape_for(shape).enum:
            _, family, size = value.split(".", 2)
            families.setdefault(family, []).append(size)
        lines.append(f"{name}: Final = _types(  # {shape}\n    {{")
        lines += [
            f"        {json.dumps(f)}: {json.dumps(' '.join(sizes))},"
            for f, sizes in sorted(families.items())
        ]
        lines.append("    }\n)")
    return "\n".join(lines) + "\n\n\ndef _render" + tail


if __name__ == "__main__":  # pragma: no cover
    from pathlib import Path

    Path(__file__).write_text(_render(), encoding="utf-8")
