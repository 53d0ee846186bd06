"""What every command needs: the validated config, AWS clients, and the deployment's names."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import NoRegionError, ProfileNotFound  # type: ignore[import-untyped]
from rich.console import Console

from mme_cli.deployment import CliError, Deployment, discover
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
    console: Console = field(default_factory=Console)
    errors: Console = field(default_factory=lambda: Console(stderr=True))

    @classmethod
    def create(cls, *, config_path: Path | None, region: str | None, profile: str | None) -> CliContext:
        try:
            config = load_default_config(str(config_path) if config_path is not None else None)
        except ConfigError as error:
            raise CliError(f"Invalid configuration: {error}.") from None
        return cls(config=config, region=region or config.region, profile=profile, config_path=config_path)

    @cached_property
    def session(self) -> Any:
        try:
            session = boto3.Session(profile_name=self.profile, region_name=self.region)
        except ProfileNotFound:
            raise CliError(
                f"AWS profile {self.profile!r} is not configured (see `aws configure list-profiles`)."
            ) from None
        if session.region_name is None:
            raise CliError("No AWS region: pass --region, set AWS_REGION, or set `region` in the config.")
        return session

    def client(self, service: str) -> Any:
        try:
            return self.session.client(service, config=_RETRIES)
        except NoRegionError:
            raise CliError(
                "No AWS region: pass --region, set AWS_REGION, or set `region` in the config."
            ) from None

    @cached_property
    def deployment(self) -> Deployment:
        return discover(
            self.client("cloudformation"),
            prefix=self.config.stack_prefix,
            region=str(self.session.region_name),
        )
