"""One JSON snapshot per synthesized stack (default settings), asset hashes normalised.

Update deliberately with ``make snapshot-update`` and review the diff of
``tests/__snapshots__/`` before committing it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from tests.conftest import SynthesizedApp

_ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")


def normalise(template: dict[str, Any]) -> dict[str, Any]:
    """Asset hashes change with every byte of bundled code, so they are replaced by a marker."""
    normalised: dict[str, Any] = json.loads(_ASSET_HASH.sub("<asset-hash>", json.dumps(template)))
    return normalised


@pytest.fixture
def json_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


def test_normalise_replaces_asset_hashes() -> None:
    digest = "a" * 64
    template = {"Resources": {"F": {"Properties": {"Code": {"S3Key": f"{digest}.zip"}}}}}
    assert normalise(template) == {
        "Resources": {"F": {"Properties": {"Code": {"S3Key": "<asset-hash>.zip"}}}}
    }


@pytest.mark.parametrize("role", ["storage", "training", "endpoint", "monitoring"])
def test_stack_matches_snapshot(
    synthesized: SynthesizedApp, role: str, json_snapshot: SnapshotAssertion
) -> None:
    assert normalise(synthesized.template(role)) == json_snapshot
