"""The floor: the Agents SDK alone, in one process, with no server and no client.

Runs `Runner.run_streamed` for a short cold and a warm reply, then N at once, on the OpenAI
client the SDK builds from OPENAI_BASE_URL/OPENAI_API_KEY (the stand-in), reads the text
deltas, and writes per stream the stamped tokens' indices, send stamps and read times, plus
its own CPU (os.times: every thread) over the concurrent phase, as JSON:

    python -m bench.serving.floor --streams 50 --out floor.json

It imports nothing from the rest of the bench, so its memory is the SDK's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from agents import Agent, Runner
from openai.types.responses import ResponseTextDeltaEvent

AGENT = Agent(name="Assistant", instructions="You are a helpful AI assistant.", model="gpt-4o")


async def one(record: dict) -> None:
    record["requested_at"] = time.time()
    carry = ""
    try:
        result = Runner.run_streamed(AGENT, "bench")
        async for event in result.stream_events():
            if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
                received = time.time()
                *tokens, carry = (carry + event.data.delta).split(" ")  # "<i>:<ts> " tokens
                for token in tokens:
                    index, stamp = token.split(":")
                    record["indices"].append(int(index))
                    record["stamps"].append(float(stamp))
                    record["received"].append(received)
        record["terminal"] = "completed"
    except Exception as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"


def new_record(run: int) -> dict:
    return {"run": run, "indices": [], "stamps": [], "received": [], "terminal": None, "error": None}


def rss_mb() -> tuple[float, float]:
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


async def main(args: argparse.Namespace) -> dict:
    probes = []
    for name in ("cold", "warm"):
        record = new_record(-1)
        await asyncio.wait_for(one(record), args.budget)
        probes.append((name, record))
    records = [new_record(i) for i in range(args.streams)]
    before, t0 = os.times(), time.time()
    tasks = [asyncio.create_task(one(r)) for r in records]
    _, pending = await asyncio.wait(tasks, timeout=args.budget)
    for task in pending:
        task.cancel()
    for record, task in zip(records, tasks, strict=True):
        if task in pending:
            record["error"] = "timed out"
    after, t1 = os.times(), time.time()
    rss, peak = rss_mb()
    return {
        "probes": dict(probes),
        "streams": records,
        "started": t0,
        "ended": t1,
        "cpu": (after.user + after.system) - (before.user + before.system),
        "rss_mb": rss,
        "peak_rss_mb": peak,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--budget", type=float, default=120)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.write_text(json.dumps(asyncio.run(main(args))))
