"""The committed SageMaker image table (``data/sagemaker_images.json``), read without CDK.

Pure Python so that the config model can validate ``training.sklearn_framework_version`` and
``training.algorithm_image_tag`` against the real region tables without importing aws_cdk.
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
"""Which image: the one serving an endpoint or transform, or the one running training jobs."""

SKLEARN_SCOPES: tuple[SklearnScope, ...] = ("inference", "training")
ALGORITHM_KEY = "AlgorithmImage"
SKLEARN_KEY = "SklearnImage"
DATA_RESOURCE = "data/sagemaker_images.json"


@dataclass(frozen=True)
class ImageUris:
    """The two images of the pipeline: literal URIs, or FindInMap tokens for a region-agnostic stack."""

    algorithm: str
    sklearn: str


@dataclass(frozen=True)
class AlgorithmImage:
    """One algorithm image: its family (sagemaker-core table) and tag, e.g. ``xgboost`` ``1.7-1``."""

    family: str
    tag: str

    def __str__(self) -> str:
        return f"{self.family} {self.tag}"


@dataclass(frozen=True)
class _RegionImages:
    algorithms: Mapping[str, Mapping[SklearnScope, Mapping[str, str]]]
    sklearn: Mapping[SklearnScope, Mapping[str, str]]

    def algorithm(self, image: AlgorithmImage, scope: SklearnScope) -> str | None:
        return self.algorithms.get(image.family, {}).get(scope, {}).get(image.tag)


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
            algorithms=entry["algorithms"],
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


def available_algorithm_tags(family: str) -> tuple[str, ...]:
    """Tags of ``family`` with a training and an inference image in at least one region, oldest first."""
    tags = {
        tag
        for region in _table().regions.values()
        for tag in region.algorithms.get(family, {}).get("training", {})
        if tag in region.algorithms[family].get("inference", {})
    }
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
    region: _RegionImages, sklearn_version: str, algorithm: AlgorithmImage, scope: SklearnScope
) -> bool:
    return region.algorithm(algorithm, scope) is not None and sklearn_version in region.sklearn[scope]


def supported_regions(
    *, sklearn_framework_version: str, algorithm: AlgorithmImage, sklearn_scope: SklearnScope = "inference"
) -> tuple[str, ...]:
    """Regions (sorted) where both the algorithm's and the scikit-learn image of ``sklearn_scope`` exist."""
    return tuple(
        sorted(
            name
            for name, region in _table().regions.items()
            if _has_images(region, sklearn_framework_version, algorithm, sklearn_scope)
        )
    )


def regions_with_all_images(*, sklearn_framework_version: str, algorithm: AlgorithmImage) -> tuple[str, ...]:
    """Regions (sorted) with all four images a deployment pulls: both scopes of both families."""
    return tuple(
        sorted(
            set.intersection(
                *(
                    set(
                        supported_regions(
                            sklearn_framework_version=sklearn_framework_version,
                            algorithm=algorithm,
                            sklearn_scope=scope,
                        )
                    )
                    for scope in SKLEARN_SCOPES
                )
            )
        )
    )


def algorithm_regions(algorithm: AlgorithmImage) -> tuple[str, ...]:
    """Regions (sorted) with the algorithm's training and inference images, whatever scikit-learn."""
    return tuple(
        sorted(
            name
            for name, region in _table().regions.items()
            if all(region.algorithm(algorithm, scope) is not None for scope in SKLEARN_SCOPES)
        )
    )


def newest_sklearn_version(
    scopes: Iterable[SklearnScope] = SKLEARN_SCOPES, *, algorithm: AlgorithmImage
) -> str:
    """The newest scikit-learn version with images (every given scope) in every region of ``algorithm``.

    A default that is missing somewhere would make an environment-agnostic template undeployable
    there, so "newest" is taken over versions that are available wherever the algorithm is.
    """
    wanted = tuple(scopes)
    algorithm_table = [_table().regions[name] for name in algorithm_regions(algorithm)]
    everywhere = [
        version
        for version in available_sklearn_versions(wanted)
        if all(version in region.sklearn[scope] for region in algorithm_table for scope in wanted)
    ]
    if not everywhere:
        raise ValueError(f"no scikit-learn version has {'/'.join(wanted)} images in every {algorithm} region")
    return everywhere[-1]


def check_selection(sklearn_framework_version: str, algorithm: AlgorithmImage, scope: SklearnScope) -> None:
    """Refuse a version or tag that exists in no region, naming what does exist."""
    source = f"the SageMaker region tables (sagemaker-core {sagemaker_core_version()})"
    tags = available_algorithm_tags(algorithm.family)
    if algorithm.tag not in tags:
        raise ValueError(
            f"{algorithm.family} image tag {algorithm.tag!r} is not in {source}; "
            f"available: {', '.join(tags) or 'none'}"
        )
    versions = available_sklearn_versions((scope,))
    if sklearn_framework_version not in versions:
        raise ValueError(
            f"scikit-learn framework version {sklearn_framework_version!r} has no {scope} image in "
            f"{source}; available: {', '.join(versions)}"
        )


def literal_uris(
    region_name: str, sklearn_framework_version: str, algorithm: AlgorithmImage, scope: SklearnScope
) -> ImageUris:
    region = _table().regions.get(region_name)
    supported = supported_regions(
        sklearn_framework_version=sklearn_framework_version, algorithm=algorithm, sklearn_scope=scope
    )
    algorithm_uri = None if region is None else region.algorithm(algorithm, scope)
    if region is None or algorithm_uri is None:
        raise ValueError(
            f"region {region_name!r} has no {algorithm} {scope} image in the SageMaker region tables; "
            f"supported regions: {', '.join(supported)}"
        )
    if sklearn_framework_version not in region.sklearn[scope]:
        raise ValueError(
            f"region {region_name!r} has no scikit-learn {sklearn_framework_version} {scope} image in "
            f"the SageMaker region tables; supported regions: {', '.join(supported)}"
        )
    return ImageUris(algorithm=algorithm_uri, sklearn=region.sklearn[scope][sklearn_framework_version])
