"""``mme models add`` against moto: the artifact checks (for the deployed endpoint's algorithm), the
upload, the pointer, and every refusal."""

from __future__ import annotations

import gzip
import io
import json
import struct
import tarfile
import zipfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest

from mme_cli import model_artifact
from mme_cli.commands import add_model
from mme_constructs.algorithms import ALGORITHMS
from mme_shared import s3_layout
from mme_shared.model_pointer import ArtifactChecksum, ModelPointer
from tests.cli.conftest import (
    BUCKET,
    GENERATION,
    KEY_ARN,
    NEW_GENERATION,
    REGION,
    CliResult,
    record_complete,
)

LINEAR_LEARNER = ALGORITHMS["linear-learner"]
XGBOOST = ALGORITHMS["xgboost"]

RunCli = Callable[..., CliResult]
NOW = datetime(2025, 6, 1, 8, 30, 15, tzinfo=UTC)
SOURCE_BUCKET = "incoming-models-test"


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr(add_model, "now", lambda: NOW)


def s3() -> Any:
    return boto3.client("s3", region_name=REGION)


# --------------------------------------------------------------------------------------------------
# Artifacts shaped like the built-in algorithms' (see mme_cli/model_artifact.py)

SYMBOL = {
    "nodes": [
        {"op": "null", "name": "data", "inputs": []},
        {"op": "null", "name": "fc0_weight", "inputs": []},
        {
            "op": "FullyConnected",
            "name": "fc0",
            "attrs": {"num_hidden": "1"},
            "inputs": [[0, 0, 0], [1, 0, 0]],
        },
    ],
    "arg_nodes": [0, 1],
    "heads": [[2, 0, 0]],
}
PARAMS = struct.pack("<QQQ", 0x112, 0, 1) + b"\x00" * 32


