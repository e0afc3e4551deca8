"""Buttons and modals: request approval, approve, reject, revert.

Buttons carry only a request id (or, for "Request approval", the address to check again);
everything else is reloaded from the store and re-checked, and the clicker is checked.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.rules.codec import report_to_dict
from bot.rules.requests import Decision, RequestState
from bot.services.requests import (
    Outcome,
    Result,
    approve_request,
    authorize_decision,
    load_check,
    reject_request,
    request_match,
    revert_request,
)
from bot.slack_views.blocks import (
    approval_blocks,
    approval_text,
    message_blocks,
    plan_blocks,
    reason_modal,
    report_blocks,
)
from bot.slack_views.ids import MAX_REASON_LENGTH, REASON_ACTION, REASON_BLOCK, CallbackId
from bot.store.repository import MatchRequest, Store
from handlers.context import BotContext, SlackTeamDirectory, reply_on_fault

log = logging.getLogger("smtpmatch.handlers")
_REFUSALS = {Outcome.NOT_FOUND, Outcome.REFUSED_SELF, Outcome.REFUSED_NOT_APPROVER, Outcome.STALE}


def _clicker(body: dict[str, Any]) -> str:
    return str(body["user"]["id"])


def _action_value(body: dict[str, Any]) -> str:
    return str(body["actions"][0].get("value") or "")


def _tell_clicker(respond: Respond, text: str) -> None:
    respond(response_type="ephemeral", replace_original=False, text=text)


def _dm(
    client: WebClient, user: str, text: str, blocks: list[dict[str, Any]] | None = None
) -> None:
    client.chat_postMessage(channel=user, text=text, blocks=blocks or message_blocks(text))


def refresh_approval_message(client: WebClient, store: Store, request: MatchRequest) -> None:
    """Show a request's current state in the approvers' channel (buttons only while pending).

    The state is reloaded from the store, and again after the update: the watcher or another
    replica may settle the request while a (possibly retried) update is on its way, and the
    message must end showing the latest state, not the one this caller happened to hold.
    """
    shown: int | None = None
    for _ in range(3):
        current = store.get_request(request.id)
        if current is None or current.version == shown:
            return
        if not (current.approval_channel and current.approval_ts):
            return
        client.chat_update(
            channel=current.approval_channel,
            ts=current.approval_ts,
            text=approval_text(current),
            blocks=approval_blocks(current),
        )
        shown = current.version


def _ack_reason(ack: Ack, view: dict[str, Any], *, required: bool) -> tuple[bool, str | None]:
    """Read the modal's reason and ack the submission: closed when the reason is acceptable,
    kept open with the problem shown under the field when not.

    Returns:
        Whether it was accepted, and the reason (``None`` when left empty).
    """
    value = view["state"]["values"].get(REASON_BLOCK, {}).get(REASON_ACTION, {}).get("value")
    reason = str(value).strip() if value else ""
    if len(reason) > MAX_REASON_LENGTH:
        problem = f"The reason is longer than {MAX_REASON_LENGTH} characters."
    elif required and not reason:
        problem = "Say why the request is rejected."
    else:
        ack()
        return True, reason or None
    ack(response_action="errors", errors={REASON_BLOCK: problem})
    return False, None


# -- request approval ------------------------------------------------------------------------


def handle_request_approval_action(
    ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond, ctx: BotContext
) -> None:
    """Open the optional-reason modal for a recorded, eligible check of the clicker's own."""
    ack()
    check_id = _action_value(body)
    target = load_check(ctx.services, check_id, _clicker(body))
    if isinstance(target, str):
        _tell_clicker(respond, target)
        return
    client.views_open(
        trigger_id=body["trigger_id"],
        view=reason_modal(CallbackId.REQUEST_REASON, check_id, required=False),
    )


def handle_request_reason_submission(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, ctx: BotContext
) -> None:
    """Create the request from a fresh check and post it to the approvers' channel."""
    user = _clicker(body)
    accepted, reason = _ack_reason(ack, view, required=False)
    if not accepted:
        return
    target = load_check(ctx.services, str(view.get("private_metadata") or ""), user)
    if isinstance(target, str):
        _dm(client, user, target)
        return
    address, dn = target

    def reply(**kw: Any) -> None:
        client.chat_postMessage(channel=user, **kw)

    with reply_on_fault(reply, f"the request for {address}"):
        result = request_match(
            ctx.services,
            address=address,
            onprem_id=dn,
            requester_id=user,
            requester_name=str(body["user"].get("username") or body["user"].get("name") or ""),
            reason=reason,
            requester_channel=user,
        )
        if result.outcome is not Outcome.REQUESTED or result.request is None:
            assert result.report is not None
            reply(
                text=result.message,
                blocks=message_blocks(result.message)
                + report_blocks(report_to_dict(result.report)),
            )
            return
        request = result.request
        posted = client.chat_postMessage(
            channel=str(ctx.approval_channel),
            text=approval_text(request),
            blocks=approval_blocks(request),
        )
        request = ctx.services.store.update_fields(
            request.id, approval_channel=str(posted["channel"]), approval_ts=str(posted["ts"])
        )
        reply(
            text=f"Your request `{request.id}` to match {request.target_address} went to "
            f"<#{ctx.approval_channel}> for approval.",
        )


