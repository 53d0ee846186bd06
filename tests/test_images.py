"""Image URIs per region: known values, the region mapping, clear refusals, and the data file itself.

A wrong account or domain in an image URI is only discovered when an endpoint or job fails to pull
its container, so these tests pin known-good values and check every mapped row's shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk.assertions import Template

from mme_constructs import image_table, images
from mme_constructs.algorithms import ALGORITHMS
from project_config import load_default_config
from scripts import refresh_image_uris

DATA_FILE = Path(image_table.__file__).with_name("data") / "sagemaker_images.json"
US_EAST_1_LINEAR_LEARNER = "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"
LINEAR_LEARNER = image_table.AlgorithmImage("linear-learner", "1")
US_EAST_1_SKLEARN_1_2_1 = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
MAPPING_ID = "SageMakerInferenceImages"
DOMAIN_OF_PARTITION = {"aws": "amazonaws.com", "aws-us-gov": "amazonaws.com", "aws-cn": "amazonaws.com.cn"}


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DATA_FILE.read_text())
    return loaded


@pytest.fixture(scope="module")
def agnostic_template(cdk_context: dict[str, Any]) -> Template:
    """The one synthesized stack: environment-agnostic, images consumed the way the model will.

    The built-in CloudFormation validation plugin is switched off here only because loading it costs
    2-4 s per process; the app's own synth (conftest) runs it, and cfn-lint, on the real stacks.
    """
    app = cdk.App(context=cdk_context, builtin_cloud_formation_validation=False)
    stack = cdk.Stack(app, "ImagesProbe")
    uris = images.image_uris(stack, sklearn_framework_version="1.2-1", algorithm=LINEAR_LEARNER)
    sagemaker.CfnModel(
        stack,
        "Model",
        execution_role_arn="arn:aws:iam::111122223333:role/probe",
        inference_execution_config=sagemaker.CfnModel.InferenceExecutionConfigProperty(mode="Serial"),
        containers=[
            sagemaker.CfnModel.ContainerDefinitionProperty(image=uris.sklearn),
            sagemaker.CfnModel.ContainerDefinitionProperty(
                image=uris.algorithm, mode="MultiModel", model_data_url="s3://bucket/models/"
            ),
        ],
    )
    return Template.from_stack(stack)


def _explicit_stack(region: str, app: cdk.App | None = None) -> cdk.Stack:
    """A stack with a concrete region; never synthesized (literal URIs need no template)."""
    env = cdk.Environment(account="111122223333", region=region)
    return cdk.Stack(app or cdk.App(), f"Explicit-{region}", env=env)


def _mapping(template: Template) -> Mapping[str, Mapping[str, str]]:
    mappings = template.find_mappings("*")
    assert list(mappings) == [MAPPING_ID], "expected exactly one image mapping"
    rows: Mapping[str, Mapping[str, str]] = mappings[MAPPING_ID]
    return rows


def test_explicit_region_gets_known_literal_uris_and_no_mapping() -> None:
    stack = _explicit_stack("us-east-1")
    uris = images.image_uris(stack, sklearn_framework_version="1.2-1", algorithm=LINEAR_LEARNER)
    assert uris == image_table.ImageUris(algorithm=US_EAST_1_LINEAR_LEARNER, sklearn=US_EAST_1_SKLEARN_1_2_1)
    assert not [child for child in stack.node.children if isinstance(child, cdk.CfnMapping)]


def test_agnostic_stack_points_both_containers_at_find_in_map(agnostic_template: Template) -> None:
    def find(key: str) -> dict[str, Any]:
        return {"Fn::FindInMap": [MAPPING_ID, {"Ref": "AWS::Region"}, key]}

    agnostic_template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "Containers": [
                {"Image": find("SklearnImage")},
                {
                    "Image": find("AlgorithmImage"),
                    "Mode": "MultiModel",
                    "ModelDataUrl": "s3://bucket/models/",
                },
            ]
        },
    )


def test_mapping_holds_exactly_the_regions_with_both_images(agnostic_template: Template) -> None:
    rows = _mapping(agnostic_template)
    app = cdk.App()
    assert list(rows) == list(
        image_table.supported_regions(sklearn_framework_version="1.2-1", algorithm=LINEAR_LEARNER)
    )
    assert {"us-east-1", "eu-west-1", "cn-north-1"} <= rows.keys()
    assert rows["us-east-1"] == {
        "AlgorithmImage": US_EAST_1_LINEAR_LEARNER,
        "SklearnImage": US_EAST_1_SKLEARN_1_2_1,
    }
    for region, row in rows.items():
        assert row.keys() == {"AlgorithmImage", "SklearnImage"}, region
        host = rf"\d{{12}}\.dkr\.ecr\.{re.escape(region)}\.[a-z0-9.]+"
        assert re.fullmatch(rf"{host}/linear-learner:1", row["AlgorithmImage"])
        assert re.fullmatch(rf"{host}/sagemaker-scikit-learn:1\.2-1-cpu-py3", row["SklearnImage"])
        # The literal path and the mapping must agree, or explicit and agnostic deploys would differ.
        explicit = _explicit_stack(region, app)
        literal = images.image_uris(explicit, sklearn_framework_version="1.2-1", algorithm=LINEAR_LEARNER)
        assert (literal.algorithm, literal.sklearn) == (row["AlgorithmImage"], row["SklearnImage"])


def test_every_uri_uses_its_partition_domain(data: dict[str, Any]) -> None:
    """China regions use amazonaws.com.cn; ISO regions have their own domains (from botocore)."""
    china = [name for name, entry in data["regions"].items() if entry["partition"] == "aws-cn"]
    if not china:
        pytest.skip("this sagemaker-core release has no China regions")
    for name in china:
        assert (
            data["regions"][name]["algorithms"]["linear-learner"]["inference"]["1"]
            .split("/")[0]
            .endswith(f".{name}.amazonaws.com.cn")
        )
    for name, entry in data["regions"].items():
        if entry["partition"] in DOMAIN_OF_PARTITION:
            assert entry["dns_suffix"] == DOMAIN_OF_PARTITION[entry["partition"]], name
        else:
            assert "amazonaws" not in entry["dns_suffix"], name  # aws-iso*: c2s.ic.gov and friends
        uris = [
            uri
            for family in entry["algorithms"].values()
            for scope in family.values()
            for uri in scope.values()
        ]
        uris += [uri for scope in entry["sklearn"].values() for uri in scope.values()]
        host = f"ecr.{name}.{entry['dns_suffix']}"
        assert entry["ecr_hostname"] == host
        assert all(
            re.fullmatch(rf"\d{{12}}\.dkr\.{re.escape(host)}/[a-z-]+:[0-9a-z.-]+", uri) for uri in uris
        ), name


def test_unknown_explicit_region_fails_with_a_plain_sentence() -> None:
    with pytest.raises(
        ValueError, match="region 'xx-yyy-1' has no linear-learner 1 inference image in the SageMaker region"
    ) as e:
        images.image_uris(
            _explicit_stack("xx-yyy-1"), sklearn_framework_version="1.2-1", algorithm=LINEAR_LEARNER
        )
    assert "supported regions: af-south-1, " in str(e.value)
    assert "us-east-1" in str(e.value)


@pytest.mark.parametrize(
    ("version", "tag", "message"),
    # the tag belongs to linear learner unless the message names another family
    [
        (
            "9.9-9",
            "1",
            r"scikit-learn framework version '9\.9-9' has no inference image .*available: 0\.20\.0, ",
        ),
        ("1.4-2", "1", r"scikit-learn framework version '1\.4-2' has no inference image"),  # training only
        ("1.2-1", "latest", r"linear-learner image tag 'latest' is not in .*available: 1$"),
        (
            "1.2-1",
            "9.9-9",
            r"xgboost image tag '9\.9-9' is not in .*available: 0\.90-1, 0\.90-2, 1, 1\.0-1, ",
        ),
    ],
)
def test_unknown_version_or_tag_is_refused(version: str, tag: str, message: str) -> None:
    family = "xgboost" if "xgboost" in message else "linear-learner"
    with pytest.raises(ValueError, match=message):
        images.image_uris(
            _explicit_stack("us-east-1"),
            sklearn_framework_version=version,
            algorithm=image_table.AlgorithmImage(family, tag),
        )


def test_training_scope_has_its_own_mapping_and_reuse_is_checked() -> None:
    stack = cdk.Stack(cdk.App(), "Agnostic")
    first = images.image_uris(stack, sklearn_framework_version="1.2-1", algorithm=LINEAR_LEARNER)
    again = images.image_uris(stack, sklearn_framework_version="1.2-1", algorithm=LINEAR_LEARNER)
    training = images.image_uris(
        stack, sklearn_framework_version="1.4-2", algorithm=LINEAR_LEARNER, sklearn_scope="training"
    )
    assert stack.resolve(again.sklearn) == stack.resolve(first.sklearn)
    assert stack.resolve(training.sklearn) == {
        "Fn::FindInMap": ["SageMakerTrainingImages", {"Ref": "AWS::Region"}, "SklearnImage"]
    }
    with pytest.raises(ValueError, match="already maps other inference images"):
        images.image_uris(stack, sklearn_framework_version="1.0-1", algorithm=LINEAR_LEARNER)


def test_versions_for_config_validation() -> None:
    both = image_table.available_sklearn_versions()
    assert both == tuple(sorted(both, key=lambda v: [int(n) for n in re.findall(r"\d+", v)]))
    assert "1.2-1" in both
    assert "1.4-2" not in both  # a training-only image cannot serve the preprocessor it trained
    assert "1.4-2" in image_table.available_sklearn_versions(["training"])
    newest = image_table.newest_sklearn_version(algorithm=LINEAR_LEARNER)
    assert newest in both
    everywhere = image_table.supported_regions(sklearn_framework_version=newest, algorithm=LINEAR_LEARNER)
    assert everywhere == image_table.supported_regions(
        sklearn_framework_version="1.2-1", algorithm=LINEAR_LEARNER
    )
    training = load_default_config().training
    assert training.sklearn_framework_version in both
    assert training.algorithm_image.tag in image_table.available_algorithm_tags(
        training.algorithm_image.family
    )


def test_data_file_is_deterministic_and_says_where_it_came_from(data: dict[str, Any]) -> None:
    assert refresh_image_uris.serialize(data) == DATA_FILE.read_text()
    assert data["source"]["package"] == "sagemaker-core"
    assert data["source"]["version"] == refresh_image_uris.SAGEMAKER_CORE_VERSION
    assert data["source"]["version"] == image_table.sagemaker_core_version()
    assert list(data["regions"]) == sorted(data["regions"])


def test_refresh_builds_uris_the_way_sagemaker_core_does() -> None:
    """The tag and host rules, on a tiny hand-made table (no download): tag_prefix, py_version, cn domain."""
    registries = {"us-east-1": "111111111111", "cn-north-1": "222222222222"}
    sources = {
        **{
            f"{family}.json": json.dumps(
                {
                    "scope": ["inference", "training"],
                    "versions": {"1": {"registries": registries, "repository": "ll"}},
                }
            ).encode()
            for family in ("linear-learner", "knn", "randomcutforest")
        },
        "xgboost.json": json.dumps(
            {
                "inference": {
                    "versions": {"1.7-1": {"registries": {"us-east-1": "111111111111"}, "repository": "xg"}}
                },
                "training": {
                    "versions": {"1.7-1": {"registries": {"us-east-1": "444444444444"}, "repository": "xg"}}
                },
                "inference_graviton": {
                    "versions": {"1.7-1": {"registries": {"us-east-1": "555555555555"}, "repository": "xg"}}
                },
            }
        ).encode(),
        "sklearn.json": json.dumps(
            {
                scope: {
                    "versions": {
                        "1.2-1": {
                            "processors": ["cpu"],
                            "py_versions": ["py3"],
                            "registries": registries,
                            "repository": "sk",
                        },
                        "2.0-1": {
                            "processors": ["cpu"],
                            "py_versions": ["py3"],
                            "tag_prefix": "2.0",
                            "registries": {"us-east-1": "333333333333"},
                            "repository": "sk",
                        },
                    }
                }
                for scope in ("inference", "training")
            }
        ).encode(),
    }

    def resolve(region: str) -> dict[str, str]:
        suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        return {"hostname": f"ecr.{region}.{suffix}", "dnsSuffix": suffix, "partition": "x"}

    table = refresh_image_uris.build_table(
        sources, sagemaker_core_version="0.0.0", resolve_ecr=resolve, botocore_version="0"
    )
    assert table["regions"]["cn-north-1"]["algorithms"]["linear-learner"] == {
        "inference": {"1": "222222222222.dkr.ecr.cn-north-1.amazonaws.com.cn/ll:1"},
        "training": {"1": "222222222222.dkr.ecr.cn-north-1.amazonaws.com.cn/ll:1"},
    }
    # A framework table with one object per scope (XGBoost's shape): each scope keeps its own.
    assert table["regions"]["us-east-1"]["algorithms"]["xgboost"] == {
        "inference": {"1.7-1": "111111111111.dkr.ecr.us-east-1.amazonaws.com/xg:1.7-1"},
        "training": {"1.7-1": "444444444444.dkr.ecr.us-east-1.amazonaws.com/xg:1.7-1"},
    }
    assert table["regions"]["us-east-1"]["sklearn"]["inference"] == {
        "1.2-1": "111111111111.dkr.ecr.us-east-1.amazonaws.com/sk:1.2-1-cpu-py3",
        "2.0-1": "333333333333.dkr.ecr.us-east-1.amazonaws.com/sk:2.0-cpu-py3",
    }
    assert "2.0-1" not in table["regions"]["cn-north-1"]["sklearn"]["training"]


# --- Every algorithm, every region -----------------------------------------------------------

KNOWN_US_EAST_1 = {
    # "Docker Registry Paths and Example Code" (AWS documentation), us-east-1.
    "linear-learner": "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1",
    "knn": "382416733822.dkr.ecr.us-east-1.amazonaws.com/knn:1",
    "randomcutforest": "382416733822.dkr.ecr.us-east-1.amazonaws.com/randomcutforest:1",
    "xgboost": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
}
REPOSITORY_AND_TAG = {
    "linear-learner": "linear-learner:1",
    "knn": "knn:1",
    "randomcutforest": "randomcutforest:1",
    "xgboost": "sagemaker-xgboost:1.7-1",
}


def test_known_values_cover_every_algorithm() -> None:
    assert (
        KNOWN_US_EAST_1.keys() == REPOSITORY_AND_TAG.keys() == {a.image_family for a in ALGORITHMS.values()}
    )


@pytest.mark.parametrize("name", list(ALGORITHMS))
@pytest.mark.parametrize("scope", image_table.SKLEARN_SCOPES)
def test_every_region_gets_the_region_tables_image_for_every_algorithm(
    name: str, scope: image_table.SklearnScope, data: dict[str, Any]
) -> None:
    """Literal URIs (explicit region) and the mapping rows (agnostic stack) are both exactly the
    region table's entry, in every region that has the image; the others are refused by name."""
    algorithm = ALGORITHMS[name]
    selection = image_table.AlgorithmImage(algorithm.image_family, algorithm.default_image_tag)
    version = image_table.newest_sklearn_version(algorithm=selection)
    app = cdk.App()
    agnostic = cdk.Stack(app, "Agnostic")
    mapped = images.image_uris(
        agnostic, sklearn_framework_version=version, algorithm=selection, sklearn_scope=scope
    )
    mapping = agnostic.node.find_child(f"SageMaker{scope.capitalize()}Images")
    assert isinstance(mapping, cdk.CfnMapping)
    assert agnostic.resolve(mapped.algorithm) == {
        "Fn::FindInMap": [f"SageMaker{scope.capitalize()}Images", {"Ref": "AWS::Region"}, "AlgorithmImage"]
    }
    served = image_table.supported_regions(
        sklearn_framework_version=version, algorithm=selection, sklearn_scope=scope
    )
    assert "us-east-1" in served
    for region, entry in data["regions"].items():
        expected = entry["algorithms"][algorithm.image_family][scope].get(algorithm.default_image_tag)
        if region not in served:
            assert expected is None or version not in entry["sklearn"][scope], region
            with pytest.raises(ValueError, match=f"region '{region}' has no"):
                image_table.literal_uris(region, version, selection, scope)
            continue
        literal = images.image_uris(
            _explicit_stack(region, app),
            sklearn_framework_version=version,
            algorithm=selection,
            sklearn_scope=scope,
        )
        assert literal.algorithm == expected, region
        assert mapping.find_in_map(region, "AlgorithmImage") == expected, region
        host = rf"\d{{12}}\.dkr\.ecr\.{re.escape(region)}\.{re.escape(entry['dns_suffix'])}"
        assert re.fullmatch(rf"{host}/{re.escape(REPOSITORY_AND_TAG[algorithm.image_family])}", expected), (
            region
        )
    assert image_table.literal_uris("us-east-1", version, selection, scope).algorithm == KNOWN_US_EAST_1[name]


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_each_algorithms_default_image_is_where_linear_learner_is(name: str) -> None:
    """Switching the algorithm never loses a region the default deployment had."""
    algorithm = ALGORITHMS[name]
    regions = image_table.algorithm_regions(
        image_table.AlgorithmImage(algorithm.image_family, algorithm.default_image_tag)
    )
    assert set(image_table.algorithm_regions(LINEAR_LEARNER)) <= set(regions)
