"""Draw ``docs/architecture.png``: how requests, training, monitoring and tenants flow, from the config.

The picture is built in two steps so that it can be tested without Graphviz:

1. :func:`architecture` turns a :class:`~project_config.ProjectConfig` into an
   :class:`ArchitectureModel`: plain, frozen data (clusters, nodes, edges, each edge tagged with the
   flow it belongs to). Every label that depends on a setting is taken from the config: the stack
   names from ``stack_prefix``, the algorithm's title from ``mme_constructs.algorithms``, instance
   types, the number of locations, ``training.parallel_training_jobs``, the tenant mode and tenants,
   alarm thresholds and e-mail subscriptions. Another config draws another picture.
2. :func:`render` draws that model with the ``diagrams`` library (mingrammer/diagrams, a dev
   requirement), which needs Graphviz's ``dot`` (``apt-get install graphviz``).

Usage (from the repository root)::

    .venv/bin/python scripts/draw_architecture.py [--config FILE] [--output docs/architecture.png]

``make diagram`` runs it with the repository's defaults (``CONFIG=...`` passes ``--config``).
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import itertools
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mme_shared.stack_names import TENANT_SHARD, StackRole, stack_name
from mme_shared.tenant_abac import ABAC_TARGET_MODEL_PATTERN
from project_config import ConfigError, ProjectConfig, load_default_config

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT: Final = REPO_ROOT / "docs" / "architecture.png"

MAX_WIDTH_PX: Final = 2000
"""The PNG must stay readable at README width; :data:`GRAPH_ATTRIBUTES` scale the drawing to fit."""
DPI: Final = 100
GRAPH_ATTRIBUTES: Final[dict[str, str]] = {
    # Graphviz scales a drawing larger than `size` (inches) down to it, so at DPI the PNG is at
    # most MAX_WIDTH_PX wide; the "!" is absent on purpose: a small drawing is not blown up.
    "dpi": str(DPI),
    "size": f"{MAX_WIDTH_PX / DPI:g},{MAX_WIDTH_PX / DPI:g}",
    "rankdir": "TB",
    "pad": "0.3",
    "nodesep": "0.35",
    "ranksep": "0.45",
    "splines": "spline",
    "compound": "true",
    "fontsize": "22",
    "labelloc": "t",
}

ICON_INCHES: Final = 0.85

MAX_TENANT_NODES: Final = 3
"""In ``roles`` mode, up to this many tenants get a node each; more are drawn as one summary node."""

Flow = Literal["request", "training", "monitoring", "tenant", "encryption"]
FLOWS: Final[tuple[Flow, ...]] = ("request", "training", "monitoring", "tenant", "encryption")

NodeKind = Literal[
    "client",
    "role",
    "endpoint",
    "container",
    "model-cache",
    "state-machine",
    "function",
    "training-job",
    "transform-job",
    "bucket-prefix",
    "key",
    "logs",
    "dashboard",
    "alarm",
    "topic",
]


@dataclass(frozen=True)
class DiagramCluster:
    """A box around nodes: a stack, or a part of one (the bucket, the inference pipeline).

    ``stacked``: its nodes are drawn one below another, in the order of the model's nodes.
    """

    id: str
    label: str
    parent: str | None = None
    stacked: bool = False


@dataclass(frozen=True)
class DiagramNode:
    """One icon with its label; ``kind`` picks the icon, ``cluster`` the box it is drawn in."""

    id: str
    label: str
    kind: NodeKind
    cluster: str | None = None


@dataclass(frozen=True)
class DiagramEdge:
    """``source`` → ``target``, one step of a flow.

    ``ranked``: the edge places its target in a row below its source. Each flow runs down its own
    column; the edges between columns (the training steps' writes into the bucket, the key's
    arrows, cross-links) are not ranked, so they do not push one flow below another.
    ``to_cluster``: the arrow ends at that cluster's border (the key encrypts the whole bucket).
    """

    source: str
    target: str
    flow: Flow
    label: str = ""
    ranked: bool = True
    to_cluster: str | None = None


@dataclass(frozen=True)
class ArchitectureModel:
    """What the diagram shows, as data; checked for dangling references when it is built."""

    title: str
    clusters: tuple[DiagramCluster, ...]
    nodes: tuple[DiagramNode, ...]
    edges: tuple[DiagramEdge, ...]

    def __post_init__(self) -> None:
        cluster_ids = [cluster.id for cluster in self.clusters]
        node_ids = [node.id for node in self.nodes]
        for kind, ids in (("cluster", cluster_ids), ("node", node_ids)):
            duplicates = sorted({item for item in ids if ids.count(item) > 1})
            if duplicates:
                raise ValueError(f"duplicate {kind} ids: {', '.join(duplicates)}")
        for cluster in self.clusters:
            if cluster.parent is not None and cluster.parent not in cluster_ids:
                raise ValueError(f"cluster {cluster.id!r} has an unknown parent {cluster.parent!r}")
        for node in self.nodes:
            if node.cluster is not None and node.cluster not in cluster_ids:
                raise ValueError(f"node {node.id!r} is in an unknown cluster {node.cluster!r}")
        for edge in self.edges:
            for end in (edge.source, edge.target):
                if end not in node_ids:
                    raise ValueError(f"edge {edge.source!r} -> {edge.target!r} names an unknown node {end!r}")
            if edge.to_cluster is not None and edge.to_cluster not in cluster_ids:
                raise ValueError(
                    f"edge {edge.source!r} -> {edge.target!r}: unknown cluster {edge.to_cluster!r}"
                )

    def node(self, node_id: str) -> DiagramNode:
        return next(node for node in self.nodes if node.id == node_id)

    def cluster(self, cluster_id: str) -> DiagramCluster:
        return next(cluster for cluster in self.clusters if cluster.id == cluster_id)

    def flow(self, flow: Flow) -> tuple[DiagramEdge, ...]:
        return tuple(edge for edge in self.edges if edge.flow == flow)

    def children(self, parent: str | None) -> tuple[DiagramCluster, ...]:
        return tuple(cluster for cluster in self.clusters if cluster.parent == parent)

    def members(self, cluster: str | None) -> tuple[DiagramNode, ...]:
        return tuple(node for node in self.nodes if node.cluster == cluster)


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number:,} {singular if number == 1 else (plural or singular + 's')}"


def _patterns(patterns: Sequence[str], limit: int = 2) -> str:
    shown = ", ".join(patterns[:limit])
    return shown + (f" +{len(patterns) - limit}" if len(patterns) > limit else "")


def _endpoint_capacity(config: ProjectConfig) -> str:
    endpoint = config.endpoint
    scaling = endpoint.autoscaling
    if scaling.enabled:
        return (
            f"{endpoint.instance_type}, {scaling.min_capacity}-{scaling.max_capacity} instances (autoscaling)"
        )
    return f"{endpoint.instance_type}, {_count(endpoint.initial_instance_count, 'instance')}"


def _tenant_part(config: ProjectConfig) -> tuple[DiagramCluster, list[DiagramNode], list[DiagramEdge]]:
    """The tenant stacks' roles and how a tenant reaches the endpoint through one."""
    prefix, tenants = config.stack_prefix, config.tenants
    shared = list(tenants.shared_model_patterns)
    invoke = "InvokeEndpoint\nonly if sagemaker:TargetModel\nmatches the role's patterns"
    pointers = "its models'\ncurrent TargetModel"
    nodes: list[DiagramNode] = []
    edges: list[DiagramEdge] = []
    if tenants.mode == "abac":
        cluster = DiagramCluster(
            "tenants",
            f"{stack_name(prefix, StackRole.TENANT_ACCESS)} "
            f"(abac mode: one role for {_count(len(tenants.tenants), 'tenant')})",
        )
        patterns = [ABAC_TARGET_MODEL_PATTERN, *shared]
        nodes.append(
            DiagramNode(
                "tenant-role-abac",
                f"tenant ABAC role\nTargetModel: {_patterns(patterns)}",
                "role",
                cluster.id,
            )
        )
        edges.append(
            DiagramEdge(
                "client",
                "tenant-role-abac",
                "tenant",
                "AssumeRole + session tag tenant=<name>\n"
                f"({_count(len(tenants.abac_trusted_principals), 'principal')})",
            )
        )
        edges.append(DiagramEdge("pointers-prefix", "tenant-role-abac", "tenant", pointers, ranked=False))
        edges.append(DiagramEdge("tenant-role-abac", "endpoint", "tenant", invoke))
        return cluster, nodes, edges
    cluster = DiagramCluster(
        "tenants",
        f"{prefix}{TENANT_SHARD}NN "
        f"(roles mode: one role per tenant, {_count(len(tenants.tenants), 'tenant')})",
    )
    names = sorted(tenants.tenants)
    if not names:
        nodes.append(
            DiagramNode(
                "tenant-roles",
                "tenant roles\n(none configured yet:\nadd them under tenants.tenants)",
                "role",
                cluster.id,
            )
        )
    elif len(names) <= MAX_TENANT_NODES:
        for index, name in enumerate(names):
            patterns = [*tenants.tenants[name].model_patterns, *shared]
            nodes.append(
                DiagramNode(
                    f"tenant-role-{index}",
                    f"{name} role\nTargetModel: {_patterns(patterns)}",
                    "role",
                    cluster.id,
                )
            )
    else:
        example = [*tenants.tenants[names[0]].model_patterns, *shared]
        nodes.append(
            DiagramNode(
                "tenant-roles",
                f"{_count(len(names), 'tenant role')}\n(e.g. {names[0]}: {_patterns(example)})",
                "role",
                cluster.id,
            )
        )
    for index, node in enumerate(nodes):
        first = index == 0  # one label of each kind is enough when there are several roles
        edges.append(
            DiagramEdge("client", node.id, "tenant", "AssumeRole\n(trusted principals)" if first else "")
        )
        edges.append(
            DiagramEdge("pointers-prefix", node.id, "tenant", pointers if first else "", ranked=False)
        )
        edges.append(DiagramEdge(node.id, "endpoint", "tenant", invoke if first else ""))
    return cluster, nodes, edges


