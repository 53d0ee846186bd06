# Two commands do everything from a fresh clone:
#   make synth   create .venv, install Python + npm dependencies, synthesize every stack to cdk.out/
#   make test    the same setup, then lint, type-check and the whole test suite
# Both are idempotent: dependencies are reinstalled only when a requirements/lock file changes.
# `make test` also builds .venv-contract, the SageMaker scikit-learn container's toolkits that
# tests/contract/ runs the preprocessor through (their pins conflict with .venv's).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?=
CDK := npx --no-install cdk
CDK_FLAGS := $(if $(CONFIG),-c config=$(CONFIG),)

# No update checks (there may be no internet) and no Node end-of-life banner on every jsii call.
export CDK_DISABLE_VERSION_CHECK := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

PY_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
CONTRACT_VENV := .venv-contract
CONTRACT_STAMP := $(CONTRACT_VENV)/.installed

.PHONY: help setup contract-setup synth test lint format snapshot-update diagram benchmark benchmark-suite refresh-images deploy destroy diff clean clean-contract

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(PY_STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Every package is pinned in requirements-contract.txt, hence --no-deps (the toolkits' own
# declarations, e.g. flask==1.1.1, are not what the image runs). The `*` .gitignore keeps git and
# ruff out of the venv; the patch script does what the image's Dockerfile does after its install.
$(CONTRACT_STAMP): requirements-contract.txt scripts/patch_sagemaker_containers.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(CONTRACT_VENV)
	@echo '*' > $(CONTRACT_VENV)/.gitignore
	$(CONTRACT_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements-contract.txt
	$(CONTRACT_VENV)/bin/python scripts/patch_sagemaker_containers.py
	@touch $@

setup: $(PY_STAMP) $(NPM_STAMP) ## Create .venv and node_modules (only when needed)

contract-setup: $(CONTRACT_STAMP) ## Create .venv-contract, the container toolkits for tests/contract (only when needed)

synth: setup ## Synthesize every stack into cdk.out/ (CONFIG=path/to/file.json to override settings)
	$(CDK) synth --quiet $(CDK_FLAGS)
	@echo "Synthesized: $$(ls cdk.out/*.template.json | xargs -n1 basename | tr '\n' ' ')"

# One pytest worker per core (pytest-xdist); each worker synthesizes the app once.
test: setup lint contract-setup ## Lint, type-check and run the whole test suite on every core
	$(BIN)/python -m pytest -n auto --dist worksteal

lint: setup ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

snapshot-update: setup ## Rewrite the template snapshots; review the diff before committing
	$(BIN)/python -m pytest tests/test_snapshots.py --snapshot-update

diagram: synth ## Draw docs/architecture.png (the data flows, from the config) and docs/construct-tree.png (needs graphviz)
	@command -v dot >/dev/null || { echo "graphviz is missing: sudo apt-get install graphviz"; exit 1; }
	$(BIN)/python scripts/draw_architecture.py $(if $(CONFIG),--config $(CONFIG),) --output docs/architecture.png
	npx --no-install cdk-dia --tree cdk.out/tree.json --target docs/construct-tree.png
	rm -f docs/construct-tree.dot
	@echo "Wrote docs/construct-tree.png (every construct of cdk.out/tree.json)"

benchmark: setup ## Serving-path benchmark of the scikit-learn preprocessor (p50/p99 latency, rows/s)
	$(BIN)/python -m benchmarks.serving_benchmark

# RUNS=3 STRESS=1 make benchmark-suite: three runs with stress-ng --cpu <cores> beside them.
benchmark-suite: setup ## Time one `npx cdk synth` and one `make test` per run, one after the other
	$(BIN)/python -m benchmarks.suite_timing --runs $(or $(RUNS),1) $(if $(STRESS),--stress,)

refresh-images: setup ## Regenerate mme_constructs/data/sagemaker_images.json from sagemaker-core (needs PyPI)
	$(BIN)/python -m scripts.refresh_image_uris

deploy: setup ## mme deploy: preflight, storage + training, a training run if needed, then everything (needs AWS credentials)
	$(BIN)/mme $(if $(CONFIG),--config $(CONFIG),) deploy $(if $(GENERATION),--generation $(GENERATION),) $(if $(RETRAIN),--retrain,) $(if $(REFIT),--refit,)

destroy: setup ## mme destroy: the stateless stacks (INCLUDING_DATA=1 also storage and its data), then leftovers on request
	$(BIN)/mme $(if $(CONFIG),--config $(CONFIG),) destroy $(if $(INCLUDING_DATA),--including-data,)

diff: setup ## Compare the synthesized stacks with what is deployed (needs AWS credentials)
	$(CDK) diff $(CDK_FLAGS)

clean: ## Remove cdk.out and caches (keeps .venv and node_modules)
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache

clean-contract: ## Remove .venv-contract (the next make test rebuilds it)
	rm -rf $(CONTRACT_VENV)
