"""`smtpmatch serve`: build the bot (through :mod:`bot.bootstrap`) and run it, over HTTP or in
Socket Mode."""

from __future__ import annotations

import logging
import threading

from slack_sdk.errors import SlackApiError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.bootstrap import Bot, build_bot, build_web_client
from bot.errors import ConfigurationError
from bot.health import liveness_endpoint, start_readiness
from bot.http_guard import RequestGuard, guard, serve_http
from bot.logging_setup import configure_logging
from bot.metrics import metrics_endpoint
from bot.settings import load_settings

log = logging.getLogger("smtpmatch")

__all__ = ["Bot", "build_bot", "build_http_app", "build_web_client", "serve"]


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

    routes = [Route("/slack/events", events, methods=["POST"]), *_operator_routes(bot)]
    # Oversized or malformed requests are refused before Bolt (or the body) is reached.
    return guard(Starlette(routes=routes), bot.settings.smtpmatch_http_max_body_bytes)


def _operator_routes(bot: Bot) -> list[Route]:
    """Readiness (schema current, directories answered once), liveness and metrics: the same
    in HTTP mode and, on a side server, in Socket Mode."""
    readiness = start_readiness(bot.services.store, bot.services.dirs, bot.stop_event)
    return [
        Route("/healthz", readiness.endpoint, methods=["GET"]),
        Route("/healthz/live", liveness_endpoint, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]


def serve(*, http: bool, port: int | None, demo: bool) -> int:
    """Run the bot until interrupted. Socket Mode when SLACK_APP_TOKEN is set and not --http.

    The port is ``--port`` when given, else ``SMTPMATCH_PORT`` (which the container's
    healthcheck reads too).
    """
    configure_logging(service=True)
    settings = load_settings()
    configure_logging(fmt=settings.smtpmatch_log_format)  # SMTPMATCH_LOG_FORMAT: text or json
    port = port if port is not None else settings.smtpmatch_port
    bot = build_bot(settings, demo=demo)
    bot.start_background()
    try:
        if settings.slack_app_token is not None and not http:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            log.info("smtpmatch serving in Socket Mode%s", " (demo directories)" if demo else "")
            _serve_health_in_background(bot, port)
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


def _serve_health_in_background(bot: Bot, port: int) -> None:
    """In Socket Mode there is no inbound HTTP from Slack, but probes, the container
    healthcheck and Prometheus still need ``/healthz``, ``/healthz/live`` and ``/metrics``."""
    import uvicorn

    app = guard(Starlette(routes=_operator_routes(bot)), bot.settings.smtpmatch_http_max_body_bytes)
    config = uvicorn.Config(app, host="0.0.0.0", port=port, log_level="warning")  # noqa: S104
    threading.Thread(target=uvicorn.Server(config).run, name="healthz", daemon=True).start()
