"""The shared housing preprocessor: SageMaker scikit-learn script-mode training entry and serving functions.

One fitted ``ColumnTransformer`` (StandardScaler on the 6 numeric columns, OneHotEncoder with
``handle_unknown="ignore"`` on FRONT_PORCH and DECK: 10 output features) is fitted once on every
location's training rows and then used unchanged by batch transform and by the endpoint, so no
city is ever scaled with another city's statistics.

This file runs inside the SageMaker scikit-learn framework container, so it imports only what that
image has (numpy, pandas, scikit-learn, joblib, the standard library) plus ``mme_shared``, which the
source tarball ships next to it (see ``mme_constructs.preprocessor_source``).

Training (``python housing_preprocessor.py [--feature_dim N]``, as the container runs it)
    Reads **every** file under the ``train`` channel (``SM_CHANNEL_TRAIN``, recursively, in sorted
    order): raw generated CSV, no header, the 8 features then PRICE last. Fits the transformer and
    writes ``preprocessor.joblib`` plus ``preprocessor.json`` (scikit-learn version, columns, row
    counts) to ``SM_MODEL_DIR``. The optional ``feature_dim`` hyperparameter makes the job fail
    unless the output width equals the linear learner's ``feature_dim``. A failed run writes its
    reason to ``SM_OUTPUT_DIR/failure`` (``/opt/ml/output/failure``), which SageMaker shows as the
    job's FailureReason: the container's runner does not capture the script's stderr, so without
    that file the reason would be an empty ``ExecuteUserScriptError`` (the runner keeps a failure
    file the script wrote).

Serving (``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``)
    The environment variable ``MME_PREPROCESSOR_MODE`` on the SageMaker model or transform job
    says what a request row holds; the script never guesses from the column count:

    - ``serving`` (the default when unset): exactly the 8 features. Output: the 10 features.
    - ``labelled-transform``: the 8 features then PRICE (the raw training/validation files).
      Output: PRICE **first**, then the 10 features, which is what the linear learner's
      ``text/csv;label_size=1`` expects.
    - ``unlabelled-transform``: the same raw files, read and validated exactly as in
      ``labelled-transform`` (PRICE included, so a malformed file is refused alike). Output: the
      10 features alone, no label, for an algorithm that trains without one (Random Cut Forest's
      ``text/csv;label_size=0``).

    ``labelled-transform`` and ``unlabelled-transform`` are the *transform modes*; their values are
    ``mme_shared.transform_output``'s ``LABELLED_TRANSFORM_MODE`` and ``UNLABELLED_TRANSFORM_MODE``,
    which the training pipeline sets on its transform jobs.

    Input is ``text/csv`` (no header, one row per line) or ``application/json`` (a list of rows, or
    ``{"instances": [...]}``; a row is a list of values in column order or an object keyed by column
    name). Output is ``text/csv`` (no trailing newline, full float precision) unless the Accept
    header asks for ``application/json`` (``{"instances": [{"features": [...]}]}``, the linear
    learner's JSON request format, plus ``"label"`` in ``labelled-transform`` mode). Set the
    container's ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` to ``text/csv``: the container substitutes
    it when a request has no Accept header, and its own default is JSON.

Client errors are answered with HTTP 4xx, not 500 (except bad rows in the transform modes,
below). The container wraps every exception raised by ``input_fn``/``predict_fn``/``output_fn`` in
its own ``ClientError`` and Flask answers that with a bare HTML 500 page (clients retry 5xx and
never see the reason). So a bad request is not raised: ``input_fn`` returns a
:class:`RejectedRequest`, ``predict_fn`` passes it through, and ``output_fn`` returns it. It is a
plain WSGI application, which Flask runs as the response: status 400 (bad content), 415 (unsupported
Content-Type) or 406 (unsupported Accept) with a JSON body ``{"error": ..., "message": ...}`` whose
message is one sentence naming what was wrong and what is allowed; 413 for a body larger than
SageMaker ever passes a container (6 MiB). A misconfigured *deployment* (unknown mode, artifact
fitted with another scikit-learn) still raises, in ``model_fn``, so the container fails its health
check at start-up.

Rows that cannot be transformed in either transform mode are answered 200 instead, with a body
that is exactly one line, :data:`TRANSFORM_ERROR_MARKER`, a space and the reason (the same one
sentence, on one line, at most :data:`MAX_TRANSFORM_ERROR_REASON_CHARS` characters), as
``text/csv``. The training pipeline transforms every location of a run in one batch transform per
split, one input file per location, and a 4xx for one file's mini-batch would fail the whole job,
so every location. With the marker the job goes on, the line lands in that location's ``.out``
file (SageMaker writes one per input file; ``AssembleWith: Line`` puts each response on its own
line) and the pipeline's check step fails that location alone, with the reason. No valid output
line can look like it: those are comma-separated floats (or a JSON object), never ``#``. Row
numbers in the reason count within the mini-batch request, which is the whole file when the file
is smaller than the payload limit. Only a 400 (the rows: widths, numbers, categories, encoding,
an empty body) becomes the marker. A 415 (Content-Type), 406 (Accept, checked before the rows in
these modes) or 413 (a request larger than any the default ``MaxPayloadInMB`` sends) says the
transform job is configured wrongly, which is true of every file alike, so it stays a 4xx and fails
the job loudly. ``serving`` mode answers every rejection with its 4xx, as above.

With ``Content-Type`` exactly ``text/csv`` or ``application/json`` the container hands ``input_fn``
the body already decoded as text, with every byte that is not valid UTF-8 replaced by U+FFFD
(werkzeug decodes with ``errors="replace"``); any other type (``text/csv; charset=utf-8``) arrives
as bytes. Both are refused alike when they are not UTF-8, so a U+FFFD in text is taken for the
replacement it almost surely is, never for a category. ``tests/contract`` runs all of this through
the container's real toolkits.

Speed: serving does not call ``ColumnTransformer.transform`` (with pandas that costs milliseconds
per request). :class:`LoadedPreprocessor` applies the fitted statistics directly with the same
floating-point operations in the same order (``(x - mean_) / scale_``; one-hot by the fitted
``categories_``), so its output equals the transformer's exactly; a property-based test proves it.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import math
import os
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from http import HTTPStatus
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import joblib  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]
import sklearn  # type: ignore[import-untyped]
from sklearn.compose import ColumnTransformer  # type: ignore[import-untyped]
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # type: ignore[import-untyped]

from mme_shared.housing_data import (
    CATEGORICAL_FEATURE_COLUMNS,
    FEATURE_COLUMNS,
    LABEL_COLUMN,
    NUMERIC_FEATURE_COLUMNS,
    RAW_COLUMNS,
)
from mme_shared.transform_output import (
    LABELLED_TRANSFORM_MODE,
    PREPROCESSOR_MODE_ENV,
    UNLABELLED_TRANSFORM_MODE,
)
from mme_shared.transform_output import TRANSFORM_ERROR_MARKER as TRANSFORM_ERROR_MARKER

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

FloatArray = npt.NDArray[np.float64]

MODE_ENV_VAR: Final = PREPROCESSOR_MODE_ENV
MODEL_FILE: Final = "preprocessor.joblib"
METADATA_FILE: Final = "preprocessor.json"
CODE_DIR: Final = "code"
"""The artifact carries this script (and mme_shared) under ``code/``, so a network-isolated endpoint
can serve it with ``SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code`` without reaching S3 itself."""
ARTIFACT_FORMAT: Final = 1
CSV_MEDIA_TYPE: Final = "text/csv"
JSON_MEDIA_TYPE: Final = "application/json"
MAX_REQUEST_BYTES: Final = 6 * 1024 * 1024
"""The most SageMaker passes a container in one request: InvokeEndpoint takes at most 6 MB, and a
batch transform's ``MaxPayloadInMB`` defaults to 6 (the training pipeline keeps the default)."""
REPLACEMENT_CHARACTER: Final = "\ufffd"
"""What the container's request decoding puts in place of bytes that are not valid UTF-8."""
MAX_TRANSFORM_ERROR_REASON_CHARS: Final = 500
"""A longer reason is cut (ending in ``...``), so one marker line stays small."""
FAILURE_FILE: Final = "failure"
"""Under ``SM_OUTPUT_DIR``: SageMaker reports its first 1024 characters as the FailureReason."""
_NUMERIC_COUNT: Final = len(NUMERIC_FEATURE_COLUMNS)


