"""The bot's own bounded executors, and the per-user rate limit of ``/smtpmatch``.

Slack waits at most 3 s for an ack and Bolt runs listeners on a small pool of its own, so no
listener does slow work itself: it reserves a place on one of these executors, acks, and hands
the work over. A full executor says so at once (``reserve`` returns ``None``), so the user can
be told "busy, try again shortly" in the ack instead of meeting Slack's timeout, and nothing
is queued without bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import ParamSpec

from bot.metrics import instrument_executor, record_busy_refusal

log = logging.getLogger("smtpmatch.workers")

P = ParamSpec("P")


class Slot:
    """A place reserved on a :class:`WorkPool`: run one task in it, or give it back."""

    def __init__(self, pool: WorkPool) -> None:
        self._pool = pool
        self._used = False

    def run(self, fn: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs) -> None:
        """Run ``fn(*args, **kwargs)`` on the pool; the place is freed when it finishes.

        A fault in ``fn`` is logged here; tasks report their own faults to users first.
        """
        if self._used:
            raise RuntimeError("a slot runs one task")
        self._used = True
        future = self._pool.executor.submit(fn, *args, **kwargs)
        future.add_done_callback(self._finished)

    def release(self) -> None:
        """Give the place back without running anything."""
        if not self._used:
            self._used = True
            self._pool.free()

    def _finished(self, future: Future[object]) -> None:
        self._pool.free()
        if not future.cancelled() and future.exception() is not None:
            log.error("%s task failed", self._pool.name, exc_info=future.exception())


class WorkPool:
    """``workers`` threads plus at most ``queue_limit`` tasks waiting for one.

    Args:
        name: names the threads and the log lines.
        workers: how many tasks run at once.
        queue_limit: how many more may wait; beyond that :meth:`reserve` refuses.
    """

    def __init__(self, name: str, workers: int, queue_limit: int) -> None:
        self.name = name
        self.capacity = workers + queue_limit
        # Instrumented: reports its queue depth, and runs each task in its submitter's context
        # (so the log reference id of the Slack request follows the work).
        self.executor: Executor = instrument_executor(
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name), name
        )
        self._lock = threading.Lock()
        self._taken = 0
        self._closed = False

    def reserve(self) -> Slot | None:
        """A place for one task, or ``None`` when the pool is full (or shut down)."""
        with self._lock:
            if self._closed or self._taken >= self.capacity:
                record_busy_refusal(self.name)
                return None
            self._taken += 1
        return Slot(self)

    def submit(self, fn: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Reserve and run in one step; False (nothing runs) when the pool is full."""
        slot = self.reserve()
        if slot is None:
            return False
        slot.run(fn, *args, **kwargs)
        return True

    def free(self) -> None:
        """A reserved place is free again (called by :class:`Slot`)."""
        with self._lock:
            self._taken -= 1

    @property
    def in_use(self) -> int:
        """Places reserved now (running or waiting)."""
        with self._lock:
            return self._taken

    def shutdown(self, *, wait: bool = True) -> None:
        """Refuse new work; tasks not started yet are dropped (they wrote nothing)."""
        with self._lock:
            self._closed = True
        self.executor.shutdown(wait=wait, cancel_futures=True)


class RateLimit:
    """At most ``limit`` events per user in any ``window`` seconds (0 = unlimited).

    Kept in memory: with several replicas each one counts its own share, which is enough to
    stop a runaway script or a stuck key without a shared store on the ack path.
    """

    def __init__(
        self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, deque[float]] = {}

    def allow(self, user: str) -> float | None:
        """Count one event for ``user``; ``None`` when allowed, else seconds until it would be."""
        if self.limit <= 0:
            return None
        now = self._clock()
        with self._lock:
            seen = self._seen.setdefault(user, deque())
            while seen and seen[0] <= now - self.window:
                seen.popleft()
            if len(seen) >= self.limit:
                return max(seen[0] + self.window - now, 0.0)
            seen.append(now)
            if len(self._seen) > 10_000:  # forget idle users so the map stays small
                for key in [k for k, v in self._seen.items() if not v]:
                    del self._seen[key]
            return None
