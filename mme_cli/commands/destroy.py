"""``mme destroy``: remove a deployment's stacks in dependency order, and optionally its data.

What it does, in order:

1. Reads everything it will need later *before* deleting anything: the deployment's stacks (live ones
   and, for a second run after a partial failure, the ones already deleted), the storage stack's
   buckets and key, the training stack's SageMaker job role, the endpoint's name, and the job names of
   every training run (from the runs' ``pipeline-runs/<run>/plan.json`` in the bucket). CloudFormation
   keeps a deleted stack's description and resources for 90 days, readable by its unique stack id
   (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ListStackResources.html,
   https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html), so a
   second run still finds the names a first run's deletions removed.
2. Asks for confirmation, listing exactly what will be deleted and what is kept.
3. Runs ``cdk destroy --force --exclusively <stack>`` once per stateless stack that exists, dependents
   first: tenant stacks (they import the endpoint's ARN) -> monitoring (the endpoint's and the state
   machine's names) -> endpoint (``add_stack_dependency(training)`` in app.py; its serving-generation
   custom resource deletes ``preprocessor/serving.json``) -> training. ``--exclusively`` makes each call
   delete exactly the stack it names (https://docs.aws.amazon.com/cdk/v2/guide/ref-cli-cmd-destroy.html),
   so a failure names the stack that failed; the first failure stops the command with cdk's exit code.
4. Keeps the storage stack unless ``--including-data``. With it: turns off the stack's termination
   protection, deletes the stack (``RETAIN`` leaves the buckets and key, so no data is lost if this
   fails), then empties each bucket of every object version and delete marker (ListObjectVersions +
   DeleteObjects, at most 1,000 keys a request:
   https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html), deletes it, and schedules
   the KMS key for deletion after the minimum waiting period of 7 days
   (https://docs.aws.amazon.com/kms/latest/developerguide/deleting-keys.html), during which
   ``aws kms cancel-key-deletion`` recovers it.
5. Lists what AWS leaves behind and deletes it when asked (``--clean-up`` or the prompt):
   the endpoint's log group ``/aws/sagemaker/Endpoints/<endpoint>`` (only that endpoint writes it), this
   deployment's job log streams in the account-wide ``/aws/sagemaker/TrainingJobs`` and
   ``/aws/sagemaker/TransformJobs`` groups (https://docs.aws.amazon.com/sagemaker/latest/dg/logging-cloudwatch.html;
   a stream is named ``<job name>/<instance>``, and only streams of job names listed in this
   deployment's run plans are deleted, never the groups, which other jobs of the account share), and
   the ``pp-<run>`` SageMaker models the state machine created (not managed by CloudFormation; only
   those whose execution role is this deployment's job role). Training and transform jobs cannot be
   deleted in SageMaker; they stay in the job history.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import typer
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mme_cli.cdk import CdkFailed, CdkRunner, SubprocessCdk, cdk_args, run_cdk
from mme_cli.context import CliContext
from mme_cli.deployment import CliError
from mme_constructs.algorithms import JOB_STEPS
from mme_shared import naming, s3_layout
from mme_shared.stack_names import ENDPOINT_NAME, StackRole, is_deployment_stack, is_tenant_stack, stack_name

CDK_FACTORY: Callable[[str], CdkRunner] = SubprocessCdk
"""Makes the CDK runner for a region; the tests replace it with a recording fake."""

RETRY_WITH: Final = "mme destroy"
DELETE_BATCH: Final = 1000
"""DeleteObjects accepts at most 1,000 keys per request."""
KEY_PENDING_WINDOW_DAYS: Final = 7
"""The shortest waiting period KMS allows before it deletes a key (7 to 30 days)."""
BUCKET_DELETE_ATTEMPTS: Final = 3
"""Server access logs can arrive in the log bucket after it was emptied; empty it again and retry."""
DELETED: Final = "DELETE_COMPLETE"

STACK_ROLES: Final[Mapping[StackRole, str]] = {
    StackRole.MONITORING: "the dashboard, the alarms and their SNS topic",
    StackRole.ENDPOINT: "the multi-model endpoint, its endpoint config, model and autoscaling; "
    "the stack's custom resource removes preprocessor/serving.json",
    StackRole.TRAINING: "the training state machine, its SageMaker job role and its five Lambdas",
}
TENANT_ROLE: Final = "the tenants' invoke roles"
JOB_ROLE_LOGICAL_ID_PREFIX: Final = "TrainingPipelineJobRole"
"""The SageMaker job role of the training stack (construct TrainingPipeline/JobRole)."""
ARTIFACT_BUCKET_LOGICAL_ID_PREFIX: Final = "ArtifactStoreBucket"
LOG_BUCKET_LOGICAL_ID_PREFIX: Final = "ArtifactStoreAccessLogBucket"
"""Logical ids of the storage stack's buckets (pinned by tests/test_storage_stack.py)."""
ENDPOINT_LOG_GROUP_PREFIX: Final = "/aws/sagemaker/Endpoints/"
JOB_LOG_GROUPS: Final = {
    "/aws/sagemaker/TrainingJobs": (naming.PREPROCESSOR_STEP, *JOB_STEPS),
    "/aws/sagemaker/TransformJobs": naming.TRANSFORM_STEPS,
}
"""Account-wide groups SageMaker writes job logs to, and the job-name prefixes of ours in each. The
training jobs' are every algorithm's step, not only the configured one's: a deployment may have
trained with another algorithm before (only streams of job names in its run plans are deleted)."""