class Mode(Enum):
    """What one request row holds; chosen by the deployment through ``MME_PREPROCESSOR_MODE``."""

    SERVING = "serving"
    """The endpoint: the 8 features in, the 10 features out."""
    LABELLED_TRANSFORM = LABELLED_TRANSFORM_MODE
    """A batch transform of raw files: the 8 features then PRICE in, PRICE then the 10 features out."""
    UNLABELLED_TRANSFORM = UNLABELLED_TRANSFORM_MODE
    """A batch transform of raw files: the 8 features then PRICE in, the 10 features alone out."""

    @property
    def is_transform(self) -> bool:
        """Rows are raw training files (PRICE last, validated) and rejected rows get the marker line."""
        return self is not Mode.SERVING

    @property
    def writes_label(self) -> bool:
        """The output puts PRICE first (CSV) or as ``"label"`` (JSON)."""
        return self is Mode.LABELLED_TRANSFORM

    @property
    def input_columns(self) -> tuple[str, ...]:
        return RAW_COLUMNS if self.is_transform else FEATURE_COLUMNS


def mode_from_environment(environ: Mapping[str, str]) -> Mode:
    """The configured mode; ``serving`` when the variable is unset, an error when it is unknown."""
    value = environ.get(MODE_ENV_VAR, Mode.SERVING.value)
    try:
        return Mode(value)
    except ValueError:
        *others, last = (repr(mode.value) for mode in Mode)
        allowed = f"{', '.join(others)} or {last}"
        raise ValueError(f"{MODE_ENV_VAR} is {value!r}; set it to {allowed}") from None