# -- approve / reject / revert ---------------------------------------------------------------


def _announce(client: WebClient, ctx: BotContext, result: Result) -> None:
    """Update the approval message and tell the requester what happened."""
    request = result.request
    if request is None:
        return
    refresh_approval_message(client, ctx.services.store, request)
    if result.outcome is Outcome.APPLIED:
        text = (
            f"Your SMTP match `{request.id}` was approved by <@{request.decided_by}> and "
            f"written to AD. Directory sync will now bind {request.target_address}."
        )
        blocks = message_blocks(text) + plan_blocks(request.applied, "Written")
    elif result.outcome is Outcome.REJECTED:
        text = (
            f"Your SMTP match `{request.id}` for {request.target_address} was rejected by "
            f"<@{request.decided_by}>: {request.decision_reason}"
        )
        blocks = message_blocks(text)
    elif result.outcome is Outcome.REVERTED:
        text = (
            f"SMTP match `{request.id}` for {request.target_address} was reverted by "
            f"<@{request.decided_by}>: the old AD values are back."
        )
        blocks = message_blocks(text) + plan_blocks(
            request.applied
            and {
                "dn": request.applied["dn"],
                "changes": [
                    {**c, "before": c["after"], "after": c["before"]}
                    for c in request.applied["changes"]
                ],
            },
            "Restored",
        )
    else:
        text = f"Your SMTP match `{request.id}` for {request.target_address}: {result.message}"
        blocks = message_blocks(text)
    if request.requester_channel:
        _dm(client, request.requester_channel, text, blocks)
    if result.outcome is Outcome.REVERTED and ctx.notify_channel and request.notify_ts:
        client.chat_postMessage(
            channel=ctx.notify_channel, thread_ts=request.notify_ts, text=text, blocks=blocks
        )


def handle_approve_action(
    ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond, ctx: BotContext
) -> None:
    """Approve: the service claims, re-checks, writes once; the message shows the result."""
    ack()
    with reply_on_fault(lambda **kw: _tell_clicker(respond, kw["text"]), "the approval"):
        result = approve_request(
            ctx.services, _action_value(body), _clicker(body), SlackTeamDirectory(client)
        )
        if result.outcome in _REFUSALS:
            _tell_clicker(respond, result.message)
            return
        if result.outcome is Outcome.OUTAGE:
            _tell_clicker(respond, result.message)
            if result.request is not None:
                refresh_approval_message(client, ctx.services.store, result.request)
            return
        if result.outcome is Outcome.EXPIRED:
            _tell_clicker(respond, result.message)
            if result.request is not None:
                refresh_approval_message(client, ctx.services.store, result.request)
            return
        _announce(client, ctx, result)


def handle_reject_action(
    ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond, ctx: BotContext
) -> None:
    """Check the clicker first, then ask for the (required) reason."""
    ack()
    request_id = _action_value(body)
    checked = authorize_decision(
        ctx.services, request_id, _clicker(body), SlackTeamDirectory(client), Decision.REJECT
    )
    if isinstance(checked, Result):
        _tell_clicker(respond, checked.message)
        return
    if checked.state is not RequestState.PENDING:
        _tell_clicker(respond, f"This request is already {checked.state}.")
        return
    client.views_open(
        trigger_id=body["trigger_id"],
        view=reason_modal(CallbackId.REJECT_REASON, request_id, required=True),
    )


def handle_reject_reason_submission(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, ctx: BotContext
) -> None:
    """Reject with the reason; the message and the requester are told."""
    user = _clicker(body)
    accepted, reason = _ack_reason(ack, view, required=True)
    if not accepted or reason is None:
        return
    with reply_on_fault(lambda **kw: _dm(client, user, kw["text"]), "the rejection"):
        result = reject_request(
            ctx.services,
            str(view.get("private_metadata") or ""),
            user,
            SlackTeamDirectory(client),
            reason,
        )
        if result.outcome is Outcome.REJECTED:
            _announce(client, ctx, result)
        else:
            _dm(client, user, result.message)
            if result.request is not None:
                refresh_approval_message(client, ctx.services.store, result.request)


def handle_revert_action(
    ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond, ctx: BotContext
) -> None:
    """Undo an applied change that has not matched: the recorded old values come back."""
    ack()
    with reply_on_fault(lambda **kw: _tell_clicker(respond, kw["text"]), "the revert"):
        result = revert_request(
            ctx.services, _action_value(body), _clicker(body), SlackTeamDirectory(client)
        )
        if result.outcome is Outcome.REVERTED:
            _announce(client, ctx, result)
        else:
            _tell_clicker(respond, result.message)