Say = Callable[[str], None]


def register(
    app: typer.Typer, *, models_app: typer.Typer, experiment_app: typer.Typer, access_app: typer.Typer
) -> None:
    """Add ``destroy`` to the top-level app (the groups are not used here)."""
    app.command("destroy")(destroy)


# --------------------------------------------------------------------------------------------------
# What exists


@dataclass(frozen=True)
class StackRef:
    """The newest stack of one name: live, or (for 90 days) deleted."""

    name: str
    stack_id: str
    status: str

    @property
    def deleted(self) -> bool:
        return self.status == DELETED


@dataclass(frozen=True)
class Storage:
    """The storage stack's retained resources, by physical name (None: not found in the stack)."""

    bucket: str | None
    log_bucket: str | None
    key_id: str | None


@dataclass
class Inventory:
    """Everything the command deletes or reports, read before anything is deleted."""

    prefix: str
    stacks: dict[str, StackRef]
    storage: Storage | None = None
    endpoint_name: str | None = None
    job_role_name: str | None = None
    job_names: set[str] | None = None
    """Every SageMaker job name in this deployment's run plans; None when the plans could not be read."""
    run_count: int = 0
    notes: list[str] = field(default_factory=list)

    def live(self, name: str) -> bool:
        ref = self.stacks.get(name)
        return ref is not None and not ref.deleted

    @property
    def storage_stack(self) -> str:
        return stack_name(self.prefix, StackRole.STORAGE)

    def stateless_stacks(self) -> list[str]:
        """The live stateless stacks, dependents first."""
        tenants = sorted(name for name in self.stacks if is_tenant_stack(self.prefix, name))
        ordered = [*tenants, *(stack_name(self.prefix, role) for role in STACK_ROLES)]
        return [name for name in ordered if self.live(name)]

    def role_of(self, name: str) -> str:
        """What a stateless stack holds, for the summary before anything is deleted."""
        held = {stack_name(self.prefix, role): what for role, what in STACK_ROLES.items()}
        return held.get(name, TENANT_ROLE)