def architecture(config: ProjectConfig) -> ArchitectureModel:
    """The diagram of one deployment, derived from its configuration."""
    prefix = config.stack_prefix
    training, endpoint, alarms = config.training, config.endpoint, config.alarms
    algorithm = training.algorithm_spec
    locations = len(config.data.locations)
    storage_stack, training_stack = (
        stack_name(prefix, StackRole.STORAGE),
        stack_name(prefix, StackRole.TRAINING),
    )
    endpoint_stack = stack_name(prefix, StackRole.ENDPOINT)
    monitoring_stack = stack_name(prefix, StackRole.MONITORING)

    tenant_cluster, tenant_nodes, tenant_edges = _tenant_part(config)
    clusters = (
        DiagramCluster("training", f"{training_stack}: Step Functions + SageMaker jobs"),
        DiagramCluster(
            "train-locations",
            f"TrainLocations: per location, {training.parallel_training_jobs} at a time",
            parent="training",
        ),
        DiagramCluster("storage", f"{storage_stack} (stateful)"),
        DiagramCluster(
            "bucket", "artifact bucket\n(SSE-KMS, versioned, TLS only)", parent="storage", stacked=True
        ),
        DiagramCluster("endpoint", endpoint_stack),
        DiagramCluster("pipeline", f"inference pipeline\n{_endpoint_capacity(config)}", parent="endpoint"),
        DiagramCluster("monitoring", monitoring_stack),
        tenant_cluster,
    )
    warm_pool = (
        f"\nwarm pool {training.warm_pool_keep_alive_seconds} s"
        if training.warm_pool_keep_alive_seconds
        else ""
    )
    cache = "model cache on" if endpoint.model_cache_enabled else "model cache off"
    emails = alarms.email_subscriptions
    nodes = (
        DiagramNode("client", f"client\n(a raw CSV row + TargetModel\n→ a {algorithm.prediction})", "client"),
        *tenant_nodes,
        # Training, top to bottom
        DiagramNode(
            "state-machine", "training state machine\n(execution name = run id)", "state-machine", "training"
        ),
        DiagramNode("plan-run", "1 PlanRun λ\nplan.json, generation", "function", "training"),
        DiagramNode(
            "generate-data",
            f"2 GenerateData λ\n{_count(locations, 'location')}, "
            f"{config.data.houses_per_location:,} houses each",
            "function",
            "training",
        ),
        DiagramNode(
            "fit-preprocessor",
            "3 FitPreprocessor (refit only)\n"
            f"scikit-learn {training.sklearn_framework_version}\n"
            f"training job, {training.preprocessor_instance_type}",
            "training-job",
            "training",
        ),
        DiagramNode(
            "transforms",
            f"4 TransformSplits\n2 batch transforms (train,\nvalidation), {training.transform_instance_type}",
            "transform-job",
            "training",
        ),
        DiagramNode(
            "train-jobs",
            f"5 TrainModel: {_count(locations, 'job')}\nof {algorithm.title}, "
            f"{training.training_instance_type}{warm_pool}",
            "training-job",
            "train-locations",
        ),
        DiagramNode("promote", "6 PromoteModel λ\n(also StorePreprocessor)", "function", "train-locations"),
        # Storage
        DiagramNode(
            "key",
            "customer-managed KMS key\n(yearly rotation): bucket,\nlogs, topic, ML volume",
            "key",
            "storage",
        ),
        DiagramNode(
            "run-data",
            "raw-data/<run>/\npreprocessed-data/<run>/",
            "bucket-prefix",
            "bucket",
        ),
        DiagramNode(
            "preprocessor-prefix", "preprocessor/<generation>/\nmodel.tar.gz", "bucket-prefix", "bucket"
        ),
        DiagramNode("models-prefix", "models/<generation>/\n<location>/…tar.gz", "bucket-prefix", "bucket"),
        DiagramNode(
            "pointers-prefix", "model-pointers/<generation>/\n<location>.json", "bucket-prefix", "bucket"
        ),
        DiagramNode(
            "logs",
            f"CloudWatch Logs\n(Lambdas, state machine)\n{training.log_retention_days} days",
            "logs",
            "training",
        ),
        # Endpoint
        DiagramNode("endpoint", "SageMaker endpoint", "endpoint", "endpoint"),
        DiagramNode(
            "preprocessor-container",
            f"1: scikit-learn {training.sklearn_framework_version}\npreprocessor\n(8 fields → features)",
            "container",
            "pipeline",
        ),
        DiagramNode(
            "algorithm-container",
            f"2: {algorithm.title}\nMultiModel mode\n{cache}",
            "container",
            "pipeline",
        ),
        DiagramNode("model-cache", "model cache\n(memory, then disk)", "model-cache", "pipeline"),
        # Monitoring
        DiagramNode(
            "dashboard",
            "CloudWatch dashboard\nLoadedModelCount,\nModelCacheHit, memory,\nlatency, training runs",
            "dashboard",
            "monitoring",
        ),
        DiagramNode(
            "alarms",
            f"alarms: 5XX ≥ {alarms.invocation_5xx_errors_per_5_minutes}/5 min,\n"
            f"cache hit < {alarms.model_cache_hit_ratio_min:g}, "
            f"memory > {alarms.memory_utilization_max_percent:g} %,\n"
            f"p99 > {alarms.model_latency_p99_max_ms} ms, run failed, …",
            "alarm",
            "monitoring",
        ),
        DiagramNode(
            "topic",
            "SNS alarm topic → e-mail\n"
            + (_patterns(emails, 1) if emails else "(none yet: alarms.email_subscriptions)"),
            "topic",
            "monitoring",
        ),
    )
    edges = (
        # Requests
        DiagramEdge("client", "endpoint", "request", "InvokeEndpoint\nTargetModel=<location>/…"),
        DiagramEdge("endpoint", "preprocessor-container", "request", "CSV row"),
        DiagramEdge("preprocessor-container", "algorithm-container", "request", "features"),
        DiagramEdge("algorithm-container", "model-cache", "request", "TargetModel\nloaded? (warm)"),
        DiagramEdge("models-prefix", "model-cache", "request", "cold: first call\nloads the model"),
        DiagramEdge("preprocessor-prefix", "preprocessor-container", "request", "served generation"),
        # Training: the steps in order, then what they write
        DiagramEdge("state-machine", "plan-run", "training"),
        DiagramEdge("plan-run", "generate-data", "training"),
        DiagramEdge("generate-data", "fit-preprocessor", "training"),
        DiagramEdge("fit-preprocessor", "transforms", "training"),
        DiagramEdge("transforms", "train-jobs", "training"),
        DiagramEdge("train-jobs", "promote", "training"),
        DiagramEdge("generate-data", "run-data", "training", "CSV", ranked=False),
        DiagramEdge("transforms", "run-data", "training", "label-first CSV", ranked=False),
        DiagramEdge("promote", "models-prefix", "training", "model.tar.gz", ranked=False),
        DiagramEdge("promote", "pointers-prefix", "training", "current version", ranked=False),
        DiagramEdge("promote", "preprocessor-prefix", "training", "new generation", ranked=False),
        # Monitoring
        DiagramEdge("endpoint", "dashboard", "monitoring", "metrics"),
        DiagramEdge("endpoint", "alarms", "monitoring", "metrics"),
        DiagramEdge("alarms", "topic", "monitoring", "ALARM / OK"),
        # Tenants
        *tenant_edges,
        # Encryption
        DiagramEdge("key", "run-data", "encryption", to_cluster="bucket"),
        DiagramEdge("key", "logs", "encryption", ranked=False),
    )
    title = (
        f"{prefix}: {_count(locations, 'location')}, one {algorithm.title} model each, "
        f"behind one multi-model endpoint (training.algorithm = {training.algorithm})"
    )
    return ArchitectureModel(title=title, clusters=clusters, nodes=nodes, edges=edges)


