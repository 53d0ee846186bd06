"""The serving-generation on_event handler: its decisions against moto S3, and what it returns or raises.

CDK's Provider framework answers CloudFormation; this handler returns ``{"PhysicalResourceId",
"Data"}`` or raises with one sentence, which becomes the FAILED reason. The sentences are spelled
out literally here, so a reworded message (which users read in the CloudFormation console) is a
deliberate change to this file too.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mme_shared import generation, s3_layout
from tests.lambdas.conftest import ALGORITHM, BUCKET, KMS_KEY_ARN, MotoAccount

_HANDLER_DIR = Path(__file__).resolve().parents[2] / "lambda" / "serving_generation"
if str(_HANDLER_DIR) not in sys.path:
    sys.path.insert(0, str(_HANDLER_DIR))
serving_generation = importlib.import_module("serving_generation")

GEN_A, GEN_B = "pp-run-a", "pp-run-b"
NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
ENDPOINT = "Endpoint-0a1b2c3d4e5f"
SERVING_KEY = "preprocessor/serving.json"
SERVING_ID = f"{BUCKET}/{SERVING_KEY}"
FRAMEWORK_ARN = "arn:aws:lambda:us-east-1:123456789012:function:MmeEndpoint-ServingGenerationFunction"
"""The Provider framework's function: the resources' ServiceToken."""
RESPONSE_URL = (
    "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/"
    "arn%3Aaws%3Acloudformation%3Aus-east-1%3A123456789012%3Astack/MmeEndpoint/abc%7CGen%7Creq-1"
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=7199&X-Amz-Signature=0123abcd"
)
STACK_ID = (
    "arn:aws:cloudformation:us-east-1:123456789012:stack/MmeEndpoint/6d5c5e40-0000-11f0-9e1b-0a1b2c3d4e5f"
)
DEPLOY_FIRST = (
    "run `make deploy` (it deploys storage and training, trains, then deploys the endpoint), or start "
    "the training state machine and wait for it to succeed before deploying the endpoint stack"
)
ENVIRONMENT = {"BUCKET_NAME": BUCKET, "KMS_KEY_ARN": KMS_KEY_ARN, "ALGORITHM": ALGORITHM}


@pytest.fixture(autouse=True)
def _fresh_client() -> Iterator[None]:
    serving_generation._s3_client.cache_clear()
    yield
    serving_generation._s3_client.cache_clear()


# --------------------------------------------------------------------------------------------------
# The bucket's state


def seed(
    aws: MotoAccount,
    generation_id: str,
    *,
    locations: Sequence[str] = (),
    complete: bool = True,
    artifact: bool = True,
    algorithm: str | None = ALGORITHM,
) -> None:
    """A generation as the training state machine leaves it: artifact, pointers, complete.json
    (recording ``algorithm``; None: a record from before there was a choice, without the field)."""
    run_id = generation_id.removeprefix("pp-")
    if artifact:
        aws.put(s3_layout.preprocessor_artifact_key(generation_id), b"preprocessor " + run_id.encode())
    # Only the pointers' keys are read.
    aws.put_many((s3_layout.current_pointer_key(generation_id, location) for location in locations), b"{}")
    if complete:
        record = generation.CompleteGeneration(
            generation=generation_id,
            run_id=run_id,
            location_count=max(len(locations), 1),
            completed_at=NOW,
            algorithm=algorithm or generation.LEGACY_ALGORITHM,
        )
        document = json.loads(record.to_json())
        if algorithm is None:
            del document["algorithm"]
        aws.put(record.key, json.dumps(document).encode())


def point(aws: MotoAccount, key: str, generation_id: str, endpoint_name: str | None = None) -> None:
    """Write newest.json or serving.json."""
    ref = generation.GenerationRef(generation=generation_id, updated_at=NOW, endpoint_name=endpoint_name)
    aws.put(key, ref.to_json())


def newest(aws: MotoAccount, generation_id: str) -> None:
    point(aws, s3_layout.NEWEST_GENERATION_KEY, generation_id)


def serving(aws: MotoAccount, generation_id: str, endpoint_name: str = ENDPOINT) -> None:
    point(aws, SERVING_KEY, generation_id, endpoint_name)


def artifact_version(aws: MotoAccount, generation_id: str) -> str:
    key = s3_layout.preprocessor_artifact_key(generation_id)
    return str(aws.inspect_s3.head_object(Bucket=BUCKET, Key=key)["VersionId"])


# --------------------------------------------------------------------------------------------------
# Requests and answers


def request(request_type: str, properties: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A custom resource request as the Provider framework passes it on (CloudFormation's request)."""
    event: dict[str, Any] = {
        "RequestType": request_type,
        "ServiceToken": FRAMEWORK_ARN,
        "ResponseURL": RESPONSE_URL,
        "StackId": STACK_ID,
        "RequestId": "5f1c0f6e-1b1d-4a5e-9c0a-6f0e7d1c2b3a",
        "LogicalResourceId": "ServingGeneration",
        "ResourceType": "AWS::CloudFormation::CustomResource",
        "ResourceProperties": {"ServiceToken": FRAMEWORK_ARN, **properties},
    }
    if request_type != "Create":
        event["PhysicalResourceId"] = "existing-id"
    if request_type == "Update":
        event["OldResourceProperties"] = dict(event["ResourceProperties"])
    event.update(overrides)
    return event


def resolve_request(request_type: str, generation_id: str, **overrides: Any) -> dict[str, Any]:
    return request(request_type, {"Action": "resolve", "Generation": generation_id}, **overrides)


