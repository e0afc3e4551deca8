"""The Slack surface: Bolt listeners that parse, call one service, render and reply."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from slack_bolt import App, Args

from bot.slack_views.ids import ActionId, CallbackId
from handlers import actions, commands, home
from handlers.context import BotContext


def _bind(fn: Callable[..., None], ctx: BotContext) -> Callable[[Args], None]:
    """A Bolt listener that passes ``fn`` the Bolt arguments it names, plus our ``ctx``."""
    names = [n for n in inspect.signature(fn).parameters if n != "ctx"]

    def listener(args: Args) -> None:
        fn(ctx=ctx, **{name: getattr(args, name) for name in names})

    listener.__name__ = fn.__name__
    return listener


def register(app: App, ctx: BotContext) -> None:
    """Attach every listener to ``app``."""
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
    for decorator, fn in listeners:
        decorator(_bind(fn, ctx))
