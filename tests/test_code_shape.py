"""The shape a newcomer can read: no function in ``stacks/`` or ``mme_constructs/`` over 120 lines,
no module there over 450 lines (a construct that grows past that is split, as the training pipeline,
the endpoint and the observability constructs were)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

MAX_FUNCTION_LINES = 120
MAX_MODULE_LINES = 450
PACKAGES = ("stacks", "mme_constructs")
MODULES = sorted(path for package in PACKAGES for path in (REPO_ROOT / package).glob("*.py"))


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """``(name, lines)`` of every function or method longer than ``limit`` lines."""
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > limit
    ]


def test_both_packages_are_checked() -> None:
    assert {path.parent.name for path in MODULES} == set(PACKAGES)
    assert len(MODULES) > 10


@pytest.mark.parametrize("path", MODULES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_module_and_its_functions_stay_small(path: Path) -> None:
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES
    assert long_functions(source) == []


def test_a_long_function_is_found() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    source = f"class C:\n    def short(self) -> None:\n        pass\n\n    def long(self) -> None:\n{body}\n"
    source = source.replace("\n    x", "\n        x")
    assert long_functions(source) == [("long", MAX_FUNCTION_LINES + 1)]
