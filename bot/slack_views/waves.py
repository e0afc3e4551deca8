"""Blocks of waves (bulk hand-over): the picker modal, the approval message, the progress and
the result. Buttons carry only the wave id (or the scan id); everything else is reloaded."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import JsonValue

from bot.rules.waves import ItemState, Wave, WaveItem, WaveState
from bot.slack_views.blocks import Block, channel_link, escape, mention
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


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:2900]}]}


def _button(
    text: str,
    action: WaveActionId,
    value: str,
    style: str | None = None,
    confirm: tuple[str, str, str] | None = None,
) -> Block:
    """A button; ``confirm`` is (title, text, confirm label) of Slack's "are you sure" dialog."""
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": str(action),
        "value": value,
    }
    if style:
        button["style"] = style
    if confirm:
        title, body, yes = confirm
        button["confirm"] = {
            "title": {"type": "plain_text", "text": title},
            "text": {"type": "mrkdwn", "text": body},
            "confirm": {"type": "plain_text", "text": yes},
            "deny": {"type": "plain_text", "text": "Cancel"},
            "style": "danger",
        }
    return button


def open_button_blocks(scan_id: str) -> list[Block]:
    """The "Hand over a wave" button under a scan summary and in App Home."""
    return [
        {
            "type": "actions",
            "block_id": f"wave_open_{scan_id}",
            "elements": [_button("Hand over a wave…", WaveActionId.OPEN, scan_id, "primary")],
        }
    ]


def _text_input(
    block: str,
    label: str,
    hint: str | None = None,
    *,
    optional: bool = True,
    multiline: bool = False,
    max_length: int = 500,
) -> Block:
    element: Block = {"type": "plain_text_input", "action_id": block, "max_length": max_length}
    if multiline:
        element["multiline"] = True
    field: Block = {
        "type": "input",
        "block_id": block,
        "optional": optional,
        "label": {"type": "plain_text", "text": label},
        "element": element,
    }
    if hint:
        field["hint"] = {"type": "plain_text", "text": hint}
    return field


def _modal(
    callback: WaveActionId, metadata: str, title: str, submit: str, blocks: list[Block]
) -> Block:
    """A wave modal: ``metadata`` (the scan or wave id) comes back with the submission."""
    shown: list[JsonValue] = [*blocks]
    return {
        "type": "modal",
        "callback_id": str(callback),
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": shown,
    }


def picker_modal(scan_id: str) -> Block:
    """The requester picks the wave: subset fields, creations (unticked), the reason."""
    creations: Block = {
        "type": "input",
        "block_id": FIELD_CREATIONS,
        "optional": True,
        "label": {"type": "plain_text", "text": "Creations"},
        "element": {
            "type": "checkboxes",
            "action_id": FIELD_CREATIONS,
            "options": [
                {
                    "text": {
                        "type": "plain_text",
                        "text": "Also create the missing AD accounts (needs_account)",
                    },
                    "value": CREATIONS_VALUE,
                }
            ],
        },
    }
    return _modal(
        WaveActionId.SUBMIT,
        scan_id,
        "Hand over a wave",
        "Ask approvers",
        [
            _section(f"Eligible users of scan `{escape(scan_id)}`; leave a field empty for all."),
            _text_input(FIELD_DOMAIN, "Address domain", "e.g. contoso.com"),
            _text_input(FIELD_OU, "AD OU", "e.g. OU=Sales,DC=corp,DC=example"),
            _text_input(FIELD_LIMIT, "At most this many users", "a whole number"),
            creations,
            _text_input(FIELD_REASON, "Why is this wave needed?", optional=False, multiline=True),
        ],
    )


def _item_line(item: WaveItem) -> str:
    action = "create" if item.creates else "match"
    where = item.onprem_dn or str((item.plan or {}).get("dn") or "")
    return f"• {escape(item.address)} → `{escape(where)}` ({action})"


def approval_text(wave: Wave) -> str:
    """The approval message's notification text."""
    return f"Wave `{wave.id}`: {wave.count} users to hand over ({wave.state})"


