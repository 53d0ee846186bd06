"""The deploy preflight: every check passing, each one failing with its fix, and denied calls.

STS, SSM and IAM run in moto. Service Quotas does not: moto 5.2 implements only
``ListAWSDefaultServiceQuotas`` and ``GetServiceQuota``, and only for a few services, so those clients
are real boto3 clients under botocore's Stubber, whose responses are validated against the service
model. Credential failures that cannot be produced by a real client here (an expired SSO session, no
network) use a one-method stand-in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.exceptions import EndpointConnectionError, UnauthorizedSSOTokenError  # type: ignore[import-untyped]
from botocore.stub import Stubber  # type: ignore[import-untyped]
from moto import mock_aws

from mme_cli import preflight
from mme_cli.preflight import PreflightResult, quota_needs, run_preflight
from mme_constructs import image_table
from project_config import ProjectConfig, load_default_config
from project_config.loader import deep_merge

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
CALLER = f"arn:aws:sts::{ACCOUNT}:user/moto"
ENVIRONMENT = f"aws://{ACCOUNT}/{REGION}"
SNAPSHOTS = Path(__file__).resolve().parent.parent / "__snapshots__" / "test_snapshots"

# The default config: ml.c4.xlarge trains (4 parallel jobs, preprocessor on the same type) and
# transforms (2 x 4), ml.m4.xlarge serves with autoscaling 1..4 from 1 instance.
TRAINING = "ml.c4.xlarge for training job usage"
TRANSFORM = "ml.c4.xlarge for transform job usage"
ENDPOINT = "ml.m4.xlarge for endpoint usage"
CODES = {TRAINING: "L-4D2F4A3C", TRANSFORM: "L-9A1B72E1", ENDPOINT: "L-0B7F3F5A"}
"""Quota codes in the L-XXXXXXXX form (they differ per type and use; these are stand-ins)."""
UPDATE_WHY = (
    "a blue/green update starts a new fleet as large as the running one (up to 4: the endpoint retains "
    "the autoscaled instance count across updates) while the old fleet serves, and keeps the old one "
    "through endpoint.update_baking_period_seconds"
)


def make_config(overrides: Mapping[str, Any] | None = None) -> ProjectConfig:
    """The default config with ``overrides`` merged over it, validated like a user's file."""
    data = load_default_config().model_dump(mode="python")
    return ProjectConfig.model_validate(deep_merge(data, dict(overrides or {})))


def quota(name: str, value: float, *, code: str | None = None, adjustable: bool = True) -> dict[str, Any]:
    """One ``ServiceQuota`` as ListServiceQuotas returns it."""
    quota_code = code or CODES.get(name, "L-" + format(abs(hash(name)) % 16**8, "08X"))
    return {
        "ServiceCode": "sagemaker",
        "ServiceName": "Amazon SageMaker",
        "QuotaArn": f"arn:aws:servicequotas:{REGION}:{ACCOUNT}:sagemaker/{quota_code}",
        "QuotaCode": quota_code,
        "QuotaName": name,
        "Value": float(value),
        "Unit": "None",
        "Adjustable": adjustable,
        "GlobalQuota": False,
    }


def ample() -> list[dict[str, Any]]:
    return [quota(TRAINING, 20), quota(TRANSFORM, 20), quota(ENDPOINT, 10)]


def stub_quotas(
    pages: list[list[dict[str, Any]]],
    defaults: list[list[dict[str, Any]]] | None = None,
    *,
    region: str = REGION,
) -> Stubber:
    """A Service Quotas client answering ListServiceQuotas (then the defaults) page by page."""
    client = boto3.client("service-quotas", region_name=region)
    stubber = Stubber(client)
    for operation, listing in (
        ("list_service_quotas", pages),
        ("list_aws_default_service_quotas", defaults or []),
    ):
        for index, page in enumerate(listing):
            expected: dict[str, Any] = {"ServiceCode": "sagemaker", "MaxResults": 100}
            if index:
                expected["NextToken"] = f"{operation}-page-{index}"
            response: dict[str, Any] = {"Quotas": page}
            if index + 1 < len(listing):
                response["NextToken"] = f"{operation}-page-{index + 1}"
            stubber.add_response(operation, response, expected)
    stubber.activate()
    return stubber


