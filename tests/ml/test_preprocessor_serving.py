"""The serving functions on the container-trained artifact: requests, modes, output formats, errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from http import HTTPStatus
from wsgiref.validate import validator

import numpy as np
import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from mme_shared.housing_data import FEATURE_COLUMNS, LocationDataset, to_csv
from preprocessor import housing_preprocessor as hp
from project_config import ProjectConfig

WALKTHROUGH_ROW = "1993,2728,6,3.0,0.7,1,y,y"
FEATURES = ", ".join(FEATURE_COLUMNS)
SERVING_COLUMNS = f"exactly the 8 features {FEATURES} (no PRICE)"
LABELLED_COLUMNS = f"the 8 features ({FEATURES}) followed by PRICE"
LABELLED_ROW = f"{WALKTHROUGH_ROW},439972.62"


def invoke(
    model: hp.LoadedPreprocessor, body: str | bytes, content_type: str = "text/csv", accept: str = "text/csv"
) -> tuple[str, str] | hp.RejectedRequest:
    """One request through input_fn -> predict_fn -> output_fn, as the container chains them."""
    return hp.output_fn(hp.predict_fn(hp.input_fn(body, content_type), model), accept)


def csv_values(body: str) -> np.ndarray:
    return np.array([[float(cell) for cell in line.split(",")] for line in body.split("\n")])


def reference_features(model: hp.LoadedPreprocessor, body: str, mode: hp.Mode) -> np.ndarray:
    """What the fitted ColumnTransformer itself outputs for the same rows."""
    result: np.ndarray = model.column_transformer.transform(hp.parse_csv(body, mode).feature_frame())
    return result


@pytest.mark.usefixtures("serving_mode")
def test_walkthrough_request_gives_feature_dim_csv_features(
    loaded_model: hp.LoadedPreprocessor, default_config: ProjectConfig
) -> None:
    result = invoke(loaded_model, WALKTHROUGH_ROW)
    assert not isinstance(result, hp.RejectedRequest)
    body, content_type = result
    assert content_type == "text/csv"
    assert "\n" not in body
    values = csv_values(body)
    assert values.shape == (1, int(default_config.training.training_hyperparameters["feature_dim"]))
    assert np.array_equal(values, reference_features(loaded_model, WALKTHROUGH_ROW, hp.Mode.SERVING))
    assert values[0, 6:].tolist() == [0.0, 1.0, 0.0, 1.0]  # FRONT_PORCH=y, DECK=y


@pytest.mark.usefixtures("serving_mode")
def test_output_columns_are_the_scaled_numbers_then_the_one_hot_pairs(
    loaded_model: hp.LoadedPreprocessor, default_config: ProjectConfig
) -> None:
    assert loaded_model.feature_count == int(default_config.training.training_hyperparameters["feature_dim"])
    assert loaded_model.output_columns == (
        "numeric__YEAR_BUILT",
        "numeric__SQUARE_FEET",
        "numeric__NUM_BEDROOMS",
        "numeric__NUM_BATHROOMS",
        "numeric__LOT_ACRES",
        "numeric__GARAGE_SPACES",
        "categorical__FRONT_PORCH_n",
        "categorical__FRONT_PORCH_y",
        "categorical__DECK_n",
        "categorical__DECK_y",
    )


@pytest.mark.usefixtures("serving_mode")
def test_json_request_in_both_row_shapes_matches_csv(loaded_model: hp.LoadedPreprocessor) -> None:
    as_csv = invoke(loaded_model, f"{WALKTHROUGH_ROW}\n1980,3500,3,2.5,1.25,2,n,y\n")
    rows: list[list[object]] = [
        [1993, 2728, 6, 3.0, 0.7, 1, "y", "y"],
        [1980, 3500, 3, 2.5, 1.25, 2, "n", "y"],
    ]
    as_list = invoke(loaded_model, json.dumps(rows), "application/json")
    as_objects = invoke(
        loaded_model,
        json.dumps({"instances": [dict(zip(FEATURE_COLUMNS, row, strict=True)) for row in rows]}),
        "application/json; charset=utf-8",
    )
    assert as_csv == as_list == as_objects
    assert not isinstance(as_csv, hp.RejectedRequest)
    assert len(as_csv[0].split("\n")) == 2


@pytest.mark.usefixtures("serving_mode")
def test_json_response_is_the_linear_learner_request_format(loaded_model: hp.LoadedPreprocessor) -> None:
    result = invoke(loaded_model, WALKTHROUGH_ROW, accept="application/json")
    assert not isinstance(result, hp.RejectedRequest)
    body, content_type = result
    assert content_type == "application/json"
    document = json.loads(body)
    assert list(document) == ["instances"]
    assert list(document["instances"][0]) == ["features"]
    features = np.array([document["instances"][0]["features"]])
    assert np.array_equal(features, reference_features(loaded_model, WALKTHROUGH_ROW, hp.Mode.SERVING))


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("", "text/csv"),
        ("*/*", "text/csv"),
        ("text/csv; charset=utf-8", "text/csv"),
        ("application/xml, application/json;q=0.9", "application/json"),
    ],
)
@pytest.mark.usefixtures("serving_mode")
def test_accept_header_picks_the_response_type(
    loaded_model: hp.LoadedPreprocessor, accept: str, content_type: str
) -> None:
    result = invoke(loaded_model, WALKTHROUGH_ROW, accept=accept)
    assert not isinstance(result, hp.RejectedRequest)
    assert result[1] == content_type


@pytest.mark.usefixtures("serving_mode")
def test_unknown_categories_are_encoded_as_all_zero(loaded_model: hp.LoadedPreprocessor) -> None:
    result = invoke(loaded_model, "1993,2728,6,3.0,0.7,1,maybe, Y ")
    assert not isinstance(result, hp.RejectedRequest)
    assert csv_values(result[0])[0, 6:].tolist() == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.usefixtures("labelled_mode")
def test_labelled_transform_puts_the_label_first(
    loaded_model: hp.LoadedPreprocessor,
    rehearsal_datasets: dict[str, LocationDataset],
    default_config: ProjectConfig,
) -> None:
    """What batch transform does to a raw validation file: PRICE moves from last to first."""
    houses = rehearsal_datasets["Chicago_IL"].validation
    raw = to_csv(houses)
    result = invoke(loaded_model, raw.encode("utf-8"))
    assert not isinstance(result, hp.RejectedRequest)
    values = csv_values(result[0])
    assert values.shape == (
        len(houses),
        1 + int(default_config.training.training_hyperparameters["feature_dim"]),
    )
    assert values[:, 0].tolist() == [house.price for house in houses]
    assert np.array_equal(values[:, 1:], reference_features(loaded_model, raw, hp.Mode.LABELLED_TRANSFORM))


@pytest.mark.usefixtures("labelled_mode")
def test_labelled_transform_json_output_carries_the_label(loaded_model: hp.LoadedPreprocessor) -> None:
    result = invoke(loaded_model, LABELLED_ROW, accept="application/json")
    assert not isinstance(result, hp.RejectedRequest)
    instance = json.loads(result[0])["instances"][0]
    assert instance["label"] == 439972.62
    assert len(instance["features"]) == 10


def test_unlabelled_transform_is_the_labelled_output_without_the_label(
    loaded_model: hp.LoadedPreprocessor,
    rehearsal_datasets: dict[str, LocationDataset],
    default_config: ProjectConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same raw file in both transform modes: unlabelled drops the first column and nothing else."""
    houses = rehearsal_datasets["Chicago_IL"].validation
    raw = to_csv(houses)
    outputs = {}
    for mode in (hp.Mode.LABELLED_TRANSFORM, hp.Mode.UNLABELLED_TRANSFORM):
        monkeypatch.setenv(hp.MODE_ENV_VAR, mode.value)
        result = invoke(loaded_model, raw.encode("utf-8"))
        assert not isinstance(result, hp.RejectedRequest)
        assert result[1] == "text/csv"
        outputs[mode] = csv_values(result[0])
    unlabelled = outputs[hp.Mode.UNLABELLED_TRANSFORM]
    assert unlabelled.shape == (
        len(houses),
        int(default_config.training.training_hyperparameters["feature_dim"]),
    )
    assert np.array_equal(unlabelled, outputs[hp.Mode.LABELLED_TRANSFORM][:, 1:])
    assert np.array_equal(unlabelled, reference_features(loaded_model, raw, hp.Mode.UNLABELLED_TRANSFORM))
    assert not np.isin(outputs[hp.Mode.LABELLED_TRANSFORM][:, 0], unlabelled).any()  # no PRICE left


