"""Waves in Slack: the "Hand over a wave" button (scan summary, App Home) opens the picker;
the approvers' message carries Approve all / Reject (the wave id only); one progress message
per wave follows it; the result goes to the team's channel with the per-user CSV, and a DM to
the requester. Every listener acks first and hands the work to the bot's executors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import InvalidInput
from bot.ports import TeamDirectory
from bot.rules.address import parse_address
from bot.rules.waves import ItemState, Wave, WaveItem, WaveState
from bot.services.waves import (
    FIRST_ITEMS,
    WaveOutcome,
    WaveResult,
    WaveServices,
    approve_wave,
    create_wave,
    prepare_wave_rejection,
    prepare_wave_revert,
    reject_wave,
    resume_wave,
    revert_address,
    revert_wave,
    run_wave,
    show_progress,
    stop_wave,
    waves_for_home,
)
from bot.slack_views.blocks import VIEW_BLOCK_LIMIT, Block, message_blocks
from bot.slack_views.ids import (
    CREATIONS_VALUE,
    FIELD_CREATIONS,
    FIELD_DOMAIN,
    FIELD_LIMIT,
    FIELD_OU,
    FIELD_REASON,
    FIELD_REJECT_REASON,
    FIELD_REVERT_ADDRESS,
    WaveActionId,
)
from bot.slack_views.waves import (
    HOME_WAVES,
    approval_blocks,
    approval_text,
    closed_blocks,
    closed_text,
    home_wave_blocks,
    picker_modal,
    progress_blocks,
    progress_text,
    reject_modal,
    result_blocks,
    result_text,
    revert_one_modal,
)
from bot.workers import Slot
from handlers.context import BUSY, BotContext, SlackTeamDirectory, run_telling_faults

log = logging.getLogger("smtpmatch.handlers")

_PROBLEMS = (ItemState.FAILED, ItemState.SYNC_FAILED, ItemState.TIMEOUT, ItemState.SKIPPED)


class SlackWaveBoard:
    """Shows waves in Slack: the approvers' channel (approval, progress), the team's channel
    (result and CSV), the requester's DM.

    Args:
        client: the Slack Web API client.
        channel: the approvers' channel (None: waves are not posted).
        ctx: the bot's context (the team's channel, the store for message places).
    """

    def __init__(self, client: WebClient, channel: str | None, ctx: BotContext) -> None:
        self._client = client
        self._channel = channel
        self._ctx = ctx

    def _svc(self) -> WaveServices:
        assert self._ctx.waves is not None
        return self._ctx.waves

    def post_approval(self, wave: Wave, first: Sequence[WaveItem], csv_text: str) -> None:
        """Post the approval message and attach the CSV of every item in its thread."""
        if not self._channel:
            return
        posted = self._client.chat_postMessage(
            channel=self._channel, text=approval_text(wave), blocks=approval_blocks(wave, first)
        )
        channel, ts = str(posted["channel"]), str(posted["ts"])
        self._svc().waves.update_wave(wave.id, approval_channel=channel, approval_ts=ts)
        self._client.files_upload_v2(
            channel=channel,
            thread_ts=ts,
            filename=f"smtpmatch-wave-{wave.id}.csv",
            content=csv_text,
            title=f"Wave {wave.id}: every user to hand over",
            initial_comment="Every user of the wave, with its AD object and planned action.",
        )

    def closed(self, wave: Wave) -> None:
        """The approval message shows the rejection or expiry (its buttons gone); the requester
        gets the reason by DM."""
        self._show_approval(wave)
        self._client.chat_postMessage(
            channel=wave.requester_id, text=closed_text(wave), blocks=closed_blocks(wave)
        )

    def _show_approval(self, wave: Wave) -> None:
        if not (wave.approval_channel and wave.approval_ts):
            return
        first = self._svc().waves.items(wave.id, limit=FIRST_ITEMS)
        self._client.chat_update(
            channel=wave.approval_channel,
            ts=wave.approval_ts,
            text=approval_text(wave),
            blocks=approval_blocks(wave, first),
        )

    def progress(self, wave: Wave, counts: dict[ItemState, int], note: str | None) -> None:
        """Post (once) or update the wave's progress message, in the approval's thread."""
        current = self._svc().waves.get_wave(wave.id) or wave
        text, blocks = progress_text(current, counts), progress_blocks(current, counts, note)
        try:
            if current.progress_channel and current.progress_ts:
                self._client.chat_update(
                    channel=current.progress_channel,
                    ts=current.progress_ts,
                    text=text,
                    blocks=blocks,
                )
                return
            channel = current.approval_channel or self._channel
            if not channel:
                return
            posted = self._client.chat_postMessage(
                channel=channel, thread_ts=current.approval_ts, text=text, blocks=blocks
            )
            self._svc().waves.update_wave(
                wave.id, progress_channel=str(posted["channel"]), progress_ts=str(posted["ts"])
            )
            self._show_approval(current)
        except SlackApiError as exc:  # progress is a courtesy: the wave goes on
            log.warning("wave %s: progress not shown: %s", wave.id, exc)

    def finished(self, wave: Wave, counts: dict[ItemState, int], csv_text: str) -> None:
        """The team's summary with the per-user CSV, and a DM to the requester."""
        problems = self._svc().waves.items(wave.id, _PROBLEMS, limit=10)
        text, blocks = result_text(wave, counts), result_blocks(wave, counts, problems)
        channel = self._ctx.notify_channel or wave.approval_channel or self._channel
        if channel:
            posted = self._client.chat_postMessage(channel=channel, text=text, blocks=blocks)
            self._client.files_upload_v2(
                channel=str(posted["channel"]),
                thread_ts=str(posted["ts"]),
                filename=f"smtpmatch-wave-{wave.id}-result.csv",
                content=csv_text,
                title=f"Wave {wave.id}: the outcome of every user",
                initial_comment="One row per user: state and cause.",
            )
        self._client.chat_postMessage(channel=wave.requester_id, text=text, blocks=blocks)


