"""The one composition root: Settings -> adapters -> services (+ events) -> the bot.

Every entry point (``smtpmatch check``, ``serve``, ``audit``, the benchmarks and the tests)
builds what it needs here, and nowhere else is an adapter made from Settings. The demo differs
only in the adapters it plugs in (the embedded directories and their simulated sync).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from bot.domain import MatchRequest
from bot.errors import ConfigurationError, DirectoryError
from bot.log_format import reference_middleware
from bot.metrics import (
    instrument_directories,
    instrument_executor,
    instrument_store,
    instrument_wave_store,
)
from bot.rules.engine import Policy
from bot.services.check import Directories
from bot.services.requests import (
    RequestServices,
    expire_and_show,
    recover_stuck_approvals,
    recover_stuck_reverts,
)
from bot.services.scan import ScanServices
from bot.services.sync import SyncServices, poll_due_watches, start_watch
from bot.services.waves import (
    WaveServices,
    due_waves,
    expire_waves,
    follow_requests,
    poll_waves,
    run_wave,
)
from bot.settings import Settings, SyncTrigger
from bot.store.repository import Store
from bot.store.waves import WaveStore
from bot.sync_triggers import CloudSyncTrigger, NoTrigger, SyncTriggerPort, WebhookTrigger
from bot.workers import RateLimit, WorkPool
from handlers.context import BotContext

log = logging.getLogger("smtpmatch")


# -- adapters ---------------------------------------------------------------------------------


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

    active_directory = ActiveDirectory.from_settings(settings)
    if settings.smtpmatch_create_ou:
        require_create_ou(active_directory, settings.smtpmatch_create_ou)
    return Directories(
        onprem=active_directory,
        cloud=EntraDirectory.from_settings(settings),
        policy=Policy(
            sync_scope=settings.smtpmatch_sync_scope,
            create_ou=settings.smtpmatch_create_ou,
            sam_template=settings.smtpmatch_sam_template,
        ),
    )


def require_create_ou(onprem: object, ou: str) -> None:
    """Refuse to start when ``SMTPMATCH_CREATE_OU`` names no existing OU in AD.

    Settings already refused an OU outside ``SMTPMATCH_SYNC_SCOPE``. When AD cannot be
    reached now, start anyway (logged): a creation into a missing OU fails cleanly later.

    Raises:
        ConfigurationError: one line naming the variable.
    """
    exists = getattr(onprem, "container_exists", None)
    if exists is None:
        return
    try:
        found = bool(exists(ou))
    except DirectoryError as exc:
        log.warning("SMTPMATCH_CREATE_OU could not be verified at start-up: %s", exc)
        return
    if not found:
        raise ConfigurationError(
            f"SMTPMATCH_CREATE_OU: {ou} does not exist in Active Directory (create the OU, or "
            "correct the DN)"
        )


def build_sync_trigger(settings: Settings, dirs: Directories, *, demo: bool) -> SyncTriggerPort:
    """The sync trigger ``SMTPMATCH_SYNC_TRIGGER`` names (the demo simulates sync instead).

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
    if demo:
        from bot.directories.demo import DemoEntraDirectory, DemoSyncTrigger

        if isinstance(dirs.cloud, DemoEntraDirectory):
            return DemoSyncTrigger(dirs.cloud)
    return NoTrigger()


def open_store(settings: Settings, *, read_only: bool = False) -> Store:
    """The store ``SMTPMATCH_DATABASE_URL`` names.

    Args:
        read_only: for commands that only read (``smtpmatch audit``): nothing is migrated or
            created; a database that does not exist (or was never set up) is an error.

    Raises:
        ConfigurationError: the URL is unusable, or (read-only) there is no database there.
    """
    if read_only:
        _require_existing_sqlite(settings.database_url)
    store = Store(settings.database_url)
    try:
        if read_only:
            if store.schema_revision() is None:
                raise ConfigurationError(
                    "SMTPMATCH_DATABASE_URL: the database holds no smtpmatch data yet "
                    "(the bot creates it on its first start)"
                )
        else:
            store.migrate()
    except BaseException:
        store.close()
        raise
    return store


