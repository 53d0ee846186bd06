"""Check that bytes are a model.tar.gz the deployment's algorithm can load, before anything is written.

``mme models add`` serves an artifact trained elsewhere, and the multi-model container only finds out
that it cannot load one when a client invokes it. So what is known about an algorithm's artifact is
checked first; what is not known is not guessed at.

Known for every built-in algorithm (:mod:`mme_constructs.algorithms`):

- SageMaker model data is "a single gzip compressed tar archive (.tar.gz suffix)" (the
  ``ModelDataUrl`` of ``ContainerDefinition``, SageMaker API Reference).
- The archive holds one file, the algorithm's :attr:`~mme_constructs.algorithms.Algorithm.artifact_member`.
  For the first-party built-in algorithms (linear learner, k-NN, Random Cut Forest) the untarred
  ``model.tar.gz`` "contains ``model_algo-1``, which is a serialized Apache MXNet object" (SageMaker
  Developer Guide, "Common data formats for training", section "Trained Model Deserialization").
  XGBoost's holds ``xgboost-model``: the name is what its artifacts are observed to hold (for
  example aws/aws-sdk-pandas#96); the XGBoost algorithm page loads the untarred model with pickle
  (versions before 1.3-1) or ``Booster.load_model`` (1.3-1 and later save XGBoost's own format).

So every algorithm's artifact is checked for: a size from 1 byte to :data:`MAX_ARTIFACT_BYTES`; gzip
(the whole stream, CRC included, unpacking at most :data:`MAX_UNPACKED_BYTES`); a tar whose only
member is the algorithm's file, a regular file that is not empty.

Linear learner's file is also checked inside, from what its artifacts are observed to contain (AWS
does not specify the format beyond the points above):

- ``model_algo-1`` is a ZIP archive holding ``mx-mod-symbol.json`` (the network as an MXNet symbol
  graph), ``mx-mod-0000.params`` (its parameters), ``manifest.json`` and ``additional-params.json``:
  ``unzip model_algo-1`` in J. Simon, *Learn Amazon SageMaker*, 2nd ed. (Packt, 2021), chapter 11,
  "Examining and exporting built-in models", which then loads it with ``mx.sym.load_json`` and
  ``load_parameters``; the same four names appear in public notebooks that load it with
  ``mx.module.Module.load("mx-mod", 0)`` (checkpoint prefix ``mx-mod``, epoch 0).
- An MXNet ``.params`` file is an NDArray list, which ``NDArray::Save`` (apache/mxnet,
  ``src/ndarray/ndarray.cc``) begins with the 64-bit magic ``kMXAPINDArrayListMagic = 0x112``
  and a 64-bit reserved zero, little-endian on the x86 hosts SageMaker trains on.
- An MXNet symbol JSON is an object with a ``nodes`` list, ``arg_nodes`` and ``heads``
  (``Symbol.tojson``).

So for linear learner it also checks a ZIP (every member's CRC) containing ``mx-mod-symbol.json``
(valid JSON of that shape) and ``mx-mod-0000.params`` (the NDArray-list header), and that every
``.json`` member parses.

Not verified, for lack of a documented format: what is inside XGBoost's ``xgboost-model`` (a pickled
Booster or one of XGBoost's own model formats, depending on the image version), k-NN's and Random
Cut Forest's ``model_algo-1`` (serialized MXNet state whose layout AWS does not publish), and so
whether the container of the deployed image tag can load it. For no algorithm can it check which
preprocessor's output the model expects: the artifact does not say. Standard library only, every
size bounded, so a hostile archive cannot exhaust memory.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Mapping
from typing import Final

from mme_constructs.algorithms import Algorithm

MAX_ARTIFACT_BYTES: Final = 100 * 1024 * 1024
"""The largest artifact ``mme models add`` accepts (100 MiB, compressed).

