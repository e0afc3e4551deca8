"""App Home: the user's own requests, those awaiting their decision, recent results."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient

from bot.rules.requests import OPEN_STATES, TERMINAL_STATES, RequestState
from bot.services.requests import is_approver
from bot.slack_views.blocks import home_view
from handlers.context import BotContext, SlackTeamDirectory


def handle_app_home_opened(event: dict[str, Any], client: WebClient, ctx: BotContext) -> None:
    """Publish the user's home tab."""
    user = str(event["user"])
    store = ctx.services.store
    approver = is_approver(ctx.services, user, SlackTeamDirectory(client))
    own = store.list_requests(requester_id=user, limit=10)
    awaiting = (
        [
            r
            for r in store.list_requests(states=[RequestState.PENDING], limit=20)
            if r.requester_id != user
        ]
        if approver
        else []
    )
    recent = store.list_requests(
        states=TERMINAL_STATES | (OPEN_STATES - {RequestState.PENDING}), limit=10
    )
    client.views_publish(user_id=user, view=home_view(own, awaiting, recent, is_approver=approver))
