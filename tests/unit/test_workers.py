"""The bot's bounded executors and the per-user rate limit of `/smtpmatch`."""

from __future__ import annotations

import threading

from bot.workers import RateLimit, WorkPool


def test_a_full_pool_refuses_at_once_and_takes_work_again_when_a_place_frees() -> None:
    pool = WorkPool("test", workers=1, queue_limit=1)
    release = threading.Event()
    ran: list[str] = []
    try:
        assert pool.submit(lambda: release.wait(5) and ran.append("first"))
        assert pool.submit(lambda: ran.append("second"))
        assert pool.reserve() is None  # one running, one waiting: full
        assert pool.in_use == 2

        release.set()
        pool.executor.submit(lambda: None).result(timeout=5)  # after the queued work
        assert ran == ["first", "second"]
        deadline = threading.Event()
        while pool.in_use and not deadline.wait(0.01):
            pass
        assert pool.in_use == 0
        third = threading.Event()
        assert pool.submit(third.set)
        assert third.wait(5)
    finally:
        release.set()
        pool.shutdown()


def test_a_released_slot_frees_its_place_without_running_anything() -> None:
    pool = WorkPool("test", workers=1, queue_limit=0)
    try:
        slot = pool.reserve()
        assert slot is not None and pool.reserve() is None
        slot.release()
        assert pool.in_use == 0 and pool.reserve() is not None
    finally:
        pool.shutdown()


def test_a_shut_down_pool_takes_no_more_work() -> None:
    pool = WorkPool("test", workers=1, queue_limit=4)
    pool.shutdown()
    assert pool.reserve() is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_limit_allows_n_a_minute_per_user_and_says_how_long_to_wait() -> None:
    clock = Clock()
    limit = RateLimit(3, window=60, clock=clock)
    assert [limit.allow("U1") for _ in range(3)] == [None, None, None]
    clock.now += 20
    assert limit.allow("U1") == 40  # the first of the three leaves the window in 40 s
    assert limit.allow("U2") is None  # other users are not affected
    clock.now += 40
    assert limit.allow("U1") is None


def test_a_zero_rate_limit_means_unlimited() -> None:
    limit = RateLimit(0)
    assert all(limit.allow("U1") is None for _ in range(100))


def test_a_refusal_and_the_waiting_work_show_in_the_pool_metrics() -> None:
    from bot.metrics import sample

    pool = WorkPool("metered", workers=1, queue_limit=1)
    release = threading.Event()
    refused_before = sample("smtpmatch_busy_refusals_total", {"pool": "metered"})
    try:
        assert pool.submit(release.wait, 5)
        assert pool.submit(lambda: None)
        assert pool.reserve() is None

        assert sample("smtpmatch_busy_refusals_total", {"pool": "metered"}) == refused_before + 1
        assert sample("smtpmatch_executor_queue_depth", {"pool": "metered"}) == 1
    finally:
        release.set()
        pool.shutdown()
