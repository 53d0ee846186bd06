"""Region-correct image URIs for the built-in algorithm and the scikit-learn containers.

SageMaker's built-in images live in AWS-owned ECR registries whose account differs by region, and
whose host name differs by partition (``amazonaws.com``, ``amazonaws.com.cn``, the ISO domains). A
URI that is right in us-east-1 is a pull failure everywhere else, discovered only when an endpoint
or a job fails to start. So the URIs come from the committed table ``data/sagemaker_images.json``,
generated from the region tables in the PyPI package ``sagemaker-core`` by
``scripts/refresh_image_uris.py`` (the app itself never imports sagemaker-core).

Two kinds of stack, two answers:

* a stack with a concrete region (an explicit region in the config) gets literal URIs, and a region
  the tables do not cover fails synth with one plain sentence instead of a broken deploy;
* an environment-agnostic stack gets ``Fn::FindInMap`` tokens keyed by ``AWS::Region`` into one
  ``CfnMapping`` holding only the regions that have both images, so the same template is right
  wherever it is deployed.

Nothing here calls AWS; the table is read once per process.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnMapping, Stack, Token

from mme_constructs.image_table import (
    ALGORITHM_KEY,
    SKLEARN_KEY,
    AlgorithmImage,
    ImageUris,
    SklearnScope,
    check_selection,
    literal_uris,
    supported_regions,
)


def _mapping_id(scope: SklearnScope) -> str:
    return f"SageMaker{scope.capitalize()}Images"


def image_uris(
    stack: Stack,
    *,
    sklearn_framework_version: str,
    algorithm: AlgorithmImage,
    sklearn_scope: SklearnScope = "inference",
) -> ImageUris:
    """The algorithm's and the scikit-learn image URIs (of one scope) that are right for ``stack``'s region.

    Concrete region: literal URIs, or ``ValueError`` naming the region and the supported ones.
    Unresolved region: ``Fn::FindInMap`` tokens into one ``CfnMapping`` per stack and scope
    (``SageMakerInferenceImages`` / ``SageMakerTrainingImages``: region -> ``AlgorithmImage``,
    ``SklearnImage``). Calling again for the same stack and scope reuses that mapping; asking for a
    different version there is refused, because one template cannot map two.
    """
    check_selection(sklearn_framework_version, algorithm, sklearn_scope)
    if not Token.is_unresolved(stack.region):
        return literal_uris(stack.region, sklearn_framework_version, algorithm, sklearn_scope)

    rows = {
        name: {
            ALGORITHM_KEY: literal.algorithm,
            SKLEARN_KEY: literal.sklearn,
        }
        for name in supported_regions(
            sklearn_framework_version=sklearn_framework_version,
            algorithm=algorithm,
            sklearn_scope=sklearn_scope,
        )
        for literal in [literal_uris(name, sklearn_framework_version, algorithm, sklearn_scope)]
    }
    mapping_id = _mapping_id(sklearn_scope)
    existing = stack.node.try_find_child(mapping_id)
    if isinstance(existing, CfnMapping):
        mapping = existing
        # Lazy mappings answer concrete look-ups with the stored value, so compare one row.
        sample_region, sample_row = next(iter(rows.items()))
        try:
            same = all(mapping.find_in_map(sample_region, key) == value for key, value in sample_row.items())
        except RuntimeError:  # jsii's error for a region the existing mapping lacks
            same = False
        if not same:
            raise ValueError(
                f"stack {stack.stack_name!r} already maps other {sklearn_scope} images; one stack can use "
                "one scikit-learn version and one algorithm image"
            )
    else:
        # lazy=True: renders only if a FindInMap with an unresolved key uses it (ours always does),
        # and lets the check above read a stored row back.
        mapping = CfnMapping(stack, mapping_id, mapping=rows, lazy=True)
    return ImageUris(
        algorithm=mapping.find_in_map(Aws.REGION, ALGORITHM_KEY),
        sklearn=mapping.find_in_map(Aws.REGION, SKLEARN_KEY),
    )
