"""Load the configuration: defaults from cdk.json context, a user's JSON file merged over them.

Every failure becomes a ``ConfigError`` whose message is one sentence naming the key (or file)
and what is allowed; ``app.py`` prints it and exits 1, so a user never sees a jsii stack trace.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mme_shared.naming import generation_problem
from project_config.model import ProjectConfig

CONTEXT_KEY = "mme"
"""cdk.json context key holding the default configuration."""

OVERRIDE_CONTEXT_KEY = "config"
"""Context key (``-c config=path.json``) naming the user's override file."""

PREPROCESSOR_GENERATION_CONTEXT_KEY = "preprocessor_generation"
"""Context key (``-c preprocessor_generation=pp-<run id>``) pinning the preprocessor generation the
endpoint serves; ``make deploy`` always sets it. Unset, the endpoint stack asks for ``newest``, which
is resolved when the stack is created and then kept until a deploy names a generation."""

_CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


class ConfigError(ValueError):
    """The configuration is invalid; ``str(error)`` is the one-line explanation."""


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Objects merge key by key; any other value (list, number, string, null) replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_override_file(path: str | Path) -> dict[str, Any]:
    """Read a user's JSON config file; every way it can be unusable is a ConfigError."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory, expected a JSON file") from None
    except PermissionError:
        raise ConfigError(f"config file {str(path)!r} is not readable (permission denied)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text") from None
    except OSError as error:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {error.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"config file {str(path)!r} is not valid JSON: {error.msg} at line {error.lineno} "
            f"column {error.colno}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {str(path)!r} must contain a JSON object of settings, got a {type(data).__name__}"
        )
    return data


def _dotted(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts)


def _allowed_keys(model: type[Any], loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the (sub)model that owns ``loc``'s last key."""
    current: Any = model
    for item in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if fields is None or not isinstance(item, str) or item not in fields:
            return []
        annotation = fields[item].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next((c for c in candidates if hasattr(c, "model_fields")), None)
        if current is None:
            return []
    return sorted(getattr(current, "model_fields", {}))


def describe_validation_error(error: ValidationError) -> str:
    """Turn pydantic's error list into one sentence about the first problem."""
    first = error.errors()[0]
    loc = tuple(item for item in first["loc"] if item not in ("function-after",))
    key = _dotted(loc) or "(top level)"
    extra = len(error.errors()) - 1
    more = f" ({extra} more problem{'s' if extra > 1 else ''} after this one)" if extra else ""
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(ProjectConfig, loc)
        where = f" under '{_dotted(loc[:-1])}'" if len(loc) > 1 else ""
        hint = f"; allowed keys{where}: {', '.join(allowed)}" if allowed else ""
        return f"config key '{key}' is not a known setting{hint}{more}"
    if first["type"] == "missing":
        return f"config key '{key}' is missing; it has no default{more}"
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
        return f"config key '{key}' {message}{more}"
    shown = json.dumps(first.get("input"), default=str)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"config key '{key}': {message[0].lower()}{message[1:]}, got {shown}{more}"


def load_config(defaults: object, override_path: str | None = None) -> ProjectConfig:
    """Validate ``defaults`` (the cdk.json context value) with an optional user file merged over."""
    if not isinstance(defaults, dict):
        raise ConfigError(
            f"cdk.json context key '{CONTEXT_KEY}' must hold the default settings object; "
            "restore it from the repository"
        )
    data = defaults
    if override_path is not None:
        if not isinstance(override_path, str) or not override_path.strip():
            raise ConfigError("-c config=... must name a JSON file, e.g. -c config=my-config.json")
        data = deep_merge(defaults, read_override_file(override_path))
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None


def default_context() -> dict[str, Any]:
    """The default settings as written in this repository's cdk.json."""
    defaults: dict[str, Any] = json.loads(_CDK_JSON.read_text(encoding="utf-8"))["context"][CONTEXT_KEY]
    return defaults


def load_default_config(override_path: str | None = None) -> ProjectConfig:
    """Defaults from cdk.json (plus an optional override file) without a CDK App; for tests/CLI."""
    return load_config(default_context(), override_path)


def load_preprocessor_generation(value: object, newest: str) -> str:
    """The context value of ``preprocessor_generation``: ``newest`` when unset, else a valid id.

    Raises ConfigError (one sentence naming the key and what is allowed) for anything else.
    """
    if value is None:
        return newest
    problem = generation_problem(value)
    if problem is not None:
        raise ConfigError(
            f"context key {PREPROCESSOR_GENERATION_CONTEXT_KEY!r}: {problem}, or leave the key out to "
            "serve the newest complete generation"
        )
    return str(value)