class Clients:
    """``client(service)`` as CliContext gives it: moto clients, or the given stand-ins."""

    def __init__(self, overrides: Mapping[str, Any] | None = None, *, region: str = REGION) -> None:
        self.overrides = dict(overrides or {})
        self.region = region
        self.asked: list[str] = []

    def __call__(self, service: str) -> Any:
        self.asked.append(service)
        if service in self.overrides:
            return self.overrides[service]
        return boto3.client(service, region_name=self.region)


def denied(service: str, operation: str, code: str = "AccessDeniedException") -> Stubber:
    client = boto3.client(service, region_name=REGION)
    stubber = Stubber(client)
    stubber.add_client_error(
        operation,
        service_error_code=code,
        service_message=f"User: {CALLER} is not authorized to perform this operation",
        http_status_code=400 if code == "AccessDeniedException" else 403,
    )
    stubber.activate()
    return stubber


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for variable in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


def bootstrap(version: str = "21", *, qualifier: str = "hnb659fds", region: str = REGION) -> None:
    boto3.client("ssm", region_name=region).put_parameter(
        Name=f"/cdk-bootstrap/{qualifier}/version", Value=version, Type="String"
    )


def autoscaling_role(path: str = preflight.AUTOSCALING_ROLE_PATH) -> None:
    # moto's create_service_linked_role names this role "..._Sagemaker"; create it as AWS names it.
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": preflight.AUTOSCALING_SERVICE},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    boto3.client("iam", region_name=REGION).create_role(
        RoleName=preflight.AUTOSCALING_ROLE_NAME, Path=path, AssumeRolePolicyDocument=json.dumps(trust)
    )


def check(
    config: ProjectConfig | None = None,
    *,
    quotas: Stubber | None = None,
    overrides: Mapping[str, Any] | None = None,
    region: str = REGION,
) -> tuple[PreflightResult, Clients]:
    given = dict(overrides or {})
    if quotas is not None:
        given["service-quotas"] = quotas.client
    clients = Clients(given, region=region)
    result = run_preflight(clients, config or make_config(), region=region, qualifier="hnb659fds")
    if quotas is not None:
        quotas.assert_no_pending_responses()
    return result, clients


def only(lines: list[str], containing: str) -> str:
    matches = [line for line in lines if containing in line]
    assert len(matches) == 1, (containing, lines)
    return matches[0]


# -- everything passes ------------------------------------------------------------------------------


def test_every_check_passes_on_a_ready_account(aws: None) -> None:
    bootstrap()
    autoscaling_role()

    result, clients = check(quotas=stub_quotas([ample()]))

    assert result.problems == []
    assert result.ok
    assert (result.account, result.region) == (ACCOUNT, REGION)
    assert result.passed == [
        f"Credentials: {CALLER} in account {ACCOUNT} (the config pins no account).",
        "Images: scikit-learn 1.9-0 (training and inference) and linear-learner 1 exist in us-east-1 "
        f"according to the image table (sagemaker-core {image_table.sagemaker_core_version()}).",
        f"CDK bootstrap: {ENVIRONMENT} is at version 21 (qualifier hnb659fds; the templates require 6 or "
        "newer).",
        f"Quota '{TRAINING}' ({CODES[TRAINING]}): 20 in us-east-1, 4 needed (training.parallel_training_jobs "
        "= 4 location training jobs at once; the preprocessor's job runs on the same type before them).",
        f"Quota '{TRANSFORM}' ({CODES[TRANSFORM]}): 20 in us-east-1, 2 needed (the run's 2 batch "
        "transforms, train and validation, each over all of its locations).",
        f"Quota '{ENDPOINT}' ({CODES[ENDPOINT]}): 10 in us-east-1, 4 needed "
        "(endpoint.autoscaling.max_capacity).",
        f"Autoscaling role: arn:aws:iam::{ACCOUNT}:role{preflight.AUTOSCALING_ROLE_PATH}"
        f"{preflight.AUTOSCALING_ROLE_NAME} exists.",
    ]
    assert clients.asked == ["sts", "ssm", "service-quotas", "iam"]


