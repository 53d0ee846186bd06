"""The checks ``mme deploy`` runs before it changes any stack, so a deploy fails in seconds, not mid-way.

A CloudFormation deploy that runs into a missing bootstrap, an image SageMaker does not have in the
region or an instance quota of 0 fails minutes in, after rolling back whatever it had created. Every
one of those is knowable up front from a few read-only calls, so :func:`run_preflight` makes them,
collects every failed check (it never stops at the first one, and never raises for a failed check)
and returns one sentence per problem that names the fix: a command to run, a config key to change,
or a quota to request by name and code.

The checks, in order:

1. **Credentials and account** (STS ``GetCallerIdentity``): the credentials work, and they are for
   the account the config pins (``account``), if it pins one; a pinned ``region`` must also be the
   deploy region, because the stacks go to the pinned one. When this check fails the AWS checks
   below are skipped: they would fail the same way, or describe the wrong account.
2. **Images** (no AWS call): the committed image table (``mme_constructs/data/sagemaker_images.json``,
   read through the CDK-free ``mme_constructs.image_table``) has the scikit-learn
   ``training.sklearn_framework_version`` training and inference images and the training and
   inference images of the configured algorithm (``training.algorithm`` at
   ``training.algorithm_image_tag``, e.g. ``xgboost 1.7-1``) in the deploy region.
3. **CDK bootstrap** (SSM ``GetParameter``): ``/cdk-bootstrap/<qualifier>/version`` exists and is at
   least :data:`REQUIRED_BOOTSTRAP_VERSION`.
4. **Instance quotas** (Service Quotas ``ListServiceQuotas``, falling back to
   ``ListAWSDefaultServiceQuotas``): one quota per instance type and use, sized by
   :func:`quota_needs`.
5. **Autoscaling's service-linked role** (IAM ``GetRole``, only with
   ``endpoint.autoscaling.enabled``). A missing role is a note, not a problem: Application Auto
   Scaling creates it on the first RegisterScalableTarget for SageMaker, which the endpoint stack
   makes through the CDK CloudFormation execution role; a role of that name on another path is a
   problem, because it blocks the real one.

Quota needs (see :func:`quota_needs`) are what one training run and the endpoint use at once. The
endpoint's blue/green update peak is reported as a note on the passed line and asked for in the fix
of a failed one, but not required, because a first deploy does not need it and an update that runs
out of quota fails with the old fleet still serving.

Permissions the deploying identity needs for preflight (all read-only):

* ``sts:GetCallerIdentity``: none to grant; the call needs no permission and cannot be denied.
* ``ssm:GetParameter`` on
  ``arn:<partition>:ssm:<region>:<account>:parameter/cdk-bootstrap/<qualifier>/version``.
* ``servicequotas:ListServiceQuotas`` and ``servicequotas:ListAWSDefaultServiceQuotas`` on ``*``
  (these list actions take no resource).
* ``iam:GetRole`` on ``arn:<partition>:iam::<account>:role/aws-service-role/``
  ``sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint``
  (only when ``endpoint.autoscaling.enabled``).

A denied call becomes a problem sentence naming the missing permission; nothing else is skipped.

What preflight does not check: how much of a quota other endpoints and jobs in the account already
use (quotas are account-wide per region), and the permissions of the CDK roles themselves (the CDK
CLI checks those when it assumes them).

Sources (AWS documentation):

* GetCallerIdentity needs no permission:
  https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html
* Bootstrap version parameter and qualifier:
  https://docs.aws.amazon.com/cdk/v2/guide/bootstrapping-env.html and
  https://docs.aws.amazon.com/cdk/v2/guide/bootstrapping-customizing.html
* ListServiceQuotas ("If the applied quota value is not available for a quota, the quota is not
  retrieved"), hence the fallback to the defaults:
  https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ListServiceQuotas.html and
  https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ListAWSDefaultServiceQuotas.html
* SageMaker quota names (``<type> for training job usage`` / ``for transform job usage`` /
  ``for endpoint usage``) and codes per region: https://docs.aws.amazon.com/general/latest/gr/sagemaker.html
  and the Service Quotas console; codes differ per instance type, so they are found by name.
* Endpoint updates run a new fleet next to the old one:
  https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-blue-green.html and
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_UpdateEndpoint.html
* The service-linked role is created by Application Auto Scaling on the first RegisterScalableTarget
  for SageMaker, if the caller may ``iam:CreateServiceLinkedRole``:
  https://docs.aws.amazon.com/autoscaling/application/userguide/services-that-can-integrate-sagemaker.html and
  https://docs.aws.amazon.com/autoscaling/application/userguide/application-auto-scaling-service-linked-roles.html
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
    SSOError,
    TokenRetrievalError,
)

from mme_cli import errors
from mme_cli.cdk import REPO_ROOT
from mme_constructs import image_table
from project_config import ProjectConfig
from project_config import instance_types as types
from project_config.model import MULTI_MODEL_CPU_FAMILIES

ClientFactory = Callable[[str], Any]
"""``client(service_name)`` -> a boto3 client for the deploy region (``CliContext.client``)."""

REQUIRED_BOOTSTRAP_VERSION: Final = 6
"""What the synthesized app requires: every stack and asset manifest in ``cdk.out/manifest.json``
says ``requiresBootstrapStackVersion: 6`` (checked with aws-cdk-lib 2.275 and the default
synthesizer), and each template's ``CheckBootstrapVersion`` rule rejects versions 1-5
(tests/cli/test_preflight.py reads that rule from the committed snapshots)."""

DEFAULT_QUALIFIER: Final = "hnb659fds"
QUALIFIER_CONTEXT_KEY: Final = "@aws-cdk/core:bootstrapQualifier"

AUTOSCALING_SERVICE: Final = "sagemaker.application-autoscaling.amazonaws.com"
AUTOSCALING_ROLE_NAME: Final = "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
AUTOSCALING_ROLE_PATH: Final = f"/aws-service-role/{AUTOSCALING_SERVICE}/"
"""Together the role ``mme_constructs.multi_model_endpoint.AUTOSCALING_SERVICE_LINKED_ROLE`` names
(repeated here because that module imports aws_cdk; a test keeps the two equal)."""

_ACCESS_DENIED: Final = errors.ACCESS_DENIED_CODES
_EXPIRED: Final = errors.EXPIRED_CODES
_REJECTED: Final = errors.REJECTED_CODES

QuotaUse = Literal["training job", "transform job", "endpoint"]
_INSTANCE_USES: Final[Mapping[QuotaUse, types.InstanceUse]] = {
    "training job": types.TRAINING_JOB,
    "transform job": types.TRANSFORM_JOB,
    "endpoint": types.ENDPOINT,
}


@dataclass(frozen=True)
class PreflightResult:
    """What ``mme deploy`` shows before it deploys, and refuses to deploy on if ``problems``."""

    account: str
    """The caller's account; the config's pinned account (or "") when the credentials did not work."""
    region: str
    passed: list[str]
    """One line per check that passed, for display (a line may end with a note, such as the quota an
    endpoint update will need)."""
    problems: list[str]
    """One sentence per failed check, each including the fix."""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class QuotaNeed:
    """How many instances of one type one use needs at once, and which config keys decide it."""

    instance_type: str
    use: QuotaUse
    count: int
    why: str
    """Completes "needs <count> (<why>)"."""
    type_keys: tuple[str, ...]
    """The config keys that chose ``instance_type`` for this use."""
    scale_key: str | None = None
    """The config key that multiplies the count, if lowering it is a fix."""
    per_scale_unit: int = 1
    """Instances per unit of ``scale_key`` (two transforms per location)."""
    scale_floor: int = 1
    """The lowest value ``scale_key`` may take (the endpoint's max_capacity >= its initial count)."""
    update_count: int | None = None
    """Endpoints only: the instances in use while a blue/green update runs."""
    update_why: str = ""

    @property
    def quota_name(self) -> str:
        return f"{self.instance_type} for {self.use} usage"


def quota_needs(config: ProjectConfig) -> list[QuotaNeed]:
    """The instances each configured type and use needs at the same time, for one training run.

    * Training jobs: the preprocessor's job (one instance) runs alone before the per-location Map,
      which then runs up to ``training.parallel_training_jobs`` training jobs of one instance each.
      On one shared type that is ``max(parallel_training_jobs, 1)``; on two types, 1 and the count.
    * Transform jobs: a run makes one one-instance batch transform per split (train and validation)
      over all of its locations, both at once, before the per-location Map: 2, whatever the
      number of locations or ``parallel_training_jobs``.
    * Endpoint: ``autoscaling.max_capacity`` when autoscaling is on (what a scale-out reaches),
      else ``initial_instance_count``. An update of the endpoint (a new endpoint config, e.g. a new
      preprocessor generation) is blue/green: SageMaker starts a whole new fleet while the old one
      serves, and keeps the old one through the baking period. The new fleet is as large as the old:
      the endpoint sets RetainAllVariantProperties, so with autoscaling it keeps the current
      (up to ``max_capacity``) count; without, both fleets have ``initial_instance_count``. That
      peak, twice the count (``update_count``), is reported but not required: the first deploy does
      not need it, and an update that runs out of quota fails while the old fleet keeps serving.

    Two training runs at once would need twice the job quotas; the state machine does not prevent
    it, but one run at a time is how the project is operated.
    """
    training, endpoint = config.training, config.endpoint
    parallel = training.parallel_training_jobs
    needs: list[QuotaNeed] = []
    if training.training_instance_type == training.preprocessor_instance_type:
        needs.append(
            QuotaNeed(
                training.training_instance_type,
                "training job",
                max(parallel, 1),
                f"training.parallel_training_jobs = {parallel} location training jobs at once; the "
                "preprocessor's job runs on the same type before them",
                ("training.training_instance_type", "training.preprocessor_instance_type"),
                scale_key="training.parallel_training_jobs",
            )
        )
    else:
        needs.append(
            QuotaNeed(
                training.preprocessor_instance_type,
                "training job",
                1,
                "the preprocessor's training job, one instance",
                ("training.preprocessor_instance_type",),
            )
        )
        needs.append(
            QuotaNeed(
                training.training_instance_type,
                "training job",
                parallel,
                f"training.parallel_training_jobs = {parallel} location training jobs at once",
                ("training.training_instance_type",),
                scale_key="training.parallel_training_jobs",
            )
        )
    needs.append(
        QuotaNeed(
            training.transform_instance_type,
            "transform job",
            2,
            "the run's 2 batch transforms, train and validation, each over all of its locations",
            ("training.transform_instance_type",),
        )
    )
    scaling = endpoint.autoscaling
    if scaling.enabled:
        running, why = scaling.max_capacity, "endpoint.autoscaling.max_capacity"
        scale_key, floor = "endpoint.autoscaling.max_capacity", endpoint.initial_instance_count
        new_fleet = (
            f"a new fleet as large as the running one (up to {running}: the endpoint retains the "
            "autoscaled instance count across updates)"
        )
    else:
        running, why = endpoint.initial_instance_count, "endpoint.initial_instance_count"
        scale_key, floor = "endpoint.initial_instance_count", 1
        new_fleet = f"a new fleet of endpoint.initial_instance_count = {running}"
    needs.append(
        QuotaNeed(
            endpoint.instance_type,
            "endpoint",
            running,
            why,
            ("endpoint.instance_type",),
            scale_key=scale_key,
            scale_floor=floor,
            update_count=2 * running,
            update_why=(
                f"a blue/green update starts {new_fleet} while the old fleet serves, and keeps the old "
                "one through endpoint.update_baking_period_seconds"
            ),
        )
    )
    return needs


def bootstrap_qualifier(cdk_json: Path = REPO_ROOT / "cdk.json") -> str:
    """The bootstrap qualifier the app synthesizes with: cdk.json's context value, or CDK's default.

    The default synthesizer reads ``@aws-cdk/core:bootstrapQualifier`` from the context; this reads
    it from cdk.json only (not ``-c`` or cdk.context.json), which is where this project would set it.
    """
    try:
        context = json.loads(cdk_json.read_text(encoding="utf-8")).get("context", {})
    except FileNotFoundError:
        return DEFAULT_QUALIFIER
    value = context.get(QUALIFIER_CONTEXT_KEY)
    return value if isinstance(value, str) and value else DEFAULT_QUALIFIER


def run_preflight(
    client: ClientFactory, config: ProjectConfig, *, region: str, qualifier: str | None = None
) -> PreflightResult:
    """Run every check for deploying ``config`` to ``region``; failed checks are collected, not raised.

    ``qualifier`` defaults to :func:`bootstrap_qualifier`. Only programming errors raise.
    """
    checks = _Checks(client=client, config=config, region=region)
    identity = checks.identity()
    checks.images()
    if identity is not None:
        checks.bootstrap(qualifier or bootstrap_qualifier())
        checks.quotas()
        if config.endpoint.autoscaling.enabled:
            checks.autoscaling_role()
    return PreflightResult(
        account=checks.account or config.account or "",
        region=region,
        passed=checks.passed,
        problems=checks.problems,
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        message = error.response.get("Error", {}).get("Message", "")
        return f"{_code(error)}: {message}" if message else _code(error)
    return str(error)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _either(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" or {items[-1]}"


@dataclass
class _Checks:
    client: ClientFactory
    config: ProjectConfig
    region: str
    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    account: str = ""
    caller_arn: str = ""

    # -- shared sentences -------------------------------------------------------------------------

    def _denied(self, action: str, resource: str, purpose: str) -> str:
        return (
            f"The deploying identity {self.caller_arn} is not allowed {action} on {resource}, which "
            f"preflight needs to {purpose}: grant it {action} (mme_cli/preflight.py lists every "
            "permission preflight needs) and run `mme deploy` again."
        )

    def _failed(self, api: str, purpose: str, error: Exception) -> str:
        return (
            f"Calling {api} in {self.region} to {purpose} failed ({_describe(error)}): check the "
            "network, the region and the credentials, then run `mme deploy` again."
        )

    # -- 1. credentials and account ---------------------------------------------------------------

    def identity(self) -> str | None:
        """The caller's account, or None (with a problem) when the AWS checks cannot go on."""
        skipped = "the AWS checks were skipped"
        try:
            identity = self.client("sts").get_caller_identity()
        except (NoCredentialsError, PartialCredentialsError):
            self.problems.append(
                "No usable AWS credentials were found: run `aws configure` (or `aws sso login` for an "
                f"SSO profile), or pass --profile or set AWS_PROFILE to a configured profile; {skipped}."
            )
            return None
        except (SSOError, TokenRetrievalError):
            self.problems.append(
                "The AWS SSO session has expired or was never started: run `aws sso login` (with "
                f"--profile for a named profile) and run `mme deploy` again; {skipped}."
            )
            return None
        except ClientError as error:
            code = _code(error)
            if code in _EXPIRED:
                sentence = (
                    f"The AWS credentials have expired ({code}): refresh them (`aws sso login`, or new "
                    f"temporary keys from your identity provider) and run `mme deploy` again; {skipped}."
                )
            elif code in _REJECTED:
                sentence = (
                    f"AWS rejected the credentials ({_describe(error)}): fix the access key with "
                    f"`aws configure` or choose another --profile, then run `mme deploy` again; {skipped}."
                )
            else:
                sentence = self._failed("STS GetCallerIdentity", "identify the caller", error)
                sentence = sentence.removesuffix(".") + f"; {skipped}."
            self.problems.append(sentence)
            return None
        except BotoCoreError as error:
            sentence = self._failed("STS GetCallerIdentity", "identify the caller", error)
            self.problems.append(sentence.removesuffix(".") + f"; {skipped}.")
            return None

        self.account, self.caller_arn = str(identity["Account"]), str(identity["Arn"])
        pinned_account, pinned_region = self.config.account, self.config.region
        if pinned_account is not None and pinned_account != self.account:
            self.problems.append(
                f"The credentials ({self.caller_arn}) are for account {self.account}, but the config "
                f"pins account {pinned_account} (`account`): use credentials for {pinned_account} "
                "(--profile) or change `account` in the config; the other AWS checks were skipped "
                "because they would describe the wrong account."
            )
            return None
        if pinned_region is not None and pinned_region != self.region:
            self.problems.append(
                f"The deploy region is {self.region}, but the config pins region {pinned_region} "
                f"(`region`) and the stacks deploy there: pass --region {pinned_region} or change "
                "`region` in the config; the other AWS checks were skipped because they would "
                "describe the wrong region."
            )
            return None
        pin = "the account the config pins" if pinned_account else "the config pins no account"
        self.passed.append(f"Credentials: {self.caller_arn} in account {self.account} ({pin}).")
        return self.account

    # -- 2. images --------------------------------------------------------------------------------

    def images(self) -> None:
        training = self.config.training
        version, algorithm = training.sklearn_framework_version, training.algorithm_image
        with_images = {
            scope: set(
                image_table.supported_regions(
                    sklearn_framework_version=version, algorithm=algorithm, sklearn_scope=scope
                )
            )
            for scope in image_table.SKLEARN_SCOPES
        }
        source = f"the image table (sagemaker-core {image_table.sagemaker_core_version()})"
        if all(self.region in regions for regions in with_images.values()):
            self.passed.append(
                f"Images: scikit-learn {version} (training and inference) and {algorithm} exist in "
                f"{self.region} according to {source}."
            )
            return
        if self.region not in image_table.algorithm_regions(algorithm):
            missing = f"{algorithm} image"
            another = "training.algorithm_image_tag (or training.algorithm)"
        else:
            scopes = [scope for scope, regions in with_images.items() if self.region not in regions]
            missing = f"scikit-learn {version} {' or '.join(scopes)} image"
            another = "training.sklearn_framework_version"
        supported = image_table.regions_with_all_images(
            sklearn_framework_version=version, algorithm=algorithm
        )
        self.problems.append(
            f"{source[0].upper()}{source[1:]} has no {missing} for {self.region}: deploy to a region "
            f"that has them ({', '.join(supported)}) with --region or `region` in the config, choose "
            f"another {another}, or run `.venv/bin/python scripts/refresh_image_uris.py` if SageMaker "
            "has added them since."
        )

    # -- 3. CDK bootstrap -------------------------------------------------------------------------

    def bootstrap(self, qualifier: str) -> None:
        parameter = f"/cdk-bootstrap/{qualifier}/version"
        environment = f"aws://{self.account}/{self.region}"
        command = f"npx cdk bootstrap {environment}" + (
            f" --qualifier {qualifier}" if qualifier != DEFAULT_QUALIFIER else ""
        )
        try:
            value = str(self.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"])
        except ClientError as error:
            code = _code(error)
            if code == "ParameterNotFound":
                self.problems.append(
                    f"{environment} is not CDK-bootstrapped (SSM parameter {parameter} does not "
                    f"exist): run `{command}`."
                )
            elif code in _ACCESS_DENIED:
                self.problems.append(
                    self._denied(
                        "ssm:GetParameter", f"parameter {parameter}", "read the CDK bootstrap version"
                    )
                )
            else:
                self.problems.append(
                    self._failed("SSM GetParameter", "read the CDK bootstrap version", error)
                )
            return
        except BotoCoreError as error:
            self.problems.append(self._failed("SSM GetParameter", "read the CDK bootstrap version", error))
            return
        if not value.isdigit():
            self.problems.append(
                f"SSM parameter {parameter} holds {value!r}, not a bootstrap version number: run "
                f"`{command}` to bootstrap {environment} again."
            )
        elif int(value) < REQUIRED_BOOTSTRAP_VERSION:
            self.problems.append(
                f"The CDK bootstrap stack in {environment} is version {value}, older than the "
                f"{REQUIRED_BOOTSTRAP_VERSION} the synthesized templates require: run `{command}` to "
                "upgrade it."
            )
        else:
            self.passed.append(
                f"CDK bootstrap: {environment} is at version {value} (qualifier {qualifier}; the "
                f"templates require {REQUIRED_BOOTSTRAP_VERSION} or newer)."
            )

    # -- 4. instance quotas -----------------------------------------------------------------------

    def _list(self, quotas_client: Any, operation: str) -> dict[str, Mapping[str, Any]]:
        found: dict[str, Mapping[str, Any]] = {}
        paginator = quotas_client.get_paginator(operation)
        for page in paginator.paginate(ServiceCode="sagemaker", PaginationConfig={"PageSize": 100}):
            for quota in page.get("Quotas", []):
                found.setdefault(str(quota["QuotaName"]), quota)
        return found

    def quotas(self) -> None:
        needs = quota_needs(self.config)
        names = ", ".join(f"'{need.quota_name}'" for need in needs)
        purpose = "check the SageMaker instance quotas"
        quotas_client = self.client("service-quotas")
        calls = (("ListServiceQuotas", "list_service_quotas"),
                 ("ListAWSDefaultServiceQuotas", "list_aws_default_service_quotas"))  # fmt: skip
        known: dict[str, Mapping[str, Any]] = {}
        for api, operation in calls:
            if all(need.quota_name in known for need in needs):
                break
            try:
                for name, quota in self._list(quotas_client, operation).items():
                    known.setdefault(name, quota)  # an applied value wins over the default
            except ClientError as error:
                if _code(error) in _ACCESS_DENIED:
                    sentence = self._denied(f"servicequotas:{api}", "*", purpose)
                    sentence = (
                        sentence.removesuffix(".") + f", or check {names} in the Service Quotas console."
                    )
                else:
                    sentence = self._failed(f"Service Quotas {api}", purpose, error)
                self.problems.append(sentence)
                return
            except BotoCoreError as error:
                self.problems.append(self._failed(f"Service Quotas {api}", purpose, error))
                return
        for need in needs:
            self._quota(need, known.get(need.quota_name), known)

    def _alternatives(self, need: QuotaNeed, known: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Up to three types the config accepts for this use whose quota here covers the need."""
        use = _INSTANCE_USES[need.use]
        families = MULTI_MODEL_CPU_FAMILIES if need.use == "endpoint" else None
        chosen: list[str] = []
        for candidate in types.PREFERRED_EXAMPLES:
            quota = known.get(f"{candidate} for {need.use} usage")
            if (
                candidate == need.instance_type
                or quota is None
                or float(quota.get("Value", 0)) < need.count
                or types.instance_type_problem(candidate, use) is not None
                or (families is not None and types.instance_family(candidate) not in families)
            ):
                continue
            chosen.append(f"{candidate} (quota {_number(float(quota['Value']))})")
        return chosen[:3]

    def _quota(
        self, need: QuotaNeed, quota: Mapping[str, Any] | None, known: Mapping[str, Mapping[str, Any]]
    ) -> None:
        keys = " and ".join(need.type_keys)
        alternatives = self._alternatives(need, known)
        if quota is None:
            offer = f" such as {_either(alternatives)}" if alternatives else ""
            self.problems.append(
                f"SageMaker has no quota '{need.quota_name}' in {self.region}, so it does not offer "
                f"{need.instance_type} for {need.use}s there: set {keys} to a type it offers{offer}."
            )
            return
        code = str(quota["QuotaCode"])
        label = f"Quota '{need.quota_name}' ({code})"
        if "Value" not in quota:
            reason = quota.get("ErrorReason", {}).get("ErrorMessage", "no value returned")
            self.problems.append(
                f"{label} has no value in {self.region} ({reason}): look it up in the Service Quotas "
                "console and run `mme deploy` again."
            )
            return
        value = float(quota["Value"])
        adjustable = bool(quota.get("Adjustable", True))
        request = need.update_count or need.count  # endpoints: ask for enough to update, too

        if value < need.count:
            fixes: list[str] = []
            if adjustable:
                fixes.append(f"request {request} with `{self._request_command(code, request)}`")
            lowest = int(value) // need.per_scale_unit
            if need.scale_key is not None and lowest >= need.scale_floor:
                fixes.append(f"lower {need.scale_key} to {lowest}")
            offer = f" such as {_either(alternatives)}" if alternatives else ""
            fixes.append(f"set {keys} to a type with enough quota{offer}")
            fixed = "; it is not adjustable, so " if not adjustable else ": "
            update = (
                f" and {need.update_count} while an update runs ({need.update_why})"
                if need.update_count is not None
                else ""
            )
            self.problems.append(
                f"{label} is {_number(value)} in {self.region}, but {self._needer(need)} needs "
                f"{need.count} ({need.why}){update}{fixed}{_either(fixes)}."
            )
            return
        line = f"{label}: {_number(value)} in {self.region}, {need.count} needed ({need.why})"
        if need.update_count is not None and value < need.update_count:
            how = (
                f"request {need.update_count} with `{self._request_command(code, need.update_count)}`"
                if adjustable
                else f"the quota is not adjustable, so keep updates within {_number(value)} instances"
            )
            line += (
                f"; note: an update needs {need.update_count} ({need.update_why}), so {how} before "
                "updating the endpoint, or the update fails while the old fleet keeps serving"
            )
        self.passed.append(line + ".")

    @staticmethod
    def _needer(need: QuotaNeed) -> str:
        return "the endpoint" if need.use == "endpoint" else "a training run"

    def _request_command(self, code: str, desired: int) -> str:
        return (
            "aws service-quotas request-service-quota-increase --service-code sagemaker "
            f"--quota-code {code} --desired-value {desired} --region {self.region}"
        )

    # -- 5. autoscaling's service-linked role -----------------------------------------------------

    def autoscaling_role(self) -> None:
        create = f"aws iam create-service-linked-role --aws-service-name {AUTOSCALING_SERVICE}"
        purpose = "check the service-linked role endpoint autoscaling uses"
        try:
            role = self.client("iam").get_role(RoleName=AUTOSCALING_ROLE_NAME)["Role"]
        except ClientError as error:
            code = _code(error)
            if code == "NoSuchEntity":
                # Not a problem: Application Auto Scaling creates the role on the first
                # RegisterScalableTarget for SageMaker, which the stack makes through its
                # CloudFormation execution role (AdministratorAccess in the default bootstrap).
                self.passed.append(
                    f"Autoscaling role: {AUTOSCALING_ROLE_NAME} does not exist yet; Application Auto "
                    "Scaling creates it when the endpoint stack registers the scalable target, which "
                    "needs iam:CreateServiceLinkedRole in the CDK CloudFormation execution role (the "
                    f"default bootstrap's AdministratorAccess has it); to create it now, run `{create}`."
                )
            elif code in _ACCESS_DENIED:
                self.problems.append(
                    self._denied(
                        "iam:GetRole", f"role {AUTOSCALING_ROLE_PATH}{AUTOSCALING_ROLE_NAME}", purpose
                    )
                )
            else:
                self.problems.append(self._failed("IAM GetRole", purpose, error))
            return
        except BotoCoreError as error:
            self.problems.append(self._failed("IAM GetRole", purpose, error))
            return
        if role.get("Path") != AUTOSCALING_ROLE_PATH:
            self.problems.append(
                f"The role {role.get('Arn')} has the name of Application Auto Scaling's service-linked "
                f"role but the path {role.get('Path')!r}, not {AUTOSCALING_ROLE_PATH!r}, so it is not "
                "that role and blocks its creation: delete or rename it, then run "
                f"`{create}`."
            )
            return
        self.passed.append(f"Autoscaling role: {role['Arn']} exists.")
