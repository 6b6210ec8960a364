"""The stream watchdog: one timer for the idle and total timeouts of a stream."""

from __future__ import annotations

import asyncio
import time

import pytest

from router.upstream.relay import StreamWatchdog


async def test_idle_while_waiting_for_the_upstream_cancels() -> None:
    watchdog = StreamWatchdog(idle=0.05, total=10)
    watchdog.reading = True
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(5)
    assert watchdog.timed_out()
    assert time.monotonic() - started < 1
    watchdog.stop()


async def test_chunks_keep_it_quiet_and_time_spent_writing_is_not_idle() -> None:
    watchdog = StreamWatchdog(idle=0.05, total=10)
    for _ in range(6):  # six waits of 0.03 s each: 0.18 s in all, never 0.05 s at once
        watchdog.reading = True
        await asyncio.sleep(0.03)
        watchdog.reading = False
    await asyncio.sleep(0.12)  # writing to a slow client: not the upstream's idleness
    watchdog.stop()
    assert not watchdog.timed_out()


async def test_the_total_applies_even_while_writing() -> None:
    watchdog = StreamWatchdog(idle=5, total=0.05)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(5)
    assert watchdog.timed_out()
    watchdog.stop()


async def test_someone_elses_cancellation_is_not_taken_for_a_timeout() -> None:
    async def relay() -> bool:
        watchdog = StreamWatchdog(idle=5, total=5)
        watchdog.reading = True
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return watchdog.timed_out()
        finally:
            watchdog.stop()
        return True

    task = asyncio.create_task(relay())
    await asyncio.sleep(0.01)
    task.cancel()  # the client went away
    assert await task is False
