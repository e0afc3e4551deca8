"""Pytest fixtures for the HTTPS Microsoft Graph emulator and the Entra ID adapter on it.

- ``graph_emulator`` (session): the emulator, started once, no external process.
- ``graph`` (function): the same emulator, reset to an empty tenant for the test.
- ``graph_settings``: :class:`bot.settings.Settings` pointing at the emulator.
- ``graph_sleeps``: the waits the adapter asked for (recorded, not slept).
- ``entra``: an :class:`bot.directories.entra.EntraDirectory` for the emulator; it trusts the
  emulator's CA explicitly and records retry waits in ``graph_sleeps`` instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.directories.entra import EntraDirectory
from bot.settings import Settings
from tests.support.graph_emulator import GraphEmulator


@pytest.fixture(scope="session")
def graph_emulator() -> Iterator[GraphEmulator]:
    """The Graph emulator for the whole session."""
    emulator = GraphEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def graph(graph_emulator: GraphEmulator) -> Iterator[GraphEmulator]:
    """The emulator with an empty tenant, default knobs and cleared request logs."""
    graph_emulator.reset()
    yield graph_emulator
    graph_emulator.reset()


@pytest.fixture
def graph_settings(graph: GraphEmulator) -> Settings:
    """Settings pointing the bot at the emulator (client-secret credential)."""
    return Settings(**graph.settings_overrides())


@pytest.fixture
def graph_sleeps() -> list[float]:
    """Every wait the adapter requested, in order."""
    return []


@pytest.fixture
def entra(
    graph: GraphEmulator, graph_settings: Settings, graph_sleeps: list[float]
) -> Iterator[EntraDirectory]:
    """An EntraDirectory on the emulator; retry waits are recorded, not slept."""
    directory = EntraDirectory.from_settings(
        graph_settings, ca_file=graph.ca_file, sleep=graph_sleeps.append
    )
    try:
        yield directory
    finally:
        directory.close()
