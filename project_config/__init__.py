"""The project's one typed, validated configuration model and its loader."""

from project_config.loader import ConfigError, load_config, load_default_config
from project_config.model import ProjectConfig

__all__ = ["ConfigError", "ProjectConfig", "load_config", "load_default_config"]
