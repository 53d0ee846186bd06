"""Regenerate ``mme_constructs/data/sagemaker_images.json`` from the SageMaker region tables.

Why this exists: the built-in algorithms and the scikit-learn containers live in AWS-owned ECR
registries whose account differs by region (and whose host name differs by partition). AWS publishes
the authoritative tables only inside the PyPI package ``sagemaker-core``
(``sagemaker/core/image_uri_config/*.json``). That package drags in pandas, scipy and friends, so the
app must not depend on it; instead this script, run by a maintainer, reads the tables we need out of
the wheel (scikit-learn's and one per algorithm of ``mme_constructs.algorithms.ALGORITHMS``, by its
``image_family``) and writes a small committed data file that the CDK app loads at synth time.

How the URIs are built mirrors ``sagemaker.core.image_uris.retrieve`` for CPU images:

* account   = ``versions[<version>].registries[<region>]``
* host name = botocore's endpoint data for the ``ecr`` service in that region (what sagemaker-core
  asks botocore for, which is how ``cn-*`` regions get ``amazonaws.com.cn`` and the ISO regions
  their own domains)
* tag       = ``<tag_prefix or version>-<processor>-<py_version>[-<container_version>]``, leaving out
  the parts a table does not have (the linear learner's tag is just ``1``, XGBoost's ``1.7-1``)
* URI       = ``<account>.dkr.<host name>/<repository>:<tag>``

Usage (from the repository root, with the dev requirements installed)::

    .venv/bin/python scripts/refresh_image_uris.py            # pip download the pinned wheel
    .venv/bin/python scripts/refresh_image_uris.py --check    # exit 1 if the committed file is stale
    .venv/bin/python scripts/refresh_image_uris.py --from-dir path/to/image_uri_config --version X

Bumping ``SAGEMAKER_CORE_VERSION`` and re-running is the whole upgrade; review the diff of the data
file like any other change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mme_constructs.algorithms import ALGORITHMS

SAGEMAKER_CORE_VERSION = "2.27.0"
"""The sagemaker-core release the committed data file is generated from (bump deliberately)."""

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "mme_constructs" / "data" / "sagemaker_images.json"
CONFIG_PREFIX = "sagemaker/core/image_uri_config/"
SKLEARN_FILE = "sklearn.json"
ALGORITHM_FAMILIES = tuple(sorted({algorithm.image_family for algorithm in ALGORITHMS.values()}))
"""The image tables of the algorithms this project trains (``<family>.json`` in sagemaker-core)."""
SOURCE_FILES = (SKLEARN_FILE, *(f"{family}.json" for family in ALGORITHM_FAMILIES))

# The graviton scopes are left out on purpose: their images are arm64-only and our endpoint and
# job instances are x86 CPU instances.
SKLEARN_SCOPES = ("inference", "training")
IMAGE_SCOPES = SKLEARN_SCOPES
# Every instance type this project allows is a CPU instance, and both containers are CPU builds.
PROCESSOR = "cpu"

JsonObject = dict[str, Any]
HostnameResolver = Callable[[str], Mapping[str, str]]


class TableError(Exception):
    """The region tables have a shape this script does not know how to turn into URIs."""


def serialize(table: Mapping[str, Any]) -> str:
    """Render the data file: sorted keys, two-space indent, ASCII, trailing newline.

    The same function writes the file and (in the tests) proves the committed bytes are exactly
    what it would write, so a hand edit or a different json formatting shows up as a failure.
    """
    return json.dumps(table, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def _format_tag(*parts: str | None) -> str:
    """Join the non-empty tag parts with '-', as sagemaker-core does."""
    return "-".join(part for part in parts if part)


def _version_images(version: str, version_config: JsonObject, framework: str) -> dict[str, tuple[str, str]]:
    """Return ``{region: (account, "<repository>:<tag>")}`` for one version of one scope.

    Raises TableError when the table would need a choice we cannot make without guessing (more
    than one Python version, no CPU build), so a future sagemaker-core cannot silently change
    which image we pick.
    """
    processors = version_config.get("processors")
    if processors is not None and PROCESSOR not in processors:
        raise TableError(f"{framework} {version} has no {PROCESSOR} image (processors: {processors})")
    processor = PROCESSOR if processors else None

    py_versions: list[str] | None = version_config.get("py_versions")
    if py_versions is not None and len(py_versions) > 1:
        raise TableError(
            f"{framework} {version} lists several Python versions {py_versions}; "
            "extend the data file's shape to keep one image per Python version"
        )
    py_version = py_versions[0] if py_versions else None
    # Some tables nest registries under the Python version; sagemaker-core falls back the same way.
    if py_version is not None and isinstance(version_config.get(py_version), dict):
        version_config = version_config[py_version]

    container_version = None
    if isinstance(version_config.get("container_version"), dict):
        container_version = version_config["container_version"][PROCESSOR]
    if not version_config.get("processor_in_tag", True):
        processor = None

    tag = _format_tag(version_config.get("tag_prefix", version), processor, py_version, container_version)
    repository = version_config["repository"]
    registries: dict[str, str] = version_config["registries"]
    return {region: (account, f"{repository}:{tag}") for region, account in registries.items()}


def _botocore_ecr_endpoint() -> tuple[HostnameResolver, str]:
    """botocore's resolver for the ECR host of a region, and botocore's version (for provenance).

    Imported lazily so the tests can import ``serialize`` without loading botocore.
    """
    import botocore  # type: ignore[import-untyped]
    import botocore.loaders  # type: ignore[import-untyped]
    import botocore.regions  # type: ignore[import-untyped]

    resolver = botocore.regions.EndpointResolver(botocore.loaders.create_loader().load_data("endpoints"))

    def resolve(region: str) -> Mapping[str, str]:
        endpoint = resolver.construct_endpoint("ecr", region)
        if not endpoint:
            raise TableError(
                f"botocore {botocore.__version__} has no ECR endpoint for region {region!r}; "
                "upgrade boto3/botocore in requirements-dev.txt and re-run"
            )
        return {key: endpoint[key] for key in ("hostname", "dnsSuffix", "partition")}

    return resolve, str(botocore.__version__)


def _scoped_versions(family: str, table: JsonObject) -> dict[str, JsonObject]:
    """``{scope: versions}`` of one algorithm's table, for the scopes this project uses.

    Two shapes exist: one ``versions`` object valid for the scopes listed in ``scope`` (linear
    learner, k-NN, Random Cut Forest), or one object per scope (XGBoost's framework images).
    """
    if "versions" in table:
        listed = table.get("scope", list(IMAGE_SCOPES))
        return {scope: table["versions"] for scope in IMAGE_SCOPES if scope in listed}
    scoped = {scope: table[scope]["versions"] for scope in IMAGE_SCOPES if scope in table}
    if not scoped:
        raise TableError(f"{family}.json has neither 'versions' nor any of the scopes {IMAGE_SCOPES}")
    return scoped


def build_table(
    sources: Mapping[str, bytes],
    *,
    sagemaker_core_version: str,
    resolve_ecr: HostnameResolver,
    botocore_version: str,
) -> JsonObject:
    """Turn the raw ``sklearn.json`` and the algorithms' tables into the committed data file.

    Regions come from the union of all tables; a region missing from one table simply has no
    entry for that image, which is what lets the app refuse it with a clear message.
    """
    sklearn: JsonObject = json.loads(sources[SKLEARN_FILE])
    regions: dict[str, JsonObject] = {}

    def region_entry(region: str) -> JsonObject:
        if region not in regions:
            endpoint = resolve_ecr(region)
            regions[region] = {
                "ecr_hostname": endpoint["hostname"],
                "dns_suffix": endpoint["dnsSuffix"],
                "partition": endpoint["partition"],
                "algorithms": {
                    family: {scope: {} for scope in IMAGE_SCOPES} for family in ALGORITHM_FAMILIES
                },
                "sklearn": {scope: {} for scope in SKLEARN_SCOPES},
            }
        return regions[region]

    def uri(region: str, account: str, repository_and_tag: str) -> str:
        return f"{account}.dkr.{region_entry(region)['ecr_hostname']}/{repository_and_tag}"

    for family in ALGORITHM_FAMILIES:
        for scope, versions in _scoped_versions(family, json.loads(sources[f"{family}.json"])).items():
            for version, version_config in versions.items():
                for region, (account, image) in _version_images(version, version_config, family).items():
                    region_entry(region)["algorithms"][family][scope][version] = uri(region, account, image)

    for scope in SKLEARN_SCOPES:
        for version, version_config in sklearn[scope]["versions"].items():
            for region, (account, image) in _version_images(version, version_config, "sklearn").items():
                region_entry(region)["sklearn"][scope][version] = uri(region, account, image)

    return {
        "source": {
            "package": "sagemaker-core",
            "version": sagemaker_core_version,
            "files": {
                name: {
                    "path": CONFIG_PREFIX + name,
                    "sha256": hashlib.sha256(sources[name]).hexdigest(),
                }
                for name in SOURCE_FILES
            },
            "ecr_hostnames": f"botocore {botocore_version} endpoint data (service 'ecr')",
            "generated_by": "scripts/refresh_image_uris.py",
        },
        "regions": regions,
    }


def _version_from_metadata(metadata: str) -> str:
    match = re.search(r"^Version: *(\S+)", metadata, flags=re.MULTILINE)
    if match is None:
        raise TableError("the sagemaker-core METADATA has no Version line")
    return match.group(1)


def read_wheel(version: str) -> tuple[dict[str, bytes], str]:
    """``pip download`` the sagemaker-core wheel (no dependencies) and read the two tables from it.

    Returns the raw file bytes and the version the wheel itself declares, which must equal the one
    asked for (a mismatch would mean the index served something else).
    """
    with tempfile.TemporaryDirectory(prefix="sagemaker-core-") as tmp:
        pip_download = [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"),
            *("--no-deps", "--only-binary=:all:", "--dest", tmp, f"sagemaker-core=={version}"),
        ]
        # Fixed argument list run without a shell; the version is one argv element.
        subprocess.run(pip_download, check=True)  # noqa: S603
        wheels = sorted(Path(tmp).glob("sagemaker_core-*.whl"))
        if len(wheels) != 1:
            raise TableError(f"expected one sagemaker-core wheel in {tmp}, found {[w.name for w in wheels]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            sources = {name: wheel.read(CONFIG_PREFIX + name) for name in SOURCE_FILES}
            metadata_names = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
            wheel_version = _version_from_metadata(wheel.read(metadata_names[0]).decode())
    if wheel_version != version:
        raise TableError(f"asked pip for sagemaker-core {version} but the wheel says {wheel_version}")
    return sources, wheel_version


def read_dir(config_dir: Path, version: str | None) -> tuple[dict[str, bytes], str]:
    """Read the tables from an extracted ``image_uri_config`` folder.

    The version is taken from an installed distribution's METADATA next to the package when there
    is one (``site-packages/sagemaker_core-*.dist-info``); otherwise it must be given, because the
    data file has to say truthfully where it came from.
    """
    sources = {name: (config_dir / name).read_bytes() for name in SOURCE_FILES}
    site_packages = config_dir.resolve().parent.parent.parent
    metadata = sorted(site_packages.glob("sagemaker_core-*.dist-info/METADATA"))
    detected = _version_from_metadata(metadata[0].read_text()) if metadata else None
    if version is not None and detected is not None and version != detected:
        raise TableError(f"--version {version} contradicts the installed sagemaker-core {detected}")
    resolved = version or detected
    if resolved is None:
        raise TableError(f"cannot tell which sagemaker-core {config_dir} came from; pass --version")
    return sources, resolved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--version",
        help=f"sagemaker-core version (default when downloading: {SAGEMAKER_CORE_VERSION})",
    )
    parser.add_argument(
        "--from-dir",
        type=Path,
        help="read an extracted sagemaker/core/image_uri_config folder instead of downloading",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="data file to write")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the data file is out of date"
    )
    args = parser.parse_args(argv)

    try:
        if args.from_dir is not None:
            sources, version = read_dir(args.from_dir, args.version)
        else:
            sources, version = read_wheel(args.version or SAGEMAKER_CORE_VERSION)
        resolve_ecr, botocore_version = _botocore_ecr_endpoint()
        table = build_table(
            sources,
            sagemaker_core_version=version,
            resolve_ecr=resolve_ecr,
            botocore_version=botocore_version,
        )
    except TableError as error:
        print(f"refresh_image_uris: {error}", file=sys.stderr)
        return 2

    rendered = serialize(table)
    output: Path = args.output
    if args.check:
        current = output.read_text() if output.exists() else ""
        if current != rendered:
            print(f"{output} is out of date with sagemaker-core {version}; re-run without --check")
            return 1
        print(f"{output} is up to date (sagemaker-core {version})")
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(rendered)
    print(f"wrote {output} ({len(table['regions'])} regions, sagemaker-core {version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