# --- Client errors -------------------------------------------------------------------------------


class InvalidRequestError(ValueError):
    """A request the client must fix; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class RejectedRequest:
    """A rejected request on its way through ``predict_fn`` to ``output_fn``, and its HTTP answer.

    Calling it as a WSGI application writes the status line and a JSON body; Flask does exactly
    that with a callable a view returns, which is how a 4xx reaches the client (module docstring).
    """

    status: HTTPStatus
    message: str

    @classmethod
    def from_error(cls, error: InvalidRequestError) -> RejectedRequest:
        return cls(status=error.status, message=error.message)

    @property
    def rejects_the_rows(self) -> bool:
        """A 400 is about the rows themselves; 406, 413 and 415 about how the request was sent."""
        return self.status is HTTPStatus.BAD_REQUEST

    def body(self) -> bytes:
        return json.dumps({"error": self.status.phrase, "message": self.message}).encode("utf-8")

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        body = self.body()
        start_response(
            f"{self.status.value} {self.status.phrase}",
            [("Content-Type", JSON_MEDIA_TYPE), ("Content-Length", str(len(body)))],
        )
        return [body]


# --- Parsing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedBatch:
    """Validated rows: numeric features as float64, categories as stripped text, optional labels."""

    numeric: FloatArray
    """Shape (rows, 6), in NUMERIC_FEATURE_COLUMNS order."""
    categorical: tuple[list[str], ...]
    """One list per CATEGORICAL_FEATURE_COLUMNS entry, each with one value per row."""
    labels: FloatArray | None
    """PRICE per row when the rows hold it (the transform modes), else None."""

    def __len__(self) -> int:
        return int(self.numeric.shape[0])

    def feature_frame(self) -> pd.DataFrame:
        """The features as the DataFrame a ColumnTransformer fitted by this script takes."""
        frame = pd.DataFrame(self.numeric, columns=list(NUMERIC_FEATURE_COLUMNS))
        for name, values in zip(CATEGORICAL_FEATURE_COLUMNS, self.categorical, strict=True):
            frame[name] = pd.Series(values, dtype=object)
        return frame

    @staticmethod
    def concatenate(batches: Sequence[ParsedBatch]) -> ParsedBatch:
        """One batch holding every row of ``batches`` in order (labels kept only if all have them)."""
        labels = [batch.labels for batch in batches if batch.labels is not None]
        return ParsedBatch(
            numeric=np.vstack([batch.numeric for batch in batches]),
            categorical=tuple(
                [value for batch in batches for value in batch.categorical[index]]
                for index in range(len(CATEGORICAL_FEATURE_COLUMNS))
            ),
            labels=np.concatenate(labels) if len(labels) == len(batches) else None,
        )


def _columns_sentence(mode: Mode) -> str:
    if mode.is_transform:
        return (
            f"the {len(FEATURE_COLUMNS)} features ({', '.join(FEATURE_COLUMNS)}) followed by {LABEL_COLUMN}"
        )
    return f"exactly the {len(FEATURE_COLUMNS)} features {', '.join(FEATURE_COLUMNS)} (no {LABEL_COLUMN})"


def _wrong_width(row_number: int, width: int, mode: Mode) -> InvalidRequestError:
    return InvalidRequestError(
        f"Row {row_number} has {width} fields but {len(mode.input_columns)} are expected here "
        f"({MODE_ENV_VAR}={mode.value}): {_columns_sentence(mode)}."
    )


def _shown(value: object) -> str:
    """``repr(value)`` cut to a length that keeps an error message one readable sentence."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}..."


def _not_a_number(row_number: int, column: str, value: object) -> InvalidRequestError:
    return InvalidRequestError(f"Row {row_number}, column {column}: {_shown(value)} is not a finite number.")


def _number_or_none(text: str) -> float | None:
    """The finite float ``text`` spells, or None (underscore digit groups are refused too)."""
    if "_" in text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _numbers(cells: list[list[str]], columns: Sequence[str], may_hold_underscores: bool) -> FloatArray:
    """Convert rows of numeric text to float64, naming the first bad cell if there is one.

    numpy's bulk conversion is the fast path; it follows ``float()``, which accepts ``1_000``,
    ``nan`` and ``inf``, so those are refused afterwards. Any doubt falls back to converting cell
    by cell, which either finds the bad cell or yields the same values.
    """
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        values = None
    if (
        values is not None
        and np.isfinite(values).all()
        and not (may_hold_underscores and any("_" in cell for row in cells for cell in row))
    ):
        return values
    converted: list[list[float]] = []
    for row_number, row in enumerate(cells, start=1):
        converted_row: list[float] = []
        for column, cell in zip(columns, row, strict=True):
            value = _number_or_none(cell)
            if value is None:
                raise _not_a_number(row_number, column, cell)
            converted_row.append(value)
        converted.append(converted_row)
    return np.array(converted, dtype=np.float64)


