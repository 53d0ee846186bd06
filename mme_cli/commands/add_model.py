"""``mme models add``: serve an artifact trained elsewhere as a location's new version.

The multi-model endpoint loads whatever is under its prefix (SageMaker's ``MultiDataModel.add_model``
does nothing more than copy the artifact there, and AWS documents adding a model to a running
multi-model endpoint as copying it under the prefix), so adding a model is: check it, upload it to a
new version key of a generation, point the location at it. Nothing touches the endpoint.

Everything that can be refused is checked before the first write: the artifact (a gzip tar holding
the one file the deployed endpoint's algorithm loads, the endpoint stack's ``Algorithm`` output; for
linear learner also what is inside it; :mod:`mme_cli.model_artifact` says what is and is not
verified for each algorithm), its size, the generation (``--generation`` is required: only the
operator knows which preprocessor statistics the model was trained on, and it must be a complete
generation of the endpoint's algorithm), the version name and that its key is free. Then the upload
(SSE-KMS under the project key, ``IfNoneMatch: *`` so an existing version is never replaced) and the
pointer, through the promotion Lambda's writer and conditional on the pointer read before. If the
pointer changed meanwhile, the upload is deleted again: nothing is left half-added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from rich.filesize import decimal
from rich.table import Table

from mme_cli import generations
from mme_cli import model_artifact as artifact_format
from mme_cli.commands import status_models as sm
from mme_cli.deployment import CliError
from mme_constructs.algorithms import JOB_STEPS, Algorithm, title_of
from mme_shared import s3_layout
from mme_shared.model_pointer import (
    ModelPointer,
    ModelPointerError,
    full_object_checksums,
    preferred_checksum,
)
from mme_shared.naming import PREPROCESSOR_STEP
from mme_shared.pointer_store import PointerChanged, write_pointer

VERSION_PREFIX: Final = "add-"
RESERVED_VERSION_PREFIXES: Final = (*(f"{step}-" for step in JOB_STEPS), f"{PREPROCESSOR_STEP}-")
"""Versions the pipeline promotes are named after their training jobs (``<step>-...``: ``ll-`` for
linear learner, ``xg-`` for XGBoost...) and generations after theirs (``pp-``); an added version must
not look like one, whichever algorithm the deployment serves now or served before, so a version's
name always says where it came from."""
UPLOAD_CHECKSUM: Final = "CRC32"
"""The upload's S3 checksum (stored full-object, recorded in the pointer). CRC32 because botocore
computes it without the optional CRT dependency that CRC64NVME needs."""


def register(
    app: typer.Typer, *, models_app: typer.Typer, experiment_app: typer.Typer, access_app: typer.Typer
) -> None:
    """Add ``models add``."""
    del app, experiment_app, access_app  # registered by other modules
    models_app.command("add")(add)


def now() -> datetime:
    """The clock for the default version name and the pointer's time; tests replace it."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Artifact:
    """The artifact's bytes and where they came from (for messages and the object's metadata)."""

    data: bytes
    source: str


def _refused(source: str, algorithm: Algorithm, problem: str) -> CliError:
    return CliError(
        f"{source} is not a model.tar.gz for {algorithm.title}, the algorithm the endpoint serves: "
        f"{problem}; nothing was written."
    )


def _read_artifact(s3: Any, source: str, algorithm: Algorithm) -> Artifact:
    """The artifact's bytes, its size checked before they are read."""
    if source.startswith("s3://"):
        try:
            bucket, key = s3_layout.parse_s3_uri(source)
        except ValueError as error:
            raise CliError(f"ARTIFACT {error}.") from None
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchKey", "NotFound"}:
                raise CliError(f"ARTIFACT {source} does not exist.") from None
            raise
        _checked_size(source, algorithm, int(head["ContentLength"]))
        # IfMatch: exactly the object whose size was just checked.
        data = s3.get_object(Bucket=bucket, Key=key, IfMatch=head["ETag"])["Body"].read()
        return Artifact(bytes(data), source)
    path = Path(source)
    if not path.is_file():
        raise CliError(f"ARTIFACT {source} is not a file (give a local model.tar.gz or an s3:// URI).")
    _checked_size(source, algorithm, path.stat().st_size)
    try:
        return Artifact(path.read_bytes(), str(path.resolve()))
    except OSError as error:
        raise CliError(f"Cannot read ARTIFACT {source}: {error.strerror}.") from None