def find_stacks(cloudformation: Any, prefix: str) -> dict[str, StackRef]:
    """The deployment's stacks by name: the live one, or else the most recently deleted one.

    ListStacks without a status filter includes stacks deleted in the last 90 days.
    """
    live: dict[str, StackRef] = {}
    deleted: dict[str, tuple[Any, StackRef]] = {}
    for page in cloudformation.get_paginator("list_stacks").paginate():
        for summary in page["StackSummaries"]:
            name = summary["StackName"]
            if not is_deployment_stack(prefix, name):
                continue
            ref = StackRef(name=name, stack_id=summary["StackId"], status=summary["StackStatus"])
            if not ref.deleted:
                live[name] = ref
            else:
                when = summary.get("DeletionTime") or summary.get("CreationTime")
                if name not in deleted or (when is not None and when > deleted[name][0]):
                    deleted[name] = (when, ref)
    found = {name: ref for name, (_, ref) in deleted.items()}
    found.update(live)
    return found


def _resources(cloudformation: Any, ref: StackRef) -> list[Mapping[str, str]]:
    summaries: list[Mapping[str, str]] = []
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=ref.stack_id):
        summaries += page["StackResourceSummaries"]
    return summaries


def _outputs(cloudformation: Any, ref: StackRef) -> dict[str, str]:
    stacks = cloudformation.describe_stacks(StackName=ref.stack_id)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in (stacks[0].get("Outputs") or [])}


def _physical(resources: Iterable[Mapping[str, str]], resource_type: str, logical_prefix: str) -> str | None:
    for resource in resources:
        if resource["ResourceType"] == resource_type and resource["LogicalResourceId"].startswith(
            logical_prefix
        ):
            return resource.get("PhysicalResourceId") or None
    return None


def take_inventory(cli: CliContext) -> Inventory:
    """Read the stacks, the names behind them and the runs' job names; delete nothing."""
    cloudformation = cli.client("cloudformation")
    prefix = cli.config.stack_prefix
    inventory = Inventory(prefix=prefix, stacks=find_stacks(cloudformation, prefix))

    storage_ref = inventory.stacks.get(inventory.storage_stack)
    if storage_ref is not None:
        resources = _resources(cloudformation, storage_ref)
        inventory.storage = Storage(
            bucket=_physical(resources, "AWS::S3::Bucket", ARTIFACT_BUCKET_LOGICAL_ID_PREFIX),
            log_bucket=_physical(resources, "AWS::S3::Bucket", LOG_BUCKET_LOGICAL_ID_PREFIX),
            key_id=_physical(resources, "AWS::KMS::Key", ""),
        )
    training_ref = inventory.stacks.get(stack_name(prefix, StackRole.TRAINING))
    if training_ref is not None:
        inventory.job_role_name = _physical(
            _resources(cloudformation, training_ref), "AWS::IAM::Role", JOB_ROLE_LOGICAL_ID_PREFIX
        )
    endpoint_ref = inventory.stacks.get(stack_name(prefix, StackRole.ENDPOINT))
    if endpoint_ref is not None:
        inventory.endpoint_name = _outputs(cloudformation, endpoint_ref).get(ENDPOINT_NAME.key)
    if inventory.storage is not None and inventory.storage.bucket is not None:
        _read_job_names(cli.client("s3"), inventory.storage.bucket, inventory)
    return inventory


