"""What every command needs: the validated config, AWS clients, and the deployment's names."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.utils import validate_region_name  # type: ignore[import-untyped]
from rich.console import Console

from mme_cli.deployment import CliError, Deployment, discover
from mme_cli.errors import NO_REGION, record_service
from mme_cli.output import stderr_console, stdout_console
from project_config import ConfigError, ProjectConfig, load_default_config

_RETRIES = Config(retries={"mode": "standard", "max_attempts": 5})


@dataclass
class CliContext:
    """Built once per invocation from the global options; clients are created on first use."""

    config: ProjectConfig
    region: str | None = None
    profile: str | None = None
    config_path: Path | None = None
    """The ``--config`` file (None: the defaults), for commands that run the CDK CLI with it."""
    console: Console = field(default_factory=stdout_console)
    """Tables and results; never wraps a line when stdout is not a terminal (:mod:`mme_cli.output`)."""
    errors: Console = field(default_factory=stderr_console)
    """Warnings and progress, on stderr."""
    _clients: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def create(cls, *, config_path: Path | None, region: str | None, profile: str | None) -> CliContext:
        try:
            config = load_default_config(str(config_path) if config_path is not None else None)
        except ConfigError as error:
            raise CliError(f"Invalid configuration: {error}.") from None
        validate_region_name(region)  # a malformed --region or AWS_REGION fails before any work
        return cls(config=config, region=region or config.region, profile=profile, config_path=config_path)

    @cached_property
    def session(self) -> Any:
        """The profile's session; botocore's errors (an unknown profile, no credentials, a malformed
        region) reach the ``mme`` command's one handler, :func:`mme_cli.errors.handle`."""
        session = boto3.Session(profile_name=self.profile, region_name=self.region)
        if session.region_name is None:
            raise CliError(NO_REGION)
        validate_region_name(session.region_name)  # the profile's region
        return session

    def client(self, service: str) -> Any:
        """The invocation's one client of ``service``, with the SDK's standard retries, whose errors
        name its service (for the handler). Created on first use and kept: building a client costs
        about 10 ms of CPU, and boto3 clients are thread-safe."""
        if service not in self._clients:
            self._clients[service] = record_service(self.session.client(service, config=_RETRIES))
        return self._clients[service]

    @cached_property
    def deployment(self) -> Deployment:
        return discover(
            self.client("cloudformation"),
            prefix=self.config.stack_prefix,
            region=str(self.session.region_name),
        )
