"""App Home: the user's own requests, those awaiting their decision, recent results."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient

from bot.services.requests import home_lists
from bot.slack_views.blocks import home_view
from handlers.context import BotContext, SlackTeamDirectory


def handle_app_home_opened(event: dict[str, Any], client: WebClient, ctx: BotContext) -> None:
    """Publish the user's home tab."""
    user = str(event["user"])
    lists = home_lists(ctx.services, user, SlackTeamDirectory(client))
    view = home_view(lists.own, lists.awaiting, lists.recent, is_approver=lists.is_approver)
    client.views_publish(user_id=user, view=view)