def _read_job_names(s3: Any, bucket: str, inventory: Inventory) -> None:
    """Collect every job name of the runs whose plan is in the bucket (``pipeline-runs/<run>/plan.json``).

    A plan lists each location's training and transform job names; the run fitted ``pp-<run>`` when
    its generation is ``pp-<run>`` (a refit). Only these names are this deployment's for certain: job
    names are unique in an account and region, but another deployment's runs use the same scheme.
    """
    job_names: set[str] = set()
    try:
        runs: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=s3_layout.PIPELINE_RUNS_PREFIX, Delimiter="/"
        ):
            parsed = (s3_layout.parse_run_prefix(p["Prefix"]) for p in page.get("CommonPrefixes", []))
            runs += [run for run in parsed if run is not None]  # a folder the pipeline never writes: skip
        for run in runs:
            try:
                body = s3.get_object(Bucket=bucket, Key=s3_layout.run_plan_key(run))["Body"]
            except ClientError as error:
                if _code(error) in {"NoSuchKey", "404"}:
                    continue  # the run was refused before it planned anything: it started no job
                raise
            items = json.loads(body.read())
            inventory.run_count += 1
            for item in items:
                job_names.update(
                    item[key]
                    for key in (
                        "training_job_name",
                        "transform_train_job_name",
                        "transform_validation_job_name",
                    )
                    if isinstance(item.get(key), str)
                )
                if item.get("generation") == f"{naming.PREPROCESSOR_STEP}-{run}":
                    job_names.add(item["generation"])
    except ClientError as error:
        if _code(error) == "NoSuchBucket":
            inventory.job_names = None
            inventory.notes.append(
                f"The artifact bucket {bucket} no longer exists, so the job names of this deployment's runs "
                "are unknown and no job log stream is deleted."
            )
            return
        raise CliError(
            f"Could not read the run plans in s3://{bucket}/{s3_layout.PIPELINE_RUNS_PREFIX} "
            f"({_code(error)}): they name this deployment's jobs; allow s3:ListBucket, s3:GetObject and "
            "kms:Decrypt on the bucket and key, then run `mme destroy` again (nothing was deleted)."
        ) from None
    except (ValueError, TypeError, KeyError, AttributeError):
        raise CliError(
            f"A run plan under s3://{bucket}/{s3_layout.PIPELINE_RUNS_PREFIX} is not the JSON array of work "
            "items the training pipeline writes; nothing was deleted."
        ) from None
    inventory.job_names = job_names


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# --------------------------------------------------------------------------------------------------
# The command


def destroy(
    ctx: typer.Context,
    including_data: Annotated[
        bool,
        typer.Option(
            "--including-data",
            help="Also delete the storage stack and, for good, its artifact bucket (every object version: "
            "data, models, pointers), its access-log bucket, and schedule its KMS key for deletion "
            "(recoverable for 7 days). Confirm by typing the artifact bucket's name.",
        ),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Do not ask for confirmation of the deletion"),
    ] = False,
    clean_up: Annotated[
        bool,
        typer.Option(
            "--clean-up",
            help="Also delete, without asking, what AWS leaves behind: the endpoint's log group, this "
            "deployment's job log streams and its pp-<run> SageMaker models (otherwise you are asked; "
            "with --yes they are only listed)",
        ),
    ] = False,
) -> None:
    """Delete the deployment's stacks (tenants, monitoring, endpoint, training), keeping the data.

    The storage stack (bucket, access logs, KMS key) is kept unless --including-data. Stacks that are
    already gone are skipped, so after a failure fix the cause and run the same command again.
    """
    cli: CliContext = ctx.obj
    say = _printer(cli)
    inventory = take_inventory(cli)
    region = str(cli.session.region_name)
    account = cli.client("sts").get_caller_identity()["Account"]
    stateless = inventory.stateless_stacks()
    delete_storage = including_data and _storage_remains(cli, inventory)

    if stateless or delete_storage:
        _describe_plan(
            say, inventory, stateless, including_data=including_data, account=account, region=region
        )
        if not yes:
            _confirm(inventory, delete_storage=delete_storage)
    elif inventory.live(inventory.storage_stack):
        say(
            f"Of deployment {inventory.prefix} in account {account}, {region} only stack "
            f"{inventory.storage_stack} is left, which is kept without --including-data."
        )
    else:
        say(
            f"No stack of deployment {inventory.prefix} exists in account {account}, {region}: "
            "nothing to destroy."
        )

    cdk = CDK_FACTORY(region)
    done: list[str] = []
    for stack in stateless:
        try:
            _cdk_destroy(cli, ctx, cdk, stack, say, retry_with=_retry_command(including_data))
        except CdkFailed as failed:
            remaining = stateless[stateless.index(stack) :]
            kept = [inventory.storage_stack] if inventory.live(inventory.storage_stack) else []
            say(f"Deleted: {', '.join(done) or 'no stack'}. Still there: {', '.join([*remaining, *kept])}.")
            typer.echo(f"Error: {failed}", err=True)
            raise typer.Exit(failed.exit_code) from None
        done.append(stack)
        say(f"Deleted stack {stack}.")

    if delete_storage:
        _delete_storage(cli, ctx, inventory, say)
    elif inventory.live(inventory.storage_stack) and inventory.storage is not None:
        bucket = inventory.storage.bucket
        say(
            f"Kept stack {inventory.storage_stack}: bucket {bucket} still holds the data and every model "
            f"(s3://{bucket}/{s3_layout.MULTI_MODEL_PREFIX}), its access-log bucket "
            f"{inventory.storage.log_bucket} "
            f"and KMS key {inventory.storage.key_id} remain; `mme deploy` brings the stacks back on them, "
            "`mme destroy --including-data` deletes them."
        )

    _leftovers(cli, inventory, say, clean_up=clean_up, yes=yes)


