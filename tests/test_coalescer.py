"""The coalescer: deltas merge by count (`buffer_size`), by time (`flush_ms`), or not at all."""

import asyncio

import hypothesis
from hypothesis import given
from hypothesis import strategies as st

from streaming.coalescer import Coalescer, clock

WINDOW_MS = 20
PAST_WINDOW = 0.1  # seconds: well past a WINDOW_MS timer


class Recorder:
    """An `emit` that records every `(text, number_of_deltas)` it is given."""

    def __init__(self) -> None:
        self.emitted: list[tuple[str, int]] = []

    def __call__(self, text: str, count: int) -> None:
        self.emitted.append((text, count))


async def test_buffer_size_emits_exactly_n_deltas_and_the_remainder_only_on_flush() -> None:
    out = Recorder()
    coalescer = Coalescer(out, buffer_size=3)
    for part in ["a", "b", "c", "d", "e", "f", "g"]:
        coalescer.add(part)
    assert out.emitted == [("abc", 3), ("def", 3)]
    await asyncio.sleep(PAST_WINDOW)  # no timer: the remainder waits for flush()
    assert out.emitted == [("abc", 3), ("def", 3)]
    coalescer.flush()
    assert out.emitted == [("abc", 3), ("def", 3), ("g", 1)]


async def test_flush_ms_merges_deltas_within_the_window_and_a_later_delta_starts_a_new_buffer() -> None:
    out = Recorder()
    coalescer = Coalescer(out, flush_ms=50)
    coalescer.add("hé")
    await asyncio.sleep(0)
    coalescer.add("llo")
    await asyncio.sleep(0)
    coalescer.add(" 世界")
    assert out.emitted == []
    await asyncio.sleep(0.2)
    assert out.emitted == [("héllo 世界", 3)]
    coalescer.add(" 🎉")
    assert out.emitted == [("héllo 世界", 3)]
    await asyncio.sleep(0.2)
    assert out.emitted == [("héllo 世界", 3), (" 🎉", 1)]


async def test_buffer_size_wins_when_it_fills_before_the_window_ends() -> None:
    out = Recorder()
    coalescer = Coalescer(out, buffer_size=3, flush_ms=WINDOW_MS)
    for part in ["a", "b", "c"]:
        coalescer.add(part)
    assert out.emitted == [("abc", 3)]  # at once, without waiting for the tick
    await asyncio.sleep(PAST_WINDOW)
    assert out.emitted == [("abc", 3)]


async def test_flush_ms_wins_when_the_window_ends_before_the_buffer_fills() -> None:
    out = Recorder()
    coalescer = Coalescer(out, buffer_size=10, flush_ms=WINDOW_MS)
    coalescer.add("a")
    coalescer.add("b")
    assert out.emitted == []
    await asyncio.sleep(PAST_WINDOW)
    assert out.emitted == [("ab", 2)]
    # The count restarts with the new buffer: 10 more deltas fill it exactly.
    for part in "0123456789":
        coalescer.add(part)
    assert out.emitted == [("ab", 2), ("0123456789", 10)]
    await asyncio.sleep(PAST_WINDOW)
    assert out.emitted == [("ab", 2), ("0123456789", 10)]


async def test_with_neither_limit_every_delta_is_emitted_at_once() -> None:
    out = Recorder()
    coalescer = Coalescer(out)
    coalescer.add("héllo")
    assert out.emitted == [("héllo", 1)]
    coalescer.add(" 世界 🎉")
    assert out.emitted == [("héllo", 1), (" 世界 🎉", 1)]
    assert not coalescer.waiting
    coalescer.flush()
    assert out.emitted == [("héllo", 1), (" 世界 🎉", 1)]


async def test_flush_on_an_empty_buffer_emits_nothing() -> None:
    out = Recorder()
    coalescer = Coalescer(out, buffer_size=2, flush_ms=WINDOW_MS)
    coalescer.flush()
    assert out.emitted == []
    coalescer.add("a")
    coalescer.add("b")
    coalescer.flush()
    coalescer.flush()
    assert out.emitted == [("ab", 2)]


async def test_flush_emits_the_pending_buffer_and_its_tick_then_finds_nothing() -> None:
    out = Recorder()
    coalescer = Coalescer(out, flush_ms=WINDOW_MS)
    coalescer.add("a")
    coalescer.flush()
    assert out.emitted == [("a", 1)]
    await asyncio.sleep(PAST_WINDOW)
    assert out.emitted == [("a", 1)]


async def test_the_runs_of_a_loop_share_one_tick_and_flush_together() -> None:
    flushed: list[str] = []
    coalescers = [
        Coalescer(lambda text, _: flushed.append(text), flush_ms=WINDOW_MS)
        for _ in range(3)
    ]
    for index, coalescer in enumerate(coalescers):
        coalescer.add(f"run {index}")
    due = clock().due
    assert len(due) == 1 and len(next(iter(due.values()))) == 3  # one timer for all three
    tick = next(iter(due))
    assert tick % (WINDOW_MS / 1000) < 1e-9 or -tick % (WINDOW_MS / 1000) < 1e-9
    await asyncio.sleep(PAST_WINDOW)
    assert flushed == ["run 0", "run 1", "run 2"]
    assert clock().due == {}


def coalesce(deltas: list[str], buffer_size: int, flush_ms: int | None) -> list[tuple[str, int]]:
    """Add every delta and flush, all within one step of a running loop (no timer fires)."""
    out = Recorder()

    async def main() -> None:
        coalescer = Coalescer(out, buffer_size=buffer_size, flush_ms=flush_ms)
        for part in deltas:
            coalescer.add(part)
        coalescer.flush()

    asyncio.run(main())
    return out.emitted


@hypothesis.settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(
    deltas=st.lists(st.one_of(st.text(), st.sampled_from(["héllo", " 世界", " 🎉", ""]))),
    buffer_size=st.integers(min_value=1, max_value=8),
    flush_ms=st.one_of(st.none(), st.integers(min_value=1, max_value=1000)),
)
def test_emitted_text_and_counts_always_add_up_to_the_deltas(
    deltas: list[str], buffer_size: int, flush_ms: int | None
) -> None:
    emitted = coalesce(deltas, buffer_size, flush_ms)
    assert "".join(text for text, _ in emitted) == "".join(deltas)
    assert sum(count for _, count in emitted) == len(deltas)
    # Exactly: consecutive groups of `buffer_size` deltas, the last one possibly shorter.
    groups = [deltas[i : i + buffer_size] for i in range(0, len(deltas), buffer_size)]
    assert emitted == [("".join(group), len(group)) for group in groups]


async def test_first_at_once_sends_the_first_delta_alone_and_windows_the_rest() -> None:
    out = Recorder()
    coalescer = Coalescer(out, flush_ms=WINDOW_MS, first_at_once=True)
    coalescer.add("Hel")
    assert out.emitted == [("Hel", 1)]  # no wait for the first token
    coalescer.add("lo")
    coalescer.add(" world")
    assert out.emitted == [("Hel", 1)]
    await asyncio.sleep(PAST_WINDOW)
    assert out.emitted == [("Hel", 1), ("lo world", 2)]
