"""The readers every handler validates its event and environment with (``mme_shared.handler_input``).

Each reader either returns a typed value or raises InputError with one sentence naming the field or
variable, what it got and what is allowed; the messages are pinned here whole.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import pytest

from mme_shared import handler_input
from mme_shared.handler_input import (
    InputError,
    JsonObject,
    environment_algorithm,
    environment_bucket,
    environment_fraction,
    environment_integer,
    environment_kms_key_arn,
    environment_training_step,
    event_object,
    json_type,
    rejected_as,
)

EXPECTED = 'expected {"run_id": str, "location": str}'
RUN_ID_RULE = "1 to 24 characters from A-Z, a-z, 0-9 and '-', starting and ending with a letter or digit"
LOCATION_RULE = "1 to 32 characters from A-Z, a-z, 0-9, '_' and '-', starting with a letter or digit"
GENERATION_RULE = f"'pp-' followed by a run id ({RUN_ID_RULE})"


def fields(**values: object) -> JsonObject:
    """The event ``values`` as the readers see it once its field names were checked."""
    return event_object(values, allowed=None, expected=EXPECTED)


def rejected(read: Callable[[], object], message: str) -> None:
    """``read()`` raises InputError with exactly ``message``."""
    with pytest.raises(InputError) as raised:
        read()
    assert str(raised.value) == message


# --------------------------------------------------------------------------------------------------
# json_type and rejected_as


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (None, "null"),
        (True, "boolean"),
        (False, "boolean"),
        ("", "string"),
        (0, "number"),
        (1.5, "number"),
        ([], "array"),
        ({}, "object"),
        ((1, 2), "tuple"),
    ],
)
def test_json_type_names_a_parsed_value_as_json_does(value: object, name: str) -> None:
    assert json_type(value) == name


class InvalidThingRequest(Exception):  # noqa: N818 (named like the handlers' error classes)
    """A handler's own error class."""


def test_rejected_as_raises_an_input_error_as_the_handlers_class_with_the_same_message() -> None:
    with pytest.raises(InvalidThingRequest) as raised, rejected_as(InvalidThingRequest):
        fields(refit="yes").boolean("refit")
    assert type(raised.value) is InvalidThingRequest
    assert str(raised.value) == "refit must be true or false, got string."
    assert raised.value.__suppress_context__  # the traceback shows the handler's error only


def test_rejected_as_leaves_other_errors_and_results_alone() -> None:
    with pytest.raises(ValueError, match=r"^a bug$"), rejected_as(InvalidThingRequest):
        raise ValueError("a bug")  # not an input error: it must not be reported as a bad request
    with rejected_as(InvalidThingRequest):
        assert fields(refit=True).boolean("refit") is True


def test_an_input_error_is_a_value_error() -> None:
    """Handlers that catch ValueError around the environment readers keep working."""
    assert issubclass(InputError, ValueError)


# --------------------------------------------------------------------------------------------------
# event_object


def test_event_object_accepts_an_object_with_allowed_and_required_fields() -> None:
    event = {"run_id": "run-7", "location": "NewYork_NY"}
    checked = event_object(event, allowed=("run_id", "location"), required=("run_id",), expected=EXPECTED)
    assert checked == JsonObject(values=event, what="The event", expected=EXPECTED)
    assert event_object({"any": 1}, allowed=None, expected=EXPECTED).values == {"any": 1}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (["run-7"], f"The event must be a JSON object, got array; {EXPECTED}."),
        (None, f"The event must be a JSON object, got null; {EXPECTED}."),
        ("run-7", f"The event must be a JSON object, got string; {EXPECTED}."),
        (
            {"run_id": "r", "split": "train", "bucket": "b"},
            f"The event has unexpected field(s) bucket, split; {EXPECTED}.",
        ),
        ({}, f"The event is missing run_id, location; {EXPECTED}."),
        ({"location": "L"}, f"The event is missing run_id; {EXPECTED}."),
        # An unexpected field is named before a missing one.
        ({"split": "train"}, f"The event has unexpected field(s) split; {EXPECTED}."),
    ],
)
def test_event_object_rejects(event: object, message: str) -> None:
    rejected(
        lambda: event_object(
            event, allowed=("run_id", "location"), required=("run_id", "location"), expected=EXPECTED
        ),
        message,
    )


