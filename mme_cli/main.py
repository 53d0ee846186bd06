"""The ``mme`` command: global options, command groups, and one place that turns errors into messages."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from botocore.exceptions import ClientError, NoCredentialsError  # type: ignore[import-untyped]

from mme_cli.cdk import CdkFailed
from mme_cli.context import CliContext
from mme_cli.deployment import CliError

app = typer.Typer(
    name="mme",
    help="Operate a deployed SageMaker multi-model endpoint project: train, predict, manage models, "
    "run the cache experiment and check tenant access. Names are read from the stacks' outputs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(
    help="List, promote, add, roll back, delete and prune the models of a preprocessor generation "
    "(default: the one the endpoint serves).",
    no_args_is_help=True,
)
experiment_app = typer.Typer(help="Reproducible experiments against the endpoint.", no_args_is_help=True)
access_app = typer.Typer(help="Check what tenants may invoke.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(experiment_app, name="experiment")
app.add_typer(access_app, name="access")


@app.callback()
def main(
    ctx: typer.Context,
    region: Annotated[
        str | None,
        typer.Option("--region", envvar="AWS_REGION", help="AWS region (default: config, then AWS)"),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", envvar="AWS_PROFILE", help="AWS CLI profile")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="The JSON config the stacks were deployed with (stack prefix, locations)"
        ),
    ] = None,
) -> None:
    ctx.obj = CliContext.create(config_path=config, region=region, profile=profile)


def run() -> None:
    """Console-script entry point: every expected failure is one sentence and exit code 1.

    Click (standalone mode) handles usage errors, ``--help`` and explicit exit codes itself.
    """
    try:
        app(prog_name="mme")
    except CdkFailed as error:
        typer.echo(f"Error: {error}", err=True)
        sys.exit(error.exit_code)
    except CliError as error:
        typer.echo(f"Error: {error}", err=True)
        sys.exit(1)
    except NoCredentialsError:
        typer.echo("Error: no AWS credentials found: set AWS_PROFILE or run `aws configure`.", err=True)
        sys.exit(1)
    except ClientError as error:
        details = error.response.get("Error", {})
        typer.echo(
            f"Error: AWS refused {error.operation_name}: {details.get('Code', 'Error')}: "
            f"{details.get('Message', str(error))}",
            err=True,
        )
        sys.exit(1)


# Command modules register themselves on the groups above.
from mme_cli.commands import (  # noqa: E402
    add_model,
    deploy,
    destroy,
    experiment_access,
    plan,
    status_models,
    train_predict,
)

for module in (status_models, add_model, train_predict, experiment_access, deploy, destroy, plan):
    module.register(app, models_app=models_app, experiment_app=experiment_app, access_app=access_app)
