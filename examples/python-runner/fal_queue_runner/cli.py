"""`fal-queue-runner module:function`: serves a model function without a script of your own."""

from __future__ import annotations

import argparse
import importlib
import sys

from .runner import Model, model
from .worker import RunnerSettings, serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="fal-queue-runner",
        description="Serve a model function on its fal-queue-temporal task queue (settings from the environment).",
    )
    parser.add_argument("target", help="module:function, e.g. my_model:upscale (plain or @model-decorated)")
    parser.add_argument("--model-id", help="the model's id in models.json (default: $MODEL_ID)")
    args = parser.parse_args(argv)
    module_name, _, attr = args.target.partition(":")
    if not attr:
        parser.error("target must be module:function")
    # Like `python -m`, the current directory is importable, so a model file next to you works.
    sys.path.insert(0, "")
    fn = getattr(importlib.import_module(module_name), attr)
    serve(fn if isinstance(fn, Model) else model(fn), RunnerSettings.from_env(model_id=args.model_id))


if __name__ == "__main__":
    main()