@pytest.mark.usefixtures("unlabelled_mode")
def test_unlabelled_transform_json_output_has_no_label(loaded_model: hp.LoadedPreprocessor) -> None:
    rows: list[list[object]] = [[1993, 2728, 6, 3.0, 0.7, 1, "y", "y", 439972.62]]
    as_objects = [dict(zip((*FEATURE_COLUMNS, "PRICE"), row, strict=True)) for row in rows]
    for body, content_type in [
        (LABELLED_ROW, "text/csv"),
        (json.dumps(rows), "application/json"),
        (json.dumps({"instances": as_objects}), "application/json"),
    ]:
        result = invoke(loaded_model, body, content_type, accept="application/json")
        assert not isinstance(result, hp.RejectedRequest), result
        assert result[1] == "application/json"
        document = json.loads(result[0])
        assert [list(instance) for instance in document["instances"]] == [["features"]]
        features = np.array([document["instances"][0]["features"]])
        assert np.array_equal(features, reference_features(loaded_model, WALKTHROUGH_ROW, hp.Mode.SERVING))


@pytest.mark.usefixtures("unlabelled_mode")
def test_unlabelled_transform_still_reads_the_label_column_in_json_objects(
    loaded_model: hp.LoadedPreprocessor,
) -> None:
    """A row object without PRICE is refused as rows (the marker), as in labelled-transform mode."""
    row = dict(zip(FEATURE_COLUMNS, [1993, 2728, 6, 3.0, 0.7, 1, "y", "y"], strict=True))
    result = invoke(loaded_model, json.dumps([row]), "application/json")
    assert result == (
        f"{hp.TRANSFORM_ERROR_MARKER} Row 1 lacks PRICE; a row object needs exactly the keys "
        f"{FEATURES}, PRICE in unlabelled-transform mode.",
        "text/csv",
    )