def _checked_size(source: str, algorithm: Algorithm, size: int) -> None:
    try:
        artifact_format.check_size(size)
    except artifact_format.ArtifactInvalid as error:
        raise _refused(source, algorithm, str(error)) from None


def _version(option: str | None, location: str, generation: str) -> str:
    version = (
        option if option is not None else VERSION_PREFIX + now().astimezone(UTC).strftime("%Y%m%d%H%M%S")
    )
    try:
        s3_layout.model_version_key(generation, location, version)
    except ValueError as error:
        raise CliError(f"Invalid --version: {error}.") from None
    if version.startswith(RESERVED_VERSION_PREFIXES):
        raise CliError(
            f"Invalid --version {version!r}: names starting with {', '.join(RESERVED_VERSION_PREFIXES[:-1])} "
            f"or {RESERVED_VERSION_PREFIXES[-1]} are reserved for what the pipeline trains; "
            "use another name (default: add-<UTC yyyymmddHHMMSS>)."
        )
    return version


def add(
    ctx: typer.Context,
    location: Annotated[str, typer.Argument(metavar="LOCATION", help="The location the model predicts for")],
    artifact: Annotated[
        str,
        typer.Argument(
            metavar="ARTIFACT",
            help="The model.tar.gz, trained with the algorithm the endpoint serves: a local path or an "
            "s3://BUCKET/KEY URI",
            show_default=False,
        ),
    ],
    generation: Annotated[
        str,
        typer.Option(
            "--generation",
            "-g",
            metavar="GEN",
            help="The complete preprocessor generation (pp-<run id>) whose preprocessed features the model "
            "was trained on (required: the artifact cannot say)",
            show_default=False,
        ),
    ],
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            help="Name of the new version (default: add-<UTC yyyymmddHHMMSS>); an existing one is refused",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Add a model trained elsewhere as LOCATION's new current version in a generation.

    The model, and GEN, must be of the algorithm the endpoint serves. The artifact is checked before
    anything is written: a gzip tar of at most 100 MiB holding exactly that algorithm's one file
    (xgboost-model for XGBoost, model_algo-1 for the others; for linear learner also the MXNet model zip
    inside it; the other files' contents are not verified). It is then uploaded under
    models/<GEN>/<LOCATION>/ (SSE-KMS, never over an existing version) and the location's pointer in
    GEN is moved to it. The model is served only while GEN is the served generation.
    """
    cli = sm._context(ctx)
    location = sm._checked_location(location)
    generations.validate_option(generation)
    s3 = cli.client("s3")
    bucket = cli.deployment.bucket
    key_arn = cli.deployment.key_arn  # a missing output fails before anything is read
    algorithm = cli.deployment.algorithm
    chosen = sm._choose(cli, s3, generation)
    record = generations.read_complete(s3, bucket, generation)
    if record is None:
        raise CliError(
            f"Generation {generation} is not complete (no {s3_layout.generation_record_key(generation)}), "
            "so it cannot be served: add the model to a complete generation (see `mme status`); nothing "
            "was written."
        )
    if record.algorithm != algorithm.name:
        raise CliError(
            f"Generation {generation} holds {title_of(record.algorithm)} models, but the endpoint serves "
            f"{algorithm.title} and cannot serve that generation: add the model to a generation trained "
            f"with {algorithm.title} (see `mme status`); nothing was written."
        )
    name = _version(version, location, generation)
    key = s3_layout.model_version_key(generation, location, name)
    if sm._head(s3, bucket, key) is not None:
        raise CliError(
            f"Version {name} of {location} already exists (s3://{bucket}/{key}): pass another --version."
        )
    loaded = _read_artifact(s3, artifact, algorithm)
    try:
        artifact_format.check_artifact(loaded.data, algorithm)
    except artifact_format.ArtifactInvalid as error:
        raise _refused(artifact, algorithm, str(error)) from None
    read = sm._read_pointer(s3, bucket, generation, location)
    if read.problem is not None:
        raise CliError(f"Cannot add a version of {location}, because {read.problem}; nothing was written.")

    old = "none" if read.pointer is None else read.pointer.version
    _summary(cli, location, chosen, name, key, bucket, loaded, old, algorithm)
    if not yes and not typer.confirm(f"Add {name} and make it {location}'s current version in {generation}?"):
        raise CliError("Nothing was written: adding the model was not confirmed.")

    head = _upload(s3, bucket, key, loaded, key_arn)
    try:
        pointer = ModelPointer(
            preprocessor_generation=generation,
            location=location,
            version=name,
            size=int(head["ContentLength"]),
            training_job_name=None,
            promoted_at=now(),
            checksum=preferred_checksum(full_object_checksums(head)),
        )
        write_pointer(s3, bucket, pointer, kms_key_arn=key_arn, expected_etag=read.etag)
    except (PointerChanged, ModelPointerError) as error:
        s3.delete_object(Bucket=bucket, Key=key)  # ours: IfNoneMatch guaranteed the upload created it
        reason = (
            "changed while adding (a promotion or rollback?)"
            if isinstance(error, PointerChanged)
            else f"could not be written ({error})"
        )
        raise CliError(
            f"s3://{bucket}/{s3_layout.current_pointer_key(generation, location)} {reason}, so the upload "
            "was deleted again and nothing was added: check `mme models list` and run the add again."
        ) from None
    cli.console.print(f"{location}: {old} -> {name} ({chosen.describe()})", markup=False, highlight=False)
    if chosen.is_served:
        cli.console.print(
            f"Clients now invoke TargetModel {pointer.target_model}", markup=False, highlight=False
        )
    else:
        cli.console.print(
            f"{generation} is not the served generation: the model will be served once it is "
            f"(`make deploy GENERATION={generation}`).",
            markup=False,
            highlight=False,
        )


def _summary(
    cli: Any,
    location: str,
    chosen: generations.Chosen,
    name: str,
    key: str,
    bucket: str,
    loaded: Artifact,
    old: str,
    algorithm: Algorithm,
) -> None:
    table = Table(title=f"Adding a model for {location}", show_header=False)
    table.add_column("Item", style="bold")
    table.add_column("Value", overflow="fold")
    table.add_row("Artifact", loaded.source)
    table.add_row("Size", decimal(len(loaded.data)))
    table.add_row("Algorithm", f"{algorithm.title} (the endpoint's)")
    table.add_row("Checked", artifact_format.verified(algorithm))
    table.add_row("Generation", chosen.describe())
    table.add_row("New version", name)
    table.add_row("Key", s3_layout.s3_uri(bucket, key))
    table.add_row("Current version now", old)
    cli.console.print(table)
    if not chosen.is_served:
        cli.errors.print(
            f"Note: {chosen.generation} is not the served generation; the model will be served only once "
            f"{chosen.generation} is (`make deploy GENERATION={chosen.generation}`).",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _upload(s3: Any, bucket: str, key: str, loaded: Artifact, key_arn: str) -> Mapping[str, Any]:
    """PutObject the checked bytes (not a server-side copy: what was checked is what is served)."""
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=loaded.data,
            ContentType="application/gzip",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=key_arn,
            ChecksumAlgorithm=UPLOAD_CHECKSUM,
            IfNoneMatch="*",
            # S3 user metadata travels as an HTTP header: ASCII only.
            Metadata={
                sm.ADDED_BY_METADATA: loaded.source.encode("ascii", "backslashreplace").decode()[:1024]
            },
        )
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code", "")) in {
            "412",
            "PreconditionFailed",
            "ConditionalRequestConflict",
        }:
            raise CliError(
                f"s3://{bucket}/{key} was created by someone else meanwhile; nothing was written: pass "
                "another --version."
            ) from None
        raise
    head = sm._head(s3, bucket, key)
    assert head is not None  # just written
    return head