def _printer(cli: CliContext) -> Say:
    def say(text: str) -> None:
        cli.console.print(text, markup=False, highlight=False, soft_wrap=True)

    return say


def _config_path(ctx: typer.Context) -> Any:
    """The ``--config`` the user gave (cdk must synthesize the same config), or None for the default."""
    root = ctx.find_root()
    return root.params.get("config")


def _cdk_destroy(
    cli: CliContext,
    ctx: typer.Context,
    cdk: CdkRunner,
    stack: str,
    say: Callable[[str], None],
    *,
    retry_with: str,
) -> None:
    """``cdk destroy <stack> --force --exclusively`` with the deployment's config and profile."""
    args = cdk_args(
        "destroy",
        [stack],
        config_path=_config_path(ctx),
        profile=cli.profile,
        extra=["--force", "--exclusively"],
    )
    run_cdk(cdk, args, say, retry_with=retry_with)


def _retry_command(including_data: bool) -> str:
    return f"{RETRY_WITH} --including-data" if including_data else RETRY_WITH


def _storage_remains(cli: CliContext, inventory: Inventory) -> bool:
    """Whether --including-data has anything left to do: the stack, a bucket or a key still there."""
    if inventory.live(inventory.storage_stack):
        return True
    storage = inventory.storage
    if storage is None:
        return False
    s3 = cli.client("s3")
    for bucket in (storage.bucket, storage.log_bucket):
        if bucket is not None and _bucket_exists(s3, bucket):
            return True
    return storage.key_id is not None and _key_state(cli.client("kms"), storage.key_id) not in {
        "PendingDeletion",
        None,
    }


def _describe_plan(
    say: Say,
    inventory: Inventory,
    stateless: Sequence[str],
    *,
    including_data: bool,
    account: str,
    region: str,
) -> None:
    say(
        f"mme destroy deletes from account {account}, {region} (stack prefix {inventory.prefix}), "
        "in this order:"
    )
    for stack in stateless:
        say(f"  - stack {stack}: {inventory.role_of(stack)}")
    storage = inventory.storage
    if including_data and storage is not None:
        if inventory.live(inventory.storage_stack):
            say(f"  - stack {inventory.storage_stack} (its termination protection is turned off first)")
        for bucket, what in (
            (storage.bucket, "data, models and pointers"),
            (storage.log_bucket, "access logs"),
        ):
            if bucket is not None:
                say(
                    f"  - bucket {bucket} ({what}): every object version and delete marker, then the bucket; "
                    "this cannot be undone"
                )
        if storage.key_id is not None:
            say(
                f"  - KMS key {storage.key_id}: scheduled for deletion in {KEY_PENDING_WINDOW_DAYS} days "
                f"(until then `aws kms cancel-key-deletion --key-id {storage.key_id}` recovers it)"
            )
    elif storage is not None and inventory.live(inventory.storage_stack):
        say(
            f"Kept: stack {inventory.storage_stack} with bucket {storage.bucket} (the data and every model), "
            f"access-log bucket {storage.log_bucket} and KMS key {storage.key_id}."
        )
    say("Afterwards it lists what AWS leaves behind (log groups and streams, SageMaker models) to clean up.")