def _require_existing_sqlite(url: str) -> None:
    # SQLite creates a missing file on connect; a read-only command must not leave one behind.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # Store reports the malformed URL without echoing it
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if database not in (None, "", ":memory:") and not Path(str(database)).is_file():
        raise ConfigurationError(
            f"SMTPMATCH_DATABASE_URL: there is no database at {database} "
            "(the bot creates it on its first start)"
        )


def build_web_client(settings: Settings) -> WebClient:
    """A Web API client on ``SLACK_API_URL`` that retries on 429 (honouring Retry-After)."""
    settings.require("slack_bot_token")
    assert settings.slack_bot_token is not None
    client = WebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=10,
    )
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
    client.retry_handlers.append(ConnectionErrorRetryHandler(max_retry_count=2))
    return client


def build_scan_services(dirs: Directories, store: Store) -> ScanServices:
    """The whole-tenant scan over the run's directories (their bulk reader) and store."""
    from bot.scan.sources import scan_source_for

    return ScanServices(dirs=dirs, store=store, source=lambda: scan_source_for(dirs))


# -- the bot ----------------------------------------------------------------------------------


@dataclass
class Bot:
    """A built bot: the Bolt app, its services, its executors and its background jobs."""

    app: App
    services: RequestServices
    sync: SyncServices
    settings: Settings
    context: BotContext
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    waves: WaveServices | None = None

    def start_background(self) -> None:
        """Start the sweep (expiry of requests and waves, claims stuck in ``approving`` or
        ``reverting``) and the sync watcher."""
        jobs = [(self._sweep_expired, "expiry"), (self._watch_sync, "sync-watch")]
        if self.waves is not None:
            jobs.append((self._watch_waves, "wave-watch"))
        for target, name in jobs:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def _watch_sync(self) -> None:
        # Wake often enough that a due watch waits at most a few seconds; the cadence of the
        # Graph calls themselves is each watch's next_poll_at.
        interval = min(self.sync.poll_seconds, 5.0)
        while not self.stop_event.wait(interval):
            try:
                while poll_due_watches(self.sync):
                    if self.stop_event.is_set():
                        break
            except Exception:  # a watcher fault must not kill the bot; logged and retried
                log.exception("sync watcher failed; retrying")

    def _watch_waves(self) -> None:
        # Waves left applying by a restart, or paused and due again, run on the wave pool;
        # watching waves are polled here (one bulk Graph request per 15 users).
        assert self.waves is not None
        waves = self.waves
        interval = min(waves.poll_seconds, 5.0)
        first = True
        while first or not self.stop_event.wait(interval):
            first = False
            try:
                for wave_id in due_waves(waves):
                    slot = self.context.wave_pool.reserve()
                    if slot is not None:
                        slot.run(run_wave, waves, wave_id)
                poll_waves(waves)
            except Exception:  # a watcher fault must not kill the bot; logged and retried
                log.exception("wave watcher failed; retrying")

    def _sweep_expired(self) -> None:
        while not self.stop_event.wait(30):
            try:
                expire_and_show(self.services)
                recover_stuck_approvals(self.services)
                settled = recover_stuck_reverts(self.services)
                if self.waves is not None:  # a wave item's revert: the item follows
                    follow_requests(self.waves, [r.request for r in settled if r.request])
                    expire_waves(self.waves)
            except Exception:  # a sweep fault must not kill the bot; it is logged and retried
                log.exception("expiry sweep failed; retrying in 30 s")

    def stop(self) -> None:
        """Stop the background jobs; work not started yet is dropped (nothing was written)."""
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=5)
        for pool in self.context.pools():
            pool.shutdown(wait=True)
        self.sync.trigger.close()
        self.services.dirs.executor.shutdown(wait=True, cancel_futures=True)


