"""The Slack surface: Bolt listeners that parse, call one service, render and reply."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

from slack_bolt import App, Args
from slack_bolt.response import BoltResponse

from bot.actors import acting
from bot.slack_views.ids import ActionId, CallbackId
from handlers import actions, commands, home, waves
from handlers.context import BotContext, describe_fault
from handlers.guard import actor_of, workspace_guard

log = logging.getLogger("smtpmatch.handlers")


def _bind(fn: Callable[..., None], ctx: BotContext) -> Callable[[Args], None]:
    """A Bolt listener that passes ``fn`` the Bolt arguments it names, plus our ``ctx``."""
    names = [n for n in inspect.signature(fn).parameters if n != "ctx"]

    def listener(args: Args) -> None:
        # The acting person's name is bound for the listener and the work it hands over, so
        # audit events record it next to their id.
        with acting(*actor_of(args.body)):
            fn(ctx=ctx, **{name: getattr(args, name) for name in names})

    listener.__name__ = fn.__name__
    return listener


def handle_listener_fault(error: Exception, body: Mapping[str, object]) -> BoltResponse:
    """Bolt's one error handler: a fault raised by a listener itself (before it could hand
    work over) is logged with a reference id, and the answer Slack gets carries the same id.

    Faults in the work the listeners hand over are told by the same convention
    (:func:`handlers.context.describe_fault`) on the bot's executors.
    """
    text, _ = describe_fault(error, f"a Slack {body.get('type') or 'request'}")
    # A slash command shows this body to its user; other kinds only need the 200.
    return BoltResponse(status=200, body=text)


def register(app: App, ctx: BotContext) -> None:
    """Attach the workspace guard, every listener, and the error handler, to ``app``."""
    app.use(workspace_guard(ctx.team_id))
    listeners: list[tuple[Callable[[Any], Any], Callable[..., None]]] = [
        (app.command("/smtpmatch"), commands.handle_smtpmatch_command),
        (app.action(ActionId.REQUEST_APPROVAL.value), actions.handle_request_approval_action),
        (app.action(ActionId.APPROVE.value), actions.handle_approve_action),
        (app.action(ActionId.REJECT.value), actions.handle_reject_action),
        (app.action(ActionId.REVERT.value), actions.handle_revert_action),
        (app.view(CallbackId.REQUEST_REASON.value), actions.handle_request_reason_submission),
        (app.view(CallbackId.REJECT_REASON.value), actions.handle_reject_reason_submission),
        (app.event("app_home_opened"), home.handle_app_home_opened),
    ]
    for kind, name, handler in waves.LISTENERS:
        decorator = app.action(name.value) if kind == "action" else app.view(name.value)
        listeners.append((decorator, handler))
    for decorator, fn in listeners:
        decorator(_bind(fn, ctx))
    app.error(handle_listener_fault)
