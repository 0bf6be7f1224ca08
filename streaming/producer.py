"""The producer of one run: the agent's steps -> numbered events -> the event log. Text
deltas go through the coalescer; reasoning and tool events are logged as they come, after
the text before them.

Each event is handed to the log as it is made, without waiting: the log keeps a run's
appends in order and group-commits those of all runs (an append that fails stops the run).
The producer hands its text to the run manager's batched checkpoints, and ends the run
with exactly one terminal event, after the database has the final text and metrics.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings

from . import agent_runtime, events, metrics, services
from .agent_runtime import ModelError
from .coalescer import Coalescer
from .events import Event, Metrics, TerminalType
from .logs import EventLog, LogUnavailable, RunEnded, RunRegistry
from .structured_logs import run_fields

logger = logging.getLogger(__name__)
T = TypeVar("T")

INTERRUPTED_ERROR = "The server generating this reply stopped before it finished."
FINAL_RETRY_SECONDS = 2.0  # how often a run's end the log could not take is tried again
SEAL_SECONDS = 60.0  # a seal not followed by a terminal event lapses (its sealer died)


async def _until_logged(run_id: str, attempt: Callable[[], Awaitable[T]]) -> T | None:
    """`attempt()`, tried again while the log is unreachable: a run's log must end, since
    its followers wait for its terminal event. None if it fails otherwise."""
    while True:
        try:
            return await attempt()
        except LogUnavailable:
            metrics.LOG_ERRORS.inc()
            logger.warning(
                "run %s: its end is not logged yet; retrying", run_id, extra=run_fields(run_id)
            )
            await asyncio.sleep(FINAL_RETRY_SECONDS)
        except Exception:
            metrics.LOG_ERRORS.inc()
            logger.exception("run %s: could not log its end", run_id, extra=run_fields(run_id))
            return None


@dataclass(frozen=True)
class RunOptions:
    """Per-run choices: coalescing, and whether a disconnect cancels generation."""

    buffer_size: int | None = None
    flush_ms: int | None = None  # None: `STREAM_FLUSH_MS`; 0: no time window
    cancel_on_disconnect: bool = False


@dataclass
class Progress:
    """What a run has produced so far, and how fast."""

    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    tokens: int = 0
    parts: list[str] = field(default_factory=list)
    steps: events.Steps = field(default_factory=events.Steps)

    def metrics(self) -> Metrics:
        elapsed = time.monotonic() - self.started
        ttft = None if self.first_token_at is None else self.first_token_at - self.started
        return {
            "ttft_seconds": ttft,
            "token_count": self.tokens,
            "duration_seconds": elapsed,
            "tokens_per_second": self.tokens / elapsed if self.tokens and elapsed > 0 else None,
        }


class Producer:
    """Generates one run: model deltas -> coalescer -> numbered events -> the log."""

    def __init__(
        self, *, run_id: str, thread_id: str, input: list[Any], options: RunOptions,
        log: EventLog, registry: RunRegistry,
    ) -> None:
        self.run_id = run_id
        self.thread_id = thread_id
        self.input = input
        self.options = options
        self.log = log
        self.registry = registry
        self.seq = 0
        self.progress = Progress()
        self.agent_run: agent_runtime.AgentRun | None = None
        self.stopping = False
        self.write_error: BaseException | None = None
        self.ended = False  # the run is ending: nothing more is pushed
        self.checkpointed_tokens = 0
        self.appended: asyncio.Future[None] | None = None  # the latest append
        self.seal = f"producer:{run_id}:{uuid.uuid4().hex[:8]}"
        self.fields = run_fields(run_id, thread_id)  # `extra` of log records about this run

    def _push(self, event: Event) -> None:
        self.appended = self.log.append(self.run_id, [event])
        self.appended.add_done_callback(self._logged)

    def _logged(self, appended: "asyncio.Future[None]") -> None:
        error = None if appended.cancelled() else appended.exception()
        if error is None or self.write_error is not None:
            return
        if isinstance(error, RunEnded):
            logger.warning(
                "run %s was ended by another worker; stopping the model", self.run_id, extra=self.fields
            )
        else:
            metrics.LOG_ERRORS.inc()
            logger.error(
                "run %s: could not append to the event log (%s)", self.run_id, error, extra=self.fields
            )
        self.write_error = error
        self.stop()

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _emit_delta(self, text: str, count: int) -> None:
        progress = self.progress
        first = not progress.parts
        progress.parts.append(text)
        progress.tokens += count
        ttft = progress.first_token_at - progress.started if first and progress.first_token_at else None
        metrics.TOKENS.inc(count)
        if ttft is not None:
            metrics.TTFT.observe(ttft)
        self._push(
            events.delta(
                self.run_id, self._next_seq(), text=text, tokens=count,
                token_count=progress.tokens, elapsed=time.monotonic() - progress.started,
                ttft_seconds=ttft,
            )
        )

    def _emit_step(self, step: agent_runtime.Step) -> None:
        run_id, kind = self.run_id, step.kind
        if kind == "reasoning":
            event: Event = events.reasoning(run_id, self._next_seq(), text=step.text)
        elif kind == "tool_call":
            event = events.tool_call(run_id, self._next_seq(), call_id=step.call_id, name=step.name)
        elif kind == "tool_arguments":
            event = events.tool_arguments(run_id, self._next_seq(), call_id=step.call_id, text=step.text)
        else:
            event = events.tool_result(
                run_id, self._next_seq(), call_id=step.call_id, output=step.text, error=step.error,
                truncated=step.truncated,
            )
        self.progress.steps.add(event)
        self._push(event)

    def stop(self) -> None:
        """Cancel the model run (closing the upstream stream, and any tool call in
        progress); the run ends `stopped`."""
        self.stopping = True
        if self.agent_run is not None:
            self.agent_run.cancel()

    async def begin(self) -> None:
        """Log the `started` event, so the run can be subscribed to as soon as it exists."""
        started = events.started(
            self.run_id, self._next_seq(), thread_id=self.thread_id,
            model=agent_runtime.model_name(),
        )
        await self.log.append(self.run_id, [started])

    async def run(self) -> None:
        flush_ms = settings.STREAM_FLUSH_MS if self.options.flush_ms is None else self.options.flush_ms
        coalescer = Coalescer(
            self._emit_delta, buffer_size=self.options.buffer_size, flush_ms=flush_ms,
            first_at_once=self.options.buffer_size is None,  # a count asked for is kept
        )
        status: TerminalType = "completed"
        error = ""
        cancelled = False
        try:
            self.agent_run = agent_runtime.AgentRun(self.input)
            if self.stopping:
                self.agent_run.cancel()
            async with self.agent_run as run:
                async for step in run.steps():
                    if step.kind == "text":
                        if self.progress.first_token_at is None:
                            self.progress.first_token_at = time.monotonic()
                        coalescer.add(step.text)
                    else:
                        coalescer.flush()  # the text before it, first
                        self._emit_step(step)
            if self.write_error is not None:
                status, error = "failed", "The reply could not be delivered: the event log is unreachable."
            elif self.stopping:
                status = "stopped"
        except ModelError as exc:
            status, error = "failed", str(exc)
        except asyncio.CancelledError:
            cancelled = True
            status, error = "interrupted", INTERRUPTED_ERROR
            if self.agent_run is not None:
                self.agent_run.cancel()
        except Exception:
            logger.exception("run %s failed", self.run_id, extra=self.fields)
            status, error = "failed", "The reply failed unexpectedly."
        finally:
            coalescer.flush()
            await asyncio.shield(self._finish(status, error))
        if cancelled:
            raise asyncio.CancelledError

    async def _finish(self, status: TerminalType, error: str) -> None:
        """End the run: seal it (once everything it produced is logged), store its end,
        log its terminal event. If the run was sealed first by a worker that took it for
        dead (it was only slow), that worker ends it, from the log: this producer adds
        nothing, and the log and the database agree on the reaper's end."""
        self.ended = True
        if self.appended is not None:
            with contextlib.suppress(Exception):
                await self.appended
        if not await _until_logged(self.run_id, lambda: self.log.seal(self.run_id, self.seal, SEAL_SECONDS)):
            logger.warning(
                "run %s was ended by another worker; its end stands", self.run_id, extra=self.fields
            )
            return
        text, values = "".join(self.progress.parts), self.progress.metrics()
        ending = services.Ending(status, values, error)
        try:
            ending = await sync_to_async(services.reply_finish)(
                message_id=self.run_id, content=text, status=status, metrics=values, error=error,
                steps=self.progress.steps.steps,
            )
        except Exception:
            logger.exception("could not record the end of run %s", self.run_id, extra=self.fields)
        terminal = events.terminal(
            self.run_id, self._next_seq(), type=ending.status,  # type: ignore[arg-type]
            values=ending.metrics, error=ending.error,
        )
        await _until_logged(
            self.run_id, lambda: self.log.append(self.run_id, [terminal], final=True, sealed_by=self.seal)
        )
        metrics.run_ended(ending.status)
        with contextlib.suppress(Exception):
            await self.registry.unregister(self.run_id)

    def checkpoint(self) -> str | None:
        """The text so far, if it grew since the last checkpoint (the run manager saves
        the checkpoints of all its runs together, `STREAM_CHECKPOINT_SECONDS` apart)."""
        if self.ended or self.progress.tokens == self.checkpointed_tokens:
            return None
        self.checkpointed_tokens = self.progress.tokens
        return "".join(self.progress.parts)

    def checkpointed(self) -> None:
        """The checkpoint is saved: tell followers the metrics so far (after the save, so
        a client that reloads on a metrics event finds at least that much text stored)."""
        if not self.ended:  # the run may have ended while the checkpoint was saved
            self._push(events.metrics(self.run_id, self._next_seq(), values=self.progress.metrics()))
