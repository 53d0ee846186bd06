"""The training state machine, its roles and Lambdas, as synthesized with the default settings and,
where the algorithm matters (the per-location training job, its IAM and the Lambdas' environment),
with each algorithm of ``mme_constructs.algorithms.ALGORITHMS``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Capture, Match

from mme_constructs.algorithms import ALGORITHMS, JOB_STEPS
from mme_constructs.training_roles import LOG_DELIVERY_ACTIONS
from project_config import load_default_config
from project_config.loader import deep_merge, default_context
from stacks.storage_stack import StorageExports
from stacks.training_stack import TrainingStack
from tests.cfn_render import TemplateRenderer
from tests.conftest import REPO_ROOT, STORAGE_EXPORTS, SynthesizedApp, resources_of_type

SYNC = "arn:aws:states:::sagemaker:{}.sync"
KEY_ARN = STORAGE_EXPORTS["MmeStorage-KeyArn"]


def _policy_with(statement: dict[str, Any]) -> dict[str, Any]:
    """A managed policy's properties, as a pattern: it has a statement like ``statement``."""
    return {"PolicyDocument": {"Statement": Match.array_with([Match.object_like(statement)])}}


def _policy_without_two(statement: dict[str, Any]) -> dict[str, Any]:
    """A managed policy's properties, as a pattern: it has at most one statement like ``statement``."""
    like = Match.object_like(statement)
    return {"PolicyDocument": {"Statement": Match.not_(Match.array_with([like, like]))}}


def _chain(states: dict[str, Any], start: str) -> list[str]:
    order, name = [], start
    while name:
        order.append(name)
        name = states[name].get("Next")
    return order


def test_main_flow_runs_the_steps_in_order(training_definition: dict[str, Any]) -> None:
    states = training_definition["States"]
    assert training_definition["StartAt"] == "PlanRun"
    assert _chain(states, "PlanRun") == ["PlanRun", "GenerateData", "FitOrReuse"]
    # Only a refit (or the first run) fits and stores a preprocessor; a partial run goes straight on.
    (refit,) = states["FitOrReuse"]["Choices"]
    assert refit == {"Variable": "$.plan.refit", "BooleanEquals": True, "Next": "FitPreprocessor"}
    assert states["FitOrReuse"]["Default"] == "CreatePreprocessorModel"
    trained = ["CreatePreprocessorModel", "TransformSplits", "TrainLocations", "Summarize", "RunOutcome"]
    assert _chain(states, "FitPreprocessor") == ["FitPreprocessor", "StorePreprocessor", *trained]
    # A run that promoted nothing, or a refit that did not complete its generation, fails.
    nothing, incomplete = states["RunOutcome"]["Choices"]
    assert nothing == {
        "Variable": "$.summary.nothing_promoted",
        "BooleanEquals": True,
        "Next": "NothingPromoted",
    }
    assert incomplete == {
        "And": [
            {"Variable": "$.summary.refit", "BooleanEquals": True},
            {"Variable": "$.summary.generation_complete", "BooleanEquals": False},
        ],
        "Next": "IncompleteGeneration",
    }
    assert states["RunOutcome"]["Default"] == "RunSucceeded"
    for name in ("NothingPromoted", "IncompleteGeneration"):
        assert (states[name]["Type"], states[name]["Error"]) == ("Fail", name)
    assert states["RunSucceeded"] == {"Type": "Pass", "InputPath": "$.summary", "End": True}
    assert (
        training_definition["TimeoutSeconds"] == load_default_config().training.execution_timeout_minutes * 60
    )


def test_plan_receives_the_execution_name_and_the_whole_input(training_definition: dict[str, Any]) -> None:
    states = training_definition["States"]
    assert states["PlanRun"]["Parameters"]["Payload"] == {"run_id.$": "$$.Execution.Name", "request.$": "$"}
    assert states["PlanRun"]["ResultPath"] == "$.plan"