def _confirm(inventory: Inventory, *, delete_storage: bool) -> None:
    storage = inventory.storage
    if delete_storage and storage is not None and storage.bucket is not None:
        typed = typer.prompt(
            f"Deleting every version of every object cannot be undone; type the bucket name {storage.bucket} "
            "to continue",
            default="",
            show_default=False,
        )
        if typed.strip() != storage.bucket:
            raise CliError(f"Nothing was deleted: {typed.strip()!r} is not the bucket name {storage.bucket}.")
        return
    typed = typer.prompt("Type yes to delete the stacks above", default="", show_default=False)
    if typed.strip().lower() != "yes":
        raise CliError("Nothing was deleted: the deletion was not confirmed.")


# --------------------------------------------------------------------------------------------------
# --including-data


def _delete_storage(cli: CliContext, ctx: typer.Context, inventory: Inventory, say: Say) -> None:
    stack = inventory.storage_stack
    storage = inventory.storage or Storage(bucket=None, log_bucket=None, key_id=None)
    if inventory.live(stack):
        cloudformation = cli.client("cloudformation")
        ref = inventory.stacks[stack]
        protected = cloudformation.describe_stacks(StackName=ref.stack_id)["Stacks"][0].get(
            "EnableTerminationProtection", False
        )
        if protected:
            cloudformation.update_termination_protection(
                EnableTerminationProtection=False, StackName=ref.stack_id
            )
            say(f"Turned off the termination protection of stack {stack}.")
        try:
            cdk = CDK_FACTORY(str(cli.session.region_name))
            _cdk_destroy(cli, ctx, cdk, stack, say, retry_with=_retry_command(True))
        except CdkFailed as failed:
            say(
                f"Not deleted: stack {stack}, bucket {storage.bucket}, access-log bucket "
                f"{storage.log_bucket} "
                f"and KMS key {storage.key_id}; no object was deleted"
                + (
                    f"; the stack's termination protection is off (`aws cloudformation "
                    f"update-termination-protection --enable-termination-protection --stack-name {stack}` "
                    "turns it back on)."
                    if protected
                    else "."
                )
            )
            typer.echo(f"Error: {failed}", err=True)
            raise typer.Exit(failed.exit_code) from None
        say(f"Deleted stack {stack} (the stack kept its buckets and key, which are deleted next).")

    s3 = cli.client("s3")
    remaining = [b for b in (storage.bucket, storage.log_bucket) if b is not None]
    # The artifact bucket first: it writes server access logs into the log bucket until it is gone.
    for bucket in list(remaining):
        try:
            _delete_bucket(s3, bucket, say)
        except CliError as error:
            left = ", ".join(remaining) + (f" and KMS key {storage.key_id}" if storage.key_id else "")
            raise CliError(f"{error} Still there: bucket(s) {left}.") from None
        remaining.remove(bucket)
    if storage.key_id is not None:
        _schedule_key_deletion(cli.client("kms"), storage.key_id, say)


