"""The request state machine: which state may follow which."""

from __future__ import annotations

import pytest

from bot.rules.requests import (
    OPEN_STATES,
    REVERTIBLE_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    Decision,
    InvalidTransition,
    RequestState,
    allowed_next_states,
    can_transition,
    decision_transition,
)

S = RequestState

ALLOWED = [
    (S.PENDING, S.APPROVING),
    (S.PENDING, S.REJECTED),
    (S.PENDING, S.EXPIRED),
    (S.APPROVING, S.APPLIED),
    (S.APPROVING, S.FAILED),
    (S.APPROVING, S.PENDING),
    (S.APPLIED, S.MATCHED),
    (S.APPLIED, S.SYNC_FAILED),
    (S.APPLIED, S.SYNC_TIMEOUT),
    (S.APPLIED, S.REVERTING),
    (S.SYNC_FAILED, S.REVERTING),
    (S.SYNC_TIMEOUT, S.REVERTING),
    (S.SYNC_TIMEOUT, S.MATCHED),
    (S.REVERTING, S.REVERTED),
    (S.REVERTING, S.MATCHED),
    (S.REVERTING, S.APPLIED),
    (S.REVERTING, S.SYNC_FAILED),
    (S.REVERTING, S.SYNC_TIMEOUT),
]


@pytest.mark.parametrize(("before", "after"), ALLOWED)
def test_the_documented_moves_are_allowed(before: RequestState, after: RequestState) -> None:
    assert can_transition(before, after)


@pytest.mark.parametrize(
    ("before", "after"),
    [(b, a) for b in RequestState for a in RequestState if (b, a) not in ALLOWED],
)
def test_every_other_move_is_refused(before: RequestState, after: RequestState) -> None:
    assert not can_transition(before, after)


def test_a_pending_request_cannot_be_applied_without_being_claimed_first() -> None:
    assert not can_transition(S.PENDING, S.APPLIED)


def test_a_matched_request_cannot_be_reverted() -> None:
    assert not can_transition(S.MATCHED, S.REVERTED)


def test_terminal_states_are_those_nothing_follows() -> None:
    assert {S.MATCHED, S.REJECTED, S.EXPIRED, S.FAILED, S.REVERTED} == TERMINAL_STATES
    for state in TERMINAL_STATES:
        assert allowed_next_states(state) == frozenset()


def test_open_states_are_not_terminal() -> None:
    assert not OPEN_STATES & TERMINAL_STATES


def test_every_state_has_a_transition_entry() -> None:
    assert set(TRANSITIONS) == set(RequestState)


def test_every_state_is_reachable_from_pending() -> None:
    seen = {S.PENDING}
    frontier = [S.PENDING]
    while frontier:
        for nxt in allowed_next_states(frontier.pop()):
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == set(RequestState)


def test_states_and_decisions_are_stored_as_plain_strings() -> None:
    assert str(S.SYNC_TIMEOUT) == "sync_timeout"
    assert RequestState("approving") is S.APPROVING
    assert [d.value for d in Decision] == ["approve", "reject", "revert"]


def test_approving_claims_a_pending_request() -> None:
    assert decision_transition(Decision.APPROVE) == (frozenset({S.PENDING}), S.APPROVING)


def test_rejecting_closes_a_pending_request() -> None:
    assert decision_transition(Decision.REJECT) == (frozenset({S.PENDING}), S.REJECTED)


def test_reverting_applies_to_applied_requests_that_did_not_match() -> None:
    sources, target = decision_transition(Decision.REVERT)
    assert target is S.REVERTING
    assert sources == REVERTIBLE_STATES == {S.APPLIED, S.SYNC_FAILED, S.SYNC_TIMEOUT}


def test_an_invalid_transition_error_names_both_states() -> None:
    error = InvalidTransition(S.REJECTED, S.APPLIED)
    assert "rejected" in str(error)
    assert "applied" in str(error)
    assert isinstance(error, ValueError)