def test_event_object_names_the_object_as_told() -> None:
    rejected(
        lambda: event_object(7, allowed=("refit",), expected="expected {}", what="The execution input"),
        "The execution input must be a JSON object, got number; expected {}.",
    )


# --------------------------------------------------------------------------------------------------
# Strings and the project's names


def test_string_accepts_a_string_matching_the_pattern() -> None:
    assert fields(name="abc").string("name", rule="letters", pattern=re.compile("[a-z]+")) == "abc"
    assert fields(name="").string("name", rule="any text") == ""


def test_string_rejects_another_type_and_a_mismatch() -> None:
    letters = re.compile("[a-z]+")
    rejected(
        lambda: fields(name=7).string("name", rule="letters", pattern=letters),
        "name must be a string (letters), got number.",
    )
    rejected(lambda: fields().string("name", rule="letters"), "name must be a string (letters), got null.")
    rejected(
        lambda: fields(name="ab1").string("name", rule="letters", pattern=letters),
        "name 'ab1' is not allowed: use letters.",
    )
    rejected(
        lambda: fields(name="ab1").string("name", rule="letters", pattern=letters, hint="see the docs"),
        "name 'ab1' is not allowed: use letters; see the docs.",
    )


def test_a_rejected_long_string_is_quoted_only_in_part() -> None:
    value = "x" * 5000 + "!"
    with pytest.raises(InputError) as raised:
        fields(name=value).string("name", rule="letters", pattern=re.compile("[a-z]+"))
    shown = "'" + "x" * (handler_input.SHOWN_MAX_CHARS - 4) + "..."
    assert str(raised.value) == f"name {shown} is not allowed: use letters."


def test_run_id() -> None:
    assert fields(run_id="run-2025-05-01").run_id() == "run-2025-05-01"
    assert fields(run_id="r" * 24).run_id() == "r" * 24
    rejected(lambda: fields(run_id="run_7").run_id(), f"run_id 'run_7' is not allowed: use {RUN_ID_RULE}.")
    rejected(
        lambda: fields(run_id="run-7-").run_id(hint="pass the execution name"),
        f"run_id 'run-7-' is not allowed: use {RUN_ID_RULE}; pass the execution name.",
    )
    rejected(
        lambda: fields(run_id="r" * 25).run_id(), f"run_id '{'r' * 25}' is not allowed: use {RUN_ID_RULE}."
    )
    rejected(lambda: fields(run_id=17).run_id(), f"run_id must be a string ({RUN_ID_RULE}), got number.")


def test_location() -> None:
    assert fields(location="NewYork_NY").location() == "NewYork_NY"
    assert fields(place="a-b_c").location("place") == "a-b_c"
    rejected(
        lambda: fields(location="../models").location(),
        f"location '../models' is not allowed: use {LOCATION_RULE}.",
    )
    rejected(
        lambda: fields(location="New York").location(),
        f"location 'New York' is not allowed: use {LOCATION_RULE}.",
    )
    rejected(
        lambda: fields(location=["NewYork_NY"]).location(),
        f"location must be a string ({LOCATION_RULE}), got array.",
    )


def test_generation() -> None:
    assert fields(generation="pp-run-7").generation() == "pp-run-7"
    rejected(
        lambda: fields(generation="latest").generation(),
        f"generation 'latest' is not allowed: use {GENERATION_RULE}.",
    )
    rejected(
        lambda: fields(generation="pp-run_7").generation(hint="pass the plan's generation"),
        f"generation 'pp-run_7' is not allowed: use {GENERATION_RULE}; pass the plan's generation.",
    )
    rejected(
        lambda: fields(generation=None).generation(),
        f"generation must be a string ({GENERATION_RULE}), got null.",
    )


# --------------------------------------------------------------------------------------------------
# Booleans, whole numbers, arrays


def test_boolean() -> None:
    assert fields(refit=True).boolean("refit") is True
    assert fields(refit=False).boolean("refit", default=True) is False
    assert fields().boolean("refit", default=False) is False
    assert fields(refit=None).boolean("refit", default=True) is True
    rejected(lambda: fields(refit="yes").boolean("refit"), "refit must be true or false, got string.")
    rejected(
        lambda: fields(refit=1).boolean("refit", default=False), "refit must be true or false, got number."
    )
    rejected(lambda: fields().boolean("refit"), "refit must be true or false, got null.")


