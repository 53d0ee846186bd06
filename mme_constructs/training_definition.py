"""The training state machine's definition: the flow of one run.

Execution input (the execution's *name* is the run id, 1-24 characters, see ``mme_shared.naming``)::

    {"locations": ["NewYork_NY", "Chicago_IL"]}                 # inline: up to a few thousand names
    {"locations_manifest_key": "location-manifests/all.json"}   # a JSON array uploaded to the bucket
    ... , "refit": true                                          # optional: fit a new generation

Flow (generations: :mod:`mme_shared.generation`)::

    PlanRun (Lambda: validate the input, choose the generation, write pipeline-runs/<run>/plan.json)
      -> GenerateData (Distributed Map over the plan: one Lambda per location)
      -> FitOrReuse? refit (requested, or the first run):
           FitPreprocessor (scikit-learn training job over raw-data/<run>/train/, .sync)
           -> StorePreprocessor (Lambda: the new generation's preprocessor/pp-<run>/model.tar.gz)
         otherwise the served generation's preprocessor is reused as it is, never refitted
      -> CreatePreprocessorModel (from the generation's immutable preprocessor artifact)
      -> TransformSplits (one batch transform per split over all of the run's locations, .sync)
      -> TrainLocations (Distributed Map over the plan, MaxConcurrency = parallel_training_jobs):
           CheckTransform (Lambda: the location's transform output exists and holds no rejected rows)
           -> TrainModel (the algorithm, .sync, tagged with location and generation)
           -> PromoteModel (Lambda: models/<gen>/..., model-pointers/<gen>/<location>.json)
           any failure -> a FAILED record for that location only (per-item Catch)
         results -> pipeline-runs/<run>/results/ (ResultWriter)
      -> Summarize (Lambda: pipeline-runs/<run>/summary.json; a refit that promoted every location
         also writes preprocessor/<gen>/complete.json and preprocessor/newest.json)
      -> RunOutcome? nothing promoted -> NothingPromoted (fails; nothing served changed)
                     refit not complete -> IncompleteGeneration (fails; the served generation stays)
                     otherwise -> RunSucceeded (output: the summary)

A partial run's promoted models are live at once (their generation is the served one); a refit's
are not served until the endpoint stack is deployed with the new generation, which switches every
location at once.

Locations never appear in the template: both Maps read the plan from S3, so the template is the
same size for 4 or 10,000 locations.

The states are constructs of the scope given (the ``TrainingPipeline``); their ids are the state
names. The SageMaker states' requests are in :mod:`mme_constructs.training_jobs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from mme_constructs.preprocessor_source import PreprocessorSource
from mme_constructs.training_jobs import SageMakerJobs, TrainingImages
from project_config.model import TrainingConfig

GENERATION_CONCURRENCY: Final = 40
"""Data-generation Lambdas in flight at once; each writes three small CSV files."""

_PLAN_FIELDS: Final = (
    "run_id",
    "location_count",
    "plan_key",
    "generation",
    "refit",
    "preprocessor_job_name",
    "preprocessor_model_name",
    "preprocessor_artifact_uri",
    "raw_train_prefix_uri",
    "raw_validation_prefix_uri",
    "preprocessed_train_prefix_uri",
    "preprocessed_validation_prefix_uri",
    "transform_train_job_name",
    "transform_validation_job_name",
    "training_output_uri",
    "results_prefix",
    "generation_results_prefix",
)
"""What the run's later states read from PlanRun's answer (as ``$.plan.<field>``)."""


@dataclass(frozen=True)
class InvokedFunctions:
    """The Lambdas the definition invokes."""

    plan_run: lambda_.IFunction
    generate_data: lambda_.IFunction
    check_transform: lambda_.IFunction
    promote_artifact: lambda_.IFunction
    summarize_run: lambda_.IFunction

    def all(self) -> list[lambda_.IFunction]:
        """All of them, in the order the state machine's policy lists them."""
        return [self.plan_run, self.generate_data, self.check_transform, self.promote_artifact,
                self.summarize_run]  # fmt: skip


