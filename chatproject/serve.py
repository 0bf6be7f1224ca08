"""`python -m chatproject.serve [daphne's arguments]`: daphne on uvloop, and this worker's
metrics on an internal port.

daphne runs Twisted's asyncio reactor on an event loop it creates when it is imported;
with uvloop's policy set first, that loop is uvloop's, whose event-loop machinery
(callbacks, timers, sockets) costs less per event than asyncio's own: measured here, about
8 % less worker CPU per streamed token (bench/serving load, 6 alternated rounds). Its TCP
connections send a write at once when nothing is waiting (chatproject/eager_writes.py),
and its WebSocket frames skip their debug log's colours (chatproject/plain_frames.py).
Every argument is daphne's.

With `METRICS_PORT` set, the worker also serves its metrics (streaming/metrics.py) in
Prometheus's text format on `METRICS_BIND` (loopback by default), from a thread of
prometheus_client's own: a port of each worker's, for Prometheus to scrape, never a route
of the site (nginx proxies the site's port only).
"""

import asyncio
import os
import sys

import uvloop

from chatproject import eager_writes, plain_frames


def serve_metrics() -> None:
    """Start this worker's metrics server, if `METRICS_PORT` is set. A port that cannot be
    bound stops the worker: serving without its metrics would go unnoticed."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    from django.conf import settings

    if settings.METRICS_PORT is None:
        return
    from prometheus_client import start_http_server

    try:
        start_http_server(settings.METRICS_PORT, addr=settings.METRICS_BIND)
    except OSError as exc:
        raise SystemExit(
            f"METRICS_PORT: cannot serve metrics on {settings.METRICS_BIND}:{settings.METRICS_PORT} ({exc}); "
            "every worker on a host needs a port of its own."
        ) from exc


def main() -> None:
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    eager_writes.install()
    plain_frames.install()
    from daphne.cli import CommandLineInterface  # creates the loop: after the policy

    serve_metrics()
    sys.exit(CommandLineInterface.entrypoint())


if __name__ == "__main__":
    main()