def test_a_pinned_account_and_region_that_match_pass(aws: None) -> None:
    bootstrap()
    autoscaling_role()
    config = make_config({"account": ACCOUNT, "region": REGION})

    result, _ = check(config, quotas=stub_quotas([ample()]))

    assert result.problems == []
    assert only(result.passed, "Credentials").endswith("(the account the config pins).")


# -- 1. credentials and account ---------------------------------------------------------------------


def test_no_credentials_names_the_fix_and_still_checks_the_images(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in (
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
    ):  # fmt: skip
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup

    result, clients = check()

    assert result.problems == [
        "No usable AWS credentials were found: run `aws configure` (or `aws sso login` for an SSO "
        "profile), or pass --profile or set AWS_PROFILE to a configured profile; the AWS checks were "
        "skipped."
    ]
    assert result.account == ""
    assert [line.split(":")[0] for line in result.passed] == ["Images"]
    assert clients.asked == ["sts"]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ExpiredToken", "The AWS credentials have expired (ExpiredToken): refresh them (`aws sso login`"),
        ("InvalidClientTokenId", "AWS rejected the credentials (InvalidClientTokenId: "),
        ("SignatureDoesNotMatch", "fix the access key with `aws configure` or choose another --profile"),
    ],
)
def test_refused_credentials_name_the_fix(aws: None, code: str, expected: str) -> None:
    sts = boto3.client("sts", region_name=REGION)
    stubber = Stubber(sts)
    stubber.add_client_error(
        "get_caller_identity", service_error_code=code, service_message="refused", http_status_code=403
    )
    stubber.activate()

    result, clients = check(overrides={"sts": sts})

    assert len(result.problems) == 1
    assert expected in result.problems[0]
    assert result.problems[0].endswith("the AWS checks were skipped.")
    assert clients.asked == ["sts"]


