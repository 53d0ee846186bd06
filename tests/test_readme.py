"""The README is the user's manual: its configuration reference must cover every setting."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

from mme_constructs.algorithms import ALGORITHMS
from project_config import ProjectConfig
from tests.conftest import REPO_ROOT


def _model_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The BaseModel inside an annotation (``X``, ``X | None``, ``dict[str, X]``) and whether keyed."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict:
        model, _ = _model_in(args[1])
        return model, True
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            model, keyed = _model_in(arg)
            if model is not None:
                return model, keyed
    return None, False


def config_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted names of every leaf setting; a mapping of named entries contributes ``<name>``."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        sub, keyed = _model_in(field.annotation)
        if sub is None or sub.__name__ == "VpcConfig":  # the VPC block is documented as one value
            keys.append(dotted)
        elif keyed:
            keys.append(dotted)
            keys.extend(config_keys(sub, f"{dotted}.<name>."))
        else:
            keys.extend(config_keys(sub, f"{dotted}."))
    return keys


def test_every_config_key_is_in_the_readme_reference() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    keys = config_keys(ProjectConfig)
    assert len(keys) > 40
    missing = [k for k in keys if f"| `{k}` |" not in readme]
    assert missing == []


def test_readme_names_the_two_commands_ci_runs() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    for command in ("make synth", "make test"):
        assert command in readme
        assert command in ci


def test_every_algorithm_and_its_hyperparameters_are_in_the_readme() -> None:
    """The "Algorithms" section: a row per algorithm, per hyperparameter (with its default), per answer."""
    readme = (REPO_ROOT / "README.md").read_text()
    for name, algorithm in ALGORITHMS.items():
        assert f"| `{name}`" in readme
        assert f"{algorithm.job_step}-<location>-<run>" in readme
        assert f"| `{name}` | `{algorithm.response.accept}` |" in readme
        for field, info in algorithm.hyperparameters.model_fields.items():
            default = "unset" if info.default is None else info.default
            shown = f"`{default}`" if isinstance(default, str) and default != "unset" else str(default)
            assert f"| `{name}` | `{field}` | {shown} |" in readme, (name, field)
