"""Readiness on ``/healthz``: 503 until the schema is current and both directories answered
once; liveness on ``/healthz/live`` regardless."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from bot.directories.demo import build_demo_directories
from bot.errors import DirectoryUnavailable
from bot.health import PROBE_ADDRESS, Readiness, liveness_endpoint
from bot.services.check import Directories
from bot.store.repository import Store


def get(readiness: Readiness, path: str) -> httpx.Response:
    app = Starlette(
        routes=[Route("/healthz", readiness.endpoint), Route("/healthz/live", liveness_endpoint)]
    )

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
            return await client.get(path)

    return asyncio.run(call())


def test_not_ready_until_migrated_and_both_directories_answered(tmp_path: Path) -> None:
    ad, cloud, policy = build_demo_directories()
    asked: list[str] = []
    real_holders = ad.find_holders

    def holders_after_an_outage(address: str) -> object:
        asked.append(address)
        if len(asked) == 1:
            raise DirectoryUnavailable("Active Directory", "dc1", "no answer")
        return real_holders(address)

    ad.find_holders = holders_after_an_outage  # type: ignore[method-assign]
    store = Store(f"sqlite:///{tmp_path / 'smtpmatch.db'}")
    readiness = Readiness(store=store, dirs=Directories(ad, cloud, policy), retry_seconds=0.01)

    assert readiness.probe_once() is False
    response = get(readiness, "/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "starting", "waiting_for": ["database", "ad"]}
    assert get(readiness, "/healthz/live").json() == {"status": "ok"}

    store.migrate()
    readiness.run(threading.Event())  # probes until ready

    assert get(readiness, "/healthz").status_code == 200
    assert get(readiness, "/healthz").json() == {"status": "ok"}
    assert asked == [PROBE_ADDRESS, PROBE_ADDRESS]
    store.close()


def test_the_probe_thread_stops_when_the_bot_stops(tmp_path: Path) -> None:
    ad, cloud, policy = build_demo_directories()
    store = Store(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    readiness = Readiness(store=store, dirs=Directories(ad, cloud, policy), retry_seconds=0.01)
    stop = threading.Event()
    thread = readiness.start(stop)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert get(readiness, "/healthz").json()["waiting_for"] == ["database"]
    store.close()