class _RaisingSts:
    """Stands in for an STS client whose credential provider or connection fails."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_caller_identity(self) -> dict[str, str]:
        raise self.error


def test_an_expired_sso_session_says_aws_sso_login(aws: None) -> None:
    result, _ = check(overrides={"sts": _RaisingSts(UnauthorizedSSOTokenError())})

    assert result.problems == [
        "The AWS SSO session has expired or was never started: run `aws sso login` (with --profile for "
        "a named profile) and run `mme deploy` again; the AWS checks were skipped."
    ]


def test_an_unreachable_sts_is_a_problem_not_a_crash(aws: None) -> None:
    error = EndpointConnectionError(endpoint_url="https://sts.us-east-1.amazonaws.com/")

    result, _ = check(overrides={"sts": _RaisingSts(error)})

    assert len(result.problems) == 1
    assert result.problems[0].startswith(
        "Calling STS GetCallerIdentity in us-east-1 to identify the caller failed"
    )
    assert "check the network, the region and the credentials" in result.problems[0]


def test_credentials_for_another_account_than_the_pinned_one_stop_the_aws_checks(aws: None) -> None:
    result, clients = check(make_config({"account": "111122223333"}))

    assert result.problems == [
        f"The credentials ({CALLER}) are for account {ACCOUNT}, but the config pins account 111122223333 "
        "(`account`): use credentials for 111122223333 (--profile) or change `account` in the config; "
        "the other AWS checks were skipped because they would describe the wrong account."
    ]
    assert result.account == ACCOUNT
    assert clients.asked == ["sts"]


def test_a_deploy_region_other_than_the_pinned_one_is_refused(aws: None) -> None:
    result, clients = check(make_config({"region": "eu-west-1"}))

    assert result.problems == [
        "The deploy region is us-east-1, but the config pins region eu-west-1 (`region`) and the stacks "
        "deploy there: pass --region eu-west-1 or change `region` in the config; the other AWS checks "
        "were skipped because they would describe the wrong region."
    ]
    assert clients.asked == ["sts"]


# -- 2. images ----------------------------------------------------------------------------------------


def test_a_region_missing_from_the_image_table_names_the_supported_ones(aws: None) -> None:
    region = "mx-central-1"  # newer than the committed table
    bootstrap(region=region)
    autoscaling_role()

    result, _ = check(quotas=stub_quotas([ample()], region=region), region=region)

    problem = only(result.problems, "image table")
    assert problem.startswith(
        f"The image table (sagemaker-core {image_table.sagemaker_core_version()}) has no "
        "linear-learner 1 image for mx-central-1: deploy to a region that has them (af-south-1, "
    )
    assert "us-east-1, us-east-2" in problem
    assert problem.endswith(
        "with --region or `region` in the config, choose another training.algorithm_image_tag (or "
        "training.algorithm), or run `.venv/bin/python scripts/refresh_image_uris.py` if SageMaker has "
        "added them since."
    )
    assert len(result.problems) == 1  # the other checks ran and passed


def test_the_configured_algorithms_images_are_checked(aws: None) -> None:
    bootstrap()
    autoscaling_role()
    config = make_config({"training": {"algorithm": "xgboost", "algorithm_image_tag": "1.7-1"}})

    result, _ = check(config, quotas=stub_quotas([ample()]))

    assert result.problems == []
    assert only(result.passed, "Images:") == (
        "Images: scikit-learn 1.9-0 (training and inference) and xgboost 1.7-1 exist in us-east-1 "
        f"according to the image table (sagemaker-core {image_table.sagemaker_core_version()})."
    )


def test_a_region_without_the_algorithms_image_names_its_tag(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An XGBoost tag missing in the deploy region (scikit-learn is there): the fix is another tag."""
    real_supported, real_regions = image_table.supported_regions, image_table.algorithm_regions
    wanted = image_table.AlgorithmImage("xgboost", "1.7-1")
    asked: list[image_table.AlgorithmImage] = []

    def supported(**kwargs: Any) -> tuple[str, ...]:
        asked.append(kwargs["algorithm"])
        regions: tuple[str, ...] = real_supported(**kwargs)
        return tuple(r for r in regions if r != REGION) if kwargs["algorithm"] == wanted else regions

    def algorithm_regions(algorithm: image_table.AlgorithmImage) -> tuple[str, ...]:
        regions = real_regions(algorithm)
        return tuple(r for r in regions if r != REGION) if algorithm == wanted else regions

    monkeypatch.setattr(image_table, "supported_regions", supported)
    monkeypatch.setattr(image_table, "algorithm_regions", algorithm_regions)
    bootstrap()
    autoscaling_role()
    config = make_config({"training": {"algorithm": "xgboost", "algorithm_image_tag": "1.7-1"}})

    result, _ = check(config, quotas=stub_quotas([ample()]))

    assert set(asked) == {wanted}
    problem = only(result.problems, "image table")
    assert "has no xgboost 1.7-1 image for us-east-1: deploy to a region that has them (" in problem
    assert "choose another training.algorithm_image_tag (or training.algorithm)" in problem
    offered = problem.split("that has them (", 1)[1].split(")", 1)[0].split(", ")
    assert "us-east-2" in offered
    assert REGION not in offered


