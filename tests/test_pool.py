"""The handler pool: results, exceptions, waiting with a timeout, late callbacks, fork."""

from __future__ import annotations

import os
import threading

import pytest

from botkit.runtime.pool import HandlerPool, NotDone


@pytest.fixture
def pool() -> HandlerPool:
    pool = HandlerPool(4)
    yield pool
    pool.shutdown()


def test_result_and_exception(pool: HandlerPool) -> None:
    assert pool.submit(lambda a, b: a + b, 2, 3).result(timeout=5) == 5
    failing = pool.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=5)
    assert isinstance(failing.exception(), ZeroDivisionError)


def test_a_timeout_raised_by_the_call_is_not_lateness(pool: HandlerPool) -> None:
    def times_out() -> None:
        raise TimeoutError("the Giphy API timed out")

    call = pool.submit(times_out)
    with pytest.raises(TimeoutError) as info:
        call.result(timeout=5)
    assert not isinstance(info.value, NotDone)


def test_waiting_ends_at_the_timeout_and_callbacks_get_the_late_result(
    pool: HandlerPool,
) -> None:
    release = threading.Event()
    call = pool.submit(lambda: release.wait(5) and "late")
    with pytest.raises(NotDone):
        call.result(timeout=0.01)
    got: list[str] = []
    done = threading.Event()

    def callback(finished: object) -> None:
        got.append(call.result())
        done.set()

    call.add_done_callback(callback)
    release.set()
    assert done.wait(5)
    assert got == ["late"]
    # a callback added after the end runs at once, in the caller's thread
    call.add_done_callback(lambda c: got.append("again"))
    assert got == ["late", "again"]
    assert call.result(timeout=0) == "late"  # waiting twice is fine


def test_grows_when_every_thread_is_busy(pool: HandlerPool) -> None:
    gate = threading.Barrier(4, timeout=5)
    calls = [pool.submit(gate.wait) for _ in range(4)]  # all four must run at once
    assert sorted(c.result(timeout=5) for c in calls) == [0, 1, 2, 3]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_threads(pool: HandlerPool) -> None:
    assert pool.submit(lambda: "parent").result(timeout=5) == "parent"
    pid = os.fork()
    if pid == 0:  # the child: the parent's threads did not survive the fork
        try:
            ok = pool.submit(lambda: os.getpid()).result(timeout=5) == os.getpid()
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