def test_the_generation_flows_from_the_plan_to_the_jobs_and_the_summary(
    training_definition: dict[str, Any],
) -> None:
    states = training_definition["States"]
    assert states["StorePreprocessor"]["Parameters"]["Payload"] == {
        "training_job_name.$": "$.plan.preprocessor_job_name",
        "artifact": "preprocessor",
    }
    processor = states["TrainLocations"]["ItemProcessor"]["States"]
    assert processor["PromoteModel"]["Parameters"]["Payload"] == {
        "training_job_name.$": "$.item.training_job_name",
        "location.$": "$.item.location",
        "generation.$": "$.item.generation",
    }
    assert states["Summarize"]["Parameters"] == {  # payload_response_only: the payload itself
        "run_id.$": "$.plan.run_id",
        "map_result.$": "$.training_results",
        "generation.$": "$.plan.generation",
        "refit.$": "$.plan.refit",
        "location_count.$": "$.plan.location_count",
    }


def test_both_maps_are_distributed_and_read_the_plan_from_s3(training_definition: dict[str, Any]) -> None:
    states = training_definition["States"]
    for name in ("GenerateData", "TrainLocations"):
        state = states[name]
        assert state["ItemProcessor"]["ProcessorConfig"] == {
            "Mode": "DISTRIBUTED",
            "ExecutionType": "STANDARD",
        }
        assert state["ItemReader"] == {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSON"},
            "Parameters": {
                "Bucket": STORAGE_EXPORTS["MmeStorage-ArtifactBucketName"],
                "Key.$": "$.plan.plan_key",
            },
        }
        assert "ItemsPath" not in state  # never inline: template size does not depend on locations
    assert states["TrainLocations"]["MaxConcurrency"] == load_default_config().training.parallel_training_jobs
    assert states["TrainLocations"]["ResultWriter"]["Parameters"]["Prefix.$"] == "$.plan.results_prefix"
    assert (
        states["GenerateData"]["ResultWriter"]["Parameters"]["Prefix.$"] == "$.plan.generation_results_prefix"
    )


def test_per_location_steps_use_run_job_and_catch_every_failure(training_definition: dict[str, Any]) -> None:
    processor = training_definition["States"]["TrainLocations"]["ItemProcessor"]
    states = processor["States"]
    assert _chain(states, processor["StartAt"]) == ["CheckTransform", "TrainModel", "PromoteModel"]
    assert states["CheckTransform"]["Parameters"]["Payload"] == {
        "run_id.$": "$.item.run_id",
        "location.$": "$.item.location",
    }
    assert states["TrainModel"]["Resource"] == SYNC.format("createTrainingJob")
    for step, name in (
        ("transform", "CheckTransform"),
        ("train", "TrainModel"),
        ("promote", "PromoteModel"),
    ):
        (catch,) = states[name]["Catch"]
        assert catch == {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.failure",
            "Next": f"Record{step.capitalize()}Failure",
        }
        record = states[f"Record{step.capitalize()}Failure"]
        assert record["Type"] == "Pass"
        assert "Next" not in record
        assert record["Parameters"] == {
            "location.$": "$.item.location",
            "status": "FAILED",
            "failed_step": step,
            "error.$": "$.failure.Error",
            "cause.$": "$.failure.Cause",
        }


def test_sagemaker_steps_retry_throttling_and_quota_with_backoff(training_definition: dict[str, Any]) -> None:
    processor_states = training_definition["States"]["TrainLocations"]["ItemProcessor"]["States"]
    transforms = [
        b["States"][b["StartAt"]] for b in training_definition["States"]["TransformSplits"]["Branches"]
    ]
    for state in [
        training_definition["States"]["FitPreprocessor"],
        processor_states["TrainModel"],
        *transforms,
    ]:
        retries = {tuple(r["ErrorEquals"]): r for r in state["Retry"]}
        assert retries[("SageMaker.AmazonSageMakerException",)]["BackoffRate"] == 2
        quota = retries[("SageMaker.ResourceLimitExceededException",)]
        assert quota["IntervalSeconds"] == 120
        assert quota["MaxAttempts"] == 6
        assert not any(
            "States.TaskFailed" in r["ErrorEquals"] for r in state["Retry"]
        )  # a failed job is final


