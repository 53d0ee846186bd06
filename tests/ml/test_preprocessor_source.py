"""The preprocessor source tarball: deterministic bytes, the right files, published as a file asset."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from mme_constructs.preprocessor_source import (
    ENTRY_POINT,
    PREPROCESSOR_SOURCE_DIR,
    SHARED_PACKAGE_DIR,
    PreprocessorSource,
    pack_source_tarball,
    source_files,
)


def members(tarball: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        return archive.getmembers()


def test_tarball_holds_the_entry_script_and_the_shared_package(source_tarball: bytes) -> None:
    names = [member.name for member in members(source_tarball)]
    assert names == sorted(names)
    assert ENTRY_POINT in names
    assert "mme_shared/housing_data.py" in names
    assert "mme_shared/__init__.py" in names
    expected = sorted(
        [path.name for path in PREPROCESSOR_SOURCE_DIR.glob("*.py")]
        + [f"mme_shared/{path.name}" for path in SHARED_PACKAGE_DIR.glob("*.py")]
    )
    assert names == expected
    # The container would pip-install a requirements.txt or treat a setup.py as a package.
    assert not {"requirements.txt", "setup.py", "pyproject.toml"} & set(names)


def test_tarball_metadata_is_zeroed(source_tarball: bytes) -> None:
    assert source_tarball[4:8] == b"\x00\x00\x00\x00", "gzip header mtime"
    assert source_tarball[3] & 0x08 == 0, "gzip header must not carry a file name"
    for member in members(source_tarball):
        assert member.isfile()
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname, member.mode) == (
            0,
            0,
            0,
            "",
            "",
            0o644,
        )


def test_tarball_is_byte_identical_across_runs_and_processes(source_tarball: bytes) -> None:
    assert pack_source_tarball(PREPROCESSOR_SOURCE_DIR, [SHARED_PACKAGE_DIR]) == source_tarball
    script = (
        "import hashlib, sys;"
        "from mme_constructs.preprocessor_source import *;"
        "sys.stdout.write(hashlib.sha256(pack_source_tarball(PREPROCESSOR_SOURCE_DIR, [SHARED_PACKAGE_DIR]))"
        ".hexdigest())"
    )
    other_process = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONHASHSEED": "123"},
        cwd=PREPROCESSOR_SOURCE_DIR.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert other_process == hashlib.sha256(source_tarball).hexdigest()


def test_mtimes_and_bytecode_caches_do_not_change_the_bytes(tmp_path: Path, source_tarball: bytes) -> None:
    source = Path(shutil.copytree(PREPROCESSOR_SOURCE_DIR, tmp_path / "preprocessor"))
    shared = Path(shutil.copytree(SHARED_PACKAGE_DIR, tmp_path / "mme_shared"))
    for path in [*source.rglob("*"), *shared.rglob("*")]:
        os.utime(path, (1_700_000_000, 1_700_000_000))
    (source / "__pycache__").mkdir(exist_ok=True)
    (source / "__pycache__" / "housing_preprocessor.cpython-311.pyc").write_bytes(b"cache")
    (shared / ".DS_Store").write_bytes(b"finder")
    assert pack_source_tarball(source, [shared]) == source_tarball


def test_a_content_change_changes_the_bytes(tmp_path: Path, source_tarball: bytes) -> None:
    source = Path(shutil.copytree(PREPROCESSOR_SOURCE_DIR, tmp_path / "preprocessor"))
    with (source / ENTRY_POINT).open("a") as script:
        script.write("\n# changed\n")
    assert pack_source_tarball(source, [SHARED_PACKAGE_DIR]) != source_tarball


def test_name_clashes_and_missing_folders_are_refused(tmp_path: Path) -> None:
    (tmp_path / "src" / "mme_shared").mkdir(parents=True)
    (tmp_path / "src" / "mme_shared" / "naming.py").write_text("")
    with pytest.raises(ValueError, match=re.escape("already provides 'mme_shared/naming.py'")):
        source_files(tmp_path / "src", [SHARED_PACKAGE_DIR])
    with pytest.raises(ValueError, match="it is not a directory"):
        source_files(tmp_path / "absent", [])


@pytest.fixture(scope="module")
def synthesized_asset(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[PreprocessorSource, Path, dict[str, object]]:
    """A test-only stack with the construct and a role it grants read access to."""
    outdir = tmp_path_factory.mktemp("cdk.out.preprocessor")
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "PreprocessorSourceTest")
    source = PreprocessorSource(stack, "PreprocessorSource", build_dir=tmp_path_factory.mktemp("build"))
    role = iam.Role(stack, "JobRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    source.grant_read(role)
    cdk.CfnOutput(stack, "SubmitDirectory", value=source.s3_object_url)
    assembly = app.synth()
    return source, outdir, assembly.get_stack_by_name("PreprocessorSourceTest").template


def test_published_as_a_file_asset_with_the_tarball_bytes(
    synthesized_asset: tuple[PreprocessorSource, Path, dict[str, object]], source_tarball: bytes
) -> None:
    source, outdir, _ = synthesized_asset
    assert source.tarball_sha256 == hashlib.sha256(source_tarball).hexdigest()
    manifest = json.loads((outdir / "PreprocessorSourceTest.assets.json").read_text())
    (asset,) = [
        file for file in manifest["files"].values() if file["displayName"] == "Preprocessor source tarball"
    ]
    assert asset["source"]["packaging"] == "file", "a directory asset would be zipped"
    assert (outdir / asset["source"]["path"]).read_bytes() == source_tarball
    (destination,) = asset["destinations"].values()
    assert destination["objectKey"] == f"{source.asset.asset_hash}.gz"
    # The key derives from the content only: unchanged source, unchanged key, no template diff.
    again = PreprocessorSource(
        cdk.Stack(cdk.App(), "Again"), "PreprocessorSource", build_dir=outdir / "again"
    )
    assert again.asset.asset_hash == source.asset.asset_hash
    with (
        gzip.open(outdir / asset["source"]["path"]) as unpacked,
        tarfile.open(fileobj=io.BytesIO(unpacked.read())) as archive,
    ):
        assert archive.getnames()[0] == ENTRY_POINT


def test_exposes_the_s3_url_and_grants_read(
    synthesized_asset: tuple[PreprocessorSource, Path, dict[str, object]],
) -> None:
    source, _, template_json = synthesized_asset
    template = Template.from_json(template_json)
    assert source.entry_point == "housing_preprocessor.py"
    assert cdk.Token.is_unresolved(source.s3_object_url)
    url = template.find_outputs("SubmitDirectory")["SubmitDirectory"]["Value"]["Fn::Sub"]
    assert (
        url == f"s3://cdk-hnb659fds-assets-${{AWS::AccountId}}-${{AWS::Region}}/{source.asset.asset_hash}.gz"
    )
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Action": Match.array_with(["s3:GetObject*"]), "Effect": "Allow"})]
                )
            }
        },
    )