def approval_blocks(wave: Wave, first: Sequence[WaveItem]) -> list[Block]:
    """Count, first items, the reason; Approve all / Reject while pending."""
    more = wave.count - len(first)
    blocks: list[Block] = [
        _section(
            f"*Wave `{wave.id}`*: {mention(wave.requester_id)} asks to hand over "
            f"*{wave.count}* users of scan `{wave.scan_id}`.\n*Reason:* {escape(wave.reason)}"
        ),
        _section(
            "\n".join(_item_line(i) for i in first)
            + (f"\n… and {more} more (all in the CSV below)." if more > 0 else "")
        ),
        _context(
            "Each user is re-checked live before its write and skipped if anything changed "
            "since the scan. Approvers other than the requester decide."
        ),
    ]
    if wave.state is WaveState.PENDING:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"wave_{wave.id}",
                "elements": [
                    _button("Approve all", WaveActionId.APPROVE, wave.id, "primary"),
                    _button("Reject", WaveActionId.REJECT, wave.id, "danger"),
                ],
            }
        )
    else:
        who = f" by {mention(wave.approver_id)}" if wave.approver_id else ""
        blocks.append(
            _context(f"*{wave.state}*{who}" + (f": {escape(wave.note)}" if wave.note else ""))
        )
    return blocks


def _count_line(counts: dict[ItemState, int]) -> str:
    written = sum(
        counts[s]
        for s in (
            ItemState.APPLIED,
            ItemState.MATCHED,
            ItemState.SYNC_FAILED,
            ItemState.TIMEOUT,
            ItemState.REVERTED,
        )
    )
    return (
        f"written {written} · skipped {counts[ItemState.SKIPPED]} · failed "
        f"{counts[ItemState.FAILED]} · waiting {counts[ItemState.PENDING]}"
    )


def progress_text(wave: Wave, counts: dict[ItemState, int]) -> str:
    """The progress message's text."""
    return f"Wave `{wave.id}` {wave.state}: {_count_line(counts)}"


def progress_blocks(wave: Wave, counts: dict[ItemState, int], note: str | None) -> list[Block]:
    """One message per wave, updated as it advances; a Revert button while items can be."""
    lines = [f"*Wave `{wave.id}`* is *{wave.state}*: {_count_line(counts)}."]
    if wave.state in (WaveState.WATCHING, WaveState.DONE):
        lines.append(
            f"Sync: matched {counts[ItemState.MATCHED]} · failed {counts[ItemState.SYNC_FAILED]}"
            f" · timed out {counts[ItemState.TIMEOUT]} · reverted {counts[ItemState.REVERTED]}"
            f" · waiting {counts[ItemState.APPLIED]}"
        )
    note = note or (wave.note if wave.state is WaveState.PAUSED else None)
    if note:
        lines.append(f":pause_button: {escape(note)}")
    blocks: list[Block] = [_section("\n".join(lines))]
    if wave.state in (WaveState.APPLYING, WaveState.PAUSED):
        stop = _button(
            "Stop the wave",
            WaveActionId.STOP,
            wave.id,
            "danger",
            confirm=(
                "Stop the wave?",
                f"The {counts[ItemState.PENDING]} users not written yet are skipped. Those "
                "already written stay, are watched, and can be reverted.",
                "Stop it",
            ),
        )
        resume = _button("Resume now", WaveActionId.RESUME, wave.id, "primary")
        blocks.append(
            {
                "type": "actions",
                "block_id": f"wave_run_{wave.id}",
                "elements": [resume, stop] if wave.state is WaveState.PAUSED else [stop],
            }
        )
    revertible = (
        counts[ItemState.APPLIED] + counts[ItemState.SYNC_FAILED] + counts[ItemState.TIMEOUT]
    )
    if revertible and wave.state in (WaveState.WATCHING, WaveState.DONE):
        blocks.append(
            {
                "type": "actions",
                "block_id": f"wave_revert_{wave.id}",
                "elements": [
                    _button("Revert one user…", WaveActionId.REVERT_ONE, wave.id),
                    _button(
                        f"Revert {revertible} not-yet-matched",
                        WaveActionId.REVERT,
                        wave.id,
                        "danger",
                        confirm=(
                            "Revert the wave?",
                            f"Put back the old `mail` and `proxyAddresses` of the {revertible} "
                            "users of this wave that Entra ID has not matched yet.",
                            "Revert them",
                        ),
                    ),
                ],
            }
        )
    return blocks