def _check_categories(values: list[str], column: str) -> None:
    if "" in values:
        row_number = 1 + values.index("")
        raise InvalidRequestError(
            f"Row {row_number}, column {column} is empty; send a category such as 'y' or 'n'."
        )


def _split_fields(text: str, lines: list[str]) -> list[list[str]]:
    """The fields of each line: ``str.split`` when nothing is quoted (twice as fast), else ``csv``."""
    if '"' not in text:
        return [line.split(",") for line in lines]
    reader = csv.reader(lines, strict=True)
    try:
        return list(reader)
    except csv.Error as error:
        raise InvalidRequestError(
            f'Row {reader.line_num} is not valid CSV ({error}); quote a field only as a whole, like "y".'
        ) from None


def parse_csv(text: str, mode: Mode) -> ParsedBatch:
    """Parse CSV rows (no header) holding ``mode.input_columns``; raise InvalidRequestError if invalid.

    Trailing blank lines are ignored (files end with a newline); a blank line between rows is an
    error, as is a header row.
    """
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise InvalidRequestError(
            f"The input holds no rows; send one CSV line per row with {_columns_sentence(mode)}."
        )
    rows = _split_fields(text, lines)
    if rows[0] and rows[0][0].strip().upper() == FEATURE_COLUMNS[0]:
        raise InvalidRequestError(
            f"Row 1 is a header ({rows[0][0].strip()},...); send data rows only, without a header line."
        )
    width = len(mode.input_columns)
    if set(map(len, rows)) != {width}:
        for row_number, fields in enumerate(rows, start=1):
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                raise InvalidRequestError(
                    f"Row {row_number} is empty; every line must hold one row with {_columns_sentence(mode)}."
                )
            if len(fields) != width:
                raise _wrong_width(row_number, len(fields), mode)
    may_hold_underscores = "_" in text
    numeric = _numbers(
        [fields[:_NUMERIC_COUNT] for fields in rows], NUMERIC_FEATURE_COLUMNS, may_hold_underscores
    )
    categorical = tuple(
        [fields[index].strip() for fields in rows] for index in range(_NUMERIC_COUNT, len(FEATURE_COLUMNS))
    )
    for column, values in zip(CATEGORICAL_FEATURE_COLUMNS, categorical, strict=True):
        _check_categories(values, column)
    labels = None
    if mode.is_transform:
        labels = _numbers([fields[-1:] for fields in rows], (LABEL_COLUMN,), may_hold_underscores)[:, 0]
    return ParsedBatch(numeric=numeric, categorical=categorical, labels=labels)


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    names = {dict: "object", list: "array", str: "string", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)


def _json_number(value: object, row_number: int, column: str) -> float:
    """A JSON number as float64; booleans, strings, NaN/Infinity and out-of-range integers are refused."""
    number = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = None
    if number is None or not math.isfinite(number):
        raise InvalidRequestError(
            f"Row {row_number}, column {column}: expected a finite JSON number, got {_shown(value)}."
        )
    return number


