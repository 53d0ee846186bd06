"""The architecture diagram (scripts/draw_architecture.py): its model follows the config, the PNG fits.

Nothing here needs Graphviz: the model is plain data, and the committed PNG is checked by its header.
"""

from __future__ import annotations

import itertools
import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import pytest

from mme_constructs.algorithms import ALGORITHMS
from project_config import ProjectConfig, load_default_config
from scripts import draw_architecture
from scripts.draw_architecture import (
    FLOWS,
    ArchitectureModel,
    DiagramCluster,
    DiagramEdge,
    DiagramNode,
    Flow,
    NodeKind,
    architecture,
)
from tests.conftest import REPO_ROOT

PRINCIPAL = "arn:aws:iam::111122223333:role/analyst"


def _tenant(*patterns: str) -> dict[str, Any]:
    return {
        "model_patterns": list(patterns),
        "trusted_principals": [PRINCIPAL],
        "max_session_duration_hours": 1,
    }


OTHER_SETTINGS: dict[str, Any] = {
    "stack_prefix": "Acme",
    "data": {"locations": ["Austin_TX", "Boston_MA", "Denver_CO"]},
    "training": {
        "algorithm": "xgboost",
        "parallel_training_jobs": 7,
        "training_instance_type": "ml.m5.xlarge",
        "transform_instance_type": "ml.m5.2xlarge",
        "preprocessor_instance_type": "ml.m5.large",
    },
    "endpoint": {"instance_type": "ml.c5.2xlarge", "autoscaling": {"enabled": False}},
    "tenants": {
        "mode": "abac",
        "abac_trusted_principals": [PRINCIPAL],
        "shared_model_patterns": ["common/*"],
        "tenants": {"company_a": _tenant("company_a/*"), "company_b": _tenant("company_b/*")},
    },
    "alarms": {"email_subscriptions": ["ops@example.com"]},
}