FLOW_COLORS: Final[dict[Flow, str]] = {
    "request": "#1B6AC9",
    "training": "#2E8B57",
    "monitoring": "#C0392B",
    "tenant": "#8E44AD",
    "encryption": "#7B8894",
}


def _icons() -> dict[NodeKind, Any]:
    """The ``diagrams`` node class of each kind (imported here: only rendering needs the library)."""
    from diagrams.aws.compute import Lambda  # type: ignore[import-untyped]
    from diagrams.aws.general import Client  # type: ignore[import-untyped]
    from diagrams.aws.integration import (  # type: ignore[import-untyped]
        SimpleNotificationServiceSnsTopic,
        StepFunctions,
    )
    from diagrams.aws.management import Cloudwatch, CloudwatchAlarm, CloudwatchLogs  # type: ignore[import-untyped]
    from diagrams.aws.ml import (  # type: ignore[import-untyped]
        Sagemaker,
        SagemakerModel,
        SagemakerTrainingJob,
        Transform,
    )
    from diagrams.aws.security import (  # type: ignore[import-untyped]
        IdentityAndAccessManagementIamRole,
        KeyManagementService,
    )
    from diagrams.aws.storage import SimpleStorageServiceS3BucketWithObjects  # type: ignore[import-untyped]
    from diagrams.generic.storage import Storage  # type: ignore[import-untyped]

    return {
        "client": Client,
        "role": IdentityAndAccessManagementIamRole,
        "endpoint": Sagemaker,
        "container": SagemakerModel,
        "model-cache": Storage,
        "state-machine": StepFunctions,
        "function": Lambda,
        "training-job": SagemakerTrainingJob,
        "transform-job": Transform,
        "bucket-prefix": SimpleStorageServiceS3BucketWithObjects,
        "key": KeyManagementService,
        "logs": CloudwatchLogs,
        "dashboard": Cloudwatch,
        "alarm": CloudwatchAlarm,
        "topic": SimpleNotificationServiceSnsTopic,
    }