def test_linear_learner_job_from_config(training_definition: dict[str, Any]) -> None:
    config = load_default_config().training
    params = training_definition["States"]["TrainLocations"]["ItemProcessor"]["States"]["TrainModel"][
        "Parameters"
    ]
    assert params["HyperParameters"] == {
        "predictor_type": "regressor",
        "feature_dim": "10",
        "mini_batch_size": "100",
        "epochs": "10",
        "num_models": "32",
        "loss": "absolute_loss",
    }
    assert params["AlgorithmSpecification"] == {
        "TrainingInputMode": "File",
        "TrainingImage": "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1",
    }
    channels = {c["ChannelName"]: c for c in params["InputDataConfig"]}
    assert set(channels) == {"train", "validation"}
    for name, channel in channels.items():
        assert channel["ContentType"] == "text/csv;label_size=1"
        assert channel["DataSource"]["S3DataSource"]["S3Uri.$"] == f"$.item.preprocessed_{name}_uri"
    assert params["ResourceConfig"]["InstanceType"] == config.training_instance_type
    assert params["ResourceConfig"]["VolumeKmsKeyId"] == KEY_ARN
    # Warm pools are off by default (see test_warm_pools_keep_each_slots_instance_within_the_bound).
    assert config.warm_pool_keep_alive_seconds == 0
    assert "KeepAlivePeriodInSeconds" not in params["ResourceConfig"]
    assert params["OutputDataConfig"] == {"S3OutputPath.$": "$.item.training_output_uri", "KmsKeyId": KEY_ARN}
    assert params["EnableNetworkIsolation"] is True
    assert params["Tags"] == [
        {"Key": "mme:location", "Value.$": "$.item.location"},
        {"Key": "mme:preprocessor-generation", "Value.$": "$.item.generation"},
    ]
    assert params["TrainingJobName.$"] == "$.item.training_job_name"


def test_preprocessor_fit_model_and_transforms(
    training_definition: dict[str, Any], synthesized: SynthesizedApp
) -> None:
    states = training_definition["States"]
    fit = states["FitPreprocessor"]
    assert fit["Resource"] == SYNC.format("createTrainingJob")
    hyper = fit["Parameters"]["HyperParameters"]
    assert hyper["sagemaker_program"] == "housing_preprocessor.py"
    assert hyper["sagemaker_submit_directory"].startswith("s3://cdk-hnb659fds-assets-111122223333-us-east-1/")
    assert hyper["sagemaker_submit_directory"].endswith(".gz")
    assert hyper["feature_dim"] == "10"
    (channel,) = fit["Parameters"]["InputDataConfig"]
    assert channel["DataSource"]["S3DataSource"]["S3Uri.$"] == "$.plan.raw_train_prefix_uri"
    assert fit["Parameters"]["AlgorithmSpecification"]["TrainingImage"] == (
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
    )
    assert fit["ResultPath"] is None  # StorePreprocessor finds the artifact through the job's name

    # The run's model serves its generation's immutable artifact (fitted now or reused).
    model = states["CreatePreprocessorModel"]["Parameters"]
    assert model["PrimaryContainer"]["ModelDataUrl.$"] == "$.plan.preprocessor_artifact_uri"
    assert model["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"] == "housing_preprocessor.py"
    assert (
        model["PrimaryContainer"]["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"]
        == hyper["sagemaker_submit_directory"]
    )

    # One batch transform per split over all of the run's locations (N + O(1) jobs per run).
    assert {b["StartAt"] for b in states["TransformSplits"]["Branches"]} == {
        "TransformTrain",
        "TransformValidation",
    }
    assert states["TransformSplits"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "RunFailed"}
    ]
    for branch in states["TransformSplits"]["Branches"]:
        transform = branch["States"][branch["StartAt"]]["Parameters"]
        split = "train" if transform["TransformJobName.$"].endswith("train_job_name") else "validation"
        assert transform["TransformJobName.$"] == f"$.plan.transform_{split}_job_name"
        assert transform["Environment"] == {"MME_PREPROCESSOR_MODE": "labelled-transform"}
        assert transform["ModelName.$"] == "$.plan.preprocessor_model_name"
        assert (
            transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri.$"]
            == f"$.plan.raw_{split}_prefix_uri"
        )
        assert transform["TransformInput"]["SplitType"] == "Line"
        assert transform["BatchStrategy"] == "MultiRecord"
        assert transform["TransformOutput"] == {
            "S3OutputPath.$": f"$.plan.preprocessed_{split}_prefix_uri",
            "Accept": "text/csv",
            "AssembleWith": "Line",
            "KmsKeyId": KEY_ARN,
        }


