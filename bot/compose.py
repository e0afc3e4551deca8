"""The composition root: builds the real (or demo) adapters from Settings."""

from __future__ import annotations

from bot.errors import ConfigurationError
from bot.rules.engine import Policy
from bot.services.check import Directories
from bot.settings import Settings, SyncTrigger
from bot.sync_triggers import CloudSyncTrigger, NoTrigger, SyncTriggerPort, WebhookTrigger


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


def build_sync_trigger(settings: Settings, dirs: Directories) -> SyncTriggerPort:
    """The sync trigger ``SMTPMATCH_SYNC_TRIGGER`` names.

    Raises:
        ConfigurationError: a setting the chosen trigger needs is missing.
    """
    if settings.smtpmatch_sync_trigger is SyncTrigger.WEBHOOK:
        settings.require("smtpmatch_sync_webhook_url")
        assert settings.smtpmatch_sync_webhook_url is not None
        secret = settings.smtpmatch_sync_webhook_secret
        return WebhookTrigger(
            settings.smtpmatch_sync_webhook_url, secret.get_secret_value() if secret else None
        )
    if settings.smtpmatch_sync_trigger is SyncTrigger.CLOUD_SYNC:
        settings.require(
            "smtpmatch_cloud_sync_service_principal_id",
            "smtpmatch_cloud_sync_job_id",
            "smtpmatch_cloud_sync_rule_id",
        )
        provision = getattr(dirs.cloud, "provision_on_demand", None)
        if provision is None:
            raise ConfigurationError(
                "SMTPMATCH_SYNC_TRIGGER: cloud-sync needs the Entra ID directory (not --demo)"
            )
        sp, job, rule = (
            str(settings.smtpmatch_cloud_sync_service_principal_id),
            str(settings.smtpmatch_cloud_sync_job_id),
            str(settings.smtpmatch_cloud_sync_rule_id),
        )
        return CloudSyncTrigger(lambda dn: str(provision(sp, job, rule, dn)))
    from bot.directories.demo import DemoEntraDirectory, DemoSyncTrigger

    if isinstance(dirs.cloud, DemoEntraDirectory):
        return DemoSyncTrigger(dirs.cloud)
    return NoTrigger()