def _rejection(result: tuple[str, str] | hp.RejectedRequest) -> hp.RejectedRequest:
    assert isinstance(result, hp.RejectedRequest), f"expected a rejection, got {result!r}"
    return result


BAD_REQUESTS = [
    pytest.param(
        "",
        "text/csv",
        HTTPStatus.BAD_REQUEST,
        f"The request body is empty; send at least one row with {SERVING_COLUMNS}.",
        id="empty-body",
    ),
    pytest.param(
        " \n\t\n",
        "text/csv",
        HTTPStatus.BAD_REQUEST,
        f"The request body is empty; send at least one row with {SERVING_COLUMNS}.",
        id="whitespace-body",
    ),
    pytest.param(
        WALKTHROUGH_ROW,
        "application/x-npy",
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "Content type 'application/x-npy' is not supported; send text/csv or application/json.",
        id="unsupported-content-type",
    ),
    pytest.param(
        f"{WALKTHROUGH_ROW},439972.62",
        "text/csv",
        HTTPStatus.BAD_REQUEST,
        f"Row 1 has 9 fields but 8 are expected here (MME_PREPROCESSOR_MODE=serving): {SERVING_COLUMNS}.",
        id="label-included-9-columns",
    ),
    pytest.param(
        f"{WALKTHROUGH_ROW}\n1993,2728,6,3.0,0.7,1,y",
        "text/csv",
        HTTPStatus.BAD_REQUEST,
        f"Row 2 has 7 fields but 8 are expected here (MME_PREPROCESSOR_MODE=serving): {SERVING_COLUMNS}.",
        id="too-few-columns",
    ),
    pytest.param(
        "1993,big,6,3.0,0.7,1,y,y",
        "text/csv",
        HTTPStatus.BAD_REQUEST,
        "Row 1, column SQUARE_FEET: 'big' is not a finite number.",
        id="non-numeric-number",
    ),
    pytest.param(
        f"{WALKTHROUGH_ROW}\n1993,2728,6,3.0,nan,1,y,y",
        "text/csv",
        HTTPStatus.BAD_REQUEST,
        "Row 2, column LOT_ACRES: 'nan' is not a finite number.",
        id="not-a-number-literal",
    ),
    pytest.param(
        "1993,2728,6,3.0,0.7,1,y,y\n1993,2_728,6,3.0,0.7,1,y,y",
        "text/csv",
        HTTPStatus.BAD_REQUEST,
        "Row 2, column SQUARE_FEET: '2_728' is not a finite number.",
        id="digit-group-underscores",
    ),
    pytest.param(
        "1993,2728,6,3.0,0.7,1,y,",
        "text/csv",
        HTTPStatus.BAD_REQUEST,
        "Row 1, column DECK is empty; send a category such as 'y' or 'n'.",
        id="empty-category",
    ),
    pytest.param(
        f"{','.join(FEATURE_COLUMNS)}\n{WALKTHROUGH_ROW}",
        "text/csv",
        HTTPStatus.BAD_REQUEST,
        "Row 1 is a header (YEAR_BUILT,...); send data rows only, without a header line.",
        id="header-row",
    ),
    pytest.param(
        f"{WALKTHROUGH_ROW}\n\n{WALKTHROUGH_ROW}",
        "text/csv",
        HTTPStatus.BAD_REQUEST,
        f"Row 2 is empty; every line must hold one row with {SERVING_COLUMNS}.",
        id="blank-line-between-rows",
    ),
    pytest.param(
        '1993,2728,6,3.0,0.7,1,"y"x,y',
        "text/csv",
        HTTPStatus.BAD_REQUEST,
        "Row 1 is not valid CSV (',' expected after '\"'); quote a field only as a whole, like \"y\".",
        id="broken-csv-quoting",
    ),
    pytest.param(
        b"1993,2728,6,3.0,0.7,1,\xff,y",
        "text/csv",
        HTTPStatus.BAD_REQUEST,
        "The request body is not valid UTF-8 text; send UTF-8 encoded CSV or JSON.",
        id="invalid-utf8",
    ),
    pytest.param(
        "[[1993, 2728,",
        "application/json",
        HTTPStatus.BAD_REQUEST,
        "The request body is not valid JSON (Expecting value at line 1 column 14).",
        id="malformed-json",
    ),
    pytest.param(
        '{"rows": []}',
        "application/json",
        HTTPStatus.BAD_REQUEST,
        'A JSON object request must have exactly one key, "instances", holding the rows; got keys rows.',
        id="json-object-without-instances",
    ),
    pytest.param(
        "42",
        "application/json",
        HTTPStatus.BAD_REQUEST,
        'A JSON request must be a list of rows or {"instances": [rows]}, got a JSON number.',
        id="json-scalar",
    ),
    pytest.param(
        "[]",
        "application/json",
        HTTPStatus.BAD_REQUEST,
        f"The JSON request holds no rows; send at least one row with {SERVING_COLUMNS}.",
        id="json-no-rows",
    ),
    pytest.param(
        '[["1993", 2728, 6, 3.0, 0.7, 1, "y", "y"]]',
        "application/json",
        HTTPStatus.BAD_REQUEST,
        "Row 1, column YEAR_BUILT: expected a finite JSON number, got '1993'.",
        id="json-number-as-string",
    ),
    pytest.param(
        '[[1993, 2728, 6, 3.0, 0.7, true, "y", "y"]]',
        "application/json",
        HTTPStatus.BAD_REQUEST,
        "Row 1, column GARAGE_SPACES: expected a finite JSON number, got True.",
        id="json-boolean-number",
    ),
    pytest.param(
        '[[1993, 2728, 6, 3.0, NaN, 1, "y", "y"]]',
        "application/json",
        HTTPStatus.BAD_REQUEST,
        "Row 1, column LOT_ACRES: expected a finite JSON number, got nan.",
        id="json-nan",
    ),
    pytest.param(
        f'[[1993, {"9" * 400}, 6, 3.0, 0.7, 1, "y", "y"]]',
        "application/json",
        HTTPStatus.BAD_REQUEST,
        f"Row 1, column SQUARE_FEET: expected a finite JSON number, got {'9' * 20}....",
        id="json-integer-beyond-float",
    ),
    pytest.param(
        '[[1993, 2728, 6, 3.0, 0.7, 1, "y", 1]]',
        "application/json",
        HTTPStatus.BAD_REQUEST,
        'Row 1, column DECK: expected a JSON string such as "y" or "n", got 1.',
        id="json-category-not-text",
    ),
    pytest.param(
        '[{"YEAR_BUILT": 1993, "SQUARE_FEET": 2728, "NUM_BEDROOMS": 6, "NUM_BATHROOMS": 3.0,'
        ' "LOT_ACRES": 0.7, "GARAGE_SPACES": 1, "FRONT_PORCH": "y", "PRICE": 1}]',
        "application/json",
        HTTPStatus.BAD_REQUEST,
        f"Row 1 lacks DECK and has unexpected PRICE; a row object needs exactly the keys {FEATURES} "
        "in serving mode.",
        id="json-object-row-wrong-keys",
    ),
    pytest.param(
        '[[1993, 2728, 6, 3.0, 0.7, 1, "y", "y"], "1993,2728"]',
        "application/json",
        HTTPStatus.BAD_REQUEST,
        "Row 2 is a JSON string; each row must be a list of values in column order or an object keyed by "
        "column name.",
        id="json-row-not-a-row",
    ),
]


