"""The `runInference` contract, so that a model is only its function.

The queue schedules `runInference` with {"requestId", "modelId", "input"} and expects
{"output", "logs", "inferenceTime"} back. Heartbeats carry {"logs": [...]} (the status shows them
with `?logs=1` during the run) and bring a cancelled request's cancellation to the runner. A bad input
is an ApplicationError of type "InputValidation", non-retryable, with details
[{"logs": [...], "detail": [pydantic-style entries]}]: the client gets fal's 422.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, Union

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

logger = logging.getLogger("fal_queue_runner")

LOG_LEVELS = ("INFO", "WARN", "ERROR", "DEBUG", "STDOUT", "STDERR")


class InvalidInput(Exception):
    """Raise it for an input the model rejects: the request ends at once with fal's 422, without a retry.

    `detail` is a list of pydantic (v1) style entries: {"loc": ["body", "field"], "msg": ..., "type": ...}.
    """

    def __init__(self, detail: list[dict[str, Any]], message: str = "Invalid input") -> None:
        super().__init__(message)
        self.detail = detail


class RunLog:
    """The run's log. Each call adds a line; lines reach the queue in the next heartbeat (at once from
    async code, within a second from a thread). `cancelled` is set when the request is cancelled, for
    blocking code that runs in a thread and cannot be interrupted."""

    def __init__(self, previous: list[dict[str, Any]]) -> None:
        self.entries = previous
        self.cancelled = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    def __call__(self, message: str, level: str = "INFO") -> None:
        if level not in LOG_LEVELS:
            raise ValueError(f"level must be one of {', '.join(LOG_LEVELS)}")
        self.entries.append(
            {
                "message": message,
                "level": level,
                "source": "USER",
                "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            }
        )
        # Heartbeats are sent from the event loop; a model running in a thread hands them over.
        if threading.get_ident() == self._loop_thread:
            self.heartbeat()
        else:
            self._loop.call_soon_threadsafe(self.heartbeat)

    def heartbeat(self) -> None:
        activity.heartbeat({"logs": list(self.entries)})


ModelFunction = Callable[[Any, RunLog], Union[Awaitable[Any], Any]]


class Model:
    """A model function wrapped as the queue's `runInference` activity (see :func:`model`)."""

    def __init__(self, fn: ModelFunction) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "model")
        # Start reports in flight (asyncio keeps only weak references to tasks).
        self._pending: set[asyncio.Task[None]] = set()

        # Temporal's decorator marks a function object, so a bound method will not do.
        async def run_inference(request: dict[str, Any]) -> dict[str, Any]:
            return await self._run_inference(request)

        self.activity = activity.defn(name="runInference")(run_inference)

    async def _run_inference(self, request: dict[str, Any]) -> dict[str, Any]:
        info = activity.info()
        ended = asyncio.Event()
        if request.get("reportStart"):
            # The request waited in the model's task queue: its workflow counts it as waiting (queue positions)
            # until told that a runner has it, once the run has gone on `reportStartAfterMs` (a run that ends
            # sooner is never reported; its end says enough). Not awaited: the run does not wait for the bookkeeping.
            delay = (request.get("reportStartAfterMs") or 0) / 1000
            report = _report_start(activity.client(), str(request.get("requestId")), delay, ended)
            self._pending.add(asyncio.create_task(report))
            self._pending = {t for t in self._pending if not t.done()}
        # A retried attempt continues the log of the attempts before it.
        previous = info.heartbeat_details[0] if info.heartbeat_details else {}
        log = RunLog(list(previous.get("logs", [])) if isinstance(previous, dict) else [])
        # Heartbeats carry cancellation to us, so they keep flowing while the model is quiet.
        ticker = asyncio.create_task(_heartbeat_every_second(log))
        started = time.monotonic()
        try:
            output = await self._call(request.get("input"), log)
            return {"output": output, "logs": log.entries, "inferenceTime": time.monotonic() - started}
        except InvalidInput as err:
            raise ApplicationError(
                str(err), {"logs": log.entries, "detail": err.detail}, type="InputValidation", non_retryable=True
            ) from err
        except asyncio.CancelledError:
            log.cancelled.set()
            logger.info("cancellation observed for request %s", request.get("requestId"))
            raise
        finally:
            ticker.cancel()
            ended.set()

    async def _call(self, params: Any, log: RunLog) -> Any:
        if inspect.iscoroutinefunction(self.fn):
            return await self.fn(params, log)
        # Blocking code (PyTorch and the like) runs in a thread, so heartbeats keep flowing.
        return await asyncio.to_thread(self.fn, params, log)


def model(fn: ModelFunction) -> Model:
    """Turns `fn(params, log) -> output` into a model the queue can run.

    `params` is the client's JSON body; the return value (JSON-serialisable) is the request's result.
    `fn` may be `async` or plain; a plain function runs in a thread. Raise :class:`InvalidInput` for a
    bad input; any other exception fails the attempt, and the queue retries it up to the model's
    `maxAttempts`.
    """
    return Model(fn)


async def _report_start(client: Client, request_id: str, delay: float, ended: asyncio.Event) -> None:
    """Signals `runStarted` to the request's workflow (its id is the request id) if the run is still going after
    `delay` seconds."""
    if delay > 0:
        try:
            await asyncio.wait_for(ended.wait(), delay)
            return
        except asyncio.TimeoutError:
            pass
    try:
        await client.get_workflow_handle(request_id).signal("runStarted")
    except Exception:  # noqa: BLE001 - a lost report only leaves this run counted as waiting until it ends
        logger.warning("could not report the start of request %s", request_id, exc_info=True)


async def _heartbeat_every_second(log: RunLog) -> None:
    while True:
        await asyncio.sleep(1)
        log.heartbeat()