class TrainingDefinition:
    """Builds the states of the flow above in ``scope``; :meth:`chain` returns its start."""

    def __init__(
        self,
        scope: Construct,
        *,
        functions: InvokedFunctions,
        job_role: iam.IRole,
        bucket: s3.IBucket,
        key: kms.IKey,
        images: TrainingImages,
        preprocessor_source: PreprocessorSource,
        training: TrainingConfig,
    ) -> None:
        self._scope = scope
        self._functions = functions
        self._bucket = bucket
        self._training = training
        self._jobs = SageMakerJobs(
            scope,
            job_role=job_role,
            key=key,
            images=images,
            preprocessor_source=preprocessor_source,
            training=training,
        )

    def chain(self) -> sfn.IChainable:
        """PlanRun -> GenerateData -> FitOrReuse? -> ... -> RunOutcome?; any failure fails the run."""
        plan = self._plan_run()
        run_failed = sfn.Fail(
            self._scope, "RunFailed", error_path="$.failure.Error", cause_path="$.failure.Cause"
        )
        generate = self._generate_data()
        fit_preprocessor = self._jobs.fit_preprocessor()
        store_preprocessor = self._store_preprocessor()
        create_model = self._jobs.create_preprocessor_model()
        transforms = self._transform_splits()
        train_locations = self._train_locations()
        summarize = self._summarize()
        outcome = self._run_outcome()
        for state in (plan, generate, fit_preprocessor, store_preprocessor, create_model, transforms,
                      train_locations, summarize):  # fmt: skip
            state.add_catch(run_failed, result_path="$.failure")

        train_and_summarize = (
            create_model.next(transforms).next(train_locations).next(summarize).next(outcome)
        )
        return plan.next(generate).next(
            sfn.Choice(self._scope, "FitOrReuse")
            .when(
                sfn.Condition.boolean_equals("$.plan.refit", True),
                fit_preprocessor.next(store_preprocessor).next(train_and_summarize),
            )
            .otherwise(train_and_summarize)
        )

    def _plan_run(self) -> tasks.LambdaInvoke:
        return tasks.LambdaInvoke(
            self._scope,
            "PlanRun",
            lambda_function=self._functions.plan_run,
            # The whole execution input: the Lambda validates it and says what is wrong.
            payload=sfn.TaskInput.from_object(
                {"run_id": sfn.JsonPath.execution_name, "request": sfn.JsonPath.object_at("$")}
            ),
            result_selector={f"{name}.$": f"$.Payload.{name}" for name in _PLAN_FIELDS},
            result_path="$.plan",
        )

    def _generate_data(self) -> sfn.DistributedMap:
        generate = sfn.DistributedMap(
            self._scope,
            "GenerateData",
            item_reader=self._plan_items(),
            item_selector={
                "run_id": sfn.JsonPath.string_at("$$.Map.Item.Value.run_id"),
                "location": sfn.JsonPath.string_at("$$.Map.Item.Value.location"),
            },
            max_concurrency=GENERATION_CONCURRENCY,
            result_path=sfn.JsonPath.DISCARD,
            result_writer_v2=sfn.ResultWriterV2(
                bucket=self._bucket,
                prefix=sfn.JsonPath.string_at("$.plan.generation_results_prefix"),
            ),
        )
        generate.item_processor(
            tasks.LambdaInvoke(
                self._scope,
                "GenerateLocationData",
                lambda_function=self._functions.generate_data,
                payload=sfn.TaskInput.from_json_path_at("$"),
                result_selector={"location.$": "$.Payload.location"},
            )
        )
        return generate

    def _store_preprocessor(self) -> tasks.LambdaInvoke:
        return tasks.LambdaInvoke(
            self._scope,
            "StorePreprocessor",
            lambda_function=self._functions.promote_artifact,
            payload=sfn.TaskInput.from_object(
                {
                    "training_job_name": sfn.JsonPath.string_at("$.plan.preprocessor_job_name"),
                    "artifact": "preprocessor",
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )

    def _transform_splits(self) -> sfn.Parallel:
        # One batch transform per split over every location of the run (N + O(1) jobs per run):
        # the input prefix holds one file per location and batch transform writes one output file
        # per input file, which each location's training job reads. A location whose rows the
        # preprocessor rejects gets a marker line instead (the job goes on), and fails alone in
        # its CheckTransform step.
        transforms = sfn.Parallel(self._scope, "TransformSplits", result_path=sfn.JsonPath.DISCARD)
        for split in ("train", "validation"):
            transforms.branch(self._jobs.transform(split))
        return transforms

    def _train_locations(self) -> sfn.DistributedMap:
        train_locations = sfn.DistributedMap(
            self._scope,
            "TrainLocations",
            item_reader=self._plan_items(),
            item_selector={"item": sfn.JsonPath.object_at("$$.Map.Item.Value")},
            max_concurrency=self._training.parallel_training_jobs,
            result_writer_v2=sfn.ResultWriterV2(
                bucket=self._bucket, prefix=sfn.JsonPath.string_at("$.plan.results_prefix")
            ),
            result_path="$.training_results",
        )
        train_locations.item_processor(self._per_location())
        return train_locations

    def _plan_items(self) -> sfn.S3JsonItemReader:
        """Both Maps iterate over the run's plan (a JSON array in S3, one item per location)."""
        return sfn.S3JsonItemReader(bucket=self._bucket, key=sfn.JsonPath.string_at("$.plan.plan_key"))

    def _per_location(self) -> sfn.IChainable:
        """Check the transform output → train → promote for one plan item; every failure becomes a
        FAILED record for that location only."""
        check = tasks.LambdaInvoke(
            self._scope,
            "CheckTransform",
            lambda_function=self._functions.check_transform,
            payload=sfn.TaskInput.from_object(
                {
                    "run_id": sfn.JsonPath.string_at("$.item.run_id"),
                    "location": sfn.JsonPath.string_at("$.item.location"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        train_model = self._jobs.train_model()
        promote = self._promote_model()
        for step, state in (("transform", check), ("train", train_model), ("promote", promote)):
            record = sfn.Pass(
                self._scope,
                f"Record{step.capitalize()}Failure",
                parameters={
                    "location": sfn.JsonPath.string_at("$.item.location"),
                    "status": "FAILED",
                    "failed_step": step,
                    "error": sfn.JsonPath.string_at("$.failure.Error"),
                    "cause": sfn.JsonPath.string_at("$.failure.Cause"),
                },
            )
            state.add_catch(record, result_path="$.failure")
        return check.next(train_model).next(promote)

    def _promote_model(self) -> tasks.LambdaInvoke:
        return tasks.LambdaInvoke(
            self._scope,
            "PromoteModel",
            lambda_function=self._functions.promote_artifact,
            payload=sfn.TaskInput.from_object(
                {
                    "training_job_name": sfn.JsonPath.string_at("$.item.training_job_name"),
                    "location": sfn.JsonPath.string_at("$.item.location"),
                    "generation": sfn.JsonPath.string_at("$.item.generation"),
                }
            ),
            result_selector={
                "location.$": "$.Payload.location",
                "status": "SUCCEEDED",
                "training_job_name.$": "$.Payload.training_job_name",
                "target_model.$": "$.Payload.target_model",
                "model_version.$": "$.Payload.version",
                "validation_metrics.$": "$.Payload.validation_metrics",
            },
        )

    def _summarize(self) -> tasks.LambdaInvoke:
        return tasks.LambdaInvoke(
            self._scope,
            "Summarize",
            lambda_function=self._functions.summarize_run,
            payload=sfn.TaskInput.from_object(
                {
                    "run_id": sfn.JsonPath.string_at("$.plan.run_id"),
                    "map_result": sfn.JsonPath.object_at("$.training_results"),
                    "generation": sfn.JsonPath.string_at("$.plan.generation"),
                    "refit": sfn.JsonPath.object_at("$.plan.refit"),
                    "location_count": sfn.JsonPath.number_at("$.plan.location_count"),
                }
            ),
            payload_response_only=True,
            result_path="$.summary",
        )

    def _run_outcome(self) -> sfn.Choice:
        """The run fails if nothing was promoted or a refit is incomplete; otherwise its output is the
        summary."""
        nothing_promoted = sfn.Fail(
            self._scope,
            "NothingPromoted",
            error="NothingPromoted",
            cause="No location of this run was promoted (every location failed), so nothing that is "
            "served changed and no generation was completed; the run's summary "
            "(pipeline-runs/<run id>/summary.json) says why each location failed.",
        )
        incomplete_generation = sfn.Fail(
            self._scope,
            "IncompleteGeneration",
            error="IncompleteGeneration",
            cause="This refit fitted a new preprocessor generation, but not every location was promoted "
            "into it, so it was not completed and cannot be served; the generation that is served stays "
            "served with all its models. The run's summary (pipeline-runs/<run id>/summary.json) says "
            "why each location failed; fix that and run the refit again.",
        )
        run_succeeded = sfn.Pass(self._scope, "RunSucceeded", input_path="$.summary")
        return (
            sfn.Choice(self._scope, "RunOutcome")
            .when(sfn.Condition.boolean_equals("$.summary.nothing_promoted", True), nothing_promoted)
            .when(
                sfn.Condition.and_(
                    sfn.Condition.boolean_equals("$.summary.refit", True),
                    sfn.Condition.boolean_equals("$.summary.generation_complete", False),
                ),
                incomplete_generation,
            )
            .otherwise(run_succeeded)
        )
