"""Run the preprocessor through the SageMaker scikit-learn container's own toolkits.

This file runs only under ``.venv-contract/bin/python`` (``requirements-contract.txt``: the
``sagemaker-containers`` serving stack and the ``sagemaker-training`` runner, at the image's pins),
never under ``.venv``: ``test_container_contract.py`` starts it in a subprocess, with the
environment SageMaker gives the container, and checks what it leaves behind. It imports nothing from
this repository; the preprocessor reaches it only as the source tarball, as in SageMaker.

``python -I container_driver.py serve CASES RESULTS INSTALL_DIR``
    Start the serving stack the way the image does, then send every request in the JSON file
    CASES to the real worker application (Flask's test client, in place of nginx and gunicorn)
    and write each response to RESULTS. Reads ``SAGEMAKER_BASE_DIR`` (the fake ``/opt/ml``,
    whose ``model/`` holds the artifact), ``SAGEMAKER_PROGRAM``, ``SAGEMAKER_SUBMIT_DIRECTORY``
    (the tarball), ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` and the preprocessor's own variables.

``python -I container_driver.py train``
    Run a training job the way the image does: ``sagemaker_training``'s ``train`` command, which
    reads ``SAGEMAKER_BASE_DIR``'s ``input/config/*.json`` and channels, calls the image's training
    module, and writes ``output/success`` or ``output/failure`` and exits with the job's status.

How the image wires the toolkits (aws/sagemaker-scikit-learn-container, ``src/sagemaker_sklearn_
container/serving.py`` and ``training.py``, and its Dockerfile's ``SAGEMAKER_SERVING_MODULE`` /
``SAGEMAKER_TRAINING_MODULE``) is restated below in our own code, with the steps named where they
happen; the toolkits themselves are the real packages.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

USER_FUNCTIONS = ("model_fn", "input_fn", "predict_fn", "output_fn")
BODY_SHOWN = 65_536
"""Characters of each response body written to RESULTS (a large answer is summarised by its size)."""


def start_serving(install_dir: Path) -> Any:
    """The worker application, built as the scikit-learn image builds it at start-up.

    1. ``sagemaker_containers._server.start`` (the image's ``serve`` command) installs the user
       module before starting gunicorn: it extracts ``SAGEMAKER_SUBMIT_DIRECTORY`` into
       ``<base>/code``, writes a ``setup.py`` there and runs ``python -m pip install .``. The image
       installs into its own interpreter; here pip gets a throwaway target folder (``PIP_TARGET``,
       standing in for site-packages) so the contract venv never keeps a copy of the preprocessor.
    2. gunicorn runs ``sagemaker_sklearn_container.serving:main`` with ``--pythonpath`` set to the
       server's ``sys.path`` plus ``<base>/code``.
    3. ``serving.main`` imports the user module by ``SAGEMAKER_PROGRAM``'s module name and makes a
       ``Transformer`` from its ``model_fn``/``input_fn``/``predict_fn``/``output_fn`` (a module
       with ``transform_fn`` instead is refused), loads the model with ``initialize()`` and serves
       ``Transformer.transform`` as the view of a ``Worker`` (the Flask app: ``/ping``,
       ``/invocations``). Every user function is wrapped so that its exceptions become the
       toolkit's ``ClientError``, which Flask answers with a bare 500.
    """
    from sagemaker_containers.beta.framework import (  # type: ignore[import-not-found]
        env,
        modules,
        transformer,
        worker,
    )

    serving_env = env.ServingEnv()
    os.environ.update(
        PIP_TARGET=str(install_dir),
        PIP_NO_INDEX="1",
        # pip reads this variable inverted: "0" means --no-build-isolation, so the generated
        # setup.py is built with the venv's setuptools instead of one fetched from an index.
        PIP_NO_BUILD_ISOLATION="0",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    sys.path.append(str(install_dir))
    modules.import_module(serving_env.module_dir, serving_env.module_name)
    sys.path.append(env.code_dir)

    user_module = importlib.import_module(serving_env.module_name)
    if getattr(user_module, "transform_fn", None) is not None:
        raise SystemExit(f"{user_module.__file__} defines transform_fn; the image refuses it with input_fn")
    missing = [name for name in USER_FUNCTIONS if getattr(user_module, name, None) is None]
    if missing:
        # The image would substitute its defaults (numpy decoding, model.predict); the preprocessor
        # is meant to define all four, so a missing one is a contract failure here.
        raise SystemExit(f"{user_module.__file__} lacks {', '.join(missing)}")
    user_transformer = transformer.Transformer(
        **{name: getattr(user_module, name) for name in USER_FUNCTIONS},
    )
    user_transformer.initialize()
    return worker.Worker(
        transform_fn=user_transformer.transform,
        module_name=serving_env.module_name,
        execution_parameters_fn=getattr(user_module, "execution_parameters_fn", None),
    )


def serve(cases_file: Path, results_file: Path, install_dir: Path) -> int:
    """Send each case of ``cases_file`` to the worker app; write the responses to ``results_file``.

    A case is ``{"name", "method", "path", "headers", "body_b64", "repeat"}``: the body is the
    base64 bytes repeated ``repeat`` times (so a very large body costs nothing to describe).
    """
    client = start_serving(install_dir).test_client()
    results: dict[str, dict[str, Any]] = {}
    for case in json.loads(cases_file.read_text(encoding="utf-8")):
        body = base64.b64decode(case.get("body_b64", "")) * int(case.get("repeat", 1))
        response = client.open(
            case.get("path", "/invocations"),
            method=case.get("method", "POST"),
            data=body,
            headers=case.get("headers", {}),
        )
        data = response.get_data()
        text = data.decode("utf-8", errors="replace")
        results[case["name"]] = {
            "status": response.status_code,
            "content_type": response.headers.get("Content-Type"),
            "body": text[:BODY_SHOWN],
            "body_bytes": len(data),
            "body_lines": len(text.splitlines()),
        }
    results_file.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


def sklearn_container_training() -> None:
    """What the image's ``SAGEMAKER_TRAINING_MODULE`` (``sagemaker_sklearn_container.training:main``)
    does: run ``sagemaker_program`` from ``sagemaker_submit_directory`` as a separate Python process,
    with the hyperparameters as ``--name value`` arguments and the ``SM_*`` variables, through
    ``sagemaker_training.entry_point.run`` with the process runner (stderr not captured)."""
    from sagemaker_training import entry_point, environment, runner  # type: ignore[import-not-found]

    training_environment = environment.Environment()
    entry_point.run(
        uri=training_environment.module_dir,
        user_entry_point=training_environment.user_entry_point,
        args=training_environment.to_cmd_args(),
        env_vars=training_environment.to_env_vars(),
        runner_type=runner.ProcessRunnerType,
    )


def train() -> int:
    """The image's ``train`` command: ``sagemaker_training.trainer.train`` with the image's module.

    The trainer imports ``SAGEMAKER_TRAINING_MODULE`` and calls it; when it raises, the trainer
    writes ``<base>/output/failure`` (unless the script already wrote one) and exits non-zero.
    """
    os.environ["SAGEMAKER_TRAINING_MODULE"] = f"__main__:{sklearn_container_training.__name__}"
    from sagemaker_training.cli import train as train_command  # type: ignore[import-not-found]

    train_command.main()  # exits with the job's status
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_command = commands.add_parser("serve", help="send requests through the serving stack")
    serve_command.add_argument("cases", type=Path)
    serve_command.add_argument("results", type=Path)
    serve_command.add_argument("install_dir", type=Path)
    commands.add_parser("train", help="run a training job through the training toolkit")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args.cases, args.results, args.install_dir)
    return train()


if __name__ == "__main__":
    sys.exit(main())