def zip_of(members: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return buffer.getvalue()


def model_zip(**overrides: bytes | None) -> bytes:
    members: dict[str, bytes | None] = {
        "additional-params.json": b'{"loss": "squared_loss"}',
        "manifest.json": b'{"files": ["mx-mod-symbol.json", "mx-mod-0000.params"]}',
        "mx-mod-symbol.json": json.dumps(SYMBOL).encode(),
        "mx-mod-0000.params": PARAMS,
        **overrides,
    }
    return zip_of({name: body for name, body in members.items() if body is not None})


def tar_gz(members: Mapping[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    return gzip.compress(raw.getvalue(), mtime=0)


def linear_learner_model(**overrides: bytes | None) -> bytes:
    return tar_gz({"model_algo-1": model_zip(**overrides)})


def xgboost_model() -> bytes:
    """What the XGBoost image writes: one file, xgboost-model (a Booster in XGBoost's binary format;
    its content is not checked, so any bytes stand in for it)."""
    return tar_gz({"xgboost-model": b"binf\x00\x00\x00?booster bytes"})


def bucket_state() -> dict[str, str]:
    """Every key of the artifact bucket with its ETag: what a refused add must leave unchanged."""
    listed = s3().list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {item["Key"]: item["ETag"] for item in listed}


def read_pointer(location: str, generation: str = GENERATION) -> ModelPointer:
    key = s3_layout.current_pointer_key(generation, location)
    return ModelPointer.from_json(s3().get_object(Bucket=BUCKET, Key=key)["Body"].read())


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "model.tar.gz"
    path.write_bytes(linear_learner_model())
    return path


# --------------------------------------------------------------------------------------------------
# The artifact checks on their own


def test_a_linear_learner_artifact_passes() -> None:
    model_artifact.check_artifact(linear_learner_model(), LINEAR_LEARNER)
    model_artifact.check_artifact(tar_gz({"./model_algo-1": model_zip()}), LINEAR_LEARNER)


@pytest.mark.parametrize(
    ("algorithm", "member"),
    [("xgboost", "xgboost-model"), ("knn", "model_algo-1"), ("randomcutforest", "model_algo-1")],
)
def test_the_other_algorithms_artifacts_are_checked_for_their_one_file(algorithm: str, member: str) -> None:
    """Their file's content has no documented format: any non-empty regular file passes."""
    chosen = ALGORITHMS[algorithm]
    assert chosen.artifact_member == member
    model_artifact.check_artifact(tar_gz({member: b"opaque model bytes"}), chosen)
    model_artifact.check_artifact(tar_gz({f"./{member}": b"x"}), chosen)
    assert "not verified" in model_artifact.verified(chosen)


@pytest.mark.parametrize(
    ("algorithm", "data", "problem"),
    [
        (
            "xgboost",
            linear_learner_model(),
            "its tar archive holds model_algo-1, but XGBoost's model.tar.gz holds exactly one file, "
            "xgboost-model",
        ),
        (
            "xgboost",
            tar_gz({"xgboost-model": b"m", "xgboost-model.json": b"{}"}),
            "its tar archive holds xgboost-model, xgboost-model.json, but XGBoost's model.tar.gz holds "
            "exactly one file, xgboost-model",
        ),
        ("xgboost", tar_gz({"xgboost-model": b""}), "xgboost-model in its tar archive is empty (0 bytes)"),
        ("xgboost", tar_gz({}), "its tar archive holds nothing, but XGBoost's model.tar.gz holds"),
        (
            "knn",
            tar_gz({"xgboost-model": b"m"}),
            "its tar archive holds xgboost-model, but k-NN's model.tar.gz",
        ),
        (
            "randomcutforest",
            b"\x1f\x8b not really gzip",
            "its gzip stream is damaged",
        ),
        ("randomcutforest", b"", "it is empty (0 bytes)"),
    ],
)
def test_what_is_not_another_algorithms_artifact(algorithm: str, data: bytes, problem: str) -> None:
    with pytest.raises(model_artifact.ArtifactInvalid) as raised:
        model_artifact.check_artifact(data, ALGORITHMS[algorithm])

    assert str(raised.value).startswith(problem)


def test_a_directory_named_like_the_file_is_refused() -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info = tarfile.TarInfo("xgboost-model")
        info.type = tarfile.DIRTYPE
        archive.addfile(info)
    with pytest.raises(
        model_artifact.ArtifactInvalid, match="xgboost-model in its tar archive is not a regular"
    ):
        model_artifact.check_artifact(gzip.compress(raw.getvalue(), mtime=0), XGBOOST)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "it is empty (0 bytes)"),
        (b"PK\x03\x04 not gzip", "it is not gzip-compressed (a model.tar.gz starts with the bytes 1f 8b)"),
        (gzip.compress(b"x" * 600, mtime=0), "it is gzip-compressed but not a tar archive"),
        (linear_learner_model()[:-12], "its gzip stream is damaged"),
        (
            tar_gz({"model_algo-1": model_zip(), "extra.txt": b"x"}),
            "its tar archive holds model_algo-1, extra.txt, but linear learner's model.tar.gz holds exactly "
            "one file, model_algo-1",
        ),
        (
            tar_gz({"xgboost-model": b"pickle"}),
            "its tar archive holds xgboost-model, but linear learner's model.tar.gz holds exactly one file",
        ),
        (tar_gz({"model_algo-1": b"not a zip"}), "model_algo-1 is not the zip archive linear learner writes"),
        (
            linear_learner_model(**{"mx-mod-0000.params": None}),
            "model_algo-1 (an MXNet model zip) lacks mx-mod-0000.params; it holds additional-params.json, "
            "manifest.json, mx-mod-symbol.json",
        ),
        (
            linear_learner_model(**{"mx-mod-0000.params": b"\x00" * 40}),
            "mx-mod-0000.params in model_algo-1 (an MXNet model zip) is not an MXNet parameter file",
        ),
        (
            linear_learner_model(**{"mx-mod-symbol.json": b'{"weights": [1, 2]}'}),
            "mx-mod-symbol.json in model_algo-1 (an MXNet model zip) is not an MXNet symbol graph",
        ),
        (
            linear_learner_model(**{"manifest.json": b"{not json"}),
            "manifest.json in model_algo-1 (an MXNet model zip) is not valid JSON",
        ),
    ],
)
def test_what_is_not_a_linear_learner_artifact(data: bytes, problem: str) -> None:
    with pytest.raises(model_artifact.ArtifactInvalid) as raised:
        model_artifact.check_artifact(data, LINEAR_LEARNER)

    assert str(raised.value).startswith(problem)


