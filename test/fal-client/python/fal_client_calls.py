"""Drives fal's official Python client (fal-client on PyPI), unmodified, against our API.

The hosts come from FAL_QUEUE_RUN_HOST / FAL_RUN_HOST, the key from FAL_KEY, the proxy's CA from
SSL_CERT_FILE: exactly how a user would point the client at a self-hosted queue. Usage:

    python fal_client_calls.py <echo model id> <gated model id>

Prints `EVENT <name>` lines the test waits on (it releases the gated model's held run on
`EVENT gated-in-progress`), then one `RESULT <json>` line with what each call returned.
"""

import json
import sys

import fal_client
from fal_client.client import Completed, FalClientHTTPError, InProgress, Queued


def event(name):
    print(f"EVENT {name}", flush=True)


def describe(status):
    """A status as plain data: its kind, and its log lines' messages."""
    out = {"kind": type(status).__name__}
    if isinstance(status, Queued):
        out["position"] = status.position
    if isinstance(status, (InProgress, Completed)):
        out["logs"] = [line["message"] for line in (status.logs or [])]
    if isinstance(status, Completed):
        out["error"] = status.error
        out["error_type"] = status.error_type
    return out


def http_error(err):
    return {
        "class": type(err).__name__,
        "is_fal_client_http_error": isinstance(err, FalClientHTTPError),
        "status_code": err.status_code,
        "message": err.message if isinstance(err.message, str) else json.dumps(err.message),
        "error_type": err.error_type,
    }


def main(echo, gated):
    out = {}

    # submit, status, iter_events, get
    handle = fal_client.submit(echo, {"prompt": "submitted"})
    out["submit"] = {
        "request_id": handle.request_id,
        "status_url": handle.status_url,
        "response_url": handle.response_url,
        "cancel_url": handle.cancel_url,
    }
    out["status"] = describe(handle.status(with_logs=True))
    out["iter_events"] = [describe(s) for s in handle.iter_events(with_logs=True, interval=0.1)]
    out["get"] = handle.get()

    # subscribe with queue updates: the gated model holds the run until the test sees it in progress
    updates = []
    announced = []

    def on_queue_update(status):
        updates.append(describe(status))
        if isinstance(status, InProgress) and status.logs and not announced:
            announced.append(True)
            event("gated-in-progress")

    out["subscribe"] = fal_client.subscribe(
        gated, {"prompt": "subscribed"}, with_logs=True, on_queue_update=on_queue_update, interval=0.1
    )
    out["subscribe_updates"] = updates

    # run: the synchronous form, through FAL_RUN_HOST=<host>/run
    out["run"] = fal_client.run(echo, {"prompt": "ran"})

    # cancel a run in progress (the gated model holds it), then read what the request became
    handle = fal_client.submit(gated, {"prompt": "cancelled"})
    for status in handle.iter_events(with_logs=True, interval=0.1):
        if isinstance(status, InProgress):
            break
    handle.cancel()
    out["cancel_status"] = describe(list(handle.iter_events(interval=0.1))[-1])
    try:
        handle.get()
        out["cancel_get"] = "no error"
    except FalClientHTTPError as err:
        out["cancel_get"] = http_error(err)

    # a 422: a submit header with a value we refuse
    try:
        fal_client.submit(echo, {"prompt": "refused"}, headers={"x-fal-queue-priority": "urgent"})
        out["unprocessable"] = "no error"
    except FalClientHTTPError as err:
        out["unprocessable"] = http_error(err)

    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