def config_with(tmp_path: Path, settings: dict[str, Any]) -> ProjectConfig:
    """The repository's defaults with ``settings`` merged over them, as ``--config FILE`` does."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(settings), encoding="utf-8")
    return load_default_config(str(path))


@pytest.fixture(scope="module")
def default_model() -> ArchitectureModel:
    return architecture(load_default_config())


@pytest.fixture
def other_model(tmp_path: Path) -> ArchitectureModel:
    return architecture(config_with(tmp_path, OTHER_SETTINGS))


def all_text(model: ArchitectureModel) -> str:
    """Every label of the diagram: what a reader sees."""
    parts = [model.title]
    parts += [cluster.label for cluster in model.clusters]
    parts += [node.label for node in model.nodes]
    parts += [edge.label for edge in model.edges]
    return "\n".join(parts)


def assert_path(model: ArchitectureModel, flow: Flow, path: Sequence[str]) -> None:
    """Each consecutive pair of ``path`` is an edge of ``flow``."""
    edges = {(edge.source, edge.target) for edge in model.flow(flow)}
    for source, target in itertools.pairwise(path):
        assert (source, target) in edges, f"no {flow} edge {source} -> {target}"


def nodes_of_kind(model: ArchitectureModel, kind: NodeKind) -> list[DiagramNode]:
    return [node for node in model.nodes if node.kind == kind]


def outermost_cluster(model: ArchitectureModel, node_id: str) -> DiagramCluster:
    cluster = model.cluster(model.node(node_id).cluster or "")
    while cluster.parent is not None:
        cluster = model.cluster(cluster.parent)
    return cluster


# --- every flow is drawn as edges ---------------------------------------------------------------


def test_request_flow(default_model: ArchitectureModel) -> None:
    model = default_model
    assert_path(model, "request", ["client", "endpoint", "preprocessor-container", "algorithm-container"])
    assert_path(model, "request", ["algorithm-container", "model-cache"])
    assert_path(model, "request", ["models-prefix", "model-cache"])
    assert "scikit-learn" in model.node("preprocessor-container").label
    assert "MultiModel" in model.node("algorithm-container").label
    assert model.node("models-prefix").label.startswith("models/<generation>/")
    assert model.node("model-cache").cluster == model.node("algorithm-container").cluster == "pipeline"
    assert {node.kind for node in (model.node("endpoint"), model.node("models-prefix"))} == {
        "endpoint",
        "bucket-prefix",
    }


def test_training_flow_runs_the_steps_in_order_and_writes_the_bucket(
    default_model: ArchitectureModel,
) -> None:
    model = default_model
    steps = [
        "state-machine",
        "plan-run",
        "generate-data",
        "fit-preprocessor",
        "transforms",
        "train-jobs",
        "promote",
    ]
    assert_path(model, "training", steps)
    for prefix in ("models-prefix", "pointers-prefix", "preprocessor-prefix"):
        assert_path(model, "training", ["promote", prefix])
    assert model.node("state-machine").kind == "state-machine"
    assert [model.node(step).kind for step in ("plan-run", "generate-data", "promote")] == ["function"] * 3
    assert "PlanRun" in model.node("plan-run").label
    assert "GenerateData" in model.node("generate-data").label
    assert model.node("fit-preprocessor").kind == "training-job"
    assert "scikit-learn" in model.node("fit-preprocessor").label
    assert model.node("transforms").kind == "transform-job"
    assert "batch transforms" in model.node("transforms").label
    assert "PromoteModel" in model.node("promote").label
    bucket_prefixes = {node.label.split("\n")[0] for node in nodes_of_kind(model, "bucket-prefix")}
    assert {
        "models/<generation>/",
        "model-pointers/<generation>/",
        "preprocessor/<generation>/",
    } <= bucket_prefixes


def test_monitoring_flow(default_model: ArchitectureModel) -> None:
    model = default_model
    assert_path(model, "monitoring", ["endpoint", "dashboard"])
    assert_path(model, "monitoring", ["endpoint", "alarms", "topic"])
    assert model.node("dashboard").kind == "dashboard"
    assert model.node("alarms").kind == "alarm"
    assert model.node("topic").kind == "topic"
    assert "e-mail" in model.node("topic").label
    assert {outermost_cluster(model, node).label for node in ("dashboard", "alarms", "topic")} == {
        "MmeMonitoring"
    }


def test_tenant_flow(default_model: ArchitectureModel) -> None:
    roles = nodes_of_kind(default_model, "role")
    assert roles
    for role in roles:
        assert_path(default_model, "tenant", ["client", role.id, "endpoint"])
        invoke = next(
            e for e in default_model.flow("tenant") if (e.source, e.target) == (role.id, "endpoint")
        )
        assert "InvokeEndpoint" in invoke.label
        assert "sagemaker:TargetModel" in invoke.label


def test_the_key_encrypts_the_bucket_and_the_logs(default_model: ArchitectureModel) -> None:
    model = default_model
    encryption = model.flow("encryption")
    assert model.node("key").kind == "key"
    assert all(edge.source == "key" for edge in encryption)
    assert any(edge.to_cluster == "bucket" for edge in encryption)
    assert "logs" in {edge.target for edge in encryption}
    assert model.node("logs").kind == "logs"


def test_every_flow_has_edges(default_model: ArchitectureModel) -> None:
    assert {edge.flow for edge in default_model.edges} == set(FLOWS)


# --- labels come from the config ----------------------------------------------------------------


def test_default_labels_follow_the_default_config(default_model: ArchitectureModel) -> None:
    config = load_default_config()
    text = all_text(default_model)
    for stack in ("Storage", "Training", "Endpoint", "Monitoring", "TenantsNN"):
        assert f"{config.stack_prefix}{stack}" in text
    assert ALGORITHMS[config.training.algorithm].title in default_model.node("algorithm-container").label
    assert ALGORITHMS[config.training.algorithm].title in default_model.node("train-jobs").label
    assert config.endpoint.instance_type in default_model.cluster("pipeline").label
    assert config.training.training_instance_type in default_model.node("train-jobs").label
    assert f"{len(config.data.locations)} locations" in default_model.node("generate-data").label
    assert f"{len(config.data.locations)} jobs" in default_model.node("train-jobs").label
    assert (
        f"{config.training.parallel_training_jobs} at a time"
        in default_model.cluster("train-locations").label
    )
    assert "roles mode" in default_model.cluster("tenants").label
    assert "none configured" in nodes_of_kind(default_model, "role")[0].label


def test_another_config_draws_another_picture(
    default_model: ArchitectureModel, other_model: ArchitectureModel
) -> None:
    text, default_text = all_text(other_model), all_text(default_model)
    assert text != default_text
    for stack in ("AcmeStorage", "AcmeTraining", "AcmeEndpoint", "AcmeMonitoring", "AcmeTenantAccess"):
        assert stack in text
        assert stack not in default_text
    assert "Mme" not in text
    assert "XGBoost" in other_model.node("algorithm-container").label
    assert "XGBoost" in other_model.node("train-jobs").label
    assert "linear learner" not in text
    assert "3 locations" in other_model.node("generate-data").label
    assert "7 at a time" in other_model.cluster("train-locations").label
    assert "ml.m5.xlarge" in other_model.node("train-jobs").label
    assert "ml.m5.2xlarge" in other_model.node("transforms").label
    assert "ml.m5.large" in other_model.node("fit-preprocessor").label
    assert "ml.c5.2xlarge, 1 instance" in other_model.cluster("pipeline").label
    assert "ops@example.com" in other_model.node("topic").label


def test_abac_mode_draws_one_role(other_model: ArchitectureModel) -> None:
    (role,) = nodes_of_kind(other_model, "role")
    assert "abac mode: one role for 2 tenants" in other_model.cluster("tenants").label
    assert "${aws:PrincipalTag/tenant}/*" in role.label
    assert "common/*" in role.label
    assert_path(other_model, "tenant", ["client", role.id, "endpoint"])


def test_roles_mode_draws_one_role_per_tenant(tmp_path: Path) -> None:
    tenants = {"company_a": _tenant("company_a/*"), "company_b": _tenant("company_b/*", "shared/x")}
    model = architecture(config_with(tmp_path, {"tenants": {"mode": "roles", "tenants": tenants}}))
    roles = nodes_of_kind(model, "role")
    assert sorted(role.label.split("\n")[0] for role in roles) == ["company_a role", "company_b role"]
    assert "company_b/*, shared/x" in next(r.label for r in roles if r.label.startswith("company_b"))
    assert "roles mode: one role per tenant, 2 tenants" in model.cluster("tenants").label
    for role in roles:
        assert_path(model, "tenant", ["client", role.id, "endpoint"])


def test_many_tenants_are_summarised(tmp_path: Path) -> None:
    tenants = {
        f"tenant_{index}": _tenant(f"t{index}/*") for index in range(draw_architecture.MAX_TENANT_NODES + 2)
    }
    model = architecture(config_with(tmp_path, {"tenants": {"mode": "roles", "tenants": tenants}}))
    (role,) = nodes_of_kind(model, "role")
    assert role.label.startswith(f"{len(tenants)} tenant roles")


# --- the model itself ---------------------------------------------------------------------------


def test_the_model_refuses_dangling_references() -> None:
    node = DiagramNode("a", "A", "client")
    with pytest.raises(ValueError, match="unknown node 'b'"):
        ArchitectureModel("t", (), (node,), (DiagramEdge("a", "b", "request"),))
    with pytest.raises(ValueError, match="unknown cluster 'c'"):
        ArchitectureModel("t", (), (DiagramNode("a", "A", "client", "c"),), ())
    with pytest.raises(ValueError, match="duplicate node ids: a"):
        ArchitectureModel("t", (), (node, node), ())


def test_every_node_kind_has_an_icon() -> None:
    pytest.importorskip("diagrams")  # the dev requirement that draws; Graphviz itself is not needed
    assert set(draw_architecture._icons()) == set(get_args(NodeKind))


def test_a_bad_config_fails_before_drawing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"training": {"algorithm": "svm"}}), encoding="utf-8")
    assert draw_architecture.main(["--config", str(path), "--output", str(tmp_path / "x.png")]) == 1
    assert "training.algorithm" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


# --- the committed picture ----------------------------------------------------------------------


def png_dimensions(path: Path) -> tuple[int, int]:
    """Width and height from the PNG signature and its first chunk, IHDR."""
    with path.open("rb") as file:
        header = file.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    length, chunk_type, width, height = struct.unpack(">I4sII", header[8:24])
    assert (length, chunk_type) == (13, b"IHDR")
    return width, height


def test_the_committed_diagram_fits_the_readme() -> None:
    width, height = png_dimensions(REPO_ROOT / "docs" / "architecture.png")
    assert width <= draw_architecture.MAX_WIDTH_PX == 2000
    assert height <= 2000
    assert width >= 1000  # drawn at a size where its labels can be read, not a thumbnail


def test_png_size_reads_the_header(tmp_path: Path) -> None:
    path = tmp_path / "tiny.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", 321, 123) + b"\x08\x06\x00\x00\x00"
    )
    assert draw_architecture.png_size(path) == (321, 123) == png_dimensions(path)
    (tmp_path / "not.png").write_bytes(b"GIF89a" + bytes(20))
    with pytest.raises(ValueError, match="not a PNG"):
        draw_architecture.png_size(tmp_path / "not.png")


def test_make_diagram_runs_the_script() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    target = makefile.split("\ndiagram:", 1)[1].split("\n\n", 1)[0]
    assert "scripts/draw_architecture.py" in target
    assert "--output docs/architecture.png" in target
