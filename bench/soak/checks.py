"""The soak's verdict, from what the clients saw, the runs' event logs in Redis and the
replies in PostgreSQL, read once the load has settled.

Redis is restarted during the soak and keeps nothing (no persistence, as deployed): the
logs, or the beginnings of the logs, of runs started before that are gone, and a client
that resumes such a run afterwards finds the events it missed gone with them (410, or a
gap in seqs below the log's first event; docs/deploy.md, "What lives where"). Those are
counted as lost with Redis and checked for what is left; everything else must be exact.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg
import redis

from bench.soak.clients import UNEXPECTED, View

if TYPE_CHECKING:
    from bench.soak.load import Soak

TERMINAL = ("completed", "stopped", "failed", "interrupted")
METRICS = ("ttft_seconds", "token_count", "duration_seconds", "tokens_per_second")
EXAMPLES = 8
NEVER = 1 << 62


@dataclass
class Check:
    name: str
    checked: int = 0
    failed: list[str] = field(default_factory=list)  # one line per failure

    @property
    def ok(self) -> bool:
        return not self.failed

    def fail(self, what: str) -> None:
        self.failed.append(what)

    def examples(self) -> list[str]:
        return [f"{n} x {what}" if n > 1 else what
                for what, n in Counter(self.failed).most_common(EXAMPLES)]  # fmt: skip


@dataclass
class Facts:
    """What the checks compare: the soak's records, the stored replies, the logs."""

    soak: Soak
    replies: dict[str, dict]  # run id -> its reply's row
    logs: dict[str, list[dict]]  # run id -> its log's events ([] if there is none)
    before_redis: set[str]  # runs started before Redis was restarted
    first_seq: dict[str, int] = field(default_factory=dict)  # of each log
    counts: dict = field(default_factory=Counter)

    def lost_with_redis(self, view: View) -> bool:
        """Whether all a client missed was in the part of its run's log that the Redis
        restart erased (it can read no more than the log holds)."""
        first = self.first_seq.get(view.run_id or "", NEVER)
        return view.run_id in self.before_redis and all(hi < first for _, hi in view.gaps)


def read_replies(db_url: str, run_ids: list[str]) -> dict[str, dict]:
    columns = ", ".join(("id::text", "status", "content", "error", *METRICS))
    with psycopg.connect(db_url, autocommit=True) as conn:
        cursor = conn.execute(
            f"SELECT {columns} FROM streaming_message WHERE id = ANY(%s::uuid[])", [run_ids]
        )
        names = [c.name for c in cursor.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor}


def read_logs(redis_url: str, run_ids: list[str]) -> dict[str, list[dict]]:
    client = redis.Redis.from_url(redis_url)
    logs: dict[str, list[dict]] = {}
    try:
        for start in range(0, len(run_ids), 100):
            batch = run_ids[start : start + 100]
            pipe = client.pipeline(transaction=False)
            for run_id in batch:
                pipe.xrange(f"chat:log:{run_id}")
            for run_id, rows in zip(batch, pipe.execute(), strict=True):
                logs[run_id] = [json.loads(fields[b"e"]) for _, fields in rows]
    finally:
        client.close()
    return logs


def token_indices(text: str) -> list[int]:
    """The indices of the stand-in's stamped tokens (`"<i>:<time> "`) in a reply's text."""
    return [int(token.split(":")[0]) for token in text.split(" ") if token]


def check_replies(f: Facts) -> Check:
    """Every run ended in the database, with tokens 0..n-1 in order and n counted."""
    check = Check("every reply ended (none left streaming), its text whole")
    for run_id in sorted(f.logs):
        reply = f.replies.get(run_id)
        check.checked += 1
        if reply is None:
            check.fail(f"{run_id}: no reply in the database")
        elif reply["status"] not in TERMINAL:
            check.fail(f"{run_id}: {reply['status']}")
        elif (i := token_indices(reply["content"])) != list(range(len(i))) or len(i) != reply["token_count"]:
            check.fail(f"{run_id}: stored text is not tokens 0..{reply['token_count'] - 1} in order")
    if f.soak.streaming_left:
        check.fail(f"{f.soak.streaming_left} replies still streaming {f.soak.settle_seconds} s after the load")
    return check