@pytest.mark.parametrize(("body", "content_type", "status", "message"), BAD_REQUESTS)
@pytest.mark.usefixtures("serving_mode")
def test_bad_requests_are_client_errors_naming_the_problem(
    loaded_model: hp.LoadedPreprocessor,
    body: str | bytes,
    content_type: str,
    status: HTTPStatus,
    message: str,
) -> None:
    rejection = _rejection(invoke(loaded_model, body, content_type))
    assert (rejection.status, rejection.message) == (status, message)
    with pytest.raises(hp.InvalidRequestError, match=re.escape(message)):
        hp.parse_request(body, content_type, hp.Mode.SERVING)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            WALKTHROUGH_ROW,
            "Row 1 has 8 fields but 9 are expected here (MME_PREPROCESSOR_MODE={mode}): "
            f"{LABELLED_COLUMNS}.",
            id="label-missing",
        ),
        pytest.param(
            f"{WALKTHROUGH_ROW},n/a",
            "Row 1, column PRICE: 'n/a' is not a finite number.",
            id="label-not-a-number",
        ),
    ],
)
def test_transform_modes_require_a_numeric_label(
    loaded_model: hp.LoadedPreprocessor, transform_mode: hp.Mode, body: str, message: str
) -> None:
    """Both read the raw files, label included (unlabelled-transform drops it only from the output).
    Refused as rows, so answered with the marker line (tests/ml/test_transform_errors.py)."""
    message = message.format(mode=transform_mode.value)
    assert invoke(loaded_model, body) == (f"{hp.TRANSFORM_ERROR_MARKER} {message}", "text/csv")
    with pytest.raises(hp.InvalidRequestError, match=re.escape(message)):
        hp.parse_request(body, "text/csv", transform_mode)


