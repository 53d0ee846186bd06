"""The preprocessor's source code as one deterministic ``.tar.gz`` file asset.

SageMaker's scikit-learn container takes script-mode code as ``sagemaker_submit_directory`` (a
training hyperparameter) or ``SAGEMAKER_SUBMIT_DIRECTORY`` (a model environment variable): the S3
URI of a **gzipped tarball**. A CDK directory asset is uploaded as a zip, so this construct packs
the tarball itself at synth time and publishes it as a *file* asset.

The tarball holds the ``preprocessor/`` folder's files at its root (the entry script
``housing_preprocessor.py``) and the pure-stdlib ``mme_shared`` package under ``mme_shared/``,
because the entry script imports its column names from ``mme_shared.housing_data`` rather than
keeping a copy. Both SageMaker runtimes put the extracted folder on ``sys.path`` (training runs
the script from it; serving starts gunicorn with it on the Python path), so that import works
there exactly as it does in this repository.

Byte-identical across runs and machines with the same zlib: entries sorted by name, regular files
only, every mtime/uid/gid zero, owner names empty, modes 0644, gzip header without file name and
with mtime 0, and no ``__pycache__``, ``*.pyc`` or hidden files. Identical bytes give an identical
asset hash, so an unchanged preprocessor never produces a template diff or a new upload.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

_REPO_ROOT: Final = Path(__file__).resolve().parent.parent
PREPROCESSOR_SOURCE_DIR: Final = _REPO_ROOT / "preprocessor"
SHARED_PACKAGE_DIR: Final = _REPO_ROOT / "mme_shared"
ENTRY_POINT: Final = "housing_preprocessor.py"
"""The script SageMaker runs and imports: ``sagemaker_program`` / ``SAGEMAKER_PROGRAM``."""

_EXCLUDED_SUFFIXES: Final = (".pyc", ".pyo")


def _included(relative: Path) -> bool:
    """Leave out bytecode caches and hidden files: they differ per machine and are not source."""
    return not any(part == "__pycache__" or part.startswith(".") for part in relative.parts) and (
        relative.suffix not in _EXCLUDED_SUFFIXES
    )


def source_files(source_dir: Path, shared_packages: Sequence[Path]) -> list[tuple[str, Path]]:
    """``(name in the tarball, file)`` pairs sorted by name: ``source_dir``'s files at the root,
    each shared package's files under the package's folder name."""
    roots = [(source_dir, "")] + [(package, f"{package.name}/") for package in shared_packages]
    entries: dict[str, Path] = {}
    for root, prefix in roots:
        if not root.is_dir():
            raise ValueError(f"cannot pack {root}: it is not a directory")
        for path in root.rglob("*"):
            relative = path.relative_to(root)
            if path.is_file() and _included(relative):
                name = prefix + relative.as_posix()
                if name in entries:
                    raise ValueError(f"cannot pack {path}: {entries[name]} already provides {name!r}")
                entries[name] = path
    if not entries:
        raise ValueError(f"cannot pack {source_dir}: it holds no source files")
    return sorted(entries.items())


def pack_source_tarball(source_dir: Path, shared_packages: Sequence[Path]) -> bytes:
    """The gzipped tarball of :func:`source_files`, with all run- and machine-specific metadata zeroed."""
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, path in source_files(source_dir, shared_packages):
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
    gzip_buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gzip_buffer, compresslevel=9, mtime=0) as compressed:
        compressed.write(tar_buffer.getvalue())
    return gzip_buffer.getvalue()


def write_source_tarball(data: bytes, directory: Path) -> Path:
    """Store ``data`` as ``<directory>/preprocessor-source-<sha256 prefix>.tar.gz``; returns the path.

    The name comes from the content, so concurrent or repeated synths write the same file; the
    write goes through a temporary file and an atomic rename so no reader sees half a tarball.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"preprocessor-source-{hashlib.sha256(data).hexdigest()[:16]}.tar.gz"
    if path.is_file() and path.read_bytes() == data:
        return path
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".partial")
    with os.fdopen(handle, "wb") as file:
        file.write(data)
    Path(temporary).replace(path)
    return path


class PreprocessorSource(Construct):
    """The preprocessor source tarball, published as an S3 file asset at deploy time.

    Use :attr:`s3_object_url` as ``sagemaker_submit_directory`` (training job hyperparameter) and
    ``SAGEMAKER_SUBMIT_DIRECTORY`` (model container environment), with :attr:`entry_point` as
    ``sagemaker_program`` / ``SAGEMAKER_PROGRAM``; grant the job and model roles :meth:`grant_read`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source_dir: Path = PREPROCESSOR_SOURCE_DIR,
        shared_packages: Sequence[Path] = (SHARED_PACKAGE_DIR,),
        build_dir: Path | None = None,
    ) -> None:
        """``build_dir`` receives the tarball before CDK stages it into the cloud assembly
        (default: a folder in the system temporary directory, keyed by content)."""
        super().__init__(scope, construct_id)
        data = pack_source_tarball(source_dir, shared_packages)
        self.tarball_sha256 = hashlib.sha256(data).hexdigest()
        """SHA-256 of the tarball bytes, for logs and tests."""
        self.entry_point = ENTRY_POINT
        tarball = write_source_tarball(
            data, build_dir or Path(tempfile.gettempdir()) / "mme-preprocessor-source"
        )
        # The content digest is the asset hash, hence the S3 key: unchanged source, unchanged key.
        self.asset = s3_assets.Asset(
            self,
            "Tarball",
            path=str(tarball),
            asset_hash=self.tarball_sha256,
            display_name="Preprocessor source tarball",
        )

    @property
    def bucket(self) -> s3.IBucket:
        """The CDK assets bucket that holds the tarball."""
        return self.asset.bucket

    @property
    def s3_bucket_name(self) -> str:
        return self.asset.s3_bucket_name

    @property
    def s3_object_key(self) -> str:
        return self.asset.s3_object_key

    @property
    def s3_object_url(self) -> str:
        """``s3://bucket/key`` of the tarball: the value SageMaker's submit-directory settings take."""
        return self.asset.s3_object_url

    def grant_read(self, grantee: iam.IGrantable) -> None:
        """Let ``grantee`` (a training job or model role) download the tarball."""
        self.asset.grant_read(grantee)
