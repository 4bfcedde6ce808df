"""run_or_wait (services/sla_monitor/faust_app.py): the SLA monitor's consumer runs faust's
per-message callback's first step at once and only hands the rest to a task when it has to wait.
The rest must behave exactly as if a task had run the coroutine from its start: results, errors,
bare yields, waits on futures, and cancellation while waiting."""
from __future__ import annotations

import asyncio

import pytest

from services.sla_monitor.faust_app import run_or_wait


def test_finishes_at_once_when_it_never_waits():
    seen = []

    async def callback():
        seen.append(1)
        return "done"

    async def main():
        assert run_or_wait(callback()) is None
        assert seen == [1]

    asyncio.run(main())


def test_the_rest_runs_in_a_task_with_results_and_bare_yields():
    async def main():
        fut = asyncio.get_running_loop().create_future()
        steps = []

        async def callback():
            steps.append("first")
            value = await fut
            steps.append(value)
            await asyncio.sleep(0)  # a bare yield
            steps.append("after sleep")
            return value * 2

        rest = run_or_wait(callback())
        assert rest is not None and steps == ["first"]
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0)
        assert not task.done()
        fut.set_result(21)
        assert await task == 42
        assert steps == ["first", 21, "after sleep"]

    asyncio.run(main())


def test_errors_reach_the_waiter():
    async def main():
        fut = asyncio.get_running_loop().create_future()

        async def callback():
            await fut

        async def fails_at_once():
            raise KeyError("x")

        with pytest.raises(KeyError):
            run_or_wait(fails_at_once())
        task = asyncio.ensure_future(run_or_wait(callback()))
        await asyncio.sleep(0)
        fut.set_exception(ValueError("bad"))
        with pytest.raises(ValueError):
            await task

    asyncio.run(main())


def test_cancelling_the_task_cancels_the_wait_inside():
    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        cleaned = []

        async def callback():
            try:
                await fut
            finally:
                cleaned.append(True)

        task = asyncio.ensure_future(run_or_wait(callback()))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert fut.cancelled() and cleaned == [True]

    asyncio.run(main())


def test_wait_first_abandons_the_rest_like_faust():
    """What faust's drain loop does with it: wait_first(rest, suspend_flow.wait()) returns when the
    flow is suspended, and the callback still waiting is cancelled."""
    from mode import Service
    from mode.utils.locks import Event

    async def main():
        service = Service()
        queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        queue.put_nowait("full")
        suspend = Event()

        async def callback():
            await queue.put("message")

        rest = run_or_wait(callback())
        assert rest is not None
        waiting = asyncio.ensure_future(service.wait_first(rest, suspend.wait()))
        await asyncio.sleep(0.01)
        suspend.set()
        result = await waiting
        assert result.results == [True]  # only the suspend_flow wait finished
        await asyncio.sleep(0)
        assert queue.qsize() == 1  # the message was not put

    asyncio.run(main())
