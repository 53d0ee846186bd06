"""The ``mme`` command: global options, command groups, and one place that turns errors into messages."""

from __future__ import annotations

import functools
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from mme_cli import errors
from mme_cli.context import CliContext

DISTRIBUTION = "sagemaker-mme-cdk"
"""The project's name in pyproject.toml: ``mme --version`` is its installed version."""


class _Mme(TyperGroup):
    """The root command. Everything a command does runs inside ``invoke``, so a failure anywhere (the
    callback, a command, a client created on first use) meets :func:`errors.handle` here, where the
    global options are known; typer alone would end a Ctrl-C with a silent exit 130."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except (Exception, KeyboardInterrupt) as error:
            errors.handle(error, debug=bool(ctx.params.get("debug")), profile=ctx.params.get("profile"))
            raise  # not an expected failure: a bug, whose traceback is worth seeing


app = typer.Typer(
    name="mme",
    help="Operate a deployed SageMaker multi-model endpoint project: train, predict, manage models, "
    "run the cache experiment and check tenant access. Names are read from the stacks' outputs.",
    cls=_Mme,
    no_args_is_help=True,
    add_completion=True,
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


def _print_version(value: bool) -> None:
    if not value:
        return
    try:
        version = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        typer.echo(f"Error: {DISTRIBUTION} is not installed: run `make setup` (pip install -e .).", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"mme {version}")
    raise typer.Exit()


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
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", envvar="MME_DEBUG", help="On a failure, print the Python traceback before the sentence"
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print mme's version and exit"
        ),
    ] = False,
) -> None:
    ctx.obj = CliContext.create(config_path=config, region=region, profile=profile)


def run() -> None:
    """Console-script entry point: every expected failure is one sentence and a non-zero exit.

    Click (standalone mode) handles usage errors, ``--help`` and explicit exit codes; everything a
    command raises goes through :func:`errors.handle` in the root command's ``invoke``.
    """
    _command()(prog_name="mme")


@functools.cache
def _command() -> Any:
    """The Click command tree, built from the typer apps once per process (what ``app()`` would
    rebuild on every call; a Click command is reusable, each call gets a new context)."""
    return typer.main.get_command(app)


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
