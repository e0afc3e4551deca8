"""Prometheus metrics: what an operator watches from outside (``GET /metrics``).

One registry of our own (not the library's global one) holds every metric, so the endpoint shows
smtpmatch's figures only and tests can read them back. The recorders are small functions the
services call; :func:`instrument` and :func:`instrument_store` wrap the directory ports and the
store so that latency, writes, request states and sync outcomes are recorded at those edges
without the services knowing. Counters are per process: with several replicas, sum them.
"""

from __future__ import annotations

import contextvars
import dataclasses
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, Final, TypeVar, cast

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response

from bot.errors import ConcurrentModification
from bot.rules.checks import Verdict
from bot.rules.requests import RequestState
from bot.rules.waves import ItemState, WaveState
from bot.services.check import Directories

T = TypeVar("T")

# The ``*_created`` timestamp series double the output and no dashboard here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY: Final = CollectorRegistry(auto_describe=True)

#: Directory calls take from a few milliseconds (demo, LDAP on the LAN) to many seconds (Graph
#: throttling with Retry-After), so the buckets span both.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: Directory methods that change the directory: also counted as writes.
WRITE_OPERATIONS: Final = frozenset({"apply", "create", "delete"})

CHECKS: Final = Counter(
    "smtpmatch_checks",
    "Checks asked for by people, by verdict.",
    ["verdict"],
    registry=REGISTRY,
)
REQUESTS: Final = Counter(
    "smtpmatch_requests",
    "Match requests entering a state (pending when created, then each transition).",
    ["state"],
    registry=REGISTRY,
)
WRITES: Final = Counter(
    "smtpmatch_writes",
    "Writes to on-prem AD, by operation and outcome (applied, conflict, error).",
    ["operation", "outcome"],
    registry=REGISTRY,
)
SYNC_OUTCOMES: Final = Counter(
    "smtpmatch_sync_outcomes",
    "Sync watches finished, by outcome (matched, sync_failed, sync_timeout, ...).",
    ["outcome"],
    registry=REGISTRY,
)
DIRECTORY_SECONDS: Final = Histogram(
    "smtpmatch_directory_call_seconds",
    "Duration of directory calls, by directory and operation (failed calls included).",
    ["directory", "operation"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
DIRECTORY_ERRORS: Final = Counter(
    "smtpmatch_directory_errors",
    "Directory calls that raised, by directory, operation and error class.",
    ["directory", "operation", "error"],
    registry=REGISTRY,
)
GRAPH_THROTTLED: Final = Counter(
    "smtpmatch_graph_throttled",
    "Microsoft Graph answers with status 429 (each one, retried or not, $batch parts included).",
    registry=REGISTRY,
)
QUEUE_DEPTH: Final = Gauge(
    "smtpmatch_executor_queue_depth",
    "Tasks submitted to a worker pool and not started yet.",
    ["pool"],
    registry=REGISTRY,
)
WAVES: Final = Counter(
    "smtpmatch_waves",
    "Waves (bulk hand-overs) entering a state (pending when asked, then each transition).",
    ["state"],
    registry=REGISTRY,
)
WAVE_ITEMS: Final = Counter(
    "smtpmatch_wave_items",
    "Users of waves entering a state (pending when the wave is asked, then each transition).",
    ["state"],
    registry=REGISTRY,
)
BUSY_REFUSALS: Final = Counter(
    "smtpmatch_busy_refusals",
    "Work refused because a worker pool was full (the user was told to try again).",
    ["pool"],
    registry=REGISTRY,
)

# Known label values start at zero, so a dashboard shows them before the first event.
for _verdict in Verdict:
    CHECKS.labels(_verdict.value)
for _state in RequestState:
    REQUESTS.labels(_state.value)
for _wave_state in WaveState:
    WAVES.labels(_wave_state.value)
for _item_state in ItemState:
    WAVE_ITEMS.labels(_item_state.value)


# -- recorders the services call ---------------------------------------------------------------


def record_check(verdict: str) -> None:
    """Count one check asked for by a person, by its verdict."""
    CHECKS.labels(str(verdict)).inc()


def record_request_state(state: str) -> None:
    """Count one match request entering ``state``."""
    REQUESTS.labels(str(state)).inc()


def record_write(operation: str, outcome: str) -> None:
    """Count one write to on-prem AD (``outcome``: applied, conflict or error)."""
    WRITES.labels(operation, outcome).inc()


def record_sync_outcome(outcome: str) -> None:
    """Count one finished sync watch by its outcome."""
    SYNC_OUTCOMES.labels(str(outcome)).inc()


def record_graph_throttled() -> None:
    """Count one 429 answer from Microsoft Graph."""
    GRAPH_THROTTLED.inc()


def record_busy_refusal(pool: str) -> None:
    """Count one piece of work refused because the pool ``pool`` was full."""
    BUSY_REFUSALS.labels(pool).inc()


def set_queue_depth(pool: str, depth: int) -> None:
    """Report the number of waiting tasks of ``pool`` (for pools that count their own)."""
    QUEUE_DEPTH.labels(pool).set(depth)


def observe_directory_call(directory: str, operation: str, seconds: float) -> None:
    """Record the duration of one directory call."""
    DIRECTORY_SECONDS.labels(directory, operation).observe(seconds)


# -- edges: directory ports, the store, worker pools -------------------------------------------


class _Timed:
    """Times every method call of a directory port; attributes pass through unchanged.

    It reports the wrapped object's class as its own (``isinstance`` keeps working), so code
    that asks "is this the demo directory?" still gets the right answer.
    """

    def __init__(self, target: Any, directory: str) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_directory", directory)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(object.__getattribute__(self, "_target"))

    def __getattr__(self, name: str) -> Any:
        target = object.__getattribute__(self, "_target")
        value = getattr(target, name)
        if name.startswith("_") or not callable(value):
            return value
        directory = object.__getattribute__(self, "_directory")
        return _timed_call(value, directory, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_target"), name, value)

    def __repr__(self) -> str:
        return f"instrument({object.__getattribute__(self, '_target')!r})"


def _timed_call(fn: Callable[..., Any], directory: str, operation: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        except ConcurrentModification:
            _count_write(operation, "conflict")
            DIRECTORY_ERRORS.labels(directory, operation, "ConcurrentModification").inc()
            raise
        except Exception as exc:
            _count_write(operation, "error")
            DIRECTORY_ERRORS.labels(directory, operation, type(exc).__name__).inc()
            raise
        finally:
            observe_directory_call(directory, operation, time.perf_counter() - started)
        _count_write(operation, "applied")
        return result

    call.__name__ = operation
    return call


def _count_write(operation: str, outcome: str) -> None:
    if operation in WRITE_OPERATIONS:
        record_write(operation, outcome)


def instrument(port: T, directory: str) -> T:
    """Wrap a directory port so that every public method call is timed under ``directory``.

    Args:
        port: the adapter (AD, Entra ID or demo).
        directory: the label value, e.g. ``"ad"`` or ``"entra"``.

    Returns:
        An object that behaves like ``port`` (and passes ``isinstance`` checks for its class).
    """
    if isinstance(port, _Timed):  # never time a call twice
        return port
    return cast(T, _Timed(port, directory))


class _RecordingStore:
    """Counts state changes at the store, where the races are decided: only the replica whose
    compare-and-set won records the change, so nothing is counted twice. ``recorders`` maps a
    store method's name to a wrapper that records what the call returned."""

    def __init__(
        self, target: Any, recorders: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]
    ) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_recorders", recorders)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(object.__getattribute__(self, "_target"))

    def __getattr__(self, name: str) -> Any:
        target = object.__getattribute__(self, "_target")
        value = getattr(target, name)
        recorder = object.__getattribute__(self, "_recorders").get(name)
        if recorder is None:
            return value
        return recorder(value)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_target"), name, value)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        object.__getattribute__(self, "_target").close()


def _after_create(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        request = fn(*args, **kwargs)
        record_request_state(str(request.state))
        return request

    return call


def _after_transition(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        request = fn(*args, **kwargs)
        if request is not None:
            record_request_state(str(request.state))
        return request

    return call


def _after_expire(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        expired = fn(*args, **kwargs)
        for request in expired:
            record_request_state(str(request.state))
        return expired

    return call


def _after_finish_watch(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(watch_id: int, owner: str, outcome: str, detail: str) -> Any:
        finished = fn(watch_id, owner, outcome, detail)
        if finished:
            record_sync_outcome(outcome)
        return finished

    return call


_STORE_RECORDERS: Final[dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = {
    "create_request": _after_create,
    "transition": _after_transition,
    "expire_due": _after_expire,
    "finish_watch": _after_finish_watch,
}


def instrument_store(store: T) -> T:
    """Wrap the store so that request states and sync outcomes are counted when they change."""
    if isinstance(store, _RecordingStore):
        return store
    return cast(T, _RecordingStore(store, _STORE_RECORDERS))


def _after_create_wave(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        wave = fn(*args, **kwargs)
        WAVES.labels(str(wave.state)).inc()
        WAVE_ITEMS.labels(ItemState.PENDING.value).inc(wave.count)
        return wave

    return call


def _after_wave_move(counter: Counter) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            moved = fn(*args, **kwargs)
            if moved is not None:
                counter.labels(str(moved.state)).inc()
            return moved

        return call

    return wrap


def _after_skip_pending(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        skipped = int(fn(*args, **kwargs))
        WAVE_ITEMS.labels(ItemState.SKIPPED.value).inc(skipped)
        return skipped

    return call


_WAVE_RECORDERS: Final[dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = {
    "create_wave": _after_create_wave,
    "transition_wave": _after_wave_move(WAVES),
    "transition_item": _after_wave_move(WAVE_ITEMS),
    "skip_pending": _after_skip_pending,
}


def instrument_wave_store(store: T) -> T:
    """Wrap the wave store so that wave and wave-item states are counted when they change."""
    if isinstance(store, _RecordingStore):
        return store
    return cast(T, _RecordingStore(store, _WAVE_RECORDERS))


def instrument_directories(dirs: Directories) -> Directories:
    """The same directories with both ports timed and the lookup pool's queue depth reported."""
    return dataclasses.replace(
        dirs,
        onprem=instrument(dirs.onprem, "ad"),
        cloud=instrument(dirs.cloud, "entra"),
        executor=instrument_executor(dirs.executor, "lookup"),
    )


class InstrumentedExecutor(Executor):
    """An executor that reports how many of its tasks wait (``smtpmatch_executor_queue_depth``)
    and runs each task in the context of its submitter (so the log reference id follows the
    work onto the worker thread)."""

    def __init__(self, inner: Executor, pool: str) -> None:
        self._inner = inner
        self._pool = pool
        self._waiting = 0
        self._lock = threading.Lock()
        QUEUE_DEPTH.labels(pool).set(0)

    @property
    def waiting(self) -> int:
        """Tasks submitted and not started yet."""
        return self._waiting

    def _change(self, delta: int) -> None:
        with self._lock:
            self._waiting += delta
            QUEUE_DEPTH.labels(self._pool).set(self._waiting)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` in the submitter's context."""
        context = contextvars.copy_context()
        started = threading.Event()

        def run() -> T:
            started.set()
            self._change(-1)
            return context.run(fn, *args, **kwargs)

        self._change(+1)
        try:
            future = self._inner.submit(run)
        except BaseException:
            self._change(-1)
            raise
        # A task cancelled before it started (shutdown with cancel_futures) never waits again.
        future.add_done_callback(lambda _: None if started.is_set() else self._change(-1))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut the inner executor down."""
        self._inner.shutdown(wait=wait, cancel_futures=cancel_futures)


def instrument_executor(executor: Executor, pool: str) -> Executor:
    """Wrap ``executor`` to report its queue depth under ``pool`` (idempotent)."""
    if isinstance(executor, InstrumentedExecutor):
        return executor
    return InstrumentedExecutor(executor, pool)


# -- the endpoint ---------------------------------------------------------------------------------


def render_metrics() -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(REGISTRY)


async def metrics_endpoint(_: Request) -> Response:
    """``GET /metrics``: every smtpmatch metric in the Prometheus text format."""
    return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """The current value of one sample (0 when it has not been recorded yet)."""
    value = REGISTRY.get_sample_value(name, labels or {})
    return float(value) if value is not None else 0.0


__all__ = [
    "REGISTRY",
    "InstrumentedExecutor",
    "instrument",
    "instrument_directories",
    "instrument_executor",
    "instrument_store",
    "metrics_endpoint",
    "record_busy_refusal",
    "record_check",
    "record_graph_throttled",
    "record_request_state",
    "record_sync_outcome",
    "record_write",
    "render_metrics",
    "sample",
    "set_queue_depth",
]