def test_state_machine_logs_and_traces(synthesized: SynthesizedApp) -> None:
    template = synthesized.assertions("training")
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "LoggingConfiguration": {
                "Level": "ALL",
                "IncludeExecutionData": True,
                "Destinations": [{"CloudWatchLogsLogGroup": {"LogGroupArn": Match.any_value()}}],
            },
            "TracingConfiguration": {"Enabled": True},
            "StateMachineType": "STANDARD",
        },
    )
    template.resource_count_is("AWS::Logs::LogGroup", 6)  # the state machine and five Lambdas
    template.all_resources_properties(
        "AWS::Logs::LogGroup",
        {
            "KmsKeyId": Match.exact({"Fn::ImportValue": "MmeStorage-KeyArn"}),
            "RetentionInDays": load_default_config().training.log_retention_days,
        },
    )


def test_definition_passes_the_asl_validator(
    training_definition_for_algorithm: Callable[[str], dict[str, Any]], tmp_path: Path
) -> None:
    """Every algorithm's definition in one asl-validator run (it exits with the worst result)."""
    paths = []
    for name in ALGORITHMS:
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(training_definition_for_algorithm(name)))
    result = _asl_validate(*paths)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in paths:  # each one was read and judged valid
        assert f'State machine definition "{path}" is valid' in result.stdout, result.stdout
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(dict(training_definition_for_algorithm("linear-learner"), StartAt="NoSuch")))
    rejected = _asl_validate(paths[0], broken)
    assert rejected.returncode != 0
    assert f'State machine definition "{broken}" is invalid' in rejected.stderr, rejected.stderr


def _asl_validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npx", "--no-install", "asl-validator", *(f"--json-path={path}" for path in paths)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _policy_statements(template: dict[str, Any], path_fragment: str) -> list[dict[str, Any]]:
    policies = [
        p for k, p in resources_of_type(template, "AWS::IAM::ManagedPolicy").items() if path_fragment in k
    ]
    assert len(policies) == 1, path_fragment
    statements: list[dict[str, Any]] = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    return statements


def test_roles_have_one_managed_policy_each_and_no_inline_or_aws_managed_policies(
    synthesized: SynthesizedApp,
) -> None:
    template = synthesized.assertions("training")
    template.resource_count_is("AWS::IAM::Policy", 0)
    template.resource_count_is("AWS::IAM::Role", 7)  # job, state machine, five Lambdas
    template.all_resources_properties(
        "AWS::IAM::Role", {"ManagedPolicyArns": Match.absent(), "Policies": Match.absent()}
    )