def _json_category(value: object, row_number: int, column: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequestError(
            f"Row {row_number}, column {column}: expected a JSON string such as "
            f'"y" or "n", got {_shown(value)}.'
        )
    return value.strip()


def _json_row_values(row: object, row_number: int, mode: Mode) -> list[Any]:
    columns = mode.input_columns
    if isinstance(row, list):
        if len(row) != len(columns):
            raise _wrong_width(row_number, len(row), mode)
        return row
    if isinstance(row, dict):
        missing = [column for column in columns if column not in row]
        unexpected = sorted(str(key) for key in row if key not in columns)
        if missing or unexpected:
            problems = []
            if missing:
                problems.append(f"lacks {', '.join(missing)}")
            if unexpected:
                problems.append(f"has unexpected {', '.join(unexpected)}")
            raise InvalidRequestError(
                f"Row {row_number} {' and '.join(problems)}; a row object needs exactly the keys "
                f"{', '.join(columns)} in {mode.value} mode."
            )
        return [row[column] for column in columns]
    raise InvalidRequestError(
        f"Row {row_number} is a JSON {_json_type(row)}; each row must be a list of values in column "
        "order or an object keyed by column name."
    )


def parse_json(text: str, mode: Mode) -> ParsedBatch:
    """Parse a JSON list of rows, or ``{"instances": [...]}``; raise InvalidRequestError if invalid."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidRequestError(
            f"The request body is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})."
        ) from None
    rows = document
    if isinstance(document, dict):
        if set(document) != {"instances"}:
            keys = ", ".join(sorted(map(str, document))) or "none"
            raise InvalidRequestError(
                'A JSON object request must have exactly one key, "instances", holding the rows; '
                f"got keys {keys}."
            )
        rows = document["instances"]
    if not isinstance(rows, list):
        raise InvalidRequestError(
            'A JSON request must be a list of rows or {"instances": [rows]}, '
            f"got a JSON {_json_type(rows)}."
        )
    if not rows:
        raise InvalidRequestError(
            f"The JSON request holds no rows; send at least one row with {_columns_sentence(mode)}."
        )
    numeric_rows: list[list[float]] = []
    categorical_rows: list[list[str]] = []
    labels: list[float] = []
    holds_label = mode.is_transform
    for row_number, row in enumerate(rows, start=1):
        values = _json_row_values(row, row_number, mode)
        numeric_rows.append(
            [
                _json_number(value, row_number, column)
                for column, value in zip(NUMERIC_FEATURE_COLUMNS, values, strict=False)
            ]
        )
        categorical_rows.append(
            [
                _json_category(values[_NUMERIC_COUNT + index], row_number, column)
                for index, column in enumerate(CATEGORICAL_FEATURE_COLUMNS)
            ]
        )
        if holds_label:
            labels.append(_json_number(values[-1], row_number, LABEL_COLUMN))
    categorical = tuple(list(column) for column in zip(*categorical_rows, strict=True))
    for column, column_values in zip(CATEGORICAL_FEATURE_COLUMNS, categorical, strict=True):
        _check_categories(column_values, column)
    return ParsedBatch(
        numeric=np.array(numeric_rows, dtype=np.float64),
        categorical=categorical,
        labels=np.array(labels, dtype=np.float64) if holds_label else None,
    )


def _media_type(header: str | None) -> str:
    """``text/csv; charset=utf-8`` -> ``text/csv``."""
    return (header or "").split(";", 1)[0].strip().lower()


_NOT_UTF_8: Final = "The request body is not valid UTF-8 text; send UTF-8 encoded CSV or JSON."


def decode_body(body: str | bytes | bytearray) -> str:
    """Request bytes as text (UTF-8, an optional byte-order mark dropped).

    Text already decoded by the container with replacement (module docstring) is refused when it
    holds U+FFFD, the mark of a byte that was not UTF-8.
    """
    if isinstance(body, bytes | bytearray):
        try:
            return bytes(body).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidRequestError(_NOT_UTF_8) from None
    if REPLACEMENT_CHARACTER in body:
        raise InvalidRequestError(_NOT_UTF_8)
    return body.removeprefix("\ufeff")


def check_body_size(body: str | bytes | bytearray) -> None:
    """Refuse (413) a body larger than :data:`MAX_REQUEST_BYTES`, counted in UTF-8 bytes."""
    if isinstance(body, str):
        if len(body) * 4 <= MAX_REQUEST_BYTES:  # a character takes at most 4 bytes in UTF-8
            return
        size = len(body.encode("utf-8", errors="surrogatepass"))
    else:
        size = len(body)
    if size > MAX_REQUEST_BYTES:
        raise InvalidRequestError(
            f"The request body is {size:,} bytes, more than the {MAX_REQUEST_BYTES:,} bytes "
            f"({MAX_REQUEST_BYTES // 2**20} MiB) "
            "SageMaker passes a container in one request; send the rows in smaller requests.",
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )


def parse_request(body: str | bytes | bytearray, content_type: str | None, mode: Mode) -> ParsedBatch:
    """Validate and parse one request body; raise InvalidRequestError naming the first problem."""
    media_type = _media_type(content_type)
    if media_type not in (CSV_MEDIA_TYPE, JSON_MEDIA_TYPE):
        raise InvalidRequestError(
            f"Content type {content_type!r} is not supported; send {CSV_MEDIA_TYPE} or {JSON_MEDIA_TYPE}.",
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        )
    check_body_size(body)
    text = decode_body(body)
    if not text.strip():
        raise InvalidRequestError(
            f"The request body is empty; send at least one row with {_columns_sentence(mode)}."
        )
    return parse_csv(text, mode) if media_type == CSV_MEDIA_TYPE else parse_json(text, mode)


# --- The fitted transformer and its fast equivalent ----------------------------------------------


def build_column_transformer() -> ColumnTransformer:
    """The unfitted preprocessor: 6 standardised numeric columns, then FRONT_PORCH and DECK one-hot.

    Dense output (``sparse_output=False``, ``sparse_threshold=0``) so the result is always an
    array, whatever the category counts.
    """
    return ColumnTransformer(
        transformers=[
            ("numeric", StandardScaler(), list(NUMERIC_FEATURE_COLUMNS)),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                list(CATEGORICAL_FEATURE_COLUMNS),
            ),
        ],
        remainder="drop",
        sparse_threshold=0.0,
    )


@dataclass(frozen=True)
class TransformedBatch:
    """The preprocessor's output for one request: 10 features per row, optional label per row."""

    features: FloatArray
    labels: FloatArray | None


class LoadedPreprocessor:
    """What ``model_fn`` returns: the fitted ColumnTransformer plus its statistics, ready to apply.

    :meth:`transform` gives exactly ``column_transformer.transform(batch.feature_frame())``
    without pandas or per-call validation overhead.
    """

    def __init__(self, column_transformer: ColumnTransformer) -> None:
        scaler, encoder = _fitted_parts(column_transformer)
        self.column_transformer = column_transformer
        self.means: FloatArray = np.asarray(scaler.mean_, dtype=np.float64)
        self.scales: FloatArray = np.asarray(scaler.scale_, dtype=np.float64)
        self.categories: tuple[tuple[str, ...], ...] = tuple(
            tuple(str(value) for value in column) for column in encoder.categories_
        )
        self._category_codes = tuple(
            {value: code for code, value in enumerate(column)} for column in self.categories
        )
        self.feature_count = _NUMERIC_COUNT + sum(len(column) for column in self.categories)
        self.output_columns: tuple[str, ...] = tuple(
            str(name) for name in column_transformer.get_feature_names_out()
        )
        if len(self.output_columns) != self.feature_count:
            raise ValueError(
                f"the fitted preprocessor emits {len(self.output_columns)} columns but its statistics "
                f"describe {self.feature_count}; refit it with this script"
            )

    def transform(self, batch: ParsedBatch) -> FloatArray:
        """Standardise and one-hot encode ``batch`` (same operations, same order as scikit-learn)."""
        rows = len(batch)
        features = np.empty((rows, self.feature_count), dtype=np.float64)
        numeric = features[:, :_NUMERIC_COUNT]
        np.subtract(batch.numeric, self.means, out=numeric)
        np.divide(numeric, self.scales, out=numeric)
        offset = _NUMERIC_COUNT
        for values, codes_by_value, categories in zip(
            batch.categorical, self._category_codes, self.categories, strict=True
        ):
            codes = np.fromiter(map(codes_by_value.get, values, repeat(-1)), dtype=np.intp, count=rows)
            features[:, offset : offset + len(categories)] = codes[:, None] == np.arange(len(categories))
            offset += len(categories)
        return features


def _fitted_parts(column_transformer: object) -> tuple[Any, Any]:
    """The scaler and encoder of a transformer built by :func:`build_column_transformer`.

    The fast path relies on that exact structure, so anything else is refused loudly.
    """
    problem = "it is not a fitted ColumnTransformer"
    if isinstance(column_transformer, ColumnTransformer) and hasattr(column_transformer, "transformers_"):
        fitted = {name: (step, list(columns)) for name, step, columns in column_transformer.transformers_}
        scaler, numeric_columns = fitted.get("numeric", (None, []))
        encoder, categorical_columns = fitted.get("categorical", (None, []))
        if not (isinstance(scaler, StandardScaler) and scaler.with_mean and scaler.with_std):
            problem = "its numeric step is not a centring and scaling StandardScaler"
        elif numeric_columns != list(NUMERIC_FEATURE_COLUMNS):
            problem = f"its numeric columns are {numeric_columns}"
        elif not (
            isinstance(encoder, OneHotEncoder)
            and encoder.handle_unknown == "ignore"
            and encoder.drop is None
            and encoder.min_frequency is None
            and encoder.max_categories is None
        ):
            problem = "its categorical step is not a plain OneHotEncoder(handle_unknown='ignore')"
        elif categorical_columns != list(CATEGORICAL_FEATURE_COLUMNS):
            problem = f"its categorical columns are {categorical_columns}"
        elif set(fitted) - {"numeric", "categorical", "remainder"} or column_transformer.remainder != "drop":
            problem = "it has steps other than 'numeric' and 'categorical'"
        else:
            return scaler, encoder
    raise ValueError(
        f"{MODEL_FILE} cannot be served because {problem}; refit it with this script's training entry"
    )


# --- Serving functions (the names the container looks for) ---------------------------------------


def model_fn(model_dir: str) -> LoadedPreprocessor:
    """Load the fitted preprocessor; fail start-up on a version or configuration mismatch."""
    directory = Path(model_dir)
    try:
        metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{directory / METADATA_FILE} is missing; the model artifact must come from this "
            "script's training entry"
        ) from None
    if metadata.get("artifact_format") != ARTIFACT_FORMAT:
        raise ValueError(
            f"{METADATA_FILE} has artifact_format {metadata.get('artifact_format')!r}, "
            f"this script reads {ARTIFACT_FORMAT}"
        )
    fitted_with = metadata.get("scikit_learn_version")
    if fitted_with != sklearn.__version__:
        raise RuntimeError(
            f"{MODEL_FILE} was fitted with scikit-learn {fitted_with} but this container runs "
            f"{sklearn.__version__}; train and serve with the same sklearn_framework_version"
        )
    mode_from_environment(os.environ)
    model = LoadedPreprocessor(joblib.load(directory / MODEL_FILE))
    # Everything alive now (the scientific stack, the model) lives as long as the worker. Moving it
    # out of the collector's reach keeps full collections, which a 10,000-row request triggers, from
    # rescanning those objects: that halved the slowest batch requests in the benchmark.
    gc.freeze()
    return model