def test_a_missing_scikit_learn_scope_is_named(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    real = image_table.supported_regions

    def without_training_in_us_east_1(**kwargs: Any) -> tuple[str, ...]:
        regions: tuple[str, ...] = real(**kwargs)
        if kwargs.get("sklearn_scope") == "training" and kwargs["sklearn_framework_version"] == "1.9-0":
            return tuple(r for r in regions if r != REGION)
        return regions

    monkeypatch.setattr(image_table, "supported_regions", without_training_in_us_east_1)
    bootstrap()
    autoscaling_role()

    result, _ = check(quotas=stub_quotas([ample()]))

    assert "has no scikit-learn 1.9-0 training image for us-east-1: deploy to a region" in only(
        result.problems, "image table"
    )


# -- 3. CDK bootstrap ---------------------------------------------------------------------------------


def test_an_unbootstrapped_environment_says_cdk_bootstrap(aws: None) -> None:
    autoscaling_role()

    result, _ = check(quotas=stub_quotas([ample()]))

    assert result.problems == [
        f"{ENVIRONMENT} is not CDK-bootstrapped (SSM parameter /cdk-bootstrap/hnb659fds/version does not "
        f"exist): run `npx cdk bootstrap {ENVIRONMENT}`."
    ]


def test_an_old_bootstrap_says_upgrade_it(aws: None) -> None:
    bootstrap("5")
    autoscaling_role()

    result, _ = check(quotas=stub_quotas([ample()]))

    assert result.problems == [
        f"The CDK bootstrap stack in {ENVIRONMENT} is version 5, older than the 6 the synthesized "
        f"templates require: run `npx cdk bootstrap {ENVIRONMENT}` to upgrade it."
    ]


def test_the_oldest_accepted_bootstrap_is_the_required_one(aws: None) -> None:
    bootstrap(str(preflight.REQUIRED_BOOTSTRAP_VERSION))
    autoscaling_role()

    result, _ = check(quotas=stub_quotas([ample()]))

    assert result.problems == []


def test_a_custom_qualifier_is_read_from_cdk_json_and_named_in_the_fix(aws: None, tmp_path: Path) -> None:
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"app": "x", "context": {preflight.QUALIFIER_CONTEXT_KEY: "mme123"}}))
    bootstrap(qualifier="hnb659fds")  # the default qualifier's parameter does not count
    autoscaling_role()
    qualifier = preflight.bootstrap_qualifier(cdk_json)
    clients = Clients({"service-quotas": stub_quotas([ample()]).client})

    result = run_preflight(clients, make_config(), region=REGION, qualifier=qualifier)

    assert qualifier == "mme123"
    assert result.problems == [
        f"{ENVIRONMENT} is not CDK-bootstrapped (SSM parameter /cdk-bootstrap/mme123/version does not "
        f"exist): run `npx cdk bootstrap {ENVIRONMENT} --qualifier mme123`."
    ]


def test_the_qualifier_defaults_to_cdks_and_the_repository_sets_none(tmp_path: Path) -> None:
    (tmp_path / "cdk.json").write_text(json.dumps({"app": "x", "context": {}}))

    assert preflight.bootstrap_qualifier(tmp_path / "cdk.json") == "hnb659fds"
    assert preflight.bootstrap_qualifier(tmp_path / "missing.json") == "hnb659fds"
    assert preflight.bootstrap_qualifier() == "hnb659fds"  # this repository's cdk.json


@pytest.mark.parametrize("stack", ["storage", "training", "endpoint", "monitoring"])
def test_the_required_version_is_what_the_synthesized_templates_check(stack: str) -> None:
    template = json.loads((SNAPSHOTS / f"test_stack_matches_snapshot[{stack}].json").read_text())
    assertion = template["Rules"]["CheckBootstrapVersion"]["Assertions"][0]["Assert"]
    rejected = assertion["Fn::Not"][0]["Fn::Contains"][0]

    assert rejected == [str(v) for v in range(1, preflight.REQUIRED_BOOTSTRAP_VERSION)]


# -- 4. quotas ----------------------------------------------------------------------------------------


def test_quota_needs_follow_the_pipeline_and_the_endpoint(aws: None) -> None:
    needs = {need.quota_name: need for need in quota_needs(make_config())}

    # One batch transform per split for the whole run: 2 transform instances whatever the parallelism.
    assert {name: need.count for name, need in needs.items()} == {TRAINING: 4, TRANSFORM: 2, ENDPOINT: 4}
    assert needs[ENDPOINT].update_count == 8  # a new fleet as large as the old one, up to 4

    split = make_config(
        {
            "training": {"preprocessor_instance_type": "ml.m5.large", "parallel_training_jobs": 3},
            "endpoint": {"initial_instance_count": 2, "autoscaling": {"enabled": False}},
        }
    )
    counts = {need.quota_name: need.count for need in quota_needs(split)}
    assert counts == {
        "ml.m5.large for training job usage": 1,
        TRAINING: 3,
        TRANSFORM: 2,
        ENDPOINT: 2,
    }
    assert [n.update_count for n in quota_needs(split) if n.use == "endpoint"] == [4]


