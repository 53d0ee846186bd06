"""A Python Lambda function built from ``lambda/<name>/`` plus the shared ``mme_shared`` package.

No Docker: the handler folder and ``mme_shared`` are copied into one staging folder at synth time
and published as a directory asset, so a handler imports ``mme_shared`` exactly as the tests do and
the shared code is never copied by hand. Each function gets its own role with one customer-managed
policy (no AWS-managed policies), its own KMS-encrypted log group with a retention period, JSON
logs at INFO (application) and WARN (platform), and X-Ray tracing.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from mme_constructs.access import ScopedPolicy, acknowledge

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
HANDLERS_DIR: Final = REPO_ROOT / "lambda"
SHARED_PACKAGE: Final = REPO_ROOT / "mme_shared"
RUNTIME: Final = lambda_.Runtime.PYTHON_3_14

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")

_RETENTION_NAMES: Final = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS",
    1096: "THREE_YEARS", 1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS",
    2922: "EIGHT_YEARS", 3288: "NINE_YEARS", 3653: "TEN_YEARS",
}  # fmt: skip


def log_retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for a number of days the config allows."""
    if days not in _RETENTION_NAMES:
        raise ValueError(f"{days} is not a CloudWatch Logs retention period")
    return logs.RetentionDays[_RETENTION_NAMES[days]]


def encrypted_log_group(
    scope: Construct, construct_id: str, *, key: kms.IKey, retention_days: int
) -> logs.LogGroup:
    """A log group of the project: encrypted with its key, kept ``retention_days``, removed with its
    stack."""
    return logs.LogGroup(
        scope,
        construct_id,
        encryption_key=key,
        retention=log_retention(retention_days),
        removal_policy=RemovalPolicy.DESTROY,
    )


def stage_handler(name: str) -> Path:
    """Copy ``lambda/<name>/`` and ``mme_shared/`` into a fresh folder; return that folder.

    The asset hash is computed from the staged files' contents, so it changes exactly when the
    handler or the shared package changes.
    """
    source = HANDLERS_DIR / name
    if not (source / f"{name}.py").is_file():
        raise ValueError(f"Lambda handler {name!r} not found: expected lambda/{name}/{name}.py")
    staging = Path(tempfile.mkdtemp(prefix=f"mme-lambda-{name}-"))
    shutil.copytree(source, staging, dirs_exist_ok=True, ignore=_IGNORED)
    shutil.copytree(SHARED_PACKAGE, staging / SHARED_PACKAGE.name, ignore=_IGNORED)
    return staging


def function_identity(
    scope: Construct,
    *,
    key: kms.IKey,
    log_retention_days: int,
    role_description: str,
    policy_description: str,
) -> tuple[logs.LogGroup, iam.Role, ScopedPolicy]:
    """What every Lambda of the project runs as: its own KMS-encrypted log group with a retention
    period, its own role, and that role's one policy, which may already write to the log group
    (children ``Logs``, ``Role`` and ``Permissions`` of ``scope``)."""
    log_group = encrypted_log_group(scope, "Logs", key=key, retention_days=log_retention_days)
    role = iam.Role(
        scope, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=role_description
    )
    permissions = ScopedPolicy(scope, "Permissions", role=role, description=policy_description)
    permissions.allow(["logs:CreateLogStream", "logs:PutLogEvents"], [log_group.log_group_arn])
    return log_group, role, permissions


class HandlerFunction(Construct):
    """One project Lambda: ``lambda/<name>/<name>.py`` with ``handler(event, context)``.

    ``self.permissions`` is the function's only policy; callers add what the handler needs.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler_name: str,
        description: str,
        environment: Mapping[str, str],
        key: kms.IKey,
        log_retention_days: int,
        timeout: Duration,
        invoked_by: str = "the training state machine",
        dlq_reason: str = (
            "Invoked synchronously by the training state machine, which records every failure; a "
            "dead-letter queue applies only to asynchronous invocations."
        ),
        memory_size: int = 256,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group, self.role, self.permissions = function_identity(
            self,
            key=key,
            log_retention_days=log_retention_days,
            role_description=f"Runs the {handler_name} Lambda handler",
            policy_description=f"What the {handler_name} handler may do",
        )
        self.permissions.allow_xray()
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            code=lambda_.Code.from_asset(str(stage_handler(handler_name))),
            handler=f"{handler_name}.handler",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            environment=dict(environment),
            log_group=self.log_group,
            role=self.role.without_policy_updates(),
            timeout=timeout,
            memory_size=memory_size,
            tracing=lambda_.Tracing.ACTIVE,
            # Lambda's native JSON log format: every ``logging`` record (with its ``extra`` keys as
            # top-level fields) and every platform record is one JSON object, filtered by level. See
            # "Configuring advanced logging controls for Lambda functions" and "Using Lambda's JSON
            # log format with Python":
            # https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-advanced.html
            # https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
        )
        for rule, reason in (
            (
                "NIST.800.53.R5::NIST.800.53.R5-LambdaConcurrency",
                f"Invoked only by {invoked_by}, which bounds its concurrency; reserving "
                "concurrency would fail deploys in accounts with a small Lambda quota.",
            ),
            ("NIST.800.53.R5::NIST.800.53.R5-LambdaDLQ", dlq_reason),
            (
                "NIST.800.53.R5::NIST.800.53.R5-LambdaInsideVPC",
                "The handler only calls AWS APIs over TLS with IAM auth and keeps no data locally; "
                "no VPC resource needs to be reached.",
            ),
        ):
            acknowledge(self.function, rule, reason)