def test_integer() -> None:
    assert fields(count=1).integer("count", minimum=1) == 1
    assert fields(count=10).integer("count", minimum=1, maximum=10) == 10
    rejected(
        lambda: fields(count=0).integer("count", minimum=1),
        "count must be a whole number of at least 1, got 0.",
    )
    rejected(
        lambda: fields(count=11).integer("count", minimum=1, maximum=10),
        "count must be a whole number from 1 to 10, got 11.",
    )
    rejected(
        lambda: fields(count=True).integer("count", minimum=0),
        "count must be a whole number of at least 0, got boolean.",
    )
    rejected(
        lambda: fields(count=2.0).integer("count", minimum=1, hint="pass the plan's count"),
        "count must be a whole number of at least 1, got number; pass the plan's count.",
    )
    rejected(
        lambda: fields(count="3").integer("count", minimum=1),
        "count must be a whole number of at least 1, got string.",
    )


def test_array() -> None:
    assert fields(locations=["a", 7]).array("locations", items="location names") == ["a", 7]
    rejected(
        lambda: fields(locations="NewYork_NY").array("locations", items="location names"),
        "locations must be a JSON array of location names, got string.",
    )


# --------------------------------------------------------------------------------------------------
# Nested objects and alternatives


MAP_EXPECTED = 'expected {"MapRunArn": str, "ResultWriterDetails": {"Bucket": str, "Key": str}}'


def test_nested_objects_name_their_fields_by_path() -> None:
    event = fields(map_result={"MapRunArn": "arn", "ResultWriterDetails": {"Bucket": "b", "Key": 7}})
    map_result = event.nested("map_result", required=("MapRunArn",), expected=MAP_EXPECTED)
    details = map_result.nested("ResultWriterDetails", allowed=("Bucket", "Key"), expected=MAP_EXPECTED)
    assert details.string("Bucket", rule="a bucket") == "b"
    rejected(
        lambda: details.string("Key", rule="an S3 key"),
        "map_result.ResultWriterDetails.Key must be a string (an S3 key), got number.",
    )


@pytest.mark.parametrize(
    ("map_result", "message"),
    [
        ([], f"map_result must be a JSON object, got array; {MAP_EXPECTED}."),
        ({"ResultWriterDetails": {}}, f"map_result is missing MapRunArn; {MAP_EXPECTED}."),
        (
            {"MapRunArn": "arn", "ResultWriterDetails": "s3://b/k"},
            f"map_result.ResultWriterDetails must be a JSON object, got string; {MAP_EXPECTED}.",
        ),
        (
            {"MapRunArn": "arn", "ResultWriterDetails": {"Bucket": "b", "Key": "k", "Extra": 1}},
            f"map_result.ResultWriterDetails has unexpected field(s) Extra; {MAP_EXPECTED}.",
        ),
    ],
)
def test_nested_objects_are_checked_like_the_event(map_result: object, message: str) -> None:
    def read() -> JsonObject:
        outer = fields(map_result=map_result).nested(
            "map_result", required=("MapRunArn",), expected=MAP_EXPECTED
        )
        return outer.nested("ResultWriterDetails", allowed=("Bucket", "Key"), expected=MAP_EXPECTED)

    rejected(read, message)


def test_has_counts_null_as_not_given() -> None:
    event = fields(a=0, b=None, c=False)
    assert [event.has(key) for key in ("a", "b", "c", "d")] == [True, False, True, False]


def test_one_of() -> None:
    assert fields(location="L").one_of("location", "artifact") == "location"
    assert fields(artifact="preprocessor", location=None).one_of("location", "artifact") == "artifact"
    rejected(
        lambda: fields(location="L", artifact="preprocessor").one_of("location", "artifact"),
        f"The event must have exactly one of location and artifact, got both; {EXPECTED}.",
    )
    rejected(
        lambda: fields(location=None).one_of("location", "artifact"),
        f"The event must have exactly one of location and artifact, got neither; {EXPECTED}.",
    )
    nested = fields(request={}).nested("request", expected="expected {}")
    rejected(
        lambda: nested.one_of("a", "b"),
        "request must have exactly one of request.a and request.b, got neither; expected {}.",
    )


# --------------------------------------------------------------------------------------------------
# Environment variables

BUCKET_RULE = "is not an S3 bucket name; the stack must set it to the artifact bucket."
KMS_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize("bucket", ["mme-artifacts", "a.b-c", "abc", "a" * 63])
def test_environment_bucket_accepts(bucket: str) -> None:
    assert environment_bucket({"BUCKET_NAME": bucket}) == bucket