def check_logs(f: Facts) -> list[Check]:
    """Each log: seqs contiguous, exactly one terminal event, last; and it agrees with the
    database (status, metrics, and the text when the log is whole)."""
    shape = Check("event logs: seqs contiguous, one terminal event, last")
    agree = Check("event logs = database (text, status, metrics)")
    for run_id, events in sorted(f.logs.items()):
        if not events:
            if run_id in f.before_redis:
                f.counts["logs lost with Redis"] += 1
            elif (f.replies.get(run_id) or {}).get("status") == "failed":
                f.counts["starts failed, no log"] += 1  # failed before its first event
            else:
                shape.fail(f"{run_id}: no event log")
            continue
        shape.checked += 1
        seqs = [e["seq"] for e in events]
        f.first_seq[run_id] = seqs[0]
        if seqs[0] != 1:
            if run_id in f.before_redis:
                f.counts["log beginnings lost with Redis"] += 1
            else:
                shape.fail(f"{run_id}: log begins at seq {seqs[0]}")
        if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
            shape.fail(f"{run_id}: seq gap in the log")
        ends = [i for i, e in enumerate(events) if e["type"] in TERMINAL]
        if len(ends) != 1 or ends[0] != len(events) - 1:
            shape.fail(f"{run_id}: ends " + ",".join(e["type"] for e in events[ends[0] if ends else -3 :]))
            continue
        reply, last = f.replies.get(run_id), events[-1]
        if reply is None:
            continue
        agree.checked += 1
        text = "".join(e["text"] for e in events if e["type"] == "delta")
        if last["type"] != reply["status"]:
            agree.fail(f"{run_id}: log ends {last['type']}, database says {reply['status']}")
        elif seqs[0] == 1 and text != reply["content"]:
            agree.fail(f"{run_id}: log text ({len(text)} chars) != stored ({len(reply['content'])})")
        elif any(last["metrics"].get(k) != reply[k] for k in METRICS):
            agree.fail(f"{run_id}: terminal metrics {last['metrics']} != stored")
    return [shape, agree]


def view_problem(view: View, reply: dict) -> str:
    """What is wrong with a client's reading, or "" (compared with the stored reply)."""
    if view.duplicates:
        return f"{view.duplicates} events received twice"
    if view.gaps:
        return f"missing seqs {view.gaps[:3]}"
    if view.seqs and view.seqs[0] != view.after + 1:
        return f"began at seq {view.seqs[0]}"
    if view.partial:
        return "" if reply["content"].startswith(view.text) else "not a prefix of the stored text"
    if view.terminal is not None and view.terminal != reply["status"]:
        return f"read {view.terminal}, stored {reply['status']}"
    if view.terminal is not None and view.text != reply["content"]:
        return f"text ({len(view.text)} chars) != stored ({len(reply['content'])} chars)"
    return ""


def check_clients(f: Facts) -> list[Check]:
    """Every client's reading against the stored reply: whole and exact if it read to the
    end, an exact prefix if it left early; and every client meant to finish did."""
    finished = Check("every client that meant to read to the end did")
    whole = Check("clients that read to the end: text = stored, seqs exact, status = stored")
    parts = Check("clients that left early: a prefix of the stored text, seqs exact")
    for view in (v for sc in f.soak.scenarios for v in sc.views):
        reply = f.replies.get(view.run_id or "")
        if reply is None:
            continue  # never started: counted by the starts' check
        problem = view_problem(view, reply)
        explained = bool(view.gaps) and not view.duplicates and f.lost_with_redis(view)
        if not view.partial:
            finished.checked += 1
            if view.terminal is None:
                if view.gone and f.lost_with_redis(view):
                    f.counts["client reads cut short by Redis"] += 1
                elif view.gone and not f.logs.get(reply["id"]) and reply["status"] == "failed":
                    f.counts["clients of a failed start shown 410"] += 1  # no log was made
                else:
                    finished.fail(f"{view.client} {view.run_id}: {view.failure or 'gone (410)'}; "
                                  f"hops {view.hops}; {view.troubles[-2:]}")  # fmt: skip
                continue
        check = parts if view.partial else whole
        check.checked += 1
        if problem and explained:
            f.counts["client reads cut short by Redis"] += 1
        elif problem:
            check.fail(f"{view.client} {view.run_id}: {problem}; hops {view.hops}")
    return [finished, whole, parts]


