"""`smtpmatch serve`: build the bot (through :mod:`bot.bootstrap`) and run it, over HTTP or in
Socket Mode."""

from __future__ import annotations

import logging
import threading

from slack_sdk.errors import SlackApiError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.bootstrap import Bot, build_bot, build_web_client
from bot.errors import ConfigurationError
from bot.health import liveness_endpoint, start_readiness
from bot.log_format import configure_logging
from bot.metrics import metrics_endpoint
from bot.settings import load_settings

log = logging.getLogger("smtpmatch")

__all__ = ["Bot", "build_bot", "build_http_app", "build_web_client", "serve"]


def build_http_app(bot: Bot) -> Starlette:
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

    # Operations hook: readiness (schema current, directories answered once) and metrics.
    readiness = start_readiness(bot.services.store, bot.services.dirs, bot.stop_event)
    return Starlette(
        routes=[
            Route("/slack/events", events, methods=["POST"]),
            Route("/healthz", readiness.endpoint, methods=["GET"]),
            Route("/healthz/live", liveness_endpoint, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )


def serve(*, http: bool, port: int | None, demo: bool) -> int:
    """Run the bot until interrupted. Socket Mode when SLACK_APP_TOKEN is set and not --http.

    The port is ``--port`` when given, else ``SMTPMATCH_PORT`` (which the container's
    healthcheck reads too).
    """
    settings = load_settings()
    configure_logging(settings.smtpmatch_log_format)  # operations hook: SMTPMATCH_LOG_FORMAT
    port = port if port is not None else settings.smtpmatch_port
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
            import uvicorn

            log.info("smtpmatch serving HTTP on port %d%s", port, " (demo)" if demo else "")
            uvicorn.run(
                build_http_app(bot),
                host="0.0.0.0",  # noqa: S104
                port=port,
                log_level="warning",
                log_config=None,  # uvicorn's lines go through our handlers (and JSON format)
            )
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
