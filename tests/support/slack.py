"""Pytest fixtures for Slack: the fake Web API and a driver that signs requests as Slack does.

Register with ``pytest_plugins = ["tests.support.slack"]`` (or ``-p tests.support.slack``).

- ``slack_api_server`` (session): one :class:`FakeSlackApi` for the whole run, so a bot built
  once per session can keep its ``SLACK_API_URL``.
- ``slack_api`` (function): that server, reset (no records, seeds or knobs) before each test.
- ``slack_env`` (function): ``SLACK_BOT_TOKEN`` / ``SLACK_SIGNING_SECRET`` / ``SLACK_API_URL``
  set for the bot's settings, ``SLACK_APP_TOKEN`` removed (HTTP mode).
- ``slack_driver`` (function): a factory ``slack_driver(url) -> SlackDriver`` for a bot's
  ``/slack/events`` URL; the drivers are closed after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.slack_fake import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlackApi,
    SlackDriver,
)

__all__ = ["BOT_TOKEN", "SIGNING_SECRET", "SlackDriverFactory"]

SlackDriverFactory = Callable[..., SlackDriver]
"""``slack_driver(url, *, signing_secret=SIGNING_SECRET, timeout=10.0) -> SlackDriver``."""


@pytest.fixture(scope="session")
def slack_api_server() -> Iterator[FakeSlackApi]:
    """The fake Slack Web API, started once per test session."""
    with FakeSlackApi(BOT_TOKEN) as api:
        yield api


@pytest.fixture
def slack_api(slack_api_server: FakeSlackApi) -> Iterator[FakeSlackApi]:
    """The fake Slack Web API, reset before and after the test so tests stay isolated."""
    slack_api_server.reset()
    yield slack_api_server
    slack_api_server.reset()


@pytest.fixture
def slack_env(slack_api: FakeSlackApi, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the bot's Slack settings at the fake (HTTP mode); returns the variables set."""
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_api.url,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    return env


@pytest.fixture
def slack_driver(slack_api: FakeSlackApi) -> Iterator[SlackDriverFactory]:
    """Factory for drivers that send signed Slack requests to a bot's request URL."""
    drivers: list[SlackDriver] = []

    def make(url: str, **kwargs: Any) -> SlackDriver:
        driver = SlackDriver(url, slack_api, **kwargs)
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.close()