def check_starts(f: Facts) -> Check:
    check = Check("every start got a run (no 429, no failure)")
    for sc in f.soak.scenarios:
        check.checked += 1
        if sc.failure or sc.refused:
            check.fail(f"{sc.kind} via {sc.via}: {sc.failure or 'refused: ' + str(sc.refused)}")
    return check


def phase(soak: Soak, t: float) -> str:
    """Which fault, if any, a moment (seconds since the start) falls in."""
    tl = soak.timeline
    stop, up = tl.get("redis stopped"), tl.get("Redis back (empty)")
    if stop is not None and stop - 1 <= t <= (up if up is not None else stop + 60) + 10:
        return "Redis restart"
    kill = next((v for k, v in tl.items() if "killed" in k), None)
    back = next((v for k, v in tl.items() if "restarted" in k), None)
    if kill is not None and kill <= t <= (back if back is not None else kill + 60) + 5:
        return "worker killed"
    return "steady"


def check_server_errors(f: Facts) -> list[Check]:
    """HTTP 5xx, and WebSocket commands answered "failed unexpectedly" (the WebSocket's
    500), apart for the Redis restart's window and the rest of the soak."""
    steady = Check("no 5xx answers (nor WebSocket command failures), Redis up")
    redis_ = Check("no 5xx answers (nor WebSocket command failures), Redis restarting")
    steady.checked = redis_.checked = sum(f.soak.traffic.statuses.values())
    for t, route, what in f.soak.traffic.incidents:
        if what.startswith("HTTP 5") or UNEXPECTED in what:
            (redis_ if phase(f.soak, t) == "Redis restart" else steady).fail(f"{route}: {what}")
    return [steady, redis_]


def check_faults(f: Facts) -> list[Check]:
    """The killed worker's runs were reaped `interrupted`; stops sent to the worker that did
    not start a run took effect; both workers run at the end."""
    soak = f.soak
    reaped = Check("the killed worker's runs ended interrupted (log and database)")
    for run_id in soak.killed.get("runs", []):
        if run_id in soak.killed["ended_as_killed"]:
            continue
        reaped.checked += 1
        status = (f.replies.get(run_id) or {}).get("status")
        end = (f.logs.get(run_id) or [{}])[-1].get("type")
        if status != "interrupted" or end not in ("interrupted", None):  # None: lost with Redis
            reaped.fail(f"{run_id}: database {status}, log {end}")
    stops = Check("stops sent to the other worker took effect within 5 s")
    for sc in soak.scenarios:
        status = (f.replies.get(sc.run_id or "") or {}).get("status")
        if not sc.stop.get("acked") or (status == "failed" and not f.logs.get(sc.run_id or "")):
            continue  # not sent, or there was nothing to stop (its start failed)
        stops.checked += 1
        view = sc.views[0]
        late = view.ended_at - sc.stop["acked_at"] if view.ended_at else None
        if status == "completed" and late is not None and late > 5:
            stops.fail(f"{sc.run_id}: completed {late:.1f} s after its stop was accepted")
        elif status not in ("stopped", "completed", "interrupted"):
            stops.fail(f"{sc.run_id}: ended {status}")
    alive = Check("both workers alive at the end (the killed one restarted)")
    for w in soak.cluster.workers:
        alive.checked += 1
        if not w.alive():
            alive.fail(f"{w.label} exited ({w.proc.returncode if w.proc else None})")
    return [reaped, stops, alive]


def verify(soak: Soak) -> tuple[list[Check], Facts]:
    runs = {sc.run_id: sc for sc in soak.scenarios if sc.run_id}
    redis_stop = soak.t0 + soak.timeline.get("redis stopped", float("inf"))
    facts = Facts(
        soak,
        replies=read_replies(soak.db_url, sorted(runs)),
        logs=read_logs(soak.cluster.redis_url, sorted(runs)),
        before_redis={r for r, sc in runs.items() if sc.started_at < redis_stop},
    )
    checks = [check_starts(facts)]
    logs = check_logs(facts)  # first: it finds where each log begins
    checks += [*check_clients(facts), *logs, check_replies(facts)]
    checks += [*check_faults(facts), *check_server_errors(facts)]
    return checks, facts
