"""The Temporal worker that serves one model on its task queue."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from .runner import Model, logger


@dataclass(frozen=True)
class RunnerSettings:
    """Where the runner connects and what it polls; :meth:`from_env` reads the queue's variable names."""

    model_id: str
    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "fal-queue"
    api_key: str | None = None
    concurrency: int = 1

    @property
    def model_task_queue(self) -> str:
        """The task queue the queue schedules this model's runs on."""
        return f"{self.task_queue}:model:{self.model_id}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, model_id: str | None = None) -> RunnerSettings:
        resolved = model_id or env.get("MODEL_ID")
        if not resolved:
            raise ValueError("MODEL_ID is not set: give the model's id in the queue's models.json")
        return cls(
            model_id=resolved,
            address=env.get("TEMPORAL_ADDRESS", cls.address),
            namespace=env.get("TEMPORAL_NAMESPACE", cls.namespace),
            task_queue=env.get("TEMPORAL_TASK_QUEUE", cls.task_queue),
            api_key=env.get("TEMPORAL_API_KEY") or None,
            concurrency=int(env.get("RUNNER_CONCURRENCY", str(cls.concurrency))),
        )


async def run_worker(model: Model, settings: RunnerSettings, stop: asyncio.Event) -> None:
    """Polls the model's task queue until `stop` is set, then lets running runs finish."""
    client = await Client.connect(
        settings.address,
        namespace=settings.namespace,
        api_key=settings.api_key,
        tls=settings.api_key is not None,
    )
    worker = Worker(
        client,
        task_queue=settings.model_task_queue,
        activities=[model.activity],
        max_concurrent_activities=settings.concurrency,
        # Heartbeats carry the logs the API shows and the cancellation; flush them at least every second.
        max_heartbeat_throttle_interval=timedelta(seconds=1),
        default_heartbeat_throttle_interval=timedelta(seconds=1),
    )
    async with worker:
        logger.info("runner polling %s", settings.model_task_queue)
        await stop.wait()
    logger.info("runner stopped")


def serve(model: Model, settings: RunnerSettings | None = None) -> None:
    """Runs the model's worker until SIGINT or SIGTERM; settings default to :meth:`RunnerSettings.from_env`."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await run_worker(model, settings or RunnerSettings.from_env(), stop)

    asyncio.run(main())