@pytest.mark.usefixtures("serving_mode")
def test_unsupported_accept_is_not_acceptable(loaded_model: hp.LoadedPreprocessor) -> None:
    rejection = _rejection(invoke(loaded_model, WALKTHROUGH_ROW, accept="application/xml"))
    assert rejection.status == HTTPStatus.NOT_ACCEPTABLE
    assert (
        rejection.message
        == "Accept type 'application/xml' is not supported; ask for text/csv or application/json."
    )


@pytest.mark.usefixtures("serving_mode")
def test_a_rejection_becomes_an_http_4xx_json_response_in_flask(loaded_model: hp.LoadedPreprocessor) -> None:
    """The container's Flask view returns what output_fn returns; Flask turns a WSGI callable into
    the response with ``Response.force_type`` (werkzeug's), which is what runs here."""
    rejection = _rejection(invoke(loaded_model, f"{WALKTHROUGH_ROW},439972.62"))
    environ = EnvironBuilder(method="POST", path="/invocations").get_environ()
    # Typed as taking a Response, documented (and used by Flask) to run any WSGI application too.
    response = Response.force_type(rejection, environ)  # type: ignore[arg-type]
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert response.get_json() == {"error": "Bad Request", "message": rejection.message}
    # And it is a well-formed WSGI application by the standard library's PEP 3333 validator.
    started: list[str] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], None]:
        started.append(status)
        return lambda data: None

    result = validator(rejection)(environ, start_response)
    try:
        assert b"".join(result) == rejection.body()
    finally:
        result.close()  # type: ignore[attr-defined]
    assert started == ["400 Bad Request"]
