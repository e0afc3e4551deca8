"""The composition root: builds the real (or demo) adapters from Settings."""

from __future__ import annotations

from bot.rules.engine import Policy
from bot.services.check import Directories
from bot.settings import Settings


def build_directories(settings: Settings, *, demo: bool = False) -> Directories:
    """The directory ports for a run.

    Args:
        settings: the loaded settings.
        demo: use the embedded contoso.com sample directories (no configuration needed).

    Raises:
        ConfigurationError: a directory setting is missing (the message names what to set).
    """
    if demo:
        from bot.directories.demo import build_demo_directories

        onprem, cloud, policy = build_demo_directories()
        return Directories(onprem=onprem, cloud=cloud, policy=policy)

    settings.require_directories()
    from bot.directories.ad import ActiveDirectory
    from bot.directories.entra import EntraDirectory

    return Directories(
        onprem=ActiveDirectory.from_settings(settings),
        cloud=EntraDirectory.from_settings(settings),
        policy=Policy(sync_scope=settings.smtpmatch_sync_scope),
    )
