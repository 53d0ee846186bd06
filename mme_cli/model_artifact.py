"""Check that bytes are a model.tar.gz the built-in linear learner can load, before anything is written.

What a linear-learner artifact is, from public sources (the format is not specified by AWS beyond
the first two points, so the deeper checks follow what the artifacts are observed to contain):

- SageMaker model data is "a single gzip compressed tar archive (.tar.gz suffix)" (the
  ``ModelDataUrl`` of ``ContainerDefinition``, SageMaker API Reference).
- For the MXNet-based built-in algorithms, linear learner among them, the untarred ``model.tar.gz``
  "contains ``model_algo-1``, which is a serialized Apache MXNet object" (SageMaker Developer Guide,
  "Common data formats for training", section "Trained Model Deserialization").
- For linear learner that member is a ZIP archive holding ``mx-mod-symbol.json`` (the network as an
  MXNet symbol graph), ``mx-mod-0000.params`` (its parameters), ``manifest.json`` and
  ``additional-params.json``: ``unzip model_algo-1`` in J. Simon, *Learn Amazon SageMaker*, 2nd ed.
  (Packt, 2021), chapter 11, "Examining and exporting built-in models", which then loads it with
  ``mx.sym.load_json`` and ``load_parameters``; the same four names appear in public notebooks that
  load it with ``mx.module.Module.load("mx-mod", 0)`` (checkpoint prefix ``mx-mod``, epoch 0).
- An MXNet ``.params`` file is an NDArray list, which ``NDArray::Save`` (apache/mxnet,
  ``src/ndarray/ndarray.cc``) begins with the 64-bit magic ``kMXAPINDArrayListMagic = 0x112``
  and a 64-bit reserved zero, little-endian on the x86 hosts SageMaker trains on.
- An MXNet symbol JSON is an object with a ``nodes`` list, ``arg_nodes`` and ``heads``
  (``Symbol.tojson``).

So this checks, in order: gzip (whole stream, CRC included), a tar whose only member is the regular
file ``model_algo-1``, a ZIP (every member's CRC) containing ``mx-mod-symbol.json`` (valid JSON of
that shape) and ``mx-mod-0000.params`` (the NDArray-list header), and that every ``.json`` member
parses. It cannot check which preprocessor's output the weights expect: the artifact does not say.
Standard library only, every size bounded, so a hostile archive cannot exhaust memory.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import tarfile
import zipfile
import zlib
from typing import Final

MAX_ARTIFACT_BYTES: Final = 100 * 1024 * 1024
"""The largest artifact ``mme models add`` accepts (100 MiB, compressed).