def test_quotas_are_read_across_pages(aws: None) -> None:
    bootstrap()
    autoscaling_role()
    filler = [quota(f"ml.r5.{n}xlarge for endpoint usage", 2) for n in (2, 4, 8, 12, 16, 24)]
    pages = [[*filler[:3], quota(TRAINING, 20)], [*filler[3:], quota(TRANSFORM, 20)], [quota(ENDPOINT, 10)]]

    result, _ = check(quotas=stub_quotas(pages))

    assert result.problems == []
    assert only(result.passed, ENDPOINT).endswith(
        "10 in us-east-1, 4 needed (endpoint.autoscaling.max_capacity)."
    )


def test_a_quota_missing_from_the_applied_list_is_taken_from_the_defaults(aws: None) -> None:
    bootstrap()
    autoscaling_role()
    defaults = [[quota(TRAINING, 0)], [quota(ENDPOINT, 8)]]  # paginated too; the applied 20 wins

    result, _ = check(quotas=stub_quotas([[quota(TRAINING, 20), quota(TRANSFORM, 20)]], defaults))

    assert result.problems == []
    assert "20 in us-east-1" in only(result.passed, TRAINING)
    assert "8 in us-east-1" in only(result.passed, ENDPOINT)


def test_a_type_without_a_quota_is_not_offered_there_and_alternatives_are_named(aws: None) -> None:
    bootstrap()
    autoscaling_role()
    offered = [
        quota(TRANSFORM, 20),
        quota(ENDPOINT, 10),
        quota("ml.m5.large for training job usage", 4),
        quota("ml.c5.xlarge for training job usage", 2),  # too few for 4 jobs: not offered
        quota("ml.m5.xlarge for training job usage", 10),
    ]

    result, _ = check(quotas=stub_quotas([offered], [offered]))

    assert result.problems == [
        f"SageMaker has no quota '{TRAINING}' in us-east-1, so it does not offer ml.c4.xlarge for "
        "training jobs there: set training.training_instance_type and training.preprocessor_instance_type "
        "to a type it offers such as ml.m5.large (quota 4) or ml.m5.xlarge (quota 10)."
    ]


def test_a_transform_quota_below_the_need_names_request_and_change(aws: None) -> None:
    bootstrap()
    autoscaling_role()
    quotas = [
        quota(TRAINING, 20),
        quota(TRANSFORM, 1),
        quota(ENDPOINT, 10),
        quota("ml.m5.large for transform job usage", 8),
    ]

    result, _ = check(quotas=stub_quotas([quotas]))

    assert result.problems == [
        f"Quota '{TRANSFORM}' ({CODES[TRANSFORM]}) is 1 in us-east-1, but a training run needs 2 (the "
        "run's 2 batch transforms, train and validation, each over all of its locations): request 2 with "
        "`aws service-quotas request-service-quota-increase --service-code sagemaker "
        f"--quota-code {CODES[TRANSFORM]} --desired-value 2 --region us-east-1` or set "
        "training.transform_instance_type to a type with enough quota such as ml.m5.large (quota 8)."
    ]


def test_a_zero_training_quota_cannot_be_worked_around_by_lowering_parallelism(aws: None) -> None:
    bootstrap()
    autoscaling_role()

    result, _ = check(quotas=stub_quotas([[quota(TRAINING, 0), quota(TRANSFORM, 20), quota(ENDPOINT, 10)]]))

    problem = only(result.problems, TRAINING)
    assert f"--quota-code {CODES[TRAINING]} --desired-value 4 --region us-east-1`" in problem
    assert "lower training.parallel_training_jobs" not in problem
    assert problem.endswith("or set training.training_instance_type and training.preprocessor_instance_type "
                            "to a type with enough quota.")  # fmt: skip