def input_fn(input_data: str | bytes | bytearray, content_type: str | None) -> ParsedBatch | RejectedRequest:
    """Parse a request in the configured mode; a bad request becomes a RejectedRequest, not an exception."""
    mode = mode_from_environment(os.environ)
    try:
        return parse_request(input_data, content_type, mode)
    except InvalidRequestError as error:
        return RejectedRequest.from_error(error)


def _check_finite(features: FloatArray, batch: ParsedBatch) -> None:
    """Refuse a number so large that standardising it overflows float64 (it would be sent as inf)."""
    if np.isfinite(features).all():
        return
    row, column = (int(index) for index in np.argwhere(~np.isfinite(features))[0])
    value = _shown(float(batch.numeric[row, column]))
    raise InvalidRequestError(
        f"Row {row + 1}, column {NUMERIC_FEATURE_COLUMNS[column]}: {value} is out of range: "
        "standardising it overflows a 64-bit float."
    )


def predict_fn(
    input_data: ParsedBatch | RejectedRequest, model: LoadedPreprocessor
) -> TransformedBatch | RejectedRequest:
    """Apply the fitted preprocessor; a rejected request passes through untouched.

    The rows' labels are kept only in a mode that writes them: ``unlabelled-transform`` read and
    checked PRICE like ``labelled-transform``, and drops it here.
    """
    if isinstance(input_data, RejectedRequest):
        return input_data
    features = model.transform(input_data)
    try:
        _check_finite(features, input_data)
    except InvalidRequestError as error:
        return RejectedRequest.from_error(error)
    labels = input_data.labels if mode_from_environment(os.environ).writes_label else None
    return TransformedBatch(features=features, labels=labels)