A linear learner over this project's preprocessed features holds one weight per feature and a bias:
the pipeline's artifacts are a few kilobytes. 100 MiB leaves room for far wider feature spaces
while keeping the artifact small next to the endpoint instance's memory, where the multi-model
container keeps every loaded model (a model this size already crowds out hundreds of others), and
far below the 5 GiB a single PutObject accepts, so the upload is one conditional request."""

MAX_UNPACKED_BYTES: Final = 4 * MAX_ARTIFACT_BYTES
"""Bound on what decompressing may produce (a "zip bomb" is refused instead of unpacked)."""

MODEL_MEMBER: Final = "model_algo-1"
SYMBOL_MEMBER: Final = "mx-mod-symbol.json"
PARAMS_MEMBER: Final = "mx-mod-0000.params"
NDARRAY_LIST_MAGIC: Final = 0x112
_CHUNK: Final = 1024 * 1024


class ArtifactInvalid(ValueError):  # noqa: N818 (says what the artifact is; not a program error)
    """The bytes are not a linear-learner model.tar.gz; ``str()`` says what is wrong."""


def check_size(size: int) -> None:
    """Refuse an empty artifact or one above :data:`MAX_ARTIFACT_BYTES`."""
    if size <= 0:
        raise ArtifactInvalid("it is empty (0 bytes)")
    if size > MAX_ARTIFACT_BYTES:
        raise ArtifactInvalid(
            f"it is {size:,} bytes, more than the {MAX_ARTIFACT_BYTES:,} bytes allowed for a "
            "linear-learner model"
        )


def _gunzip(data: bytes) -> bytes:
    if data[:2] != b"\x1f\x8b":
        raise ArtifactInvalid("it is not gzip-compressed (a model.tar.gz starts with the bytes 1f 8b)")
    out = io.BytesIO()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            while chunk := stream.read(_CHUNK):
                out.write(chunk)
                if out.tell() > MAX_UNPACKED_BYTES:
                    raise ArtifactInvalid(
                        f"it unpacks to more than {MAX_UNPACKED_BYTES:,} bytes, far more than a "
                        "linear-learner model"
                    )
    except (OSError, EOFError, zlib.error) as error:
        raise ArtifactInvalid(f"its gzip stream is damaged ({error})") from None
    return out.getvalue()


def _model_member(tar_bytes: bytes) -> bytes:
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as archive:
            members = archive.getmembers()
            names = [member.name.removeprefix("./") for member in members if member.name not in (".", "./")]
            if names != [MODEL_MEMBER]:
                shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                raise ArtifactInvalid(
                    f"its tar archive holds {shown or 'nothing'}, but a linear-learner model.tar.gz holds "
                    f"exactly one file, {MODEL_MEMBER}"
                )
            member = next(m for m in members if m.name.removeprefix("./") == MODEL_MEMBER)
            if not member.isfile():
                raise ArtifactInvalid(f"{MODEL_MEMBER} in its tar archive is not a regular file")
            extracted = archive.extractfile(member)
            assert extracted is not None  # a regular file always has content
            return extracted.read()
    except tarfile.TarError as error:
        raise ArtifactInvalid(f"it is gzip-compressed but not a tar archive ({error})") from None


def _check_zip(model: bytes) -> None:
    where = f"{MODEL_MEMBER} (an MXNet model zip)"
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            missing = [name for name in (SYMBOL_MEMBER, PARAMS_MEMBER) if name not in infos]
            if missing:
                raise ArtifactInvalid(
                    f"{where} lacks {', '.join(missing)}; it holds {', '.join(sorted(infos)) or 'nothing'}"
                )
            if sum(info.file_size for info in infos.values()) > MAX_UNPACKED_BYTES:
                raise ArtifactInvalid(f"{where} unpacks to more than {MAX_UNPACKED_BYTES:,} bytes")
            contents = {name: archive.read(name) for name in infos}  # read() checks each CRC
    except zipfile.BadZipFile as error:
        raise ArtifactInvalid(
            f"{MODEL_MEMBER} is not the zip archive linear learner writes ({error})"
        ) from None
    except (zlib.error, NotImplementedError, RuntimeError) as error:
        raise ArtifactInvalid(f"{where} cannot be read ({error})") from None

    for name, body in contents.items():
        if name.endswith(".json"):
            try:
                json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise ArtifactInvalid(f"{name} in {where} is not valid JSON") from None
    symbol = json.loads(contents[SYMBOL_MEMBER])
    if not (
        isinstance(symbol, dict)
        and isinstance(symbol.get("nodes"), list)
        and symbol["nodes"]
        and "arg_nodes" in symbol
        and "heads" in symbol
    ):
        raise ArtifactInvalid(
            f"{SYMBOL_MEMBER} in {where} is not an MXNet symbol graph "
            "(an object with nodes, arg_nodes and heads)"
        )
    params = contents[PARAMS_MEMBER]
    if len(params) < 16 or struct.unpack("<QQ", params[:16]) != (NDARRAY_LIST_MAGIC, 0):
        raise ArtifactInvalid(
            f"{PARAMS_MEMBER} in {where} is not an MXNet parameter file (it must start with the "
            "NDArray-list magic 0x112)"
        )


def check_artifact(data: bytes) -> None:
    """Raise :class:`ArtifactInvalid` unless ``data`` is a linear-learner model.tar.gz (module docstring)."""
    check_size(len(data))
    _check_zip(_model_member(_gunzip(data)))
