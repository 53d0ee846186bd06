"""The committed SageMaker image table (``data/sagemaker_images.json``), read without CDK.

Pure Python so that the config model can validate ``training.sklearn_framework_version`` and
``training.linear_learner_image_tag`` against the real region tables without importing aws_cdk.
``mme_constructs.images`` turns a selection into URIs or a ``CfnMapping`` for a stack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

SklearnScope = Literal["inference", "training"]
"""Which scikit-learn image: the serving container or the one that runs training/processing jobs."""

SKLEARN_SCOPES: tuple[SklearnScope, ...] = ("inference", "training")
LINEAR_LEARNER_KEY = "LinearLearner"
SKLEARN_KEY = "SklearnImage"
DATA_RESOURCE = "data/sagemaker_images.json"


@dataclass(frozen=True)
class ImageUris:
    """The two images of the pipeline: literal URIs, or FindInMap tokens for a region-agnostic stack."""

    linear_learner: str
    sklearn: str


@dataclass(frozen=True)
class _RegionImages:
    linear_learner: Mapping[str, str]
    sklearn: Mapping[SklearnScope, Mapping[str, str]]


@dataclass(frozen=True)
class _ImageTable:
    sagemaker_core_version: str
    regions: Mapping[str, _RegionImages]


@cache
def _table() -> _ImageTable:
    """Load the committed table once; it is package data next to this module."""
    package = __name__.rpartition(".")[0]  # data/ sits next to this module
    raw: dict[str, Any] = json.loads(resources.files(package).joinpath(DATA_RESOURCE).read_text())
    regions = {
        name: _RegionImages(
            linear_learner=entry["linear_learner"],
            sklearn={scope: entry["sklearn"].get(scope, {}) for scope in SKLEARN_SCOPES},
        )
        for name, entry in raw["regions"].items()
    }
    return _ImageTable(sagemaker_core_version=raw["source"]["version"], regions=regions)


def _version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Order SageMaker framework versions numerically ('0.20.0' < '1.2-1' < '1.4-2-py312' < '1.9-0').

    They are not PEP 440 versions, so compare their number and word runs; a numbered build with a
    suffix (``-py312``) sorts after the same build without it.
    """
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.findall(r"\d+|[A-Za-z]+", version)
    )


def sagemaker_core_version() -> str:
    """The sagemaker-core release the table was generated from (for messages and the README)."""
    return _table().sagemaker_core_version


def available_linear_learner_tags() -> tuple[str, ...]:
    """Linear-learner image tags present in at least one region."""
    tags = {tag for region in _table().regions.values() for tag in region.linear_learner}
    return tuple(sorted(tags, key=_version_key))


def available_sklearn_versions(scopes: Iterable[SklearnScope] = SKLEARN_SCOPES) -> tuple[str, ...]:
    """Scikit-learn framework versions that have an image for every given scope, oldest first.

    The default asks for both scopes because the pipeline preprocesses (training scope) and serves
    (inference scope) with the same framework version, so only versions with both images are usable;
    this is the list ``training.sklearn_framework_version`` should be validated against.
    """
    wanted = tuple(scopes)
    if not wanted:
        raise ValueError("name at least one scikit-learn image scope ('inference', 'training')")
    versions = {
        version
        for region in _table().regions.values()
        for version in region.sklearn[wanted[0]]
        if all(version in region.sklearn[scope] for scope in wanted)
    }
    return tuple(sorted(versions, key=_version_key))


def _has_images(
    region: _RegionImages, sklearn_version: str, linear_learner_tag: str, scope: SklearnScope
) -> bool:
    return linear_learner_tag in region.linear_learner and sklearn_version in region.sklearn[scope]


def supported_regions(
    *, sklearn_framework_version: str, linear_learner_tag: str, sklearn_scope: SklearnScope = "inference"
) -> tuple[str, ...]:
    """Regions (sorted) where both the linear learner and the scikit-learn image exist."""
    return tuple(
        sorted(
            name
            for name, region in _table().regions.items()
            if _has_images(region, sklearn_framework_version, linear_learner_tag, sklearn_scope)
        )
    )


def newest_sklearn_version(scopes: Iterable[SklearnScope] = SKLEARN_SCOPES) -> str:
    """The newest scikit-learn version whose images (every given scope) exist in every linear-learner region.

    A default that is missing somewhere would make an environment-agnostic template undeployable
    there, so "newest" is taken over versions that are available wherever the linear learner is.
    """
    wanted = tuple(scopes)
    learner_regions = [r for r in _table().regions.values() if r.linear_learner]
    everywhere = [
        version
        for version in available_sklearn_versions(wanted)
        if all(version in region.sklearn[scope] for region in learner_regions for scope in wanted)
    ]
    if not everywhere:
        raise ValueError(f"no scikit-learn version has {'/'.join(wanted)} images in every region")
    return everywhere[-1]


def check_selection(sklearn_framework_version: str, linear_learner_tag: str, scope: SklearnScope) -> None:
    """Refuse a version or tag that exists in no region, naming what does exist."""
    source = f"the SageMaker region tables (sagemaker-core {sagemaker_core_version()})"
    if linear_learner_tag not in available_linear_learner_tags():
        raise ValueError(
            f"linear-learner image tag {linear_learner_tag!r} is not in {source}; "
            f"available: {', '.join(available_linear_learner_tags())}"
        )
    versions = available_sklearn_versions((scope,))
    if sklearn_framework_version not in versions:
        raise ValueError(
            f"scikit-learn framework version {sklearn_framework_version!r} has no {scope} image in "
            f"{source}; available: {', '.join(versions)}"
        )


def literal_uris(
    region_name: str, sklearn_framework_version: str, linear_learner_tag: str, scope: SklearnScope
) -> ImageUris:
    region = _table().regions.get(region_name)
    supported = supported_regions(
        sklearn_framework_version=sklearn_framework_version,
        linear_learner_tag=linear_learner_tag,
        sklearn_scope=scope,
    )
    if region is None or linear_learner_tag not in region.linear_learner:
        raise ValueError(
            f"region {region_name!r} has no linear-learner image in the SageMaker region tables; "
            f"supported regions: {', '.join(supported)}"
        )
    if sklearn_framework_version not in region.sklearn[scope]:
        raise ValueError(
            f"region {region_name!r} has no scikit-learn {sklearn_framework_version} {scope} image in "
            f"the SageMaker region tables; supported regions: {', '.join(supported)}"
        )
    return ImageUris(
        linear_learner=region.linear_learner[linear_learner_tag],
        sklearn=region.sklearn[scope][sklearn_framework_version],
    )