def test_a_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_artifact, "MAX_UNPACKED_BYTES", 10_000)
    bomb = tar_gz({"xgboost-model": b"\x00" * 50_000})

    with pytest.raises(model_artifact.ArtifactInvalid, match="it unpacks to more than 10,000 bytes"):
        model_artifact.check_artifact(bomb, XGBOOST)


# --------------------------------------------------------------------------------------------------
# mme models add


def test_add_a_local_artifact(served: None, artifact: Path, run_cli: RunCli) -> None:
    result = run_cli(
        "models",
        "add",
        "Chicago_IL",
        str(artifact),
        "--generation",
        GENERATION,
        "--version",
        "vendor-7",
        "--yes",
    )

    assert result.exit_code == 0, result.stderr
    key = s3_layout.model_version_key(GENERATION, "Chicago_IL", "vendor-7")
    assert key == f"models/{GENERATION}/Chicago_IL/Chicago_IL-vendor-7.tar.gz"
    head = s3().head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KEY_ARN)
    assert s3().get_object(Bucket=BUCKET, Key=key)["Body"].read() == artifact.read_bytes()
    pointer = read_pointer("Chicago_IL")
    assert pointer == ModelPointer(
        preprocessor_generation=GENERATION,
        location="Chicago_IL",
        version="vendor-7",
        size=artifact.stat().st_size,
        training_job_name=None,
        promoted_at=NOW,
        checksum=ArtifactChecksum(algorithm="CRC32", value=head["ChecksumCRC32"]),
    )
    pointer_head = s3().head_object(Bucket=BUCKET, Key=pointer.pointer_key)
    assert (pointer_head["ServerSideEncryption"], pointer_head["SSEKMSKeyId"]) == ("aws:kms", KEY_ARN)
    assert "Chicago_IL: none -> vendor-7" in result.stdout
    assert "Clients now invoke TargetModel Chicago_IL/Chicago_IL-vendor-7.tar.gz" in result.stdout


def test_add_from_s3_with_the_default_version_replaces_the_current_one(served: None, run_cli: RunCli) -> None:
    s3().create_bucket(Bucket=SOURCE_BUCKET)
    s3().put_object(Bucket=SOURCE_BUCKET, Key="team/model.tar.gz", Body=linear_learner_model())
    first = run_cli(
        "models",
        "add",
        "Chicago_IL",
        f"s3://{SOURCE_BUCKET}/team/model.tar.gz",
        "-g",
        GENERATION,
        "--version",
        "v1",
        "-y",
    )
    assert first.exit_code == 0, first.stderr

    result = run_cli(
        "models", "add", "Chicago_IL", f"s3://{SOURCE_BUCKET}/team/model.tar.gz", "-g", GENERATION, "-y"
    )

    assert result.exit_code == 0, result.stderr
    assert "Chicago_IL: v1 -> add-20250601083015" in result.stdout
    assert read_pointer("Chicago_IL").version == "add-20250601083015"
    metadata = s3().head_object(
        Bucket=BUCKET, Key=s3_layout.model_version_key(GENERATION, "Chicago_IL", "add-20250601083015")
    )["Metadata"]
    assert metadata == {"mme-added-from": f"s3://{SOURCE_BUCKET}/team/model.tar.gz"}


