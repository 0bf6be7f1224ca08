"""Serving benchmark: this project (daphne: the seed-shaped SSE endpoint, the native API's
SSE and the WebSocket) side by side with the seed's own FastAPI Examples 1 (SSE) and 2
(WebSocket) and the Agents SDK alone (the floor), in one invocation, on the stand-in OpenAI
server with stamped tokens.

    .venv/bin/python -m bench.serving                  # 50 streams, every system
    .venv/bin/python -m bench.serving --streams 10 --tokens 30 --systems project-sse,seed-sse

Per system: CPU per delivered token (server process, plus Redis and the bench database's
PostgreSQL backends), token latency and time-to-first-token overhead from the stand-in's
send stamp, failures, lost and duplicated tokens, wall time, RSS, a fresh process's first
reply against a warm one, and RSS per idle WebSocket. Modules: `clients` (the load's
clients), `systems` (starting each system, CPU and memory), `floor` (the SDK-alone process),
`scenarios` (one measurement), `report` (results, tables). Results: docs/benchmarks.md.
"""
