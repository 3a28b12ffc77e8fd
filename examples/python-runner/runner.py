"""An example model runner in Python for fal-queue-temporal (backend kind "temporal").

It polls the model's task queue, `<TEMPORAL_TASK_QUEUE>:model:<MODEL_ID>`, and implements the one
activity the queue schedules there, `runInference`:

- input:  {"requestId": str, "modelId": str, "input": <the client's JSON body>}
- output: {"output": <JSON result>, "logs": [log entries], "inferenceTime": <seconds>}
- heartbeat details: {"logs": [log entries]}; the API shows them with `?logs=1` while the run goes on,
  and heartbeats are how a cancelled request reaches the runner (asyncio.CancelledError here)
- invalid input: ApplicationError of type "InputValidation", non-retryable, details
  [{"logs": [...], "detail": [pydantic-style entries]}]; the client gets fal's 422

A log entry is {"message", "level" (INFO, WARN, ERROR, DEBUG, STDOUT, STDERR), "source": "USER",
"timestamp" (ISO 8601)}. Replace `generate` with your model.
"""

import asyncio
import os
import signal
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker


class RunLog:
    """The run's log; every new line goes out at once as a heartbeat."""

    def __init__(self, previous: list[dict[str, Any]]) -> None:
        self.entries = previous

    def __call__(self, message: str, level: str = "INFO") -> None:
        self.entries.append(
            {
                "message": message,
                "level": level,
                "source": "USER",
                "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            }
        )
        self.heartbeat()

    def heartbeat(self) -> None:
        activity.heartbeat({"logs": self.entries})


def validate(raw: Any, log: RunLog) -> dict[str, Any]:
    """The model's input, or InputValidation with fal's (pydantic v1) error entries."""
    if not isinstance(raw, dict):
        raise invalid([{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}], log)
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
        raise invalid(errors, log)
    return {"prompt": prompt, "steps": steps, "step_seconds": float(step_seconds)}


def invalid(detail: list[dict[str, Any]], log: RunLog) -> ApplicationError:
    """What the queue turns into fal's 422: the request ends at once, without a retry."""
    return ApplicationError(
        "Invalid input", {"logs": log.entries, "detail": detail}, type="InputValidation", non_retryable=True
    )


async def generate(params: dict[str, Any], log: RunLog) -> dict[str, Any]:
    """The "model": takes `steps` steps, logging each, and shouts the prompt back."""
    for step in range(1, params["steps"] + 1):
        log(f"step {step}/{params['steps']}")
        await asyncio.sleep(params["step_seconds"])
    return {"text": params["prompt"].upper(), "words": len(params["prompt"].split())}


@activity.defn(name="runInference")
async def run_inference(request: dict[str, Any]) -> dict[str, Any]:
    info = activity.info()
    # A retried attempt continues the log of the previous ones.
    previous = info.heartbeat_details[0] if info.heartbeat_details else {}
    log = RunLog(list(previous.get("logs", [])) if isinstance(previous, dict) else [])
    # Heartbeats carry cancellation to us, so they keep flowing while the model is quiet.
    ticker = asyncio.create_task(heartbeat_every_second(log))
    started = time.monotonic()
    try:
        params = validate(request.get("input"), log)
        log(f"running {request['modelId']} on attempt {info.attempt}")
        output = await generate(params, log)
        return {"output": output, "logs": log.entries, "inferenceTime": time.monotonic() - started}
    except asyncio.CancelledError:
        print(f"cancellation observed for request {request.get('requestId')}", flush=True)
        raise
    finally:
        ticker.cancel()


async def heartbeat_every_second(log: RunLog) -> None:
    while True:
        await asyncio.sleep(1)
        log.heartbeat()


async def main() -> None:
    model_id = os.environ["MODEL_ID"]
    task_queue = f"{os.environ.get('TEMPORAL_TASK_QUEUE', 'fal-queue')}:model:{model_id}"
    api_key = os.environ.get("TEMPORAL_API_KEY") or None
    client = await Client.connect(
        os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233"),
        namespace=os.environ.get("TEMPORAL_NAMESPACE", "default"),
        api_key=api_key,
        tls=api_key is not None,
    )
    worker = Worker(
        client,
        task_queue=task_queue,
        activities=[run_inference],
        max_concurrent_activities=int(os.environ.get("RUNNER_CONCURRENCY", "1")),
        # Heartbeats carry the logs the API shows and the cancellation; flush them at least every second.
        max_heartbeat_throttle_interval=timedelta(seconds=1),
        default_heartbeat_throttle_interval=timedelta(seconds=1),
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with worker:
        print(f"runner polling {task_queue}", flush=True)
        await stop.wait()
    print("runner stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