def _response_media_type(accept: str | None) -> str:
    if not accept:
        return CSV_MEDIA_TYPE
    for entry in accept.split(","):
        media_type = _media_type(entry)
        if media_type in (CSV_MEDIA_TYPE, JSON_MEDIA_TYPE):
            return media_type
        if media_type == "*/*":
            return CSV_MEDIA_TYPE
    raise InvalidRequestError(
        f"Accept type {accept!r} is not supported; ask for {CSV_MEDIA_TYPE} or {JSON_MEDIA_TYPE}.",
        HTTPStatus.NOT_ACCEPTABLE,
    )


def format_csv(prediction: TransformedBatch) -> str:
    """One line per row, label first when present; ``repr`` keeps every float exact."""
    rows = prediction.features.tolist()
    if prediction.labels is not None:
        rows = [[label, *row] for label, row in zip(prediction.labels.tolist(), rows, strict=True)]
    return "\n".join([",".join(map(repr, row)) for row in rows])


def format_json(prediction: TransformedBatch) -> str:
    """``{"instances": [{"features": [...]}, ...]}``, each instance with ``"label"`` when present."""
    rows = prediction.features.tolist()
    if prediction.labels is None:
        instances = [{"features": row} for row in rows]
    else:
        instances = [
            {"label": label, "features": row}
            for label, row in zip(prediction.labels.tolist(), rows, strict=True)
        ]
    return json.dumps({"instances": instances})


def transform_error_line(reason: str) -> str:
    """The marker line for rows rejected in a transform mode: ``#mme-transform-error: <reason>``.

    Every run of whitespace in ``reason`` (line breaks of any kind included) becomes one space, so
    the line stays one line in an output assembled by lines; a reason longer than
    :data:`MAX_TRANSFORM_ERROR_REASON_CHARS` is cut and ends in ``...``.
    """
    text = " ".join(reason.split()) or "the rows could not be transformed."
    if len(text) > MAX_TRANSFORM_ERROR_REASON_CHARS:
        text = text[: MAX_TRANSFORM_ERROR_REASON_CHARS - 3].rstrip() + "..."
    return f"{TRANSFORM_ERROR_MARKER} {text}"


