"""`smtpmatch serve`: build the bot from Settings and run it (HTTP or Socket Mode)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.compose import build_directories, build_sync_trigger
from bot.errors import ConfigurationError
from bot.http_guard import RequestGuard, guard, serve_http
from bot.logging_setup import configure_logging
from bot.services.check import Directories
from bot.services.requests import RequestServices, expire_requests
from bot.services.sync import SyncServices, poll_due_watches, start_watch
from bot.settings import Settings, load_settings
from bot.store.repository import MatchRequest, Store
from handlers.context import BotContext

log = logging.getLogger("smtpmatch")


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


@dataclass
class Bot:
    """A built bot: the Bolt app, its services and its background jobs."""

    app: App
    services: RequestServices
    sync: SyncServices
    settings: Settings
    context: BotContext
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start_background(self) -> None:
        """Start the expiry sweep and the sync watcher."""
        for target, name in ((self._sweep_expired, "expiry"), (self._watch_sync, "sync-watch")):
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

    def _sweep_expired(self) -> None:
        from handlers.actions import refresh_approval_message

        while not self.stop_event.wait(30):
            try:
                for request in expire_requests(self.services):
                    refresh_approval_message(self.app.client, self.services.store, request)
            except Exception:  # a sweep fault must not kill the bot; it is logged and retried
                log.exception("expiry sweep failed; retrying in 30 s")

    def stop(self) -> None:
        """Stop the background jobs; work not started yet is dropped (nothing was written)."""
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=5)
        self.context.background.shutdown(wait=True, cancel_futures=True)
        self.sync.trigger.close()
        self.services.dirs.executor.shutdown(wait=True, cancel_futures=True)


def build_bot(
    settings: Settings,
    *,
    directories: Directories | None = None,
    demo: bool = False,
    store: Store | None = None,
) -> Bot:
    """The composition root of the Slack bot.

    Args:
        settings: loaded settings (Slack tokens are required).
        directories: ports to use instead of the ones Settings describe (tests).
        demo: use the embedded demo directories.
        store: a store to use instead of ``SMTPMATCH_DATABASE_URL`` (tests).
    """
    from handlers import register
    from handlers.notify import SlackNotifier

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
    if store is None:
        store = Store(settings.database_url)
        store.migrate()
    services = RequestServices(
        dirs=dirs,
        store=store,
        approvers=settings.smtpmatch_approvers,
        ttl=timedelta(hours=settings.smtpmatch_request_ttl_hours),
    )
    client = build_web_client(settings)
    sync = SyncServices(
        dirs=dirs,
        store=store,
        notifier=SlackNotifier(client, store, settings.smtpmatch_notify_channel),
        trigger=build_sync_trigger(settings, dirs),
        poll_seconds=settings.smtpmatch_sync_poll_seconds,
        timeout=timedelta(minutes=settings.smtpmatch_sync_timeout_minutes),
    )
    services.on_applied = lambda request: _start_watch_safely(sync, request)
    app = App(
        client=client,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        # auth.test at start-up would make start-up depend on Slack being reachable.
        token_verification_enabled=False,
    )
    context = BotContext(
        services=services,
        approval_channel=settings.smtpmatch_approval_channel,
        notify_channel=settings.smtpmatch_notify_channel,
    )
    register(app, context)
    return Bot(app=app, services=services, sync=sync, settings=settings, context=context)


def _start_watch_safely(sync: SyncServices, request: MatchRequest) -> None:
    """The write is done and recorded; a fault while starting the watch must not hide that."""
    try:
        start_watch(sync, request)
    except Exception:
        log.exception("could not start the sync watch for %s", request.id)


def build_http_app(bot: Bot) -> RequestGuard:
    """``POST /slack/events`` (commands, interactivity, events) and ``GET /healthz``.

    Bolt's dispatch is synchronous and waits for the listener's ``ack()``; it runs in a worker
    thread so that one slow listener never holds up the event loop (and other acks).
    """
    from slack_bolt.request import BoltRequest

    async def events(request: Request) -> Response:
        body = (await request.body()).decode("utf-8")
        bolt_request = BoltRequest(
            body=body,
            query=request.url.query,
            headers={k: [v] for k, v in request.headers.items()},
        )
        bolt_response = await run_in_threadpool(bot.app.dispatch, bolt_request)
        return Response(
            content=bolt_response.body,
            status_code=bolt_response.status,
            headers={k: v[0] for k, v in bolt_response.headers.items()},
        )

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/slack/events", events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    return guard(Starlette(routes=routes), bot.settings.smtpmatch_http_max_body_bytes)


def serve(*, http: bool, port: int, demo: bool) -> int:
    """Run the bot until interrupted. Socket Mode when SLACK_APP_TOKEN is set and not --http."""
    configure_logging(service=True)
    settings = load_settings()
    bot = build_bot(settings, demo=demo)
    bot.start_background()
    try:
        if settings.slack_app_token is not None and not http:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            log.info("smtpmatch serving in Socket Mode%s", " (demo directories)" if demo else "")
            _serve_health_in_background(port)
            handler = SocketModeHandler(bot.app, settings.slack_app_token.get_secret_value())
            try:
                handler.start()  # type: ignore[no-untyped-call]
            except SlackApiError as exc:
                error = exc.response.get("error") if exc.response is not None else None
                raise ConfigurationError(
                    f"SLACK_APP_TOKEN: Slack refused the app token ({error or 'no reason given'})"
                ) from None
        else:
            serve_http(build_http_app(bot), port, demo=demo)
    finally:
        bot.stop()
    return 0


def _serve_health_in_background(port: int) -> None:
    """In Socket Mode there is no inbound HTTP, but the container healthcheck still needs one."""
    import uvicorn

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "mode": "socket"})

    app = Starlette(routes=[Route("/healthz", healthz, methods=["GET"])])
    config = uvicorn.Config(app, host="0.0.0.0", port=port, log_level="warning")  # noqa: S104
    threading.Thread(target=uvicorn.Server(config).run, name="healthz", daemon=True).start()