def build_bot(
    settings: Settings,
    *,
    demo: bool = False,
    directories: Directories | None = None,
    store: Store | None = None,
) -> Bot:
    """Build the Slack bot from Settings.

    Args:
        settings: loaded settings (Slack tokens are required).
        demo: plug in the embedded demo directories (and their simulated sync).
        directories: directory adapters to plug in instead (tests point real adapters at test
            servers; benchmarks slow them down).
        store: a store to plug in instead of ``SMTPMATCH_DATABASE_URL`` (already migrated).
    """
    from handlers import register
    from handlers.notify import SlackApprovalBoard, SlackNotifier
    from handlers.waves import SlackWaveBoard

    settings.require("slack_bot_token", "slack_signing_secret")
    assert settings.slack_signing_secret is not None
    if settings.smtpmatch_approval_channel and not settings.smtpmatch_approvers:
        raise ConfigurationError(
            "SMTPMATCH_APPROVERS: set at least one approver (U… or S…), or requests could "
            "never be decided"
        )
    if not settings.smtpmatch_approval_channel:
        log.warning("SMTPMATCH_APPROVAL_CHANNEL is not set: reports will offer no approval")
    dirs = directories or build_directories(settings, demo=demo)
    store = store or open_store(settings)
    raw_store = store
    stop_event = threading.Event()
    # Metrics: time every directory call, count request states where the database change won.
    dirs, store = instrument_directories(dirs), instrument_store(store)
    client = build_web_client(settings)
    board = SlackApprovalBoard(client, settings.smtpmatch_approval_channel)
    sync = SyncServices(
        dirs=dirs,
        store=store,
        notifier=SlackNotifier(client, settings.smtpmatch_notify_channel),
        trigger=build_sync_trigger(settings, dirs, demo=demo),
        poll_seconds=settings.smtpmatch_sync_poll_seconds,
        timeout=timedelta(minutes=settings.smtpmatch_sync_timeout_minutes),
        board=board,
    )

    def watch_applied(request: MatchRequest) -> None:
        start_watch(sync, request)

    services = RequestServices(
        dirs=dirs,
        store=store,
        approvers=settings.smtpmatch_approvers,
        requesters=settings.smtpmatch_requesters,
        ttl=timedelta(hours=settings.smtpmatch_request_ttl_hours),
        board=board,
        # The "a match was applied" event: trigger sync, watch it, tell the team.
        applied_listeners=(watch_applied,),
    )
    app = App(
        client=client,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        # auth.test at start-up would make start-up depend on Slack being reachable.
        token_verification_enabled=False,
        # Listeners run in the context that holds the request's log reference id.
        listener_executor=instrument_executor(ThreadPoolExecutor(max_workers=10), "listener"),
    )
    app.use(reference_middleware)
    queue = settings.smtpmatch_queue_limit
    context = BotContext(
        services=services,
        approval_channel=settings.smtpmatch_approval_channel,
        notify_channel=settings.smtpmatch_notify_channel,
        team_id=settings.slack_team_id,
        checks=WorkPool("check", settings.smtpmatch_check_workers, queue),
        decisions=WorkPool("decide", settings.smtpmatch_decision_workers, queue),
        quick=WorkPool("quick", settings.smtpmatch_quick_workers, queue),
        rate_limit=RateLimit(settings.smtpmatch_checks_per_minute),
    )
    context.scans = build_scan_services(dirs, store)
    context.waves = WaveServices(
        requests=services,
        waves=instrument_wave_store(WaveStore(raw_store)),
        pace_per_minute=settings.smtpmatch_wave_writes_per_minute,
        board=SlackWaveBoard(client, settings.smtpmatch_approval_channel, context),
        trigger=sync.trigger,
        poll_seconds=settings.smtpmatch_sync_poll_seconds,
        timeout=timedelta(minutes=settings.smtpmatch_sync_timeout_minutes),
        stopping=stop_event,
    )
    register(app, context)
    return Bot(
        app=app,
        services=services,
        sync=sync,
        settings=settings,
        context=context,
        waves=context.waves,
        stop_event=stop_event,
    )
