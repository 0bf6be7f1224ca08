"""Soak test: minutes of mixed load on two daphne workers, with a worker killed and Redis
restarted midway, then a check of every reply against the database and its event log.

    .venv/bin/python -m bench.soak                    # 10 minutes
    .venv/bin/python -m bench.soak --minutes 1 --json soak.json

- `cluster.py`: a private redis-server, the stand-in OpenAI server, the two workers
  (restartable in place), RSS and CPU sampling;
- `clients.py`: a guest's browser and its readers (SSE, WebSocket, polling), each client's
  `View` of a run;
- `scenarios.py`: what clients do with a run (follow, resume on the other worker, reload,
  read slowly, stop from the other worker, drop);
- `load.py`: guests, the stream of scenarios, the faults, the wait for runs to end;
- `checks.py`: the verdict; `report.py`: the tables and JSON.

Results are in docs/benchmarks.md ("Soak test").
"""