def _icon_path(node_class: Any) -> str:
    """The PNG ``diagrams`` draws for a node class: the library's own lookup (``Node._load_icon``),
    which reads only class attributes (``_icon_dir``, ``_icon``), called before any node exists."""
    return str(node_class._load_icon(node_class))


def _icon_label(icon: str, text: str) -> str:
    """A Graphviz HTML-like label: the icon at a fixed size, the text in lines below it.

    Unlike the ``diagrams`` default (an image node of fixed size with its text overflowing it), the
    node's box holds its text, so Graphviz keeps edges, clusters and other nodes clear of it.
    """
    points = round(ICON_INCHES * 72)
    lines = "<BR/>".join(html.escape(line, quote=False) for line in text.split("\n"))
    return (
        f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="1">'
        f'<TR><TD FIXEDSIZE="TRUE" WIDTH="{points}" HEIGHT="{points}">'
        f'<IMG SRC="{html.escape(icon)}" SCALE="TRUE"/></TD></TR>'
        f"<TR><TD>{lines}</TD></TR></TABLE>>"
    )


def _cluster_names(model: ArchitectureModel) -> dict[str, str]:
    """Graphviz's subgraph name of each cluster, as ``diagrams`` names them (for ``lhead``)."""
    return {cluster.id: f"cluster_{cluster.label}" for cluster in model.clusters}


