"""The reason typed in a modal: accepted and the modal closed, or the modal kept open with the
problem shown under the field."""

from __future__ import annotations

from typing import Any

from bot.slack_views.ids import MAX_REASON_LENGTH, REASON_ACTION, REASON_BLOCK
from handlers.actions import _ack_reason


class Ack:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def view(text: str | None) -> dict[str, Any]:
    return {"state": {"values": {REASON_BLOCK: {REASON_ACTION: {"value": text}}}}}


def test_a_reason_is_accepted_trimmed_and_the_modal_closes() -> None:
    ack = Ack()
    assert _ack_reason(ack, view("  moving to AD "), required=True) == (True, "moving to AD")
    assert ack.calls == [{}]


def test_an_optional_reason_may_stay_empty() -> None:
    ack = Ack()
    assert _ack_reason(ack, view(None), required=False) == (True, None)
    assert ack.calls == [{}]


def test_a_required_reason_left_empty_keeps_the_modal_open() -> None:
    ack = Ack()
    assert _ack_reason(ack, view("   "), required=True) == (False, None)
    assert ack.calls == [
        {"response_action": "errors", "errors": {REASON_BLOCK: "Say why the request is rejected."}}
    ]


def test_an_oversized_reason_is_refused_with_its_limit() -> None:
    ack = Ack()
    assert _ack_reason(ack, view("x" * (MAX_REASON_LENGTH + 1)), required=False) == (False, None)
    assert str(MAX_REASON_LENGTH) in ack.calls[0]["errors"][REASON_BLOCK]