def test_add_to_a_generation_that_is_not_served(served: None, artifact: Path, run_cli: RunCli) -> None:
    record_complete(NEW_GENERATION)

    result = run_cli("models", "add", "Chicago_IL", str(artifact), "--generation", NEW_GENERATION, "--yes")

    assert result.exit_code == 0, result.stderr
    assert read_pointer("Chicago_IL", NEW_GENERATION).preprocessor_generation == NEW_GENERATION
    assert (
        f"Note: {NEW_GENERATION} is not the served generation; the model will be served only once "
        f"{NEW_GENERATION} is (`make deploy GENERATION={NEW_GENERATION}`)."
    ) in " ".join(result.stderr.split())
    assert f"the model will be served once it is (`make deploy GENERATION={NEW_GENERATION}`)" in " ".join(
        result.stdout.split()
    )


def test_add_asks_first(
    served: None, artifact: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = bucket_state()
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))

    result = run_cli("models", "add", "Chicago_IL", str(artifact), "--generation", GENERATION)

    assert result.exit_code == 1
    assert (
        "Add add-20250601083015 and make it Chicago_IL's current version in pp-run1? [y/N]" in result.stdout
    )
    assert result.stderr.endswith("Error: Nothing was written: adding the model was not confirmed.\n")
    assert bucket_state() == before


def refusal(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "candidate.tar.gz"
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (
            "not-gzip",
            (),
            "is not a model.tar.gz for linear learner, the algorithm the endpoint serves: "
            "it is not gzip-compressed (a model.tar.gz starts with the "
            "bytes 1f 8b); nothing was written.",
        ),
        (
            "empty",
            (),
            "is not a model.tar.gz for linear learner, the algorithm the endpoint serves: "
            "it is empty (0 bytes); nothing was written.",
        ),
        (
            "too-big",
            (),
            "is not a model.tar.gz for linear learner, the algorithm the endpoint serves: "
            "it is 4,096 bytes, more than the 1,000 bytes allowed",
        ),
        (
            "no-params",
            (),
            "is not a model.tar.gz for linear learner, the algorithm the endpoint serves: "
            "model_algo-1 (an MXNet model zip) lacks mx-mod-0000",
        ),
        (
            "ok",
            ("--generation", "latest"),
            "Error: Invalid --generation: preprocessor generation 'latest' is not allowed: use 'pp-'",
        ),
        (
            "ok",
            ("--generation", "pp-unknown"),
            f"Error: Generation pp-unknown does not exist in s3://{BUCKET}/",
        ),
        (
            "incomplete",
            ("--generation", NEW_GENERATION),
            f"Error: Generation {NEW_GENERATION} is not complete "
            f"(no preprocessor/{NEW_GENERATION}/complete.json), so it cannot be served",
        ),
        (
            "ok",
            ("--version", "a/b"),
            "Error: Invalid --version: model version 'a/b' is not allowed: use 1 to 63",
        ),
        (
            "ok",
            ("--version", "ll-Chicago-IL-run1"),
            "Error: Invalid --version 'll-Chicago-IL-run1': names starting with ll-, xg-, kn-, rc- or pp- "
            "are reserved",
        ),
        (
            "ok",
            ("--version", "taken"),
            f"Error: Version taken of Chicago_IL already exists (s3://{BUCKET}/models/{GENERATION}/Chicago_IL/"
            "Chicago_IL-taken.tar.gz): pass another --version.",
        ),
    ],
)
def test_add_refuses_before_writing_anything(
    served: None,
    run_cli: RunCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    setup: str,
    args: tuple[str, ...],
    message: str,
) -> None:
    data = {
        "not-gzip": b"model bytes",
        "empty": b"",
        "too-big": b"\x1f\x8b" + b"\x00" * 4094,
        "no-params": linear_learner_model(**{"mx-mod-0000.params": None}),
    }.get(setup, linear_learner_model())
    if setup == "too-big":
        monkeypatch.setattr(model_artifact, "MAX_ARTIFACT_BYTES", 1000)
    if setup == "incomplete":
        s3().put_object(Bucket=BUCKET, Key=s3_layout.preprocessor_artifact_key(NEW_GENERATION), Body=b"pp")
    s3().put_object(
        Bucket=BUCKET, Key=s3_layout.model_version_key(GENERATION, "Chicago_IL", "taken"), Body=b"other"
    )
    before = bucket_state()
    options = dict(zip(args[::2], args[1::2], strict=True))
    options.setdefault("--generation", GENERATION)

    result = run_cli(
        "models",
        "add",
        "Chicago_IL",
        refusal(tmp_path, data),
        *[x for kv in options.items() for x in kv],
        "--yes",
    )

    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert bucket_state() == before