def output_fn(
    prediction: TransformedBatch | RejectedRequest, accept: str | None
) -> tuple[str, str] | RejectedRequest:
    """Serialise as CSV (default) or JSON; returns ``(body, content type)`` or the rejection to answer.

    In a transform mode rejected rows become the marker line (module docstring), once the Accept
    type is known to be one this script writes.
    """
    rows_become_marker = (
        isinstance(prediction, RejectedRequest)
        and prediction.rejects_the_rows
        and mode_from_environment(os.environ).is_transform
    )
    if isinstance(prediction, RejectedRequest) and not rows_become_marker:
        return prediction
    try:
        media_type = _response_media_type(accept)
    except InvalidRequestError as error:
        return RejectedRequest.from_error(error)
    if isinstance(prediction, RejectedRequest):
        return transform_error_line(prediction.message), CSV_MEDIA_TYPE
    body = format_csv(prediction) if media_type == CSV_MEDIA_TYPE else format_json(prediction)
    return body, media_type


# --- Training entry ------------------------------------------------------------------------------


class TrainingInputError(ValueError):
    """The train channel cannot be used; the message names the file and the problem."""


def read_training_rows(train_dir: Path) -> tuple[ParsedBatch, list[dict[str, Any]]]:
    """Every file under ``train_dir`` (recursively, sorted), parsed as labelled rows."""
    if not train_dir.is_dir():
        raise TrainingInputError(f"The train channel {train_dir} is not a directory.")
    files = sorted(path for path in train_dir.rglob("*") if path.is_file())
    if not files:
        raise TrainingInputError(
            f"The train channel {train_dir} holds no files; give it every location's train CSV."
        )
    batches: list[ParsedBatch] = []
    summary: list[dict[str, Any]] = []
    for path in files:
        name = path.relative_to(train_dir).as_posix()
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise TrainingInputError(f"Train channel file {name} is not UTF-8 text.") from None
        if not text.strip():
            raise TrainingInputError(
                f"Train channel file {name} is empty; every file must hold labelled rows."
            )
        try:
            batch = parse_csv(text, Mode.LABELLED_TRANSFORM)
        except InvalidRequestError as error:
            raise TrainingInputError(f"Train channel file {name}: {error.message}") from None
        batches.append(batch)
        summary.append({"file": name, "rows": len(batch)})
    return ParsedBatch.concatenate(batches), summary


def train(train_dir: Path, model_dir: Path, feature_dim: int | None = None) -> dict[str, Any]:
    """Fit the shared preprocessor on every training file and save it with its metadata."""
    rows, files = read_training_rows(train_dir)
    column_transformer = build_column_transformer().fit(rows.feature_frame())
    loaded = LoadedPreprocessor(column_transformer)
    if feature_dim is not None and loaded.feature_count != feature_dim:
        raise TrainingInputError(
            f"The fitted preprocessor emits {loaded.feature_count} features "
            f"({', '.join(loaded.output_columns)}) but feature_dim is {feature_dim}; FRONT_PORCH and DECK "
            "must each take both values 'y' and 'n' in the training data."
        )
    metadata = {
        "artifact_format": ARTIFACT_FORMAT,
        "scikit_learn_version": sklearn.__version__,
        "input_columns": list(FEATURE_COLUMNS),
        "label_column": LABEL_COLUMN,
        "output_columns": list(loaded.output_columns),
        "training_rows": len(rows),
        "training_files": files,
    }
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(column_transformer, model_dir / MODEL_FILE)
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    shutil.copytree(
        Path(__file__).resolve().parent,
        model_dir / CODE_DIR,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*", CODE_DIR),
        dirs_exist_ok=True,
    )
    return metadata


def report_failure(reason: str, environ: Mapping[str, str]) -> None:
    """Print ``reason`` and write it to ``SM_OUTPUT_DIR/failure``, where SageMaker reads the
    FailureReason (the container's runner keeps a failure file the script wrote; module docstring)."""
    print(reason, file=sys.stderr)
    output_dir = environ.get("SM_OUTPUT_DIR")
    if output_dir:
        failure = Path(output_dir) / FAILURE_FILE
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(reason + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Script-mode entry: SageMaker runs ``python housing_preprocessor.py --<hyperparameter> <value>``."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(description="Fit the shared housing preprocessor.")
    parser.add_argument(
        "--train", type=Path, default=env.get("SM_CHANNEL_TRAIN"), help="train channel folder"
    )
    parser.add_argument(
        "--model-dir", type=Path, default=env.get("SM_MODEL_DIR"), help="where to save the model"
    )
    parser.add_argument(
        "--feature_dim",
        type=int,
        default=None,
        help="fail unless the output width equals this (linear learner)",
    )
    args = parser.parse_args(argv)
    if args.train is None or args.model_dir is None:
        parser.error("no train channel or model folder: run inside SageMaker or pass --train and --model-dir")
    try:
        metadata = train(args.train, args.model_dir, args.feature_dim)
    except TrainingInputError as error:
        report_failure(f"Preprocessor training failed: {error}", env)
        return 1
    except Exception as error:
        report_failure(f"Preprocessor training failed unexpectedly: {type(error).__name__}: {error}", env)
        raise
    print(
        json.dumps(
            {key: metadata[key] for key in ("training_rows", "output_columns", "scikit_learn_version")}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