def render(model: ArchitectureModel, output: Path) -> None:
    """Draw ``model`` into the PNG ``output`` (needs the ``diagrams`` package and Graphviz's ``dot``)."""
    from diagrams import Cluster, Diagram, Edge  # type: ignore[import-untyped]

    icons = _icons()
    drawn: dict[str, Any] = {}

    def draw_nodes(cluster: str | None) -> None:
        for node in model.members(cluster):
            icon = icons[node.kind]
            drawn[node.id] = icon(
                _icon_label(_icon_path(icon), node.label),
                nodeid=node.id,  # stable names (not random ones) make the same model draw the same PNG
                image="",  # the icon is in the label's table, so the node's box holds the text too
                shape="plain",
                fixedsize="false",
                width="0",
                height="0",
            )

    def draw_cluster(cluster: DiagramCluster) -> None:
        with Cluster(cluster.label, graph_attr={"fontsize": "16", "margin": "12"}):
            draw_nodes(cluster.id)
            for child in model.children(cluster.id):
                draw_cluster(child)

    cluster_names = _cluster_names(model)
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / output.stem
        with Diagram(
            model.title,
            filename=str(base),
            outformat="png",
            show=False,
            direction=GRAPH_ATTRIBUTES["rankdir"],
            curvestyle="curved",
            graph_attr={key: value for key, value in GRAPH_ATTRIBUTES.items() if key != "rankdir"},
            node_attr={"fontsize": "12"},
        ):
            draw_nodes(None)
            for cluster in model.children(None):
                draw_cluster(cluster)
            for edge in model.edges:
                color = FLOW_COLORS[edge.flow]
                attributes: dict[str, str] = {
                    "label": edge.label,
                    "color": color,
                    "fontcolor": color,
                    "style": "dashed" if edge.flow in ("encryption", "monitoring") else "solid",
                    "penwidth": "2" if edge.flow in ("request", "training") else "1.3",
                }
                if edge.to_cluster:
                    attributes["lhead"] = cluster_names[edge.to_cluster]
                if not edge.ranked:
                    attributes["constraint"] = "false"
                    # dot places the labels of unranked edges far from them; an external label stays close
                    attributes["xlabel"] = attributes.pop("label")
                drawn[edge.source].connect(drawn[edge.target], Edge(forward=True, **attributes))
            for cluster in model.clusters:
                if cluster.stacked:
                    members = model.members(cluster.id)
                    for upper, lower in itertools.pairwise(members):
                        drawn[upper.id].connect(drawn[lower.id], Edge(style="invis"))
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(base.with_suffix(".png")), output)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height in pixels from a PNG's IHDR chunk."""
    with path.open("rb") as file:
        header = file.read(24)
    if header[:8] != b"\x89PNG\r\n\x1a\n" or header[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG file")
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def _flows_summary(model: ArchitectureModel) -> Iterator[str]:
    for flow in FLOWS:
        yield f"{flow} {len(model.flow(flow))}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", help="a JSON file of settings merged over cdk.json's defaults")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the PNG to write")
    args = parser.parse_args(argv)
    try:
        config = load_default_config(args.config)
    except ConfigError as error:
        print(f"Invalid configuration: {error}.", file=sys.stderr)
        return 1
    if shutil.which("dot") is None:
        print("Graphviz's dot is missing: sudo apt-get install graphviz", file=sys.stderr)
        return 1
    if importlib.util.find_spec("diagrams") is None:
        print(
            "The diagrams package is missing: .venv/bin/pip install -r requirements-dev.txt", file=sys.stderr
        )
        return 1
    model = architecture(config)
    render(model, args.output)
    width, height = png_size(args.output)
    print(f"Wrote {args.output} ({width} x {height} px; edges: {', '.join(_flows_summary(model))})")
    if width > MAX_WIDTH_PX:
        print(f"{args.output} is wider than {MAX_WIDTH_PX} px", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