def test_reserved_prefixes_cover_every_algorithms_training_jobs_and_the_preprocessor() -> None:
    assert add_model.RESERVED_VERSION_PREFIXES == ("ll-", "xg-", "kn-", "rc-", "pp-")


@pytest.mark.parametrize(
    "version", ["xg-Chicago-IL-run1", "kn-Chicago-IL-run1", "rc-Chicago-IL-run1", "pp-run1"]
)
def test_a_version_named_like_any_pipeline_job_is_refused(
    served: None, artifact: Path, run_cli: RunCli, version: str
) -> None:
    """Whatever the endpoint serves now (linear learner), the deployment may have trained another
    algorithm before: a version must not pass for one of its jobs."""
    before = bucket_state()

    result = run_cli(
        "models", "add", "Chicago_IL", str(artifact), "-g", GENERATION, "--version", version, "-y"
    )

    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: Invalid --version '{version}': names starting with ll-, xg-, kn-, rc- or pp- are reserved"
    )
    assert bucket_state() == before


@pytest.mark.parametrize("deployed_algorithm", ["xgboost"])
def test_an_xgboost_endpoint_takes_an_xgboost_artifact(served: None, run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "model.tar.gz"
    path.write_bytes(xgboost_model())

    result = run_cli(
        "models", "add", "Chicago_IL", str(path), "-g", GENERATION, "--version", "vendor-1", "-y"
    )

    assert result.exit_code == 0, result.stderr
    assert read_pointer("Chicago_IL").version == "vendor-1"
    key = s3_layout.model_version_key(GENERATION, "Chicago_IL", "vendor-1")
    assert s3().get_object(Bucket=BUCKET, Key=key)["Body"].read() == path.read_bytes()
    rows = [[cell.strip() for cell in line.split("│") if cell.strip()] for line in result.stdout.splitlines()]
    assert ["Algorithm", "XGBoost (the endpoint's)"] in rows
    assert [
        "Checked",
        "a gzip tar of at most 100 MiB holding exactly xgboost-model (not empty); what is inside "
        "xgboost-model is not verified",
    ] in rows


@pytest.mark.parametrize("deployed_algorithm", ["xgboost"])
def test_an_xgboost_endpoint_refuses_a_linear_learner_artifact(
    served: None, artifact: Path, run_cli: RunCli
) -> None:
    """The config says linear learner (the default); the endpoint stack's Algorithm output decides."""
    before = bucket_state()

    result = run_cli("models", "add", "Chicago_IL", str(artifact), "-g", GENERATION, "-y")

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {artifact} is not a model.tar.gz for XGBoost, the algorithm the endpoint serves: its tar "
        "archive holds model_algo-1, but XGBoost's model.tar.gz holds exactly one file, xgboost-model; "
        "nothing was written.\n"
    )
    assert bucket_state() == before


@pytest.mark.parametrize("deployed_algorithm", ["xgboost"])
def test_a_generation_of_another_algorithm_is_refused(served: None, run_cli: RunCli, tmp_path: Path) -> None:
    """NEW_GENERATION was trained with linear learner, before the endpoint moved to XGBoost."""
    record_complete(NEW_GENERATION, newest=False)
    path = tmp_path / "model.tar.gz"
    path.write_bytes(xgboost_model())
    before = bucket_state()

    result = run_cli("models", "add", "Chicago_IL", str(path), "-g", NEW_GENERATION, "-y")

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Generation {NEW_GENERATION} holds linear learner models, but the endpoint serves XGBoost "
        "and cannot serve that generation: add the model to a generation trained with XGBoost (see "
        "`mme status`); nothing was written.\n"
    )
    assert bucket_state() == before


