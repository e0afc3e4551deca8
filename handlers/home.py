"""App Home: the user's own requests, those awaiting their decision, recent results, the
latest scan and the waves."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from slack_sdk import WebClient

from bot.services.requests import home_lists
from bot.slack_views.blocks import home_view
from handlers.context import BotContext, SlackTeamDirectory
from handlers.payloads import parse_home_opened
from handlers.scan import with_latest_scan
from handlers.waves import with_waves

log = logging.getLogger("smtpmatch.handlers")


def handle_app_home_opened(event: Mapping[str, object], client: WebClient, ctx: BotContext) -> None:
    """Publish the user's home tab (events are acked by Bolt before this runs)."""
    user = parse_home_opened(event).user
    if not ctx.quick.submit(_publish_home, user, client, ctx):
        log.warning("App Home of %s not refreshed: the bot is busy", user)


def _publish_home(user: str, client: WebClient, ctx: BotContext) -> None:
    try:
        lists = home_lists(ctx.services, user, SlackTeamDirectory(client))
        view = home_view(lists.own, lists.awaiting, lists.recent, is_approver=lists.is_approver)
        if lists.is_approver:  # a scan covers the whole tenant: approvers only
            view = with_latest_scan(view, ctx)
        view = with_waves(view, ctx, user, is_approver=lists.is_approver)
        client.views_publish(user_id=user, view=view)
    except Exception:
        log.exception("could not publish the App Home of %s", user)