def with_waves(view: Block, ctx: BotContext, user: str, *, is_approver: bool) -> Block:
    """App Home with its waves after the first lines: every open wave for approvers, the
    user's own waves for anyone else."""
    if ctx.waves is None:
        return view
    shown = waves_for_home(ctx.waves, user, is_approver=is_approver, limit=HOME_WAVES)
    section = home_wave_blocks(shown, is_approver=is_approver)
    if not section:
        return view
    current = view.get("blocks")
    blocks: list[Any] = list(current) if isinstance(current, list) else []
    return {**view, "blocks": [*blocks[:2], *section, *blocks[2:]][:VIEW_BLOCK_LIMIT]}


def _tell(respond: Respond, text: str) -> None:
    respond(
        response_type="ephemeral", replace_original=False, text=text, blocks=message_blocks(text)
    )


def _value(body: Mapping[str, Any]) -> str:
    actions = body.get("actions") or [{}]
    return str(actions[0].get("value") or "")


def _user(body: Mapping[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or "")


def handle_wave_open_action(
    ack: Ack, body: Mapping[str, Any], client: WebClient, respond: Respond, ctx: BotContext
) -> None:
    """The requester pressed "Hand over a wave": open the picker (its trigger is short-lived,
    so this is the one quick call made right after the ack, on the quick executor)."""
    ack()
    scan_id, trigger = _value(body), str(body.get("trigger_id") or "")
    slot = ctx.quick.reserve()
    if slot is None:
        ctx.tell_busy(lambda text, blocks: _tell(respond, text))
        return
    slot.run(client.views_open, trigger_id=trigger, view=picker_modal(scan_id))


def _field(values: Mapping[str, Any], block: str) -> Any:
    return (values.get(block) or {}).get(block) or {}


def _accept(
    ack: Ack, ctx: BotContext, errors: dict[str, str], field: str
) -> tuple[WaveServices, Slot] | None:
    """A wave modal was sent: keep it open with ``errors`` (``field`` names what blocks it
    when waves are off or the bot is busy), or close it and hand out a decision slot."""
    if ctx.waves is None:
        errors[field] = "Waves are not set up in this bot."
    slot = None if errors else ctx.decisions.reserve()
    if not errors and slot is None:
        errors[field] = BUSY
    if errors or slot is None or ctx.waves is None:
        ack(response_action="errors", errors=errors)
        return None
    ack()
    return ctx.waves, slot


def _direct(client: WebClient, user: str) -> Callable[[str, list[Block]], None]:
    """Tell ``user`` by direct message (a closed modal has nowhere else to answer)."""

    def dm(text: str, blocks: list[Block]) -> None:
        client.chat_postMessage(channel=user, text=text, blocks=blocks)

    return dm


def handle_wave_submission(
    ack: Ack, body: Mapping[str, Any], client: WebClient, ctx: BotContext
) -> None:
    """The picker was sent: check the fields, ack (closing it), then store and post the wave
    on a worker."""
    view = body.get("view") or {}
    values = (view.get("state") or {}).get("values") or {}
    reason = str(_field(values, FIELD_REASON).get("value") or "").strip()
    limit_text = str(_field(values, FIELD_LIMIT).get("value") or "").strip()
    errors = {}
    if not reason:
        errors[FIELD_REASON] = "Say why this wave is needed."
    if limit_text and (not limit_text.isdigit() or int(limit_text) < 1):
        errors[FIELD_LIMIT] = "A whole number, 1 or more."
    accepted = _accept(ack, ctx, errors, FIELD_REASON)
    if accepted is None:
        return
    waves, slot = accepted
    user = _user(body)
    dm = _direct(client, user)
    ticked = _field(values, FIELD_CREATIONS).get("selected_options") or []

    def work() -> None:
        result = create_wave(
            waves,
            scan_id=str(view.get("private_metadata") or ""),
            requester_id=user,
            reason=reason,
            domain=str(_field(values, FIELD_DOMAIN).get("value") or "").strip() or None,
            ou=str(_field(values, FIELD_OU).get("value") or "").strip() or None,
            limit=int(limit_text) if limit_text else None,
            include_creations=any(o.get("value") == CREATIONS_VALUE for o in ticked),
            team=SlackTeamDirectory(client),
        )
        if result.outcome is WaveOutcome.CREATED and result.wave is not None:
            text = (
                f"Wave `{result.wave.id}` of {result.wave.count} users was sent to the approvers."
            )
        else:
            text = result.message
        dm(text, message_blocks(text))

    slot.run(run_telling_faults, dm, "the wave request", work)


def _decision(
    ack: Ack,
    body: Mapping[str, Any],
    client: WebClient,
    respond: Respond,
    ctx: BotContext,
    what: str,
) -> None:
    ack()
    waves = ctx.waves
    slot = ctx.decisions.reserve()
    if slot is None or waves is None:
        if slot is not None:
            slot.release()
        ctx.tell_busy(lambda text, blocks: _tell(respond, text))
        return
    wave_id, user = _value(body), _user(body)
    team = SlackTeamDirectory(client)

    def reply(text: str, blocks: list[Block]) -> None:
        _tell(respond, text)

    def work() -> None:
        if what == "approve":
            result = approve_wave(waves, wave_id, user, team)
            if result.outcome is WaveOutcome.APPROVED:
                if result.wave is not None:  # the progress message first, then the run
                    show_progress(waves, wave_id)
                if not ctx.wave_pool.submit(run_wave, waves, wave_id):
                    log.warning("wave %s approved; the pool is full, the watcher runs it", wave_id)
                return
            _tell(respond, result.message)
        elif what in ("stop", "resume"):
            result = (stop_wave if what == "stop" else resume_wave)(waves, wave_id, user, team)
            _tell(respond, result.message)
            if result.wave is None:
                return
            show_progress(waves, wave_id)
            if result.wave.state is WaveState.APPLYING:  # a paused wave: settle and go on
                ctx.wave_pool.submit(run_wave, waves, wave_id)
        else:
            results = revert_wave(waves, wave_id, user, team)
            done = sum(1 for r in results if getattr(r, "outcome", None) == "reverted")
            first = next((r.message for r in results if r.message), "")
            _tell(
                respond,
                f"Reverted {done} of {len(results)} items. {first if not done else ''}".strip(),
            )
            show_progress(waves, wave_id)

    slot.run(run_telling_faults, reply, f"the wave {what}", work)


def handle_wave_approve_action(
    ack: Ack, body: Mapping[str, Any], client: WebClient, respond: Respond, ctx: BotContext
) -> None:
    """Approve all: the wave's compare-and-set, then the wave runs on the wave executor."""
    _decision(ack, body, client, respond, ctx, "approve")


def _open_checked_modal(
    ack: Ack,
    body: Mapping[str, Any],
    client: WebClient,
    respond: Respond,
    ctx: BotContext,
    check: Callable[[WaveServices, str, str, TeamDirectory], WaveResult | Wave],
    modal: Callable[[str], Block],
) -> None:
    """Ack; then, on the quick executor, check the clicker (``check``: refused people are told
    privately, no form is opened for them) and open ``modal(wave id)``. The submission is
    authorized again by the service that acts on it."""
    ack()
    waves, wave_id, user = ctx.waves, _value(body), _user(body)
    trigger = str(body.get("trigger_id") or "")
    slot = ctx.quick.reserve()
    if slot is None or waves is None:
        if slot is not None:
            slot.release()
        ctx.tell_busy(lambda text, blocks: _tell(respond, text))
        return

    def reply(text: str, blocks: list[Block]) -> None:
        _tell(respond, text)

    def work() -> None:
        checked = check(waves, wave_id, user, SlackTeamDirectory(client))
        if isinstance(checked, WaveResult):
            _tell(respond, checked.message)
            return
        client.views_open(trigger_id=trigger, view=modal(wave_id))

    slot.run(run_telling_faults, reply, "opening the form", work)


def handle_wave_reject_action(
    ack: Ack, body: Mapping[str, Any], client: WebClient, respond: Respond, ctx: BotContext
) -> None:
    """Reject: check the clicker first, then ask for the reason."""
    _open_checked_modal(ack, body, client, respond, ctx, prepare_wave_rejection, reject_modal)


def handle_wave_reject_submission(
    ack: Ack, body: Mapping[str, Any], client: WebClient, ctx: BotContext
) -> None:
    """The rejection's reason was sent: the wave is turned down (authorized again), its
    approval message shows it, and the requester is told why by DM."""
    view = body.get("view") or {}
    values = (view.get("state") or {}).get("values") or {}
    reason = str(_field(values, FIELD_REJECT_REASON).get("value") or "").strip()
    errors: dict[str, str] = {}
    if not reason:
        errors[FIELD_REJECT_REASON] = "Say why the wave is rejected: its requester is told."
    accepted = _accept(ack, ctx, errors, FIELD_REJECT_REASON)
    if accepted is None:
        return
    waves, slot = accepted
    user, wave_id = _user(body), str(view.get("private_metadata") or "")
    dm = _direct(client, user)

    def work() -> None:
        result = reject_wave(waves, wave_id, user, SlackTeamDirectory(client), reason)
        if result.outcome is not WaveOutcome.REJECTED:  # the board told the requester
            dm(result.message, message_blocks(result.message))

    slot.run(run_telling_faults, dm, "the rejection", work)


def handle_wave_stop_action(
    ack: Ack, body: Mapping[str, Any], client: WebClient, respond: Respond, ctx: BotContext
) -> None:
    """Stop the wave: every user not written yet is skipped (the requester or an approver)."""
    _decision(ack, body, client, respond, ctx, "stop")


def handle_wave_resume_action(
    ack: Ack, body: Mapping[str, Any], client: WebClient, respond: Respond, ctx: BotContext
) -> None:
    """Resume a paused wave now (an approver)."""
    _decision(ack, body, client, respond, ctx, "resume")


def handle_wave_revert_action(
    ack: Ack, body: Mapping[str, Any], client: WebClient, respond: Respond, ctx: BotContext
) -> None:
    """Revert the wave's written, not yet matched items (each through the guarded revert)."""
    _decision(ack, body, client, respond, ctx, "revert")


def handle_wave_revert_one_action(
    ack: Ack, body: Mapping[str, Any], client: WebClient, respond: Respond, ctx: BotContext
) -> None:
    """ "Revert one user…": check the clicker first, then ask which user of the wave."""
    _open_checked_modal(ack, body, client, respond, ctx, prepare_wave_revert, revert_one_modal)


def handle_wave_revert_one_submission(
    ack: Ack, body: Mapping[str, Any], client: WebClient, ctx: BotContext
) -> None:
    """The revert-one modal was sent: a malformed address keeps it open with the error;
    otherwise it closes and the guarded revert of that one item runs on a worker (approvers
    other than the requester only, refused once Entra ID matched the user). The outcome goes
    to the approver by DM, and the wave's progress message is updated."""
    view = body.get("view") or {}
    values = (view.get("state") or {}).get("values") or {}
    typed = str(_field(values, FIELD_REVERT_ADDRESS).get("value") or "")
    errors: dict[str, str] = {}
    try:
        parse_address(typed)
    except InvalidInput as exc:
        errors[FIELD_REVERT_ADDRESS] = str(exc)[:150]
    accepted = _accept(ack, ctx, errors, FIELD_REVERT_ADDRESS)
    if accepted is None:
        return
    waves, slot = accepted
    user, wave_id = _user(body), str(view.get("private_metadata") or "")
    dm = _direct(client, user)

    def work() -> None:
        result = revert_address(waves, wave_id, typed, user, SlackTeamDirectory(client))
        dm(result.message, message_blocks(result.message))
        show_progress(waves, wave_id)

    slot.run(run_telling_faults, dm, "the revert", work)


LISTENERS = (
    ("action", WaveActionId.OPEN, handle_wave_open_action),
    ("action", WaveActionId.APPROVE, handle_wave_approve_action),
    ("action", WaveActionId.REJECT, handle_wave_reject_action),
    ("action", WaveActionId.REVERT, handle_wave_revert_action),
    ("action", WaveActionId.REVERT_ONE, handle_wave_revert_one_action),
    ("action", WaveActionId.STOP, handle_wave_stop_action),
    ("action", WaveActionId.RESUME, handle_wave_resume_action),
    ("view", WaveActionId.SUBMIT, handle_wave_submission),
    ("view", WaveActionId.REVERT_ONE_SUBMIT, handle_wave_revert_one_submission),
    ("view", WaveActionId.REJECT_SUBMIT, handle_wave_reject_submission),
)
