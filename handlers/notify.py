"""Slack adapters of the services' ports: the approvers' board and the sync notifier.

Sync results: one message per request in the team's channel (details in its thread) and a
direct message to the requester. The approval message's state is the board's job.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from bot.domain import MatchRequest
from bot.rules.sync import SyncJudgement, SyncOutcome
from bot.slack_views.blocks import approval_blocks, approval_text, message_blocks, notify_blocks

log = logging.getLogger("smtpmatch.notify")
_ICON = {
    SyncOutcome.MATCHED: ":tada:",
    SyncOutcome.SYNC_FAILED: ":x:",
    SyncOutcome.SYNC_TIMEOUT: ":alarm_clock:",
    SyncOutcome.WAITING: ":hourglass_flowing_sand:",
}


class SlackApprovalBoard:
    """Implements :class:`bot.ports.ApprovalBoard`: one message per request in the approvers'
    channel."""

    def __init__(self, client: WebClient, channel: str | None) -> None:
        self._client = client
        self._channel = channel

    def post(self, request: MatchRequest) -> tuple[str, str] | None:
        """Post the request with its Approve / Reject buttons."""
        if not self._channel:
            return None
        posted = self._client.chat_postMessage(
            channel=self._channel, text=approval_text(request), blocks=approval_blocks(request)
        )
        return str(posted["channel"]), str(posted["ts"])

    def show(self, request: MatchRequest) -> None:
        """Update the request's message to its current state."""
        if not (request.approval_channel and request.approval_ts):
            return
        self._client.chat_update(
            channel=request.approval_channel,
            ts=request.approval_ts,
            text=approval_text(request),
            blocks=approval_blocks(request),
        )


class SlackNotifier:
    """Implements :class:`bot.ports.Notifier` with the Slack Web API."""

    def __init__(self, client: WebClient, notify_channel: str | None) -> None:
        self._client = client
        self._channel = notify_channel

    def sync_started(self, request: MatchRequest, note: str) -> str | None:
        """Open the request's thread in the team channel; returns its ts."""
        if not self._channel:
            return None
        posted = self._client.chat_postMessage(
            channel=self._channel,
            text=f"SMTP match {request.id}: written, waiting for sync",
            blocks=notify_blocks(request, f"Written to AD; {note}."),
        )
        return str(posted["ts"])

    def sync_finished(self, request: MatchRequest, judgement: SyncJudgement) -> None:
        """Update the team message, add the details in its thread, tell the requester."""
        icon = _ICON[judgement.outcome]
        text = f"{icon} SMTP match `{request.id}` ({request.target_address}): {judgement.detail}"
        if judgement.remedy:
            text += f"\nRemedy: {judgement.remedy}"
        if self._channel:
            if request.notify_ts:
                self._client.chat_update(
                    channel=self._channel,
                    ts=request.notify_ts,
                    text=f"SMTP match {request.id}: {judgement.outcome}",
                    blocks=notify_blocks(request, f"{icon} {judgement.outcome}"),
                )
                self._client.chat_postMessage(
                    channel=self._channel,
                    thread_ts=request.notify_ts,
                    text=text,
                    blocks=message_blocks(text),
                )
            else:
                self._client.chat_postMessage(
                    channel=self._channel, text=text, blocks=message_blocks(text)
                )
        if request.requester_channel:
            self._client.chat_postMessage(
                channel=request.requester_channel, text=text, blocks=message_blocks(text)
            )
