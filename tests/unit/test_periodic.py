"""channels/periodic.PeriodicTask, the loop behind the team's replies, the Instagram outbox and Telegram's
notices: ticks, back-off while failing, and a stop that lets a tick finish what it claimed."""
from __future__ import annotations

import asyncio
from typing import List

import pytest

from channels.periodic import PeriodicTask


class Recorder(PeriodicTask):
    def __init__(self, interval: float, *, fail_first: int = 0, tick_seconds: float = 0.0,
                 stop_grace: float = 5.0) -> None:
        self.interval, self.fail_first, self.tick_seconds, self.stop_grace = interval, fail_first, tick_seconds, stop_grace
        self.ticks: List[float] = []
        self.finished = 0

    def task_name(self) -> str:
        return "test-recorder"

    async def run_once(self) -> int:
        self.ticks.append(asyncio.get_running_loop().time())
        if len(self.ticks) <= self.fail_first:
            raise ConnectionError("the store is unreachable")
        await asyncio.sleep(self.tick_seconds)
        self.finished += 1
        return 1


def test_the_wait_is_the_interval_then_doubles_from_the_second_failure_in_a_row_up_to_the_cap() -> None:
    task = Recorder(2.0)
    task.max_delay = 30.0
    assert [task.delay(failures) for failures in range(7)] == [2.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    task.max_delay = 1.0  # a cap under the interval never makes the loop faster than its interval
    assert task.delay(5) == 2.0


async def test_it_ticks_keeps_going_through_failures_and_backs_off() -> None:
    task = Recorder(0.02, fail_first=3)
    task.max_delay = 10.0
    task.start()
    try:
        for _ in range(500):
            if task.finished >= 2:
                break
            await asyncio.sleep(0.01)
        assert task.running and task.finished >= 2
        gaps = [later - earlier for earlier, later in zip(task.ticks, task.ticks[1:])]
        # after the 1st, 2nd, 3rd failure: 0.02, 0.04, 0.08 s; then back to the interval
        assert gaps[1] >= 0.035 and gaps[2] >= 0.07 and gaps[2] > gaps[0]
    finally:
        await task.stop()
    assert not task.running


async def test_stopping_ends_a_sleeping_loop_at_once() -> None:
    task = Recorder(3600.0)
    task.start()
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    await task.stop()
    assert asyncio.get_running_loop().time() - started < 1.0 and task.ticks == [] and not task.running


async def test_a_tick_in_progress_finishes_within_the_grace_and_is_cancelled_after_it() -> None:
    patient = Recorder(0.01, tick_seconds=0.2, stop_grace=5.0)
    patient.start()
    while not patient.ticks:
        await asyncio.sleep(0.005)
    assert not patient.stopping
    await patient.stop()
    assert patient.finished == 1  # what it had claimed was sent

    hurried = Recorder(0.01, tick_seconds=30.0, stop_grace=0.05)
    hurried.start()
    while not hurried.ticks:
        await asyncio.sleep(0.005)
    await asyncio.wait_for(hurried.stop(), 5.0)
    assert hurried.finished == 0 and not hurried.running


@pytest.mark.parametrize("interval", [0, -1])
async def test_an_interval_of_zero_means_off(interval: float) -> None:
    task = Recorder(interval)
    task.start()
    assert not task.running
    await task.stop()