def test_only_unscoped_apis_get_a_star_resource(synthesized: SynthesizedApp) -> None:
    template = synthesized.template("training")
    allowed_star = {
        "cloudwatch:PutMetricData",
        "ecr:GetAuthorizationToken",
        "sagemaker:ListTags",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        *LOG_DELIVERY_ACTIONS,
    }
    for policy in resources_of_type(template, "AWS::IAM::ManagedPolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert all("*" not in action for action in actions)
            if statement["Resource"] == "*":
                assert set(actions) <= allowed_star, actions


def test_state_machine_may_pass_only_the_job_role_and_only_to_sagemaker(synthesized: SynthesizedApp) -> None:
    template = synthesized.assertions("training")
    policies = template.find_resources("AWS::IAM::ManagedPolicy")
    (policy_id,) = [logical_id for logical_id in policies if "StateMachinePermissions" in logical_id]
    job_role = Capture(Match.string_like_regexp("^TrainingPipelineJobRole"))
    pass_role = {
        "Action": "iam:PassRole",
        "Resource": {"Fn::GetAtt": [job_role, "Arn"]},
        "Condition": Match.object_equals(
            {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
        ),
    }

    def create_training_jobs(step: str) -> dict[str, Any]:
        arn = Match.string_like_regexp(rf":training-job/{step}-\*$")
        return {
            "Action": "sagemaker:CreateTrainingJob",
            "Resource": Match.array_with([{"Fn::Join": ["", Match.array_with([arn])]}]),
        }

    for properties in (
        _policy_with(pass_role),
        _policy_without_two({"Action": "iam:PassRole"}),  # so pass_role is its only iam:PassRole
        _policy_with(create_training_jobs("pp")),
        _policy_with(create_training_jobs("ll")),
    ):
        assert policy_id in template.find_resources("AWS::IAM::ManagedPolicy", {"Properties": properties})
    assert job_role.as_string() in template.find_resources("AWS::IAM::Role")


def test_lambdas_run_on_the_latest_python_with_tracing(synthesized: SynthesizedApp) -> None:
    template = synthesized.assertions("training")
    handlers = ["plan_run", "generate_data", "check_transform", "promote_artifact", "summarize_run"]
    # As many functions as handlers, and one of each: exactly these handlers.
    template.resource_count_is("AWS::Lambda::Function", len(handlers))
    for name in handlers:
        template.has_resource_properties("AWS::Lambda::Function", {"Handler": f"{name}.handler"})
    template.all_resources_properties(
        "AWS::Lambda::Function",
        {"Runtime": "python3.14", "TracingConfig": Match.object_equals({"Mode": "Active"})},
    )


def test_template_does_not_grow_with_the_number_of_locations(cdk_context: dict[str, Any]) -> None:
    def training_template(location_count: int) -> str:
        locations = [f"City{i:05d}_XX" for i in range(location_count)]
        config = load_default_config().model_copy()
        config = type(config).model_validate(
            deep_merge(default_context(), {"data": {"locations": locations}})
        )
        app = cdk.App(context=cdk_context)
        stack = TrainingStack(
            app,
            "MmeTraining",
            storage=StorageExports(stack_name="MmeStorage"),
            training=config.training,
            data=config.data,
        )
        return json.dumps(cdk.assertions.Template.from_stack(stack).to_json(), sort_keys=True)

    assert training_template(4) == training_template(10_000)


def test_warm_pools_keep_each_slots_instance_within_the_bound(cdk_context: dict[str, Any]) -> None:
    config = type(load_default_config()).model_validate(
        deep_merge(default_context(), {"training": {"warm_pool_keep_alive_seconds": 300}})
    )
    app = cdk.App(context=cdk_context)
    stack = TrainingStack(
        app, "MmeTraining", storage=StorageExports(stack_name="MmeStorage"), training=config.training,
        data=config.data,
    )  # fmt: skip
    template = cdk.assertions.Template.from_stack(stack)
    (machine,) = template.find_resources("AWS::StepFunctions::StateMachine").values()
    definition = TemplateRenderer(template.to_json(), STORAGE_EXPORTS).render(
        machine["Properties"]["DefinitionString"]
    )
    states = json.loads(definition)["States"]
    train = states["TrainLocations"]["ItemProcessor"]["States"]["TrainModel"]["Parameters"]
    # Each of the Map's slots keeps its instance for the next location's job (a warm pool) ...
    assert train["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 300
    # ... and the preprocessor's job, which runs once per refit, keeps none.
    assert "KeepAlivePeriodInSeconds" not in states["FitPreprocessor"]["Parameters"]["ResourceConfig"]
    # Exactly one statement of all the managed policies creates training jobs (one policy has one,
    # none has two), and it bounds the keep-alive period.
    create = {"Action": "sagemaker:CreateTrainingJob"}
    template.resource_properties_count_is("AWS::IAM::ManagedPolicy", _policy_with(create), 1)
    template.all_resources_properties("AWS::IAM::ManagedPolicy", _policy_without_two(create))
    bound = Match.object_equals({"NumericLessThanEqualsIfExists": {"sagemaker:KeepAlivePeriod": 300}})
    template.has_resource_properties("AWS::IAM::ManagedPolicy", _policy_with({**create, "Condition": bound}))


@pytest.mark.parametrize(
    "name", ["plan_run", "generate_data", "check_transform", "promote_artifact", "summarize_run"]
)
def test_lambda_assets_hold_the_handler_and_the_shared_package(
    synthesized: SynthesizedApp, name: str
) -> None:
    template = synthesized.assertions("training")
    handler = {"Handler": f"{name}.handler"}
    template.resource_properties_count_is("AWS::Lambda::Function", handler, 1)
    s3_key = Capture()
    template.has_resource_properties("AWS::Lambda::Function", {**handler, "Code": {"S3Key": s3_key}})
    asset_hash = s3_key.as_string().removesuffix(".zip")
    folder = synthesized.outdir / f"asset.{asset_hash}"
    assert (folder / f"{name}.py").is_file()
    assert (folder / "mme_shared" / "s3_layout.py").is_file()
    assert not list(folder.rglob("__pycache__"))


def test_job_role_pulls_exactly_the_jobs_images(synthesized: SynthesizedApp) -> None:
    """ "How to use SageMaker AI execution roles" lists ECR pull actions for the jobs' images. The
    repositories are AWS's (another account, whose repository policies are not ours to read), so this
    is checked on the rendered policy rather than by the IAM evaluator."""
    template = synthesized.template("training")
    renderer = TemplateRenderer(template, STORAGE_EXPORTS)
    (policy,) = [
        r for k, r in resources_of_type(template, "AWS::IAM::ManagedPolicy").items()
        if k.startswith("TrainingPipelineJobPermissions")
    ]  # fmt: skip
    pulls = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if "ecr:BatchGetImage" in s["Action"]
    ]
    (pull,) = pulls
    assert sorted(pull["Action"]) == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ]
    assert set(renderer.render(pull["Resource"])) == {
        "arn:aws:ecr:us-east-1:683313688378:repository/sagemaker-scikit-learn",
        "arn:aws:ecr:us-east-1:382416733822:repository/linear-learner",
    }


# --------------------------------------------------------------------------------------------------
# Per algorithm: the location's training job, its grants and the Lambdas' settings

ALGORITHM_NAMES = list(ALGORITHMS)

EXPECTED_JOBS: dict[str, dict[str, Any]] = {
    "linear-learner": {
        "step": "ll",
        "repository": "382416733822:repository/linear-learner",
        "image": "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1",
        "hyperparameters": {"predictor_type": "regressor", "feature_dim": "10", "mini_batch_size": "100",
                            "epochs": "10", "num_models": "32", "loss": "absolute_loss"},
        "channels": {"train": "train", "validation": "validation"},
        "content_type": "text/csv;label_size=1",
        "distribution": "FullyReplicated",
        "mode": "labelled-transform",
    },
    "xgboost": {
        "step": "xg",
        "repository": "683313688378:repository/sagemaker-xgboost",
        "image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        "hyperparameters": {"num_round": "100", "objective": "reg:squarederror", "eta": "0.2",
                            "max_depth": "5", "min_child_weight": "1.0", "subsample": "0.8", "gamma": "0.0",
                            "eval_metric": "rmse"},
        "channels": {"train": "train", "validation": "validation"},
        "content_type": "text/csv",
        "distribution": "FullyReplicated",
        "mode": "labelled-transform",
    },
    "knn": {
        "step": "kn",
        "repository": "382416733822:repository/knn",
        "image": "382416733822.dkr.ecr.us-east-1.amazonaws.com/knn:1",
        "hyperparameters": {"predictor_type": "regressor", "feature_dim": "10", "k": "10",
                            "sample_size": "500", "index_type": "faiss.Flat"},
        "channels": {"train": "train", "test": "validation"},
        "content_type": "text/csv;label_size=1",
        "distribution": "FullyReplicated",
        "mode": "labelled-transform",
    },
    "randomcutforest": {
        "step": "rc",
        "repository": "382416733822:repository/randomcutforest",
        "image": "382416733822.dkr.ecr.us-east-1.amazonaws.com/randomcutforest:1",
        "hyperparameters": {"feature_dim": "10", "num_trees": "100", "num_samples_per_tree": "256"},
        "channels": {"train": "train"},
        "content_type": "text/csv;label_size=0",
        "distribution": "ShardedByS3Key",
        "mode": "unlabelled-transform",
    },
}  # fmt: skip
"""Spelled out (not read from ALGORITHMS), so a changed description is a deliberate change here too."""