def test_an_endpoint_quota_below_the_fleet_asks_for_enough_to_update(aws: None) -> None:
    bootstrap()
    autoscaling_role()

    result, _ = check(quotas=stub_quotas([[quota(TRAINING, 20), quota(TRANSFORM, 20), quota(ENDPOINT, 2)]]))

    assert result.problems == [
        f"Quota '{ENDPOINT}' ({CODES[ENDPOINT]}) is 2 in us-east-1, but the endpoint needs 4 "  # noqa: S608
        f"(endpoint.autoscaling.max_capacity) and 8 while an update runs ({UPDATE_WHY}): request 8 with "
        "`aws service-quotas request-service-quota-increase --service-code sagemaker --quota-code "
        f"{CODES[ENDPOINT]} --desired-value 8 --region us-east-1`, lower endpoint.autoscaling.max_capacity "
        "to 2 or set endpoint.instance_type to a type with enough quota."
    ]


def test_an_endpoint_quota_enough_to_run_but_not_to_update_passes_with_a_note(aws: None) -> None:
    bootstrap()
    autoscaling_role()

    result, _ = check(quotas=stub_quotas([[quota(TRAINING, 20), quota(TRANSFORM, 20), quota(ENDPOINT, 4)]]))

    assert result.problems == []
    assert only(result.passed, ENDPOINT) == (
        f"Quota '{ENDPOINT}' ({CODES[ENDPOINT]}): 4 in us-east-1, 4 needed "
        f"(endpoint.autoscaling.max_capacity); note: an update needs 8 ({UPDATE_WHY}), so request 8 with "
        "`aws service-quotas request-service-quota-increase --service-code sagemaker --quota-code "
        f"{CODES[ENDPOINT]} --desired-value 8 --region us-east-1` before updating the endpoint, or the "
        "update fails while the old fleet keeps serving."
    )


def test_a_quota_that_is_not_adjustable_offers_no_request(aws: None) -> None:
    bootstrap()
    autoscaling_role()
    quotas = [quota(TRAINING, 2, adjustable=False), quota(TRANSFORM, 20), quota(ENDPOINT, 10)]

    result, _ = check(quotas=stub_quotas([quotas]))

    problem = only(result.problems, TRAINING)
    assert "request-service-quota-increase" not in problem
    assert "; it is not adjustable, so lower training.parallel_training_jobs to 2 or set" in problem


def test_without_autoscaling_the_initial_count_is_needed_and_iam_is_not_asked(aws: None) -> None:
    bootstrap()
    config = make_config({"endpoint": {"initial_instance_count": 2, "autoscaling": {"enabled": False}}})

    result, clients = check(config, quotas=stub_quotas([ample()]))

    assert result.problems == []
    assert "10 in us-east-1, 2 needed (endpoint.initial_instance_count)." in only(result.passed, ENDPOINT)
    assert "iam" not in clients.asked


# -- 5. the autoscaling service-linked role -----------------------------------------------------------


def test_a_missing_service_linked_role_is_a_note_because_autoscaling_creates_it(aws: None) -> None:
    bootstrap()

    result, _ = check(quotas=stub_quotas([ample()]))

    assert result.problems == []
    assert only(result.passed, "Autoscaling role") == (
        "Autoscaling role: AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint does not exist yet; "
        "Application Auto Scaling creates it when the endpoint stack registers the scalable target, which "
        "needs iam:CreateServiceLinkedRole in the CDK CloudFormation execution role (the default "
        "bootstrap's AdministratorAccess has it); to create it now, run `aws iam create-service-linked-role "
        "--aws-service-name sagemaker.application-autoscaling.amazonaws.com`."
    )


def test_a_role_with_the_name_but_not_the_path_is_refused(aws: None) -> None:
    bootstrap()
    autoscaling_role(path="/")

    result, _ = check(quotas=stub_quotas([ample()]))

    assert result.problems == [
        f"The role arn:aws:iam::{ACCOUNT}:role/{preflight.AUTOSCALING_ROLE_NAME} has the name of "
        "Application Auto Scaling's service-linked role but the path '/', not "
        f"'{preflight.AUTOSCALING_ROLE_PATH}', so it is not that role and blocks its creation: delete or "
        "rename it, then run `aws iam create-service-linked-role --aws-service-name "
        "sagemaker.application-autoscaling.amazonaws.com`."
    ]