def record_request(
    request_type: str, generation_id: str, endpoint_name: str = ENDPOINT, **overrides: Any
) -> dict[str, Any]:
    properties = {"Action": "record-serving", "Generation": generation_id, "EndpointName": endpoint_name}
    if request_type != "Create":
        overrides.setdefault("PhysicalResourceId", SERVING_ID)
    return request(request_type, properties, **overrides)


def run(event: object, s3: Any, *, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """What the on_event handler returns to the Provider framework."""
    returned: dict[str, Any] = serving_generation.process_request(
        event, get_s3=lambda: s3, environ=ENVIRONMENT if environ is None else environ, now=lambda: NOW
    )
    return returned


def decide(event: dict[str, Any], s3: Any, *, environ: dict[str, str] | None = None) -> Any:
    """The decision itself (an Outcome: the answer plus the sentence the decision log carries)."""
    return serving_generation.evaluate(
        event, get_s3=lambda: s3, environ=ENVIRONMENT if environ is None else environ, now=lambda: NOW
    )


def refusal(
    event: object,
    s3: Any,
    *,
    environ: dict[str, str] | None = None,
    raises: type[Exception] = serving_generation.Refused,
) -> str:
    """The one sentence the handler raises (the Provider framework's FAILED reason)."""
    with pytest.raises(raises) as raised:
        run(event, s3, environ=environ)
    return str(raised.value)


# --------------------------------------------------------------------------------------------------
# resolve: success


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_a_pinned_complete_generation_resolves_to_itself(aws: MotoAccount, request_type: str) -> None:
    seed(aws, GEN_A, locations=["Chicago_IL"])
    seed(aws, GEN_B, locations=["Chicago_IL"])
    newest(aws, GEN_B)  # pinned wins over newest
    event = resolve_request(request_type, GEN_A)

    outcome = decide(event, aws.s3)

    version = artifact_version(aws, GEN_A)
    assert outcome.response() == {
        "PhysicalResourceId": f"{BUCKET}/preprocessor/{GEN_A}/model.tar.gz",
        "Data": {"Generation": GEN_A, "ArtifactVersionId": version},
    }
    assert "PutObject" not in aws.recorder.operations()  # resolving writes nothing
    assert outcome.summary == (
        f"{GEN_A}: complete, artifact s3://{BUCKET}/preprocessor/{GEN_A}/model.tar.gz version {version}."
    )


def test_newest_resolves_to_the_generation_newest_json_names(aws: MotoAccount) -> None:
    seed(aws, GEN_A, locations=["Chicago_IL"])
    seed(aws, GEN_B, locations=["Chicago_IL", "NewYork_NY"])
    newest(aws, GEN_B)
    serving(aws, GEN_A)  # B has every location A has, so switching is allowed

    outcome = decide(resolve_request("Create", "newest"), aws.s3)

    assert outcome.data == {"Generation": GEN_B, "ArtifactVersionId": artifact_version(aws, GEN_B)}
    assert outcome.physical_resource_id == f"{BUCKET}/preprocessor/{GEN_B}/model.tar.gz"
    assert outcome.summary.startswith(f"newest is {GEN_B}: complete")


def test_an_unversioned_bucket_reports_the_null_version(aws: MotoAccount) -> None:
    aws.inspect_s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
    seed(aws, GEN_A)

    assert run(resolve_request("Create", GEN_A), aws.s3)["Data"]["ArtifactVersionId"] == "null"


def test_staying_on_the_served_generation_skips_the_location_check(aws: MotoAccount) -> None:
    seed(aws, GEN_A, locations=["Chicago_IL"])
    serving(aws, GEN_A)

    assert run(resolve_request("Update", GEN_A), aws.s3)["Data"]["Generation"] == GEN_A

    listed = [str(c.params["Prefix"]) for c in aws.recorder.calls if c.operation == "ListObjectsV2"]
    assert not [prefix for prefix in listed if prefix.startswith("model-pointers/")]


def read_serving(aws: MotoAccount) -> generation.GenerationRef:
    ref = generation.read_ref(aws.inspect_s3, BUCKET, SERVING_KEY)
    assert ref is not None
    return ref


def announce(aws: MotoAccount, served: str, following: str) -> None:
    """serving.json as a resolve of a switch leaves it."""
    ref = generation.GenerationRef(
        generation=served, updated_at=NOW, endpoint_name=ENDPOINT, next_generation=following
    )
    aws.put(SERVING_KEY, ref.to_json())


@pytest.mark.parametrize("requested", ["pinned", "newest"])
def test_resolving_another_generation_announces_it_as_next_generation(
    aws: MotoAccount, requested: str
) -> None:
    """Before the Model (and so the endpoint update) exists, clients learn what is coming."""
    seed(aws, GEN_A, locations=["Chicago_IL"])
    seed(aws, GEN_B, locations=["Chicago_IL"])
    newest(aws, GEN_B)
    serving(aws, GEN_A)

    outcome = decide(resolve_request("Update", GEN_B if requested == "pinned" else "newest"), aws.s3,
                     environ=aws.environment())  # fmt: skip

    assert outcome.data["Generation"] == GEN_B
    assert read_serving(aws) == generation.GenerationRef(
        generation=GEN_A, updated_at=NOW, endpoint_name=ENDPOINT, next_generation=GEN_B
    )
    assert f"Announced next_generation {GEN_B}" in outcome.summary
    put = next(c for c in aws.recorder.calls if c.operation == "PutObject")
    assert put.key == SERVING_KEY
    assert (put.params["ServerSideEncryption"], put.params["SSEKMSKeyId"]) == ("aws:kms", aws.kms_key_arn)


def test_resolving_the_served_generation_writes_nothing(aws: MotoAccount) -> None:
    seed(aws, GEN_A)
    serving(aws, GEN_A)
    before = aws.bucket_state()

    assert (
        run(resolve_request("Update", GEN_A), aws.s3, environ=aws.environment())["Data"]["Generation"]
        == GEN_A
    )

    assert aws.bucket_state() == before
    assert read_serving(aws).next_generation is None


def test_without_serving_json_nothing_is_announced(aws: MotoAccount) -> None:
    """The first deploy: nothing is served yet, and record-serving writes the first record."""
    seed(aws, GEN_A)
    before = aws.bucket_state()

    assert (
        run(resolve_request("Create", GEN_A), aws.s3, environ=aws.environment())["Data"]["Generation"]
        == GEN_A
    )

    assert aws.bucket_state() == before


def test_an_announcement_already_made_is_not_rewritten(aws: MotoAccount) -> None:
    seed(aws, GEN_A)
    seed(aws, GEN_B)
    announce(aws, GEN_A, GEN_B)
    before = aws.bucket_state()

    assert (
        run(resolve_request("Update", GEN_B), aws.s3, environ=aws.environment())["Data"]["Generation"]
        == GEN_B
    )

    assert aws.bucket_state() == before


def test_a_rollback_update_of_the_resolver_withdraws_next_generation(aws: MotoAccount) -> None:
    """CloudFormation rolls the resolver back with an Update carrying the old generation."""
    seed(aws, GEN_A)
    seed(aws, GEN_B)
    serving(aws, GEN_A)
    run(resolve_request("Update", GEN_B), aws.s3, environ=aws.environment())
    assert read_serving(aws).next_generation == GEN_B
    rollback = resolve_request("Update", GEN_A)
    rollback["OldResourceProperties"] = resolve_request("Update", GEN_B)["ResourceProperties"]

    outcome = decide(rollback, aws.s3, environ=aws.environment())

    assert outcome.data["Generation"] == GEN_A
    assert read_serving(aws) == generation.GenerationRef(
        generation=GEN_A, updated_at=NOW, endpoint_name=ENDPOINT
    )
    assert f"Removed next_generation {GEN_B}" in outcome.summary


def test_a_switch_to_a_third_generation_replaces_the_announcement(aws: MotoAccount) -> None:
    gen_c = "pp-run-c"
    for generation_id in (GEN_A, GEN_B, gen_c):
        seed(aws, generation_id)
    announce(aws, GEN_A, GEN_B)

    run(resolve_request("Update", gen_c), aws.s3, environ=aws.environment())

    assert (read_serving(aws).generation, read_serving(aws).next_generation) == (GEN_A, gen_c)


def test_record_serving_clears_next_generation(aws: MotoAccount) -> None:
    """Once the endpoint serves the new generation, serving.json names it and nothing is next."""
    announce(aws, GEN_A, GEN_B)

    run(record_request("Update", GEN_B), aws.s3, environ=aws.environment())

    assert read_serving(aws) == generation.GenerationRef(
        generation=GEN_B, updated_at=NOW, endpoint_name=ENDPOINT
    )
    assert "next_generation" not in json.loads(aws.read(SERVING_KEY))


@pytest.mark.parametrize(
    "breakage",
    ["incomplete", "missing-artifact", "lost-locations"],
)
def test_a_failed_resolve_writes_nothing(aws: MotoAccount, breakage: str) -> None:
    seed(aws, GEN_A, locations=["Chicago_IL", "Denver_CO"])
    seed(
        aws,
        GEN_B,
        locations=["Chicago_IL"] if breakage == "lost-locations" else ["Chicago_IL", "Denver_CO"],
        complete=breakage != "incomplete",
        artifact=breakage != "missing-artifact",
    )
    serving(aws, GEN_A)
    before = aws.bucket_state()

    refusal(resolve_request("Update", GEN_B), aws.s3, environ=aws.environment(),
            raises=serving_generation.Unservable)  # fmt: skip

    assert aws.bucket_state() == before
    assert not [c for c in aws.recorder.calls if c.operation in ("PutObject", "DeleteObject")]


class FailingPuts:
    """The function's S3 client whose PutObject fails (every other call goes to moto)."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    def put_object(self, **_: Any) -> None:
        raise ConnectionError("the connection was reset")


def test_a_failed_write_of_the_announcement_fails_the_resolve(aws: MotoAccount) -> None:
    """Nothing half-done: the write is the last step, so its failure is the resolve's failure."""
    seed(aws, GEN_A)
    seed(aws, GEN_B)
    serving(aws, GEN_A)

    reason = refusal(resolve_request("Update", GEN_B), FailingPuts(aws.s3), environ=aws.environment(),
                     raises=serving_generation.RequestFailed)  # fmt: skip

    assert reason == "The serving-generation request failed: ConnectionError: the connection was reset"
    assert read_serving(aws).next_generation is None


def test_existence_is_asked_by_listing_the_exact_key_not_by_a_404(aws: MotoAccount) -> None:
    """The function's ListBucket is limited to prefixes; a 404 would need it on the whole bucket."""
    seed(aws, GEN_A)

    run(resolve_request("Create", GEN_A), aws.s3)

    assert [(c.operation, c.params.get("Prefix") or c.key) for c in aws.recorder.calls] == [
        ("ListObjectsV2", f"preprocessor/{GEN_A}/complete.json"),
        ("GetObject", f"preprocessor/{GEN_A}/complete.json"),
        ("ListObjectsV2", f"preprocessor/{GEN_A}/model.tar.gz"),
        ("HeadObject", f"preprocessor/{GEN_A}/model.tar.gz"),
        ("ListObjectsV2", SERVING_KEY),
    ]


# --------------------------------------------------------------------------------------------------
# resolve: each reason to refuse


def unservable(event: dict[str, Any], s3: Any, *, environ: dict[str, str] | None = None) -> str:
    return refusal(event, s3, environ=environ, raises=serving_generation.Unservable)


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_nothing_complete_yet_fails_saying_what_to_run(aws: MotoAccount, request_type: str) -> None:
    seed(aws, GEN_A, complete=False)  # a first run still training: no newest.json yet

    assert unservable(resolve_request(request_type, "newest"), aws.s3) == (
        "No complete preprocessor generation exists yet "
        f"(s3://{BUCKET}/preprocessor/newest.json does not exist): {DEPLOY_FIRST}."
    )


@pytest.mark.parametrize("named_by", ["pinned", "newest"])
def test_a_generation_without_complete_json_fails(aws: MotoAccount, named_by: str) -> None:
    seed(aws, GEN_A, locations=["Chicago_IL"], complete=False)
    if named_by == "newest":
        newest(aws, GEN_A)  # a hand-edited newest.json must not get past the check either
    event = resolve_request("Create", GEN_A if named_by == "pinned" else "newest")

    assert unservable(event, aws.s3) == (
        f"Preprocessor generation {GEN_A} is not complete (s3://{BUCKET}/preprocessor/{GEN_A}/complete.json "
        "does not exist: its training run has not finished, or some of its locations failed): wait for the "
        "run to succeed, or deploy a complete generation (`make deploy` picks the newest, `make deploy "
        "GENERATION=<generation>` pins one)."
    )


def test_a_missing_artifact_fails(aws: MotoAccount) -> None:
    seed(aws, GEN_A, artifact=False)
    aws.put(f"preprocessor/{GEN_A}/model.tar.gz.partial", b"a key the artifact is a prefix of")

    assert unservable(resolve_request("Update", GEN_A), aws.s3) == (
        f"The preprocessor artifact of generation {GEN_A}, s3://{BUCKET}/preprocessor/{GEN_A}/model.tar.gz, "
        "does not exist although the generation is complete (it was deleted): deploy another complete "
        "generation with `make deploy GENERATION=<generation>`, or refit a new one with a training run."
    )


@pytest.mark.parametrize("named_by", ["pinned", "newest"])
def test_a_generation_of_another_algorithm_fails_and_writes_nothing(aws: MotoAccount, named_by: str) -> None:
    """Its models cannot be loaded by the endpoint's MultiModel container."""
    seed(aws, GEN_A, locations=["Chicago_IL"])
    seed(aws, GEN_B, locations=["Chicago_IL"], algorithm="xgboost")
    serving(aws, GEN_A)
    newest(aws, GEN_B)
    before = aws.bucket_state()
    event = resolve_request("Update", GEN_B if named_by == "pinned" else "newest")

    assert unservable(event, aws.s3) == (
        f"Preprocessor generation {GEN_B} holds xgboost models, but the endpoint's MultiModel container is "
        "linear-learner (training.algorithm), which cannot load them: train a linear-learner generation "
        "first (`mme deploy` does, or a training run: a run after the algorithm changed fits a new "
        "generation for every location), or set training.algorithm back to xgboost."
    )
    assert aws.bucket_state() == before


def test_a_record_without_an_algorithm_holds_linear_learner_models(aws: MotoAccount) -> None:
    """complete.json from before there was a choice of algorithm has no ``algorithm`` field."""
    seed(aws, GEN_A, algorithm=None)
    assert "algorithm" not in json.loads(aws.read(f"preprocessor/{GEN_A}/complete.json"))
    event = resolve_request("Create", GEN_A)

    assert (
        run(event, aws.s3, environ={**aws.environment(), "ALGORITHM": "linear-learner"})["Data"]["Generation"]
        == GEN_A
    )
    assert unservable(event, aws.s3, environ={**aws.environment(), "ALGORITHM": "knn"}).startswith(
        f"Preprocessor generation {GEN_A} holds linear-learner models, but"
    )


@pytest.mark.parametrize("algorithm", ["xgboost", "knn", "randomcutforest"])
def test_an_endpoint_of_another_algorithm_serves_a_generation_of_its_own(
    aws: MotoAccount, algorithm: str
) -> None:
    seed(aws, GEN_A, algorithm=algorithm)

    answer = run(
        resolve_request("Create", GEN_A), aws.s3, environ={**aws.environment(), "ALGORITHM": algorithm}
    )

    assert answer["Data"]["Generation"] == GEN_A


def test_switching_to_a_generation_that_lacks_served_locations_fails_listing_them(aws: MotoAccount) -> None:
    served = [f"City{index:02d}_ST" for index in range(13)]
    seed(aws, GEN_A, locations=served)
    seed(aws, GEN_B, locations=[*served[:1], "Austin_TX"])  # B has City00 and a new one, not the other 12
    aws.put(f"model-pointers/{GEN_A}/notes.txt", b"not a pointer")
    serving(aws, GEN_A)
    newest(aws, GEN_B)

    first_ten = ", ".join(served[1:11])
    assert unservable(resolve_request("Update", "newest"), aws.s3) == (
        f"Switching the endpoint from generation {GEN_A} to {GEN_B} would stop serving 12 location(s) that "
        f"have a model in {GEN_A} but none in {GEN_B}: {first_ten} and 2 more; train them into {GEN_B} "
        'first (a training run with "refit": true retrains every location of the served generation), or '
        f"keep serving {GEN_A} with `make deploy GENERATION={GEN_A}`."
    )


def test_the_location_check_reads_every_page_of_pointers(aws: MotoAccount) -> None:
    """More than one ListObjectsV2 page (1,000 keys) on both sides: nothing is missed."""
    locations = [f"L{index:04d}" for index in range(1001)]
    seed(aws, GEN_A, locations=locations)
    seed(aws, GEN_B, locations=locations[:-1])
    serving(aws, GEN_A)

    reason = unservable(resolve_request("Create", GEN_B), aws.s3)

    assert "would stop serving 1 location(s)" in reason
    assert ": L1000; train them" in reason


def test_the_switch_reason_names_at_most_ten_locations_so_it_stays_short(aws: MotoAccount) -> None:
    """Thousands of missing locations with the longest names still give one short sentence: the
    framework's FAILED answer (this sentence plus its own lines) must stay under CloudFormation's 4 KB."""
    served = [f"{index:04d}{'x' * 28}" for index in range(1500)]  # 32 characters, the longest allowed
    seed(aws, GEN_A, locations=served)
    seed(aws, GEN_B)
    serving(aws, GEN_A)

    reason = unservable(resolve_request("Create", GEN_B), aws.s3)

    assert len(reason.encode()) < 1000
    assert f": {', '.join(served[:10])} and 1490 more; train them" in reason
    assert reason.endswith(f"`make deploy GENERATION={GEN_A}`.")


# --------------------------------------------------------------------------------------------------
# record-serving


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_record_serving_writes_serving_json_encrypted_with_the_project_key(
    aws: MotoAccount, request_type: str
) -> None:
    serving(aws, GEN_A, endpoint_name="Endpoint-before")
    event = record_request(request_type, GEN_B)

    outcome = decide(event, aws.s3, environ=aws.environment())
    assert outcome.response() == {
        "PhysicalResourceId": SERVING_ID,
        "Data": {"Generation": GEN_B},
    }
    assert generation.read_ref(aws.inspect_s3, BUCKET, SERVING_KEY) == generation.GenerationRef(
        generation=GEN_B, updated_at=NOW, endpoint_name=ENDPOINT
    )
    (put,) = [c for c in aws.recorder.calls if c.operation == "PutObject"]
    assert put.key == SERVING_KEY
    assert (put.params["ServerSideEncryption"], put.params["SSEKMSKeyId"]) == ("aws:kms", aws.kms_key_arn)
    assert outcome.summary == (
        f"Recorded in s3://{BUCKET}/{SERVING_KEY} that endpoint {ENDPOINT} serves generation {GEN_B}."
    )


def test_a_rollback_update_rewrites_the_old_generation(aws: MotoAccount) -> None:
    """CloudFormation rolls back with an Update carrying the old properties: serving.json follows."""
    run(record_request("Update", GEN_B), aws.s3, environ=aws.environment())
    rollback = record_request("Update", GEN_A)
    rollback["OldResourceProperties"] = record_request("Update", GEN_B)["ResourceProperties"]

    answer = run(rollback, aws.s3, environ=aws.environment())

    assert answer["PhysicalResourceId"] == SERVING_ID  # the same id: no replacement, no Delete
    assert read_serving(aws).generation == GEN_A


# --------------------------------------------------------------------------------------------------
# Delete: a no-op for resolve, the record's removal for record-serving, and never a failure


def test_delete_removes_the_record_of_this_endpoint(aws: MotoAccount) -> None:
    serving(aws, GEN_A)
    event = record_request("Delete", GEN_A)

    outcome = decide(event, aws.s3, environ=aws.environment())

    assert outcome.response() == {"PhysicalResourceId": SERVING_ID, "Data": {}}  # the request's id
    assert outcome.summary == (
        f"Removed s3://{BUCKET}/{SERVING_KEY}: endpoint {ENDPOINT} no longer serves a generation."
    )
    assert SERVING_KEY not in aws.object_keys()
    assert generation.read_ref(aws.inspect_s3, BUCKET, SERVING_KEY) is None


def test_delete_leaves_a_record_that_names_another_endpoint(aws: MotoAccount) -> None:
    serving(aws, GEN_A, endpoint_name="Endpoint-of-another-stack")
    before = aws.bucket_state()

    assert decide(record_request("Delete", GEN_A), aws.s3, environ=aws.environment()).summary == (
        f"Left s3://{BUCKET}/{SERVING_KEY} in place: it names endpoint Endpoint-of-another-stack, not "
        f"{ENDPOINT}."
    )
    assert aws.bucket_state() == before


def test_delete_without_a_record_succeeds(aws: MotoAccount) -> None:
    outcome = decide(record_request("Delete", GEN_A), aws.s3, environ=aws.environment())

    assert outcome.response() == {"PhysicalResourceId": SERVING_ID, "Data": {}}
    assert outcome.summary == f"Nothing to remove: s3://{BUCKET}/{SERVING_KEY} does not exist."


def test_delete_leaves_an_unreadable_record(aws: MotoAccount) -> None:
    aws.put(SERVING_KEY, b"{not json")
    before = aws.bucket_state()

    outcome = decide(record_request("Delete", GEN_A), aws.s3, environ=aws.environment())

    assert outcome.summary.startswith(f"Left s3://{BUCKET}/{SERVING_KEY} in place: it is not readable (")
    assert aws.bucket_state() == before


@pytest.mark.parametrize(
    ("event", "answer"),
    [
        (resolve_request("Delete", GEN_A, PhysicalResourceId=f"{BUCKET}/preprocessor/{GEN_A}/model.tar.gz"),
         {"PhysicalResourceId": f"{BUCKET}/preprocessor/{GEN_A}/model.tar.gz", "Data": {}}),
        (record_request("Delete", GEN_A, ResourceProperties={"Bogus": "1"}),
         {"PhysicalResourceId": SERVING_ID, "Data": {}}),
        (resolve_request("Delete", GEN_A, PhysicalResourceId=None), {"Data": {}}),
    ],
    ids=["resolve", "unknown-properties", "no-physical-id"],
)  # fmt: skip
def test_other_deletes_succeed_without_touching_s3(
    aws: MotoAccount, event: dict[str, Any], answer: dict[str, Any]
) -> None:
    """Also with a broken environment: nothing may block a deletion. Without an id in the request
    the answer names none either, so the framework keeps the request's (it refuses a changed one)."""
    serving(aws, GEN_A)

    def no_s3() -> Any:
        raise AssertionError("this Delete must not create or use an S3 client")

    outcome = serving_generation.evaluate(event, get_s3=no_s3, environ={})
    assert outcome.response() == answer
    assert outcome.summary == "Nothing to delete: this resource wrote nothing."
    assert SERVING_KEY in aws.object_keys()


class ExplodingS3:
    def list_objects_v2(self, **_: Any) -> Any:
        raise RuntimeError("connection pool is closed")


@pytest.mark.parametrize("environ", ["broken-s3", "no-environment"])
def test_a_delete_that_cannot_remove_the_record_still_succeeds(aws: MotoAccount, environ: str) -> None:
    serving(aws, GEN_A)
    event = record_request("Delete", GEN_A)
    s3: Any = ExplodingS3() if environ == "broken-s3" else aws.s3
    settings = aws.environment() if environ == "broken-s3" else {}

    outcome = decide(event, s3, environ=settings)
    assert outcome.response() == {"PhysicalResourceId": SERVING_ID, "Data": {}}
    summary = outcome.summary
    assert summary.startswith("Did not remove preprocessor/serving.json (")
    assert summary.endswith(
        "); the deletion goes on: remove that object by hand if it still names this endpoint."
    )
    if environ == "broken-s3":
        assert "(RuntimeError: connection pool is closed)" in summary
    else:
        assert "(InvalidRequest: Environment variable BUCKET_NAME" in summary
    assert SERVING_KEY in aws.object_keys()


# --------------------------------------------------------------------------------------------------
# Anything unexpected: one sentence naming the error and where the traceback is


def test_an_unexpected_error_fails_naming_it_and_the_log_stream() -> None:
    with pytest.raises(serving_generation.RequestFailed) as raised:
        serving_generation.process_request(
            resolve_request("Create", GEN_A),
            get_s3=ExplodingS3,
            environ=ENVIRONMENT,
            log_location="log group MmeEndpoint-ServingLogs, stream 2025/05/01/[$LATEST]abc123",
        )

    assert str(raised.value) == (
        "The serving-generation request failed: RuntimeError: connection pool is closed "
        "(log group MmeEndpoint-ServingLogs, stream 2025/05/01/[$LATEST]abc123)"
    )
    assert isinstance(raised.value.__cause__, RuntimeError)


def test_a_malformed_record_fails_naming_it(aws: MotoAccount) -> None:
    aws.put(s3_layout.NEWEST_GENERATION_KEY, b'{"generation": "pp-x"}')

    reason = refusal(resolve_request("Create", "newest"), aws.s3, raises=serving_generation.RequestFailed)

    assert reason.startswith(
        "The serving-generation request failed: GenerationRecordError: "
        f"s3://{BUCKET}/preprocessor/newest.json must have exactly the fields"
    )


def test_client_creation_failure_fails_naming_it() -> None:
    def broken_factory() -> Any:
        raise ValueError("Invalid endpoint: https://s3..amazonaws.com")

    with pytest.raises(serving_generation.RequestFailed) as raised:
        serving_generation.process_request(
            resolve_request("Create", GEN_A), get_s3=broken_factory, environ=ENVIRONMENT
        )

    assert str(raised.value) == (
        "The serving-generation request failed: ValueError: Invalid endpoint: https://s3..amazonaws.com"
    )


def test_a_huge_error_message_is_cut() -> None:
    """CloudFormation refuses an answer over 4 KB, and the framework adds its own lines."""

    class VerboseS3:
        def list_objects_v2(self, **_: Any) -> Any:
            raise RuntimeError("é" * 5000)

    reason = refusal(resolve_request("Create", GEN_A), VerboseS3(), raises=serving_generation.RequestFailed)

    assert reason == "The serving-generation request failed: RuntimeError: " + "é" * 997 + "..."


# --------------------------------------------------------------------------------------------------
# Bad requests and environments


RESOLVE_ALLOWED = "allowed: ServiceToken, Action, Generation."


@pytest.mark.parametrize(
    ("event", "environ", "reason"),
    [
        (resolve_request("Create", GEN_A), {}, "Environment variable BUCKET_NAME '' is not an S3 bucket "
         "name; the stack must set it to the artifact bucket."),
        (record_request("Create", GEN_A), {"BUCKET_NAME": BUCKET}, "Environment variable KMS_KEY_ARN '' is "
         "not a KMS key ARN; the stack must set it to the project key's ARN."),
        (resolve_request("Create", GEN_A), {"BUCKET_NAME": BUCKET}, "Environment variable KMS_KEY_ARN '' is "
         "not a KMS key ARN; the stack must set it to the project key's ARN."),
        (resolve_request("Create", GEN_A), {"BUCKET_NAME": BUCKET, "KMS_KEY_ARN": KMS_KEY_ARN},
         "Environment variable ALGORITHM '' is not an algorithm name (1 to 32 characters from a-z, 0-9 and "
         "'-', starting with a letter); the stack must set it to training.algorithm."),
        (record_request("Create", GEN_A),
         {"BUCKET_NAME": BUCKET, "KMS_KEY_ARN": KMS_KEY_ARN, "ALGORITHM": "Linear Learner"},
         "Environment variable ALGORITHM 'Linear Learner' is not an algorithm name (1 to 32 characters from "
         "a-z, 0-9 and '-', starting with a letter); the stack must set it to training.algorithm."),
        (request("Create", {"Generation": GEN_A}), None,
         "The Action property must be one of resolve, record-serving, got None."),
        (request("Create", {"Action": "check", "Generation": GEN_A}), None,
         "The Action property must be one of resolve, record-serving, got 'check'."),
        (request("Create", {"Action": "resolve", "Generation": GEN_A, "Nonce": "1", "nonce": "2"}), None,
         f"Unknown resource properties Nonce, nonce for Action resolve; {RESOLVE_ALLOWED}"),
        (request("Create", {"Action": "resolve", "Generation": GEN_A, "EndpointName": ENDPOINT}), None,
         f"Unknown resource property EndpointName for Action resolve; {RESOLVE_ALLOWED}"),
        (resolve_request("Create", "current"), None,
         "The Generation property: preprocessor generation 'current' is not allowed: use 'pp-' followed by "
         "a run id (1 to 24 characters from A-Z, a-z, 0-9 and '-', starting and ending with a "
         "letter or digit) or "
         "'newest'."),
        (record_request("Create", "newest"), None,
         "The Generation property: preprocessor generation 'newest' is not allowed: use 'pp-' followed by "
         "a run id (1 to 24 characters from A-Z, a-z, 0-9 and '-', starting and ending with a "
         "letter or digit)."),
        (record_request("Create", GEN_A, endpoint_name=""), None,
         "The EndpointName property must be the endpoint's name (a non-empty string), got ''."),
        (resolve_request("Replace", GEN_A), None,
         "RequestType 'Replace' is not one of Create, Update, Delete."),
        (request("Create", {}, ResourceProperties=["x"]), None, "ResourceProperties must be an object."),
        ({"RequestType": "Create"}, None, "ResourceProperties must be an object."),
        (None, None, "The event is not a custom resource request (an object with RequestType and "
         "ResourceProperties); this function answers the endpoint stack's custom resources."),
        (["Create"], None, "The event is not a custom resource request (an object with RequestType and "
         "ResourceProperties); this function answers the endpoint stack's custom resources."),
    ],
    ids=[
        "no-bucket-env", "no-key-env", "no-key-env-on-resolve", "no-algorithm-env", "bad-algorithm-env",
        "no-action", "unknown-action",
        "unknown-properties",
        "endpoint-name-on-resolve", "bad-generation", "newest-is-not-recordable", "empty-endpoint-name",
        "unknown-request-type", "properties-not-an-object", "no-properties", "no-event",
        "event-not-an-object",
    ],
)  # fmt: skip
def test_bad_requests_and_environments_fail_with_one_sentence(
    aws: MotoAccount, event: object, environ: dict[str, str] | None, reason: str
) -> None:
    seed(aws, GEN_A)

    assert refusal(event, aws.s3, environ=environ, raises=serving_generation.InvalidRequest) == reason
    assert aws.recorder.calls == []


# --------------------------------------------------------------------------------------------------
# The Lambda entry point


def test_handler_returns_the_on_event_result(aws: MotoAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Lambda entry point with its own cached client (moto) and the real environment."""
    seed(aws, GEN_A)
    for name, value in aws.environment().items():
        monkeypatch.setenv(name, value)

    returned = serving_generation.handler(resolve_request("Create", GEN_A), SimpleNamespace())

    assert returned == {
        "PhysicalResourceId": f"{BUCKET}/preprocessor/{GEN_A}/model.tar.gz",
        "Data": {"Generation": GEN_A, "ArtifactVersionId": artifact_version(aws, GEN_A)},
    }
    assert json.loads(json.dumps(returned)) == returned  # what the Lambda runtime serialises


def test_handler_names_its_log_group_and_stream_in_an_unexpected_failure(
    aws: MotoAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The framework's own log pointer names /aws/lambda/<function>, not this function's log group."""
    for name, value in {**aws.environment(), "BUCKET_NAME": "mme-bucket-that-is-gone"}.items():
        monkeypatch.setenv(name, value)
    context = SimpleNamespace(
        log_group_name="MmeEndpoint-ServingGenerationLogs", log_stream_name="2026/12/01/x"
    )

    with pytest.raises(serving_generation.RequestFailed) as raised:
        serving_generation.handler(resolve_request("Create", GEN_A), context)

    reason = str(raised.value)
    assert reason.startswith(
        "The serving-generation request failed: NoSuchBucket: An error occurred (NoSuchBucket)"
    )
    assert reason.endswith(" (log group MmeEndpoint-ServingGenerationLogs, stream 2026/12/01/x)")


# --------------------------------------------------------------------------------------------------
# Through CDK's Provider framework: its real runtime (aws-cdk-lib's provider-framework/runtime), with
# only its outbound AWS calls faked: Lambda Invoke runs this handler here (answering as the Lambda
# runtime does, errorMessage and FunctionError on an exception), and the PUT to the ResponseURL is
# recorded instead of sent.

CREATE_FAILED_MARKER = "AWSCDK::CustomResourceProviderFramework::CREATE_FAILED"
_FAKE_OUTBOUND = """\
"use strict";
const fs = require("fs");
exports.invokeFunction = async (request) => {
  const response = await fetch(process.env.HANDLER_URL, { method: "POST", body: request.Payload });
  const answer = await response.json();
  return { StatusCode: 200, Payload: Buffer.from(answer.Payload), FunctionError: answer.FunctionError };
};
exports.httpRequest = async (options, body) => {
  fs.appendFileSync(process.env.RESPONSES_FILE, JSON.stringify({ options, body }) + "\\n");
};
exports.startExecution = async () => { throw new Error("this provider has no waiter state machine"); };
"""
_DRIVER = """\
const framework = require(process.argv[2] + "/framework.js");
const event = JSON.parse(require("fs").readFileSync(process.argv[3], "utf8"));
framework.onEvent(event).catch((error) => { console.error(error); process.exit(1); });
"""


@pytest.fixture(scope="module")
def framework_runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CDK's provider framework runtime from the installed aws-cdk-lib (what synth deploys)."""
    spec = importlib.util.find_spec("aws_cdk")
    assert spec is not None
    assert spec.submodule_search_locations
    (tarball,) = Path(next(iter(spec.submodule_search_locations)), "_jsii").glob("aws-cdk-lib@*.jsii.tgz")
    folder = tmp_path_factory.mktemp("provider-framework")
    prefix = "package/custom-resources/lib/provider-framework/runtime/"
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            name = member.name.removeprefix(prefix)
            if member.name.startswith(prefix) and name.endswith(".js") and "/" not in name:
                extracted = archive.extractfile(member)
                assert extracted is not None
                (folder / name).write_bytes(extracted.read())
    assert (folder / "framework.js").is_file()
    (folder / "outbound.js").write_text(_FAKE_OUTBOUND)
    (folder / "driver.js").write_text(_DRIVER)
    return folder


@dataclass
class FrameworkRun:
    response: dict[str, Any]
    """The document the framework PUT to the ResponseURL."""
    url_path: str
    invocations: list[dict[str, Any]]
    """What the framework invoked the handler with."""


def through_framework(runtime: Path, event: dict[str, Any], s3: Any, environ: dict[str, str]) -> FrameworkRun:
    invocations: list[dict[str, Any]] = []

    class LambdaInvoke(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            invocations.append(payload)
            try:
                answer: dict[str, Any] = {"Payload": json.dumps(run(payload, s3, environ=environ))}
            except Exception as error:  # what the Lambda runtime returns for an unhandled exception
                error_document = {"errorMessage": str(error), "errorType": type(error).__name__}
                answer = {"Payload": json.dumps(error_document), "FunctionError": "Unhandled"}
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), LambdaInvoke)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        (runtime / "event.json").write_text(json.dumps(event))
        responses = runtime / "responses.jsonl"
        responses.unlink(missing_ok=True)
        host, port = server.server_address[:2]
        completed = subprocess.run(
            ["node", str(runtime / "driver.js"), str(runtime), str(runtime / "event.json")],
            env={**os.environ, "USER_ON_EVENT_FUNCTION_ARN": FUNCTION_ARN,
                 "HANDLER_URL": f"http://{host!s}:{port}/", "RESPONSES_FILE": str(responses)},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert completed.returncode == 0, completed.stderr
    ((sent),) = [json.loads(line) for line in responses.read_text().splitlines()]
    assert sent["options"]["method"] == "PUT"
    assert sent["options"]["headers"]["content-type"] == ""
    return FrameworkRun(json.loads(sent["body"]), sent["options"]["path"], invocations)


FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:MmeEndpoint-ServingGenerationHandler"


def test_the_framework_answers_success_with_the_handlers_id_and_data(
    aws: MotoAccount, framework_runtime: Path
) -> None:
    seed(aws, GEN_A)
    event = resolve_request("Create", GEN_A)

    done = through_framework(framework_runtime, event, aws.s3, aws.environment())

    assert done.response == {
        "Status": "SUCCESS",
        "Reason": "SUCCESS",
        "StackId": STACK_ID,
        "RequestId": event["RequestId"],
        "PhysicalResourceId": f"{BUCKET}/preprocessor/{GEN_A}/model.tar.gz",
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": {"Generation": GEN_A, "ArtifactVersionId": artifact_version(aws, GEN_A)},
    }
    assert done.url_path == RESPONSE_URL.removeprefix(
        "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com"
    )
    (invocation,) = done.invocations
    assert invocation == event  # CloudFormation's request, as it came


def test_a_refusal_becomes_failed_with_the_sentence_first(aws: MotoAccount, framework_runtime: Path) -> None:
    """A failed Create gets the marker id, so the Delete CloudFormation sends next never reaches us."""
    create = resolve_request("Create", "newest")

    failed = through_framework(framework_runtime, create, aws.s3, aws.environment()).response

    assert failed["Status"] == "FAILED"
    assert failed["Reason"].startswith(
        "Error: No complete preprocessor generation exists yet "
        f"(s3://{BUCKET}/preprocessor/newest.json does not exist): {DEPLOY_FIRST}.\n"
    )
    assert len(json.dumps(failed).encode()) < 4096
    assert failed["PhysicalResourceId"] == CREATE_FAILED_MARKER
    delete = resolve_request("Delete", "newest", PhysicalResourceId=CREATE_FAILED_MARKER)

    deleted = through_framework(framework_runtime, delete, aws.s3, aws.environment())

    assert (deleted.response["Status"], deleted.invocations) == ("SUCCESS", [])


def test_a_failed_update_keeps_its_id_and_a_delete_keeps_the_record_id(
    aws: MotoAccount, framework_runtime: Path
) -> None:
    update = record_request("Update", "newest")  # an invalid Generation for record-serving
    failed = through_framework(framework_runtime, update, aws.s3, aws.environment()).response
    assert (failed["Status"], failed["PhysicalResourceId"]) == ("FAILED", SERVING_ID)
    assert failed["Reason"].startswith("Error: The Generation property: preprocessor generation 'newest'")
    serving(aws, GEN_A)

    deleted = through_framework(framework_runtime, record_request("Delete", GEN_A), aws.s3, aws.environment())

    assert (deleted.response["Status"], deleted.response["PhysicalResourceId"]) == ("SUCCESS", SERVING_ID)
    assert SERVING_KEY not in aws.object_keys()