def test_every_algorithm_is_expected() -> None:
    assert sorted(EXPECTED_JOBS) == sorted(ALGORITHMS)
    assert [EXPECTED_JOBS[name]["step"] for name in ALGORITHMS] == list(JOB_STEPS)


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_each_algorithms_training_job_and_transforms(
    name: str, training_definition_for_algorithm: Callable[[str], dict[str, Any]]
) -> None:
    expected = EXPECTED_JOBS[name]
    states = training_definition_for_algorithm(name)["States"]
    params = states["TrainLocations"]["ItemProcessor"]["States"]["TrainModel"]["Parameters"]
    assert params["HyperParameters"] == expected["hyperparameters"]
    assert params["AlgorithmSpecification"] == {
        "TrainingInputMode": "File",
        "TrainingImage": expected["image"],
    }
    assert [c["ChannelName"] for c in params["InputDataConfig"]] == list(expected["channels"])
    for channel in params["InputDataConfig"]:
        split = expected["channels"][channel["ChannelName"]]
        assert channel["ContentType"] == expected["content_type"]
        assert channel["DataSource"]["S3DataSource"] == {
            "S3DataType": "S3Prefix",
            "S3Uri.$": f"$.item.preprocessed_{split}_uri",
            "S3DataDistributionType": expected["distribution"],
        }
    assert params["TrainingJobName.$"] == "$.item.training_job_name"  # the plan names it: <step>-...
    for branch in states["TransformSplits"]["Branches"]:
        transform = branch["States"][branch["StartAt"]]["Parameters"]
        assert transform["Environment"] == {"MME_PREPROCESSOR_MODE": expected["mode"]}


