"""Buttons and modals: request approval, approve, reject, revert.

Buttons carry only a request id (or, for "Request approval", the id of the recorded check);
the services reload everything from the store, re-check, and check who clicked. Every
listener acks first and hands the work to one of the bot's executors; when that is full the
user is told at once that the bot is busy, and nothing was started.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.domain import MatchRequest
from bot.rules.requests import Decision
from bot.services.requests import (
    NOT_A_REQUESTER,
    Outcome,
    Result,
    decide,
    load_check,
    may_request,
    prepare_rejection,
    submit_request,
)
from bot.slack_views.blocks import (
    Announcement,
    Block,
    applied_announcement,
    message_blocks,
    outcome_announcement,
    reason_modal,
    rejected_announcement,
    report_blocks,
    request_posted_announcement,
    reverted_announcement,
)
from bot.slack_views.ids import MAX_REASON_LENGTH, REASON_BLOCK, CallbackId
from bot.workers import Slot, WorkPool
from handlers.context import BUSY, BotContext, Reply, SlackTeamDirectory, run_telling_faults
from handlers.payloads import Click, Submission, parse_click, parse_submission

log = logging.getLogger("smtpmatch.handlers")


def _ephemeral(respond: Respond) -> Reply:
    def reply(text: str, blocks: list[Block]) -> None:
        respond(response_type="ephemeral", replace_original=False, text=text, blocks=blocks)

    return reply


def _direct(client: WebClient, user: str) -> Reply:
    def reply(text: str, blocks: list[Block]) -> None:
        client.chat_postMessage(channel=user, text=text, blocks=blocks)

    return reply


def _tell(reply: Reply, text: str) -> None:
    reply(text, message_blocks(text))


def reason_problem(reason: str, *, required: bool) -> str | None:
    """What is wrong with a typed reason, or None when it is acceptable."""
    if len(reason) > MAX_REASON_LENGTH:
        return f"The reason is longer than {MAX_REASON_LENGTH} characters."
    if required and not reason:
        return "Say why the request is rejected."
    return None


def _ack_reason(ack: Ack, view: Mapping[str, object], *, required: bool) -> tuple[bool, str | None]:
    """Read the modal's reason and ack the submission: closed when the reason is acceptable,
    kept open with the problem shown under the field when not.

    Returns:
        Whether it was accepted, and the reason (``None`` when left empty).
    """
    reason = parse_submission({"user": {"id": "-"}, "view": view}).reason
    problem = reason_problem(reason, required=required)
    if problem is not None:
        ack(response_action="errors", errors={REASON_BLOCK: problem})
        return False, None
    ack()
    return True, reason or None


def _accept_submission(
    ack: Ack, body: Mapping[str, object], ctx: BotContext, *, required: bool
) -> tuple[Submission, str | None, Slot] | None:
    """Reserve a decision worker, then ack: the modal closes at once when the reason is fine
    and a worker is free; otherwise it stays open showing why (busy, or the reason), so the
    user can simply send it again and nothing is lost."""
    submission = parse_submission(body)
    slot = ctx.decisions.reserve()
    if slot is None:
        ack(response_action="errors", errors={REASON_BLOCK: BUSY})
        return None
    accepted, reason = _ack_reason(ack, submission.view.model_dump(), required=required)
    if not accepted:
        slot.release()
        return None
    return submission, reason, slot


def _offload(ack: Ack, respond: Respond, pool: WorkPool, ctx: BotContext) -> Slot | None:
    """Ack a button press and reserve a worker; when none is free the clicker hears so."""
    ack()
    slot = pool.reserve()
    if slot is None:
        ctx.tell_busy(_ephemeral(respond))
    return slot


# -- request approval ------------------------------------------------------------------------


def handle_request_approval_action(
    ack: Ack, body: Mapping[str, object], client: WebClient, respond: Respond, ctx: BotContext
) -> None:
    """Open the optional-reason modal for a recorded, eligible check of the clicker's own."""
    click = parse_click(body)
    slot = _offload(ack, respond, ctx.quick, ctx)
    if slot is not None:
        slot.run(_open_request_modal, click, client, respond, ctx)


def _open_request_modal(click: Click, client: WebClient, respond: Respond, ctx: BotContext) -> None:
    reply = _ephemeral(respond)

    def work() -> None:
        if not may_request(ctx.services, click.clicker, SlackTeamDirectory(client)):
            _tell(reply, NOT_A_REQUESTER)
            return
        target = load_check(ctx.services, click.value, click.clicker)
        if isinstance(target, str):
            _tell(reply, target)
            return
        client.views_open(
            trigger_id=click.trigger_id or "",
            view=reason_modal(CallbackId.REQUEST_REASON, click.value, required=False),
        )

    run_telling_faults(reply, "opening the request form", work)


def handle_request_reason_submission(
    ack: Ack, body: Mapping[str, object], client: WebClient, ctx: BotContext
) -> None:
    """Close the modal at once; check again, store the request and post it to the approvers
    on a decision worker, and tell the requester the outcome by direct message."""
    accepted = _accept_submission(ack, body, ctx, required=False)
    if accepted is not None:
        submission, reason, slot = accepted
        slot.run(_submit_request, submission, reason, client, ctx)


