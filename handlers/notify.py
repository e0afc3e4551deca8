"""Sync results to Slack: one message per request in the team's channel (details in its
thread), a direct message to the requester, and the approval message's final state."""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from bot.rules.sync import SyncJudgement, SyncOutcome
from bot.slack_views.blocks import message_blocks, notify_blocks
from bot.store.repository import MatchRequest, Store
from handlers.actions import refresh_approval_message

log = logging.getLogger("smtpmatch.notify")
_ICON = {
    SyncOutcome.MATCHED: ":tada:",
    SyncOutcome.SYNC_FAILED: ":x:",
    SyncOutcome.SYNC_TIMEOUT: ":alarm_clock:",
    SyncOutcome.WAITING: ":hourglass_flowing_sand:",
}


class SlackNotifier:
    """Implements :class:`bot.services.sync.Notifier` with the Slack Web API."""

    def __init__(self, client: WebClient, store: Store, notify_channel: str | None) -> None:
        self._client = client
        self._store = store
        self._channel = notify_channel

    def sync_started(self, request: MatchRequest, note: str) -> None:
        """Open the request's thread in the team channel."""
        if not self._channel:
            return
        posted = self._client.chat_postMessage(
            channel=self._channel,
            text=f"SMTP match {request.id}: written, waiting for sync",
            blocks=notify_blocks(request, f"Written to AD; {note}."),
        )
        self._store.update_fields(request.id, notify_ts=str(posted["ts"]))

    def sync_finished(self, request: MatchRequest, judgement: SyncJudgement) -> None:
        """Update the team message, add the details in its thread, tell the requester."""
        icon = _ICON[judgement.outcome]
        text = f"{icon} SMTP match `{request.id}` ({request.target_address}): {judgement.detail}"
        if judgement.remedy:
            text += f"\nRemedy: {judgement.remedy}"
        current = self._store.get_request(request.id) or request
        if self._channel:
            if current.notify_ts:
                self._client.chat_update(
                    channel=self._channel,
                    ts=current.notify_ts,
                    text=f"SMTP match {request.id}: {judgement.outcome}",
                    blocks=notify_blocks(current, f"{icon} {judgement.outcome}"),
                )
                self._client.chat_postMessage(
                    channel=self._channel,
                    thread_ts=current.notify_ts,
                    text=text,
                    blocks=message_blocks(text),
                )
            else:
                self._client.chat_postMessage(
                    channel=self._channel, text=text, blocks=message_blocks(text)
                )
        if current.requester_channel:
            self._client.chat_postMessage(
                channel=current.requester_channel, text=text, blocks=message_blocks(text)
            )
        refresh_approval_message(self._client, self._store, current)