def _sagemaker_grants(template: dict[str, Any], policy_fragment: str, action: str) -> list[str]:
    """The training-job name patterns a policy grants ``action`` on, rendered."""
    renderer = TemplateRenderer(template, STORAGE_EXPORTS)
    resources = [
        renderer.render(s["Resource"])
        for s in _policy_statements(template, policy_fragment)
        if action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    flat = [r for resource in resources for r in (resource if isinstance(resource, list) else [resource])]
    prefix = "arn:aws:sagemaker:us-east-1:111122223333:training-job/"
    return sorted(r.removeprefix(prefix) for r in flat if r.startswith(prefix))


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_training_jobs_are_granted_on_the_algorithms_step_only(
    name: str, synthesized_for_algorithm: Callable[[str], SynthesizedApp]
) -> None:
    template = synthesized_for_algorithm(name).template("training")
    granted = ["pp-*", f"{EXPECTED_JOBS[name]['step']}-*"]
    for action in (
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:StopTrainingJob",
        "sagemaker:AddTags",
    ):
        assert _sagemaker_grants(template, "StateMachinePermissions", action) == sorted(granted), action
    # The promotion Lambda reads the jobs it promotes (and their tags), no other algorithm's.
    assert _sagemaker_grants(template, "PromoteArtifact", "sagemaker:DescribeTrainingJob") == sorted(granted)


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_the_lambdas_know_the_algorithm_and_its_step(
    name: str, synthesized_for_algorithm: Callable[[str], SynthesizedApp]
) -> None:
    template = synthesized_for_algorithm(name).assertions("training")

    def function(handler: str, variables: dict[str, Any]) -> dict[str, Any]:
        return {"Handler": f"{handler}.handler", "Environment": {"Variables": variables}}

    step = EXPECTED_JOBS[name]["step"]
    template.has_resource_properties(
        "AWS::Lambda::Function", function("plan_run", {"TRAINING_JOB_STEP": step, "ALGORITHM": name})
    )
    template.has_resource_properties("AWS::Lambda::Function", function("summarize_run", {"ALGORITHM": name}))
    # Only the plan names training jobs.
    names_jobs = {"Environment": {"Variables": {"TRAINING_JOB_STEP": Match.any_value()}}}
    template.resource_properties_count_is("AWS::Lambda::Function", names_jobs, 1)


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_job_role_pulls_the_algorithms_image(
    name: str, synthesized_for_algorithm: Callable[[str], SynthesizedApp]
) -> None:
    template = synthesized_for_algorithm(name).template("training")
    renderer = TemplateRenderer(template, STORAGE_EXPORTS)
    (pull,) = [
        s for s in _policy_statements(template, "TrainingPipelineJobPermissions")
        if "ecr:BatchGetImage" in s["Action"]
    ]  # fmt: skip
    assert set(renderer.render(pull["Resource"])) == {
        "arn:aws:ecr:us-east-1:683313688378:repository/sagemaker-scikit-learn",
        f"arn:aws:ecr:us-east-1:{EXPECTED_JOBS[name]['repository']}",
    }