def _submit_request(
    submission: Submission, reason: str | None, client: WebClient, ctx: BotContext
) -> None:
    reply = _direct(client, submission.submitter)

    def work() -> None:
        if not may_request(ctx.services, submission.submitter, SlackTeamDirectory(client)):
            _tell(reply, NOT_A_REQUESTER)
            return
        result = submit_request(
            ctx.services,
            check_id=submission.metadata,
            requester_id=submission.submitter,
            requester_name=submission.submitter_name,
            reason=reason,
        )
        if result.outcome is Outcome.REQUESTED and result.request is not None:
            reply(*request_posted_announcement(result.request, ctx.approval_channel))
        elif result.outcome is Outcome.NOT_ELIGIBLE and result.report is not None:
            reply(result.message, message_blocks(result.message) + report_blocks(result.report))
        else:
            _tell(reply, result.message)

    run_telling_faults(reply, "the request", work)


# -- approve / reject / revert ---------------------------------------------------------------


def _announce(client: WebClient, ctx: BotContext, result: Result) -> None:
    """Tell the requester (and, for a revert, the team's thread) what happened."""
    request = result.request
    if request is None:
        return
    text, blocks = _announcement(result, request)
    if request.requester_channel:
        client.chat_postMessage(channel=request.requester_channel, text=text, blocks=blocks)
    if result.outcome is Outcome.REVERTED and ctx.notify_channel and request.notify_ts:
        client.chat_postMessage(
            channel=ctx.notify_channel, thread_ts=request.notify_ts, text=text, blocks=blocks
        )


def _announcement(result: Result, request: MatchRequest) -> Announcement:
    if result.outcome is Outcome.APPLIED:
        return applied_announcement(request)
    if result.outcome is Outcome.REJECTED:
        return rejected_announcement(request)
    if result.outcome is Outcome.REVERTED:
        return reverted_announcement(request)
    return outcome_announcement(request, result.message)


#: Outcomes only the clicker hears about (nothing happened that others need to know).
_CLICKER_ONLY = frozenset(
    {
        Outcome.NOT_FOUND,
        Outcome.REFUSED_SELF,
        Outcome.REFUSED_NOT_APPROVER,
        Outcome.STALE,
        Outcome.OUTAGE,
        Outcome.EXPIRED,
    }
)


def handle_approve_action(
    ack: Ack, body: Mapping[str, object], client: WebClient, respond: Respond, ctx: BotContext
) -> None:
    """Approve: the service claims, re-checks, writes once; the message shows the result."""
    click = parse_click(body)
    slot = _offload(ack, respond, ctx.decisions, ctx)
    if slot is not None:
        slot.run(_decide_click, Decision.APPROVE, click, client, respond, ctx)


def handle_revert_action(
    ack: Ack, body: Mapping[str, object], client: WebClient, respond: Respond, ctx: BotContext
) -> None:
    """Undo an applied change that has not matched: the recorded old values come back."""
    click = parse_click(body)
    slot = _offload(ack, respond, ctx.decisions, ctx)
    if slot is not None:
        slot.run(_decide_click, Decision.REVERT, click, client, respond, ctx)


def _decide_click(
    decision: Decision, click: Click, client: WebClient, respond: Respond, ctx: BotContext
) -> None:
    reply = _ephemeral(respond)

    def work() -> None:
        result = decide(
            ctx.services, decision, click.value, click.clicker, SlackTeamDirectory(client)
        )
        if result.outcome in _CLICKER_ONLY or (
            decision is Decision.REVERT and result.outcome is not Outcome.REVERTED
        ):
            _tell(reply, result.message)
        else:
            _announce(client, ctx, result)

    run_telling_faults(reply, f"the {decision}", work)


def handle_reject_action(
    ack: Ack, body: Mapping[str, object], client: WebClient, respond: Respond, ctx: BotContext
) -> None:
    """Check the clicker first, then ask for the (required) reason."""
    click = parse_click(body)
    slot = _offload(ack, respond, ctx.quick, ctx)
    if slot is not None:
        slot.run(_open_reject_modal, click, client, respond, ctx)


def _open_reject_modal(click: Click, client: WebClient, respond: Respond, ctx: BotContext) -> None:
    reply = _ephemeral(respond)

    def work() -> None:
        checked = prepare_rejection(
            ctx.services, click.value, click.clicker, SlackTeamDirectory(client)
        )
        if isinstance(checked, Result):
            _tell(reply, checked.message)
            return
        client.views_open(
            trigger_id=click.trigger_id or "",
            view=reason_modal(CallbackId.REJECT_REASON, click.value, required=True),
        )

    run_telling_faults(reply, "opening the rejection form", work)


def handle_reject_reason_submission(
    ack: Ack, body: Mapping[str, object], client: WebClient, ctx: BotContext
) -> None:
    """Reject with the reason; the message and the requester are told."""
    accepted = _accept_submission(ack, body, ctx, required=True)
    if accepted is not None:
        submission, reason, slot = accepted
        slot.run(_reject, submission, reason or "", client, ctx)


def _reject(submission: Submission, reason: str, client: WebClient, ctx: BotContext) -> None:
    reply = _direct(client, submission.submitter)

    def work() -> None:
        result = decide(
            ctx.services,
            Decision.REJECT,
            submission.metadata,
            submission.submitter,
            SlackTeamDirectory(client),
            reason,
        )
        if result.outcome is Outcome.REJECTED:
            _announce(client, ctx, result)
        else:
            _tell(reply, result.message)

    run_telling_faults(reply, "the rejection", work)