The pipeline's own artifacts are far smaller (estimates from the hyperparameters, not measured): a
linear learner over this project's preprocessed features holds one weight per feature and a bias (a
few kilobytes); an XGBoost model its ``num_round`` trees of at most ``2 ** max_depth`` leaves; a k-NN
model its ``sample_size`` training rows (10 features and a label, some 44 bytes a row as float32:
about 44 MB at the largest sample size, 1,000,000); a Random Cut Forest its ``num_trees`` trees of
``num_samples_per_tree`` points. 100 MiB leaves room for all of them while keeping the artifact small
next to the endpoint instance's memory, where the multi-model container keeps every loaded model (a
model this size already crowds out hundreds of others), and
far below the 5 GiB a single PutObject accepts, so the upload is one conditional request."""

MAX_UNPACKED_BYTES: Final = 4 * MAX_ARTIFACT_BYTES
"""Bound on what decompressing may produce (a "zip bomb" is refused instead of unpacked)."""

LINEAR_LEARNER: Final = "linear-learner"
SYMBOL_MEMBER: Final = "mx-mod-symbol.json"
PARAMS_MEMBER: Final = "mx-mod-0000.params"
NDARRAY_LIST_MAGIC: Final = 0x112
_CHUNK: Final = 1024 * 1024


class ArtifactInvalid(ValueError):  # noqa: N818 (says what the artifact is; not a program error)
    """The bytes are not a model.tar.gz of the algorithm; ``str()`` says what is wrong."""


def check_size(size: int) -> None:
    """Refuse an empty artifact or one above :data:`MAX_ARTIFACT_BYTES` (the same for every algorithm)."""
    if size <= 0:
        raise ArtifactInvalid("it is empty (0 bytes)")
    if size > MAX_ARTIFACT_BYTES:
        raise ArtifactInvalid(
            f"it is {size:,} bytes, more than the {MAX_ARTIFACT_BYTES:,} bytes allowed for a model"
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
                        f"it unpacks to more than {MAX_UNPACKED_BYTES:,} bytes, far more than a model "
                        "(refused as a possible decompression bomb)"
                    )
    except (OSError, EOFError, zlib.error) as error:
        raise ArtifactInvalid(f"its gzip stream is damaged ({error})") from None
    return out.getvalue()


def _algorithm_member(tar_bytes: bytes, algorithm: Algorithm) -> bytes:
    """The bytes of the one file the algorithm's archive holds (every algorithm: module docstring)."""
    expected = algorithm.artifact_member
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as archive:
            members = archive.getmembers()
            names = [member.name.removeprefix("./") for member in members if member.name not in (".", "./")]
            if names != [expected]:
                shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                raise ArtifactInvalid(
                    f"its tar archive holds {shown or 'nothing'}, but {algorithm.title}'s model.tar.gz "
                    f"holds exactly one file, {expected}"
                )
            member = next(m for m in members if m.name.removeprefix("./") == expected)
            if not member.isfile():
                raise ArtifactInvalid(f"{expected} in its tar archive is not a regular file")
            if member.size == 0:
                raise ArtifactInvalid(f"{expected} in its tar archive is empty (0 bytes)")
            extracted = archive.extractfile(member)
            assert extracted is not None  # a regular file always has content
            return extracted.read()
    except tarfile.TarError as error:
        raise ArtifactInvalid(f"it is gzip-compressed but not a tar archive ({error})") from None


def _check_linear_learner_zip(model: bytes) -> None:
    """Linear learner's ``model_algo-1``: the MXNet model zip (module docstring)."""
    member = "model_algo-1"
    where = f"{member} (an MXNet model zip)"
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
        raise ArtifactInvalid(f"{member} is not the zip archive linear learner writes ({error})") from None
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


MEMBER_CHECKS: Final[Mapping[str, Callable[[bytes], None]]] = {LINEAR_LEARNER: _check_linear_learner_zip}
"""The algorithms whose file is also checked inside, by name; the others' files are not (module docstring)."""


def check_artifact(data: bytes, algorithm: Algorithm) -> None:
    """Raise :class:`ArtifactInvalid` unless ``data`` passes every check known for ``algorithm``'s
    model.tar.gz (module docstring: for some algorithms that is the archive's shape only)."""
    check_size(len(data))
    member = _algorithm_member(_gunzip(data), algorithm)
    deeper = MEMBER_CHECKS.get(algorithm.name)
    if deeper is not None:
        deeper(member)


def verified(algorithm: Algorithm) -> str:
    """What :func:`check_artifact` verifies for ``algorithm``, completing "The artifact is checked: ..."."""
    size = f"{MAX_ARTIFACT_BYTES / (1024 * 1024):g} MiB"
    shape = f"a gzip tar of at most {size} holding exactly {algorithm.artifact_member}"
    if algorithm.name in MEMBER_CHECKS:
        return f"{shape}, and inside it the MXNet model zip {algorithm.title} loads"
    return f"{shape} (not empty); what is inside {algorithm.artifact_member} is not verified"