def test_the_role_is_the_one_the_endpoint_construct_names() -> None:
    from mme_constructs.multi_model_endpoint import AUTOSCALING_SERVICE_LINKED_ROLE

    assert (
        f"/{AUTOSCALING_SERVICE_LINKED_ROLE}"
        == preflight.AUTOSCALING_ROLE_PATH + preflight.AUTOSCALING_ROLE_NAME
    )


# -- denied calls -------------------------------------------------------------------------------------


def _denial(action: str, resource: str, purpose: str) -> str:
    return (
        f"The deploying identity {CALLER} is not allowed {action} on {resource}, which preflight needs to "
        f"{purpose}: grant it {action} (mme_cli/preflight.py lists every permission preflight needs) and "
        "run `mme deploy` again."
    )


def test_denied_ssm_names_ssm_get_parameter_and_the_other_checks_still_run(aws: None) -> None:
    autoscaling_role()

    result, _ = check(quotas=stub_quotas([ample()]), overrides={"ssm": denied("ssm", "get_parameter").client})

    assert result.problems == [
        _denial(
            "ssm:GetParameter", "parameter /cdk-bootstrap/hnb659fds/version", "read the CDK bootstrap version"
        )
    ]
    assert len(result.passed) == 6  # credentials, images, three quotas, the role


def test_denied_service_quotas_names_the_permission_and_the_quotas(aws: None) -> None:
    bootstrap()
    autoscaling_role()

    result, _ = check(quotas=denied("service-quotas", "list_service_quotas"))

    assert result.problems == [
        _denial("servicequotas:ListServiceQuotas", "*", "check the SageMaker instance quotas").removesuffix(
            "."
        )
        + f", or check '{TRAINING}', '{TRANSFORM}', '{ENDPOINT}' in the Service Quotas console."
    ]


def test_denied_default_quotas_are_named_when_the_fallback_needs_them(aws: None) -> None:
    bootstrap()
    autoscaling_role()
    client = boto3.client("service-quotas", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_response(
        "list_service_quotas",
        {"Quotas": [quota(TRAINING, 20)]},
        {"ServiceCode": "sagemaker", "MaxResults": 100},
    )
    stubber.add_client_error(
        "list_aws_default_service_quotas", service_error_code="AccessDeniedException", http_status_code=400
    )
    stubber.activate()

    result, _ = check(quotas=stubber)

    assert [p.split(" on ")[0] for p in result.problems] == [
        f"The deploying identity {CALLER} is not allowed servicequotas:ListAWSDefaultServiceQuotas"
    ]


def test_denied_iam_names_iam_get_role(aws: None) -> None:
    bootstrap()

    result, _ = check(
        quotas=stub_quotas([ample()]), overrides={"iam": denied("iam", "get_role", "AccessDenied").client}
    )

    assert result.problems == [
        _denial(
            "iam:GetRole",
            f"role {preflight.AUTOSCALING_ROLE_PATH}{preflight.AUTOSCALING_ROLE_NAME}",
            "check the service-linked role endpoint autoscaling uses",
        )
    ]


def test_every_failure_at_once_is_collected(aws: None) -> None:
    bootstrap("4")

    result, _ = check(
        quotas=stub_quotas([[quota(TRAINING, 1), quota(TRANSFORM, 1), quota(ENDPOINT, 1)]]),
        overrides={"iam": denied("iam", "get_role", "AccessDenied").client},
    )

    assert [p.split(" ")[0:3] for p in result.problems] == [
        ["The", "CDK", "bootstrap"],
        ["Quota", f"'{TRAINING.split(' ')[0]}", "for"],
        ["Quota", f"'{TRANSFORM.split(' ')[0]}", "for"],
        ["Quota", f"'{ENDPOINT.split(' ')[0]}", "for"],
        ["The", "deploying", "identity"],
    ]
