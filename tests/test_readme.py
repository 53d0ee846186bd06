"""The README is the user's manual: its configuration reference covers every setting, its quick start
runs commands that exist, its contents reach every section, and it speaks to users, not to its makers."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import types
import typing
from typing import Any

import pytest
import typer
import typer.core
from pydantic import BaseModel

from mme_cli.main import app as mme_app
from mme_constructs.algorithms import ALGORITHMS
from mme_shared.housing_data import FEATURE_COLUMNS
from project_config import ProjectConfig
from project_config.loader import load_default_config
from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"


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
    readme = README.read_text()
    keys = config_keys(ProjectConfig)
    assert len(keys) > 40
    missing = [k for k in keys if f"| `{k}` |" not in readme]
    assert missing == []


def test_readme_names_the_two_commands_ci_runs() -> None:
    readme = README.read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    for command in ("make synth", "make test"):
        assert command in readme
        assert command in ci


def test_every_algorithm_and_its_hyperparameters_are_in_the_readme() -> None:
    """The "Algorithms" section: a row per algorithm, per hyperparameter (with its default), per answer."""
    readme = README.read_text()
    for name, algorithm in ALGORITHMS.items():
        assert f"| `{name}`" in readme
        assert f"{algorithm.job_step}-<location>-<run>" in readme
        assert f"| `{name}` | `{algorithm.response.accept}` |" in readme
        for field, info in algorithm.hyperparameters.model_fields.items():
            default = "unset" if info.default is None else info.default
            shown = f"`{default}`" if isinstance(default, str) and default != "unset" else str(default)
            assert f"| `{name}` | `{field}` | {shown} |" in readme, (name, field)


# --- The README as a newcomer reads it: quick start, contents, wording, license -------------------

FENCE = re.compile(r"^(```|~~~)")
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
# First words a quick-start line may start with besides `make` and `mme`, each checked below.
OTHER_PROGRAMS = {"git", "cd", "source", "export", "npx"}
# Words that belong to how the project was built, not to what it is.
INTERNAL_WORDS = [
    re.compile(r"design card", re.IGNORECASE),
    re.compile(r"\bfoundation", re.IGNORECASE),
    re.compile(r"\bissues?\b", re.IGNORECASE),
    re.compile(r"(?<![\w&/])#\d+\b"),  # an issue or pull-request number
    re.compile(r"\brounds?\b", re.IGNORECASE),  # review rounds (`num_round` is no word of its own)
    re.compile(r"\breview(er)?s\b", re.IGNORECASE),
    re.compile(r"\bsessions?\b", re.IGNORECASE),
]
# Where "session" is AWS's or pytest's word (whitespace normalised before matching).
SESSION_PHRASES = (
    "pytest session",
    "session tag",
    "role-session-name",
    "sessions without the tag",
    "sso session",
)


def _lines_outside_code(markdown: str) -> list[str]:
    lines, fenced = [], False
    for line in markdown.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(markdown: str) -> list[tuple[int, str]]:
    """(level, text) of every ATX heading outside fenced code."""
    found = []
    for line in _lines_outside_code(markdown):
        match = re.match(r"^(#{1,6}) (.+?)\s*#*\s*$", line)
        if match:
            found.append((len(match.group(1)), match.group(2)))
    return found


def section(markdown: str, title: str) -> str:
    """The text of the ``## title`` section, up to the next ``##`` heading."""
    match = re.search(rf"(?ms)^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown)
    assert match is not None, f"README has no section '## {title}'"
    return match.group(1)


def shell_blocks(markdown: str) -> list[str]:
    """The bodies of the fenced code blocks marked as shell."""
    return [
        body
        for language, body in re.findall(r"(?ms)^```(\w*)\n(.*?)^```", markdown)
        if language in SHELL_LANGUAGES
    ]


def shell_commands(block: str) -> list[list[str]]:
    """Each command of a shell block as words (comments dropped; ``&&``, ``;`` and ``|`` split
    commands, and a redirection ends one)."""
    commands: list[list[str]] = []
    for line in block.replace("\\\n", " ").splitlines():
        current: list[str] = []
        redirected = False
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        for word in lexer:
            if word in ("&&", ";", "|", "||"):
                commands.append(current)
                current, redirected = [], False
            elif word in (">", ">>", "<", "2>"):
                redirected = True
            elif not redirected:
                current.append(word)
        if current:
            commands.append(current)
    return [command for command in commands if command]


def quick_start_commands() -> list[list[str]]:
    quick_start = section(README.read_text(), "Quick start")
    return [command for block in shell_blocks(quick_start) for command in shell_commands(block)]


def makefile_targets() -> set[str]:
    return set(re.findall(r"(?m)^([a-z][a-z-]*):", (REPO_ROOT / "Makefile").read_text()))


def _option_names(command: Any) -> dict[str, tuple[bool, bool]]:
    """Every option name of a (typer-built click) command: (takes a value, is eager like --help)."""
    names = {"--help": (False, True)}
    for param in command.params:
        if isinstance(param, typer.core.TyperOption):
            for name in [*param.opts, *param.secondary_opts]:
                names[name] = (not param.is_flag and not param.count, param.is_eager)
    return names


COMPLETION_OPTIONS = ("--install-completion", "--show-completion")


def check_mme_command(words: list[str]) -> str:
    """Resolve ``mme [global options] group... command [args/options]`` against the real CLI.

    Returns the command path (e.g. ``models list``); fails on an unknown command or option. A group
    alone is a command only with an eager option (``mme --help``, ``mme models --help``).
    """
    command: Any = typer.main.get_command(mme_app)  # typer's (vendored) click command tree
    path: list[str] = []
    rest = words[1:]
    eager = False
    while rest:
        word = rest.pop(0)
        if word.startswith("-"):
            options = _option_names(command)
            name = word.split("=", 1)[0]
            assert name in options, f"`{' '.join(words)}`: {name} is no option of `mme {' '.join(path)}`"
            takes_value, is_eager = options[name]
            # typer's completion options act on the program itself, like an eager option
            eager = eager or is_eager or name in COMPLETION_OPTIONS
            if "=" not in word and takes_value:
                assert rest, f"`{' '.join(words)}`: {name} needs a value"
                rest.pop(0)
        elif isinstance(command, typer.core.TyperGroup):
            sub = command.get_command(typer.Context(command), word)
            assert sub is not None, f"`{' '.join(words)}`: `mme {' '.join([*path, word])}` does not exist"
            command = sub
            path.append(word)
        # otherwise an argument of the command
    assert eager or not isinstance(command, typer.core.TyperGroup), (
        f"`{' '.join(words)}` names a group, not a command"
    )
    return " ".join(path)


def test_quick_start_commands_exist() -> None:
    """Every command of the quick start's shell blocks is a Makefile target or an `mme` command."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    targets = makefile_targets()
    package = json.loads((REPO_ROOT / "package.json").read_text())
    commands = quick_start_commands()
    seen_make: set[str] = set()
    seen_mme: set[str] = set()
    for words in commands:
        program = words[0]
        if program == "make":
            for word in words[1:]:
                if "=" in word:
                    variable = word.split("=", 1)[0]
                    assert f"$({variable})" in makefile, (
                        f"`{' '.join(words)}`: the Makefile ignores {variable}"
                    )
                else:
                    assert word in targets, f"`{' '.join(words)}`: no Makefile target {word}"
                    seen_make.add(word)
        elif program in ("mme", ".venv/bin/mme"):
            seen_mme.add(check_mme_command(words))
        elif program == "npx":
            assert words[1] == "cdk", words
            assert "aws-cdk" in package["devDependencies"], "the CDK CLI is pinned in package.json"
        elif program == "source":
            assert words[1:] == [".venv/bin/activate"], words
            assert "VENV := .venv" in makefile, "make synth creates .venv"
        else:
            assert program in OTHER_PROGRAMS, (
                f"`{' '.join(words)}`: the quick start should not need {program}"
            )
    assert {"synth", "test", "deploy", "destroy"} <= seen_make
    assert {"status", "predict"} <= seen_mme


def test_check_mme_command_refuses_what_does_not_exist() -> None:
    """The check above can fail: unknown commands, unknown options and bare groups are refused."""
    assert check_mme_command(["mme", "--region", "eu-west-1", "models", "list", "--location", "X"]) == (
        "models list"
    )
    assert check_mme_command(["mme", "models", "--help"]) == "models"
    for words in (["mme", "statuss"], ["mme", "status", "--no-such-option"], ["mme", "models"]):
        with pytest.raises(AssertionError):
            check_mme_command(words)


def test_every_mme_command_the_readme_names_exists() -> None:
    """Beyond the quick start: each `mme ...` code span and shell line names a real command and options.

    Optional parts in brackets (``[--refit]``) are checked as options; ``mme <command> --help`` is a
    pattern, not a command.
    """
    readme = README.read_text()
    spans = [
        shlex.split(span.replace("[", " ").replace("]", " ")) for span in re.findall(r"`(mme [^`]*)`", readme)
    ]
    lines = [words for block in shell_blocks(readme) for words in shell_commands(block) if words[0] == "mme"]
    checked = [check_mme_command(words) for words in spans + lines if "<command>" not in words]
    assert len(checked) > 40


def test_quick_start_builds_and_tests_exactly_as_ci_does() -> None:
    ci_make = [
        words for words in shell_commands((REPO_ROOT / ".ci" / "run").read_text()) if words[0] == "make"
    ]
    assert ci_make == [["make", "synth"], ["make", "test"]]
    build = next(
        block for block in shell_blocks(section(README.read_text(), "Quick start")) if "make synth" in block
    )
    assert [words for words in shell_commands(build) if words[0] == "make"] == ci_make


def test_quick_start_predict_example_sends_the_eight_features() -> None:
    predicts = [words for words in quick_start_commands() if words[:2] == ["mme", "predict"]]
    assert predicts
    for words in predicts:
        location, *rest = words[2:]
        fields = [word for word in rest[: len(FEATURE_COLUMNS)] if not word.startswith("-")]
        assert location in load_default_config().data.locations
        assert len(fields) == len(FEATURE_COLUMNS), words


def test_contents_links_every_section_and_every_link_resolves() -> None:
    readme = README.read_text()
    found = headings(readme)
    slugs = [github_slug(text) for _, text in found]
    duplicates = {slug for slug in slugs if slugs.count(slug) > 1}
    assert duplicates == set(), "headings with the same anchor: a link reaches only the first"
    sections = [text for level, text in found if level == 2 and text != "Contents"]
    listed = re.findall(r"(?m)^- \[(.+?)\]\(#([^)]+)\)$", section(readme, "Contents"))
    assert [text for text, _ in listed] == sections
    assert [anchor for _, anchor in listed] == [github_slug(text) for text in sections]
    assert found[1] == (2, "Quick start"), "the quick start comes right after the title"
    second_level = [text for level, text in found if level == 2]
    assert second_level[:2] == ["Quick start", "Contents"], "the contents come right after the quick start"
    anchors = set(slugs)
    links = re.findall(r"\]\(#([^)\s]+)\)", "\n".join(_lines_outside_code(readme)))
    assert links
    assert sorted({link for link in links if link not in anchors}) == []


def test_github_slug_matches_github() -> None:
    assert github_slug("Planning a run: `mme plan`") == "planning-a-run-mme-plan"
    assert github_slug("The training pipeline (`MmeTraining`)") == "the-training-pipeline-mmetraining"
    assert github_slug("Synthetic housing data (`mme_shared/housing_data.py`)") == (
        "synthetic-housing-data-mme_sharedhousing_datapy"
    )


def internal_words(text: str) -> list[str]:
    """Phrases that talk about how the project was made rather than what it is."""
    flat = " ".join(text.split())
    for phrase in SESSION_PHRASES:
        flat = re.sub(re.escape(phrase), "", flat, flags=re.IGNORECASE)
    return [match.group(0) for pattern in INTERNAL_WORDS for match in pattern.finditer(flat)]


def test_readme_has_no_internal_words() -> None:
    assert internal_words(README.read_text()) == []


def test_internal_words_are_found() -> None:
    assert internal_words("the design card's folder, issue #12, after review round 3, this session") == [
        "design card",
        "issue",
        "#12",
        "round",
        "session",
    ]
    assert internal_words("num_round, session tags, --role-session-name, a pytest session") == []


def test_cost_section_links_the_pricing_pages_and_names_no_prices() -> None:
    costs = section(README.read_text(), "What it costs")
    for page in ("sagemaker", "kms", "step-functions", "cloudwatch"):
        assert f"https://aws.amazon.com/{page}/pricing/" in costs
    assert re.findall(r"\$\s?\d", costs) == [], "prices vary by region: link them, do not quote them"
    assert "mme plan" in costs


def test_sources_name_the_walkthrough_and_the_mme_guide() -> None:
    sources = section(README.read_text(), "Sources")
    assert "https://docs.aws.amazon.com/sagemaker/latest/dg/multi-model-endpoints.html" in sources
    assert "aws.amazon.com/blogs/machine-learning/" in sources
    assert "multi_model_linear_learner_home_value" in sources


# The standard Apache-2.0 text (https://www.apache.org/licenses/LICENSE-2.0.txt) with its appendix's
# placeholder line as published; the project's LICENSE fills in only that line.
LICENSE_TEXTS = {
    "Apache-2.0": (
        "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30",
        "   Copyright [yyyy] [name of copyright owner]",
    ),
}
COPYRIGHT = "Copyright 2026 The sagemaker-mme-cdk contributors"


def test_license_is_the_standard_text_of_what_package_json_names() -> None:
    spdx = json.loads((REPO_ROOT / "package.json").read_text())["license"]
    assert spdx in LICENSE_TEXTS, f"package.json names {spdx}: add its standard text's digest here"
    digest, placeholder = LICENSE_TEXTS[spdx]
    text = (REPO_ROOT / "LICENSE").read_text()
    assert text.count(COPYRIGHT) == 1
    standard = text.replace(f"   {COPYRIGHT}", placeholder)
    assert hashlib.sha256(standard.encode()).hexdigest() == digest
    license_section = section(README.read_text(), "License")
    assert f"`{spdx}`" in license_section
    assert "(LICENSE)" in license_section