def _bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if _code(error) in {"404", "NoSuchBucket", "NotFound"}:
            return False
        raise
    return True


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker; return how many were deleted.

    Lists the first page again after each deletion instead of paging on with markers that name
    versions which no longer exist; a page holds at most 1,000 versions and delete markers, which is
    also what one DeleteObjects request accepts.
    """
    deleted = 0
    while True:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=DELETE_BATCH)
        entries = [
            {"Key": entry["Key"], "VersionId": entry["VersionId"]}
            for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        if not entries:
            return deleted
        for start in range(0, len(entries), DELETE_BATCH):
            batch = entries[start : start + DELETE_BATCH]
            response = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise CliError(
                    f"S3 refused to delete {len(errors)} object version(s) in bucket {bucket}, the first "
                    f"{first.get('Key')} ({first.get('Code')}: {first.get('Message')}), after "
                    f"{deleted + len(batch) - len(errors)} were deleted."
                )
            deleted += len(batch)


def _delete_bucket(s3: Any, bucket: str, say: Say) -> None:
    """Empty and delete ``bucket``; a bucket that is already gone (removal policy destroy) is fine."""
    for attempt in range(1, BUCKET_DELETE_ATTEMPTS + 1):
        try:
            count = empty_bucket(s3, bucket)
            say(f"Deleted {count} object version(s) and delete marker(s) from bucket {bucket}.")
            s3.delete_bucket(Bucket=bucket)
        except ClientError as error:
            code = _code(error)
            if code == "NoSuchBucket":
                say(f"Bucket {bucket} is already deleted.")
                return
            if code == "BucketNotEmpty" and attempt < BUCKET_DELETE_ATTEMPTS:
                continue  # objects (access logs) arrived after emptying it
            raise CliError(
                f"Could not delete bucket {bucket}: {code}: {error.response['Error'].get('Message')}."
            ) from None
        say(f"Deleted bucket {bucket}.")
        return


def _key_state(kms: Any, key_id: str) -> str | None:
    try:
        return str(kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"])
    except ClientError as error:
        if _code(error) == "NotFoundException":
            return None
        raise


def _schedule_key_deletion(kms: Any, key_id: str, say: Say) -> None:
    state = _key_state(kms, key_id)
    if state is None:
        say(f"KMS key {key_id} no longer exists.")
        return
    if state == "PendingDeletion":
        when = kms.describe_key(KeyId=key_id)["KeyMetadata"].get("DeletionDate")
        say(f"KMS key {key_id} is already scheduled for deletion{f' on {when:%Y-%m-%d}' if when else ''}.")
        return
    response = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=KEY_PENDING_WINDOW_DAYS)
    when = response.get("DeletionDate")
    say(
        f"Scheduled KMS key {key_id} for deletion in {KEY_PENDING_WINDOW_DAYS} days"
        f"{f' ({when:%Y-%m-%d})' if when else ''}; until then "
        f"`aws kms cancel-key-deletion --key-id {key_id}` "
        "recovers it (and `aws kms enable-key` makes it usable again)."
    )


# --------------------------------------------------------------------------------------------------
# What AWS leaves behind


@dataclass
class Leftovers:
    endpoint_log_group: str | None = None
    job_streams: dict[str, list[str]] = field(default_factory=dict)
    """Log group -> this deployment's stream names in it."""
    models: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.endpoint_log_group is None and not any(self.job_streams.values()) and not self.models


def find_leftovers(cli: CliContext, inventory: Inventory) -> Leftovers:
    logs = cli.client("logs")
    found = Leftovers()
    if inventory.endpoint_name is not None:
        group = f"{ENDPOINT_LOG_GROUP_PREFIX}{inventory.endpoint_name}"
        for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=group):
            if any(g["logGroupName"] == group for g in page["logGroups"]):
                found.endpoint_log_group = group
    if inventory.job_names:
        for group, steps in JOB_LOG_GROUPS.items():
            streams: list[str] = []
            for step in steps:
                try:
                    pages = list(
                        logs.get_paginator("describe_log_streams").paginate(
                            logGroupName=group, logStreamNamePrefix=f"{step}-"
                        )
                    )
                except ClientError as error:
                    if _code(error) == "ResourceNotFoundException":
                        break  # the account never ran a job of this kind
                    raise
                for page in pages:
                    streams += [
                        s["logStreamName"]
                        for s in page["logStreams"]
                        if s["logStreamName"].split("/", 1)[0] in inventory.job_names
                    ]
            if streams:
                found.job_streams[group] = sorted(streams)
    if inventory.job_role_name is not None:
        sagemaker = cli.client("sagemaker")
        prefix = f"{naming.PREPROCESSOR_STEP}-"
        for page in sagemaker.get_paginator("list_models").paginate(NameContains=prefix):
            for summary in page["Models"]:
                name = summary["ModelName"]
                if not name.startswith(prefix):
                    continue
                role = sagemaker.describe_model(ModelName=name).get("ExecutionRoleArn", "")
                if role.rsplit("/", 1)[-1] == inventory.job_role_name:
                    found.models.append(name)
        found.models.sort()
    return found