def revert_one_modal(wave_id: str) -> Block:
    """An approver names the one user of the wave to put back (by the address handed over)."""
    return _modal(
        WaveActionId.REVERT_ONE_SUBMIT,
        wave_id,
        "Revert one user",
        "Revert",
        [
            _section(
                f"Put back the old `mail` and `proxyAddresses` of one user of wave "
                f"`{escape(wave_id, code=True)}`. Only a user Entra ID has not matched yet can "
                "be reverted; the CSV in the wave's thread lists every address."
            ),
            _text_input(
                FIELD_REVERT_ADDRESS,
                "The user's address",
                "e.g. jane@contoso.com",
                optional=False,
                max_length=254,
            ),
        ],
    )


def result_text(wave: Wave, counts: dict[ItemState, int]) -> str:
    """The team's summary of a finished wave."""
    return (
        f"Wave `{wave.id}` finished: matched {counts[ItemState.MATCHED]}, failed "
        f"{counts[ItemState.FAILED] + counts[ItemState.SYNC_FAILED]}, timed out "
        f"{counts[ItemState.TIMEOUT]}, skipped {counts[ItemState.SKIPPED]}, reverted "
        f"{counts[ItemState.REVERTED]} (of {wave.count})."
    )


def result_blocks(
    wave: Wave, counts: dict[ItemState, int], problems: Sequence[WaveItem]
) -> list[Block]:
    """The summary with the first failures and skips and their causes."""
    lines = [
        f"• {escape(i.address)}: *{i.state}* — {escape(i.reason or '')}" for i in problems[:10]
    ]
    blocks = [
        _section(
            f"*{result_text(wave, counts)}*\nRequested by {mention(wave.requester_id)}, "
            f"approved by {mention(wave.approver_id)}. Every user is in the CSV."
        ),
    ]
    if lines:
        blocks.append(_section("\n".join(lines)))
    return blocks


def reject_modal(wave_id: str) -> Block:
    """An approver says why the whole wave is turned down (the requester is told)."""
    return _modal(
        WaveActionId.REJECT_SUBMIT,
        wave_id,
        "Reject the wave",
        "Reject",
        [
            _section(
                f"Nothing of wave `{escape(wave_id, code=True)}` is written; its requester is "
                "told why."
            ),
            _text_input(FIELD_REJECT_REASON, "Why is it rejected?", optional=False, multiline=True),
        ],
    )


def closed_text(wave: Wave) -> str:
    """What the requester is told when the wave ended without a write: rejected (with the
    approver's reason, shown literally) or expired."""
    if wave.state is WaveState.EXPIRED:
        return (
            f"Wave `{wave.id}` of {wave.count} users expired: {escape(wave.note or '')}. "
            "Nothing was written; ask again from a fresh scan if it is still needed."
        )
    return (
        f"Wave `{wave.id}` of {wave.count} users was rejected by {mention(wave.approver_id)}: "
        f"{escape(wave.note or '')}. Nothing was written."
    )


def closed_blocks(wave: Wave) -> list[Block]:
    """The requester's DM about a wave that ended without a write."""
    return [_section(closed_text(wave))]


#: How many waves App Home lists.
HOME_WAVES = 8


def home_wave_blocks(waves: Sequence[Wave], *, is_approver: bool) -> list[Block]:
    """App Home's waves: for approvers every open wave, for others the waves they asked for
    (newest first); nothing when there is none."""
    if not waves:
        return []
    title = "Open waves" if is_approver else "My waves"
    lines = []
    for wave in waves[:HOME_WAVES]:
        where = f", in {channel_link(wave.approval_channel)}" if wave.approval_channel else ""
        lines.append(
            f"• Wave `{escape(wave.id, code=True)}`: {wave.count} users, *{wave.state}*, "
            f"asked by {mention(wave.requester_id)}{where}"
        )
    return [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        _section("\n".join(lines)),
    ]