@pytest.mark.parametrize("bucket", ["", "Not_A_Bucket", "ab", "a" * 64, "-abc", " abc"])
def test_environment_bucket_rejects(bucket: str) -> None:
    environ = {"BUCKET_NAME": bucket} if bucket else {}
    rejected(
        lambda: environment_bucket(environ), f"Environment variable BUCKET_NAME {bucket!r} {BUCKET_RULE}"
    )


def test_environment_kms_key_arn_accepts_a_key_or_alias_arn_in_any_partition() -> None:
    assert environment_kms_key_arn({"KMS_KEY_ARN": KMS_KEY_ARN}) == KMS_KEY_ARN
    alias = "arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/project"
    assert environment_kms_key_arn({"KMS_KEY_ARN": alias}) == alias


@pytest.mark.parametrize("value", ["", "alias/aws/s3", KMS_KEY_ARN.replace("kms", "s3")])
def test_environment_kms_key_arn_rejects(value: str) -> None:
    rejected(
        lambda: environment_kms_key_arn({"KMS_KEY_ARN": value}),
        f"Environment variable KMS_KEY_ARN {value!r} is not a KMS key ARN; the stack must set it to "
        "the project key's ARN.",
    )


def test_environment_algorithm() -> None:
    assert environment_algorithm({"ALGORITHM": "linear-learner"}) == "linear-learner"
    rejected(
        lambda: environment_algorithm({"ALGORITHM": "k-NN"}),
        "Environment variable ALGORITHM 'k-NN' is not an algorithm name (1 to 32 characters from a-z, 0-9 "
        "and '-', starting with a letter); the stack must set it to training.algorithm.",
    )


def test_environment_training_step_accepts_two_lower_case_letters() -> None:
    assert environment_training_step({"TRAINING_JOB_STEP": "ll"}) == "ll"


@pytest.mark.parametrize("step", ["", "pp", "tt", "LL", "lll"])
def test_environment_training_step_rejects(step: str) -> None:
    rejected(
        lambda: environment_training_step({"TRAINING_JOB_STEP": step}),
        f"Environment variable TRAINING_JOB_STEP: training-job step {step!r} is not allowed: use two "
        "lower-case letters other than pp, tt, tv.",
    )


@pytest.mark.parametrize(
    ("text", "minimum", "maximum", "value"),
    [("1", 1, None, 1), (" 10000 ", 1, None, 10_000), ("0", 0, 5, 0), ("5", 0, 5, 5), ("-3", -5, None, -3)],
)
def test_environment_integer_accepts(text: str, minimum: int, maximum: int | None, value: int) -> None:
    assert environment_integer({"N": text}, "N", minimum=minimum, maximum=maximum) == value


@pytest.mark.parametrize(
    ("environ", "maximum", "message"),
    [
        ({}, None, "Environment variable N '' must be a whole number of at least 1."),
        ({"N": "0"}, None, "Environment variable N '0' must be a whole number of at least 1."),
        ({"N": "-5"}, None, "Environment variable N '-5' must be a whole number of at least 1."),
        ({"N": "ten"}, None, "Environment variable N 'ten' must be a whole number of at least 1."),
        ({"N": "4.0"}, None, "Environment variable N '4.0' must be a whole number of at least 1."),
        ({"N": "11"}, 10, "Environment variable N '11' must be a whole number from 1 to 10."),
    ],
)
def test_environment_integer_rejects(environ: dict[str, str], maximum: int | None, message: str) -> None:
    rejected(lambda: environment_integer(environ, "N", minimum=1, maximum=maximum), message)


@pytest.mark.parametrize(("text", "value"), [("0", 0.0), ("0.2", 0.2), (" 0.999 ", 0.999), ("1e-3", 0.001)])
def test_environment_fraction_accepts(text: str, value: float) -> None:
    assert math.isclose(environment_fraction({"F": text}, "F"), value)


@pytest.mark.parametrize("text", ["", "1", "1.5", "-0.1", "nan", "inf", "a fifth"])
def test_environment_fraction_rejects(text: str) -> None:
    rejected(
        lambda: environment_fraction({"F": text}, "F"),
        f"Environment variable F {text!r} must be a number from 0 up to (not including) 1.",
    )