def _leftovers(cli: CliContext, inventory: Inventory, say: Say, *, clean_up: bool, yes: bool) -> None:
    found = find_leftovers(cli, inventory)
    for note in inventory.notes:
        say(note)
    if inventory.endpoint_name is None:
        say("The endpoint's name is unknown (its stack is not found), so its log group is not looked for.")
    if inventory.job_names is None and not inventory.notes:
        say(
            "The run plans are not found (no storage stack), so no job log stream is attributed to this "
            "deployment."
        )
    if inventory.job_role_name is None:
        say(
            "The training stack's job role is unknown, so no SageMaker model can be attributed to this "
            "deployment."
        )
    say(
        "SageMaker keeps the training and transform jobs in its history; jobs cannot be deleted. "
        "CloudWatch keeps /aws/sagemaker/TrainingJobs and /aws/sagemaker/TransformJobs, which every job of "
        "the account shares; only this deployment's streams in them are cleaned up."
    )
    if found.empty:
        say("Nothing else of this deployment is left behind.")
        return
    say("Left behind by AWS (not managed by CloudFormation):")
    if found.endpoint_log_group is not None:
        say(f"  - log group {found.endpoint_log_group} (the endpoint's logs)")
    for group, streams in found.job_streams.items():
        say(f"  - {len(streams)} log stream(s) of this deployment's jobs in {group}")
    for model in found.models:
        say(f"  - SageMaker model {model} (a training run's preprocessor model)")
    if not clean_up:
        if yes:
            say("Run `mme destroy --clean-up` to delete them.")
            return
        if not typer.confirm("Delete them?", default=False):
            say("Kept them; `mme destroy --clean-up` deletes them later.")
            return
    _clean_up(cli, found, say)


def _clean_up(cli: CliContext, found: Leftovers, say: Say) -> None:
    logs = cli.client("logs")
    if found.endpoint_log_group is not None:
        _unless_gone(logs.delete_log_group, logGroupName=found.endpoint_log_group)
        say(f"Deleted log group {found.endpoint_log_group}.")
    for group, streams in found.job_streams.items():
        for stream in streams:
            _unless_gone(logs.delete_log_stream, logGroupName=group, logStreamName=stream)
        say(f"Deleted {len(streams)} log stream(s) from {group}.")
    sagemaker = cli.client("sagemaker")
    for model in found.models:
        _unless_gone(sagemaker.delete_model, ModelName=model)
        say(f"Deleted SageMaker model {model}.")


def _unless_gone(call: Callable[..., object], **kwargs: str) -> None:
    """Delete something; one that is already gone (deleted meanwhile) is not an error.

    CloudWatch Logs says ResourceNotFoundException; SageMaker's DeleteModel says ValidationException
    "Could not find model".
    """
    try:
        call(**kwargs)
    except ClientError as error:
        code = _code(error)
        message = str(error.response.get("Error", {}).get("Message", ""))
        if code == "ResourceNotFoundException" or (
            code == "ValidationException" and "Could not find" in message
        ):
            return
        raise
