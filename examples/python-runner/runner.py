"""An example model for fal-queue-temporal (backend kind "temporal"), written with `fal_queue_runner`.

The model is one function: `shout` validates its input, logs each step and returns its result; the
package does the rest (the `runInference` activity, heartbeats, cancellation, fal's 422 for a bad
input, the worker). Run it with `python runner.py` (MODEL_ID and the TEMPORAL_* settings from the
environment), or `fal-queue-runner runner:shout` once the package is installed.
"""

import asyncio
from typing import Any

from fal_queue_runner import InvalidInput, RunLog, model, serve


def validate(raw: Any) -> dict[str, Any]:
    """The model's input, or InvalidInput with fal's (pydantic v1) error entries."""
    if not isinstance(raw, dict):
        raise InvalidInput([{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}])
    errors = []
    prompt = raw.get("prompt")
    if prompt is None:
        errors.append({"loc": ["body", "prompt"], "msg": "field required", "type": "value_error.missing"})
    elif not isinstance(prompt, str):
        errors.append({"loc": ["body", "prompt"], "msg": "str type expected", "type": "type_error.str"})
    steps = raw.get("steps", 5)
    if not isinstance(steps, int) or isinstance(steps, bool):
        errors.append({"loc": ["body", "steps"], "msg": "value is not a valid integer", "type": "type_error.integer"})
    elif not 1 <= steps <= 100:
        errors.append({"loc": ["body", "steps"], "msg": "ensure 1 <= steps <= 100", "type": "value_error"})
    step_seconds = raw.get("step_seconds", 0.5)
    if not isinstance(step_seconds, (int, float)) or isinstance(step_seconds, bool) or not 0 <= step_seconds <= 60:
        errors.append({"loc": ["body", "step_seconds"], "msg": "ensure 0 <= step_seconds <= 60", "type": "value_error"})
    if errors:
        raise InvalidInput(errors)
    return {"prompt": prompt, "steps": steps, "step_seconds": float(step_seconds)}


@model
async def shout(raw: Any, log: RunLog) -> dict[str, Any]:
    """The "model": takes `steps` steps, logging each, and shouts the prompt back."""
    params = validate(raw)
    for step in range(1, params["steps"] + 1):
        log(f"step {step}/{params['steps']}")
        await asyncio.sleep(params["step_seconds"])
    return {"text": params["prompt"].upper(), "words": len(params["prompt"].split())}


if __name__ == "__main__":
    serve(shout)
