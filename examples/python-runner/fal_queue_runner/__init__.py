"""Model runners for fal-queue-temporal in Python (backend kind "temporal").

Write the model as one function and decorate it; `serve` runs a Temporal worker that implements the
queue's `runInference` activity on the model's task queue:

    from fal_queue_runner import InvalidInput, RunLog, model, serve

    @model
    async def shout(params: dict, log: RunLog) -> dict:
        if not isinstance(params.get("prompt"), str):
            raise InvalidInput([{"loc": ["body", "prompt"], "msg": "field required", "type": "value_error.missing"}])
        log("shouting")
        return {"text": params["prompt"].upper()}

    if __name__ == "__main__":
        serve(shout)  # MODEL_ID, TEMPORAL_ADDRESS, TEMPORAL_TASK_QUEUE, ... from the environment
"""

from .runner import InvalidInput, Model, RunLog, model
from .worker import RunnerSettings, serve

__all__ = ["InvalidInput", "Model", "RunLog", "RunnerSettings", "model", "serve"]
__version__ = "0.1.0"