@pytest.mark.parametrize("deployed_algorithm", ["linear-learner"])
def test_a_linear_learner_endpoint_refuses_an_xgboost_artifact(
    served: None, run_cli: RunCli, tmp_path: Path
) -> None:
    path = tmp_path / "model.tar.gz"
    path.write_bytes(xgboost_model())

    result = run_cli("models", "add", "Chicago_IL", str(path), "-g", GENERATION, "-y")

    assert result.exit_code == 1
    assert "but linear learner's model.tar.gz holds exactly one file, model_algo-1; nothing was written." in (
        " ".join(result.stderr.split())
    )


def test_add_needs_the_generation(served: None, artifact: Path, run_cli: RunCli) -> None:
    result = run_cli("models", "add", "Chicago_IL", str(artifact), "--yes")

    assert result.exit_code == 2
    assert "Missing option '--generation'" in " ".join(result.stderr.split())


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "missing.tar.gz",
            "Error: ARTIFACT missing.tar.gz is not a file (give a local model.tar.gz or an s3:// URI).\n",
        ),
        (
            f"s3://{SOURCE_BUCKET}/nothing.tar.gz",
            f"Error: ARTIFACT s3://{SOURCE_BUCKET}/nothing.tar.gz does not exist.\n",
        ),
        (
            f"s3://{SOURCE_BUCKET}/",
            f"Error: ARTIFACT 's3://{SOURCE_BUCKET}/' is not an S3 object URI: use s3://BUCKET/KEY "
            "(one object, not a prefix).\n",
        ),
    ],
)
def test_add_names_a_missing_artifact(served: None, run_cli: RunCli, source: str, message: str) -> None:
    s3().create_bucket(Bucket=SOURCE_BUCKET)
    before = bucket_state()

    result = run_cli("models", "add", "Chicago_IL", source, "--generation", GENERATION, "--yes")

    assert result.exit_code == 1
    assert result.stderr == message
    assert bucket_state() == before


def test_add_removes_its_upload_when_the_pointer_moved_meanwhile(
    served: None, artifact: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    original_upload = add_model._upload
    promoted = ModelPointer(
        preprocessor_generation=GENERATION,
        location="Chicago_IL",
        version="ll-Chicago-IL-run9",
        size=1,
        training_job_name="ll-Chicago-IL-run9",
        promoted_at=NOW,
    )

    def upload_while_a_promotion_lands(*args: Any) -> Any:
        s3().put_object(Bucket=BUCKET, Key=promoted.pointer_key, Body=promoted.to_json().encode())
        return original_upload(*args)

    monkeypatch.setattr(add_model, "_upload", upload_while_a_promotion_lands)

    result = run_cli(
        "models", "add", "Chicago_IL", str(artifact), "--generation", GENERATION, "--version", "v2", "-y"
    )

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: s3://{BUCKET}/model-pointers/{GENERATION}/Chicago_IL.json changed while adding "
        "(a promotion or rollback?), so the upload was deleted again and nothing was added: check "
        "`mme models list` and run the add again.\n"
    )
    assert read_pointer("Chicago_IL") == promoted
    assert s3_layout.model_version_key(GENERATION, "Chicago_IL", "v2") not in bucket_state()


def test_add_help_reads_well(run_cli: RunCli) -> None:
    result = run_cli("models", "add", "--help")

    assert result.exit_code == 0
    out = " ".join(result.stdout.split())
    for text in (
        "LOCATION", "ARTIFACT", "--generation", "--version", "model_algo-1", "xgboost-model", "100 MiB",
        "required", "the algorithm the endpoint serves",
    ):  # fmt: skip
        assert text in out
