"""Readiness for ``GET /healthz``: not ready until the database schema is current and both
directories have answered once.

A probe thread asks each directory one cheap question (Entra ID: the tenant; AD: who holds an
address under the reserved ``.invalid`` domain) until each has answered, then stops; readiness
never goes back to false afterwards, so a later directory outage shows in the replies and the
metrics, not as a pod taken out of service. ``GET /healthz/live`` says only that the process
serves HTTP (the liveness probe: a directory outage must not restart the bot).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from alembic.script import ScriptDirectory
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.ports import RequestStore
from bot.services.check import Directories
from bot.store.repository import MIGRATIONS_DIR

log = logging.getLogger("smtpmatch.health")

#: An address nobody can hold (RFC 2606 reserves ``.invalid``): the answer is always "nobody".
PROBE_ADDRESS = "readiness-probe@smtpmatch.invalid"


def head_revision() -> str | None:
    """The newest schema revision this build knows."""
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


@dataclass
class Readiness:
    """What ``/healthz`` reports, and the probe thread that finds it out."""

    store: RequestStore
    dirs: Directories
    retry_seconds: float = 5.0
    migrated: bool = False
    answered: dict[str, bool] = field(default_factory=lambda: {"ad": False, "entra": False})
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ready(self) -> bool:
        """Whether the schema is current and both directories answered once."""
        with self._lock:
            return self.migrated and all(self.answered.values())

    def probe_once(self) -> bool:
        """Ask what is not known yet; returns whether everything is ready now."""
        if not self.migrated:
            try:
                current = self.store.schema_revision()
            except Exception as exc:  # noqa: BLE001 - any database fault: "not ready yet"
                log.warning("readiness: the database could not be read (%s)", type(exc).__name__)
            else:
                with self._lock:
                    self.migrated = current is not None and current == head_revision()
        checks: dict[str, Any] = {
            "entra": self.dirs.cloud.tenant,
            "ad": lambda: self.dirs.onprem.find_holders(PROBE_ADDRESS),
        }
        for name, ask in checks.items():
            if self.answered[name]:
                continue
            try:
                ask()
            except Exception as exc:  # noqa: BLE001 - any directory fault: not ready, retried
                log.warning("readiness: %s did not answer yet (%s)", name, exc)
            else:
                with self._lock:
                    self.answered[name] = True
        return self.ready

    def run(self, stop: threading.Event) -> None:
        """Probe until ready or until ``stop`` is set."""
        while not self.probe_once():
            if stop.wait(self.retry_seconds):
                return

    def start(self, stop: threading.Event) -> threading.Thread:
        """Run the probe in a daemon thread."""
        thread = threading.Thread(target=self.run, args=(stop,), name="readiness", daemon=True)
        thread.start()
        return thread

    def status(self) -> dict[str, Any]:
        """The body of ``/healthz``: ``{"status": "ok"}`` once ready, else what is missing."""
        if self.ready:
            return {"status": "ok"}
        with self._lock:
            waiting = [] if self.migrated else ["database"]
            waiting += [name for name, ok in self.answered.items() if not ok]
        return {"status": "starting", "waiting_for": waiting}

    async def endpoint(self, _: Request) -> Response:
        """``GET /healthz``: 200 when ready, 503 (with what it waits for) until then."""
        body = self.status()
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


async def liveness_endpoint(_: Request) -> Response:
    """``GET /healthz/live``: the process serves HTTP."""
    return JSONResponse({"status": "ok"})


def start_readiness(store: RequestStore, dirs: Directories, stop: threading.Event) -> Readiness:
    """Create the readiness state and start its probe thread."""
    readiness = Readiness(store=store, dirs=dirs)
    readiness.start(stop)
    return readiness


__all__ = ["PROBE_ADDRESS", "Readiness", "liveness_endpoint", "start_readiness"]
