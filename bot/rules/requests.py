"""The match request state machine: which state may follow which. Pure, no I/O.

A request is born ``pending``. One approver's click claims it (``approving``) with a
compare-and-set in the store, so a double click or two approvers act once. The claim ends in
``applied`` (AD written), ``failed`` (the re-check blocked it or the write failed; nothing
changed) or, when the re-check could not run at all, back in ``pending`` so it can be tried
again. An applied request is watched until sync reports ``matched``, ``sync_failed`` or
``sync_timeout``; an applied change that did not match can be ``reverted``. A revert, too,
claims the request first (``reverting``, compare-and-set), so two reverts, or a revert and the
sync watcher, act once; the claim ends in ``reverted`` (AD restored), ``matched`` (Entra ID had
bound the users meanwhile), or back where it came from when nothing was written.

The store enforces these transitions (``can_transition``) on every state change.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class RequestState(StrEnum):
    """Where a match request is in its life."""

    #: Awaiting an approver's decision.
    PENDING = "pending"
    #: Claimed by one approver's click; the re-check and the write are in progress.
    APPROVING = "approving"
    #: AD written; directory sync is being watched.
    APPLIED = "applied"
    #: Entra ID bound the cloud user to the AD user.
    MATCHED = "matched"
    #: Sync reported a duplicate or provisioning error.
    SYNC_FAILED = "sync_failed"
    #: Sync did not bind the users before the deadline.
    SYNC_TIMEOUT = "sync_timeout"
    #: An approver said no.
    REJECTED = "rejected"
    #: Nobody decided before the request expired.
    EXPIRED = "expired"
    #: The approval re-check blocked it, or the write failed; nothing changed.
    FAILED = "failed"
    #: Claimed by one approver's revert; Entra ID is re-checked and AD restored.
    REVERTING = "reverting"
    #: The applied change was undone (old values restored).
    REVERTED = "reverted"


class Decision(StrEnum):
    """What an approver can decide about a request."""

    APPROVE = "approve"
    REJECT = "reject"
    REVERT = "revert"


class InvalidTransition(ValueError):
    """A caller asked for a state change the state machine does not allow (a bug, not a "no")."""

    def __init__(self, from_state: RequestState, to_state: RequestState) -> None:
        self.from_state = from_state
        self.to_state = to_state
        super().__init__(f"a request cannot go from {from_state.value!r} to {to_state.value!r}")


_S = RequestState

#: Every allowed transition: state -> the states that may follow it.
TRANSITIONS: Mapping[RequestState, frozenset[RequestState]] = MappingProxyType(
    {
        _S.PENDING: frozenset({_S.APPROVING, _S.REJECTED, _S.EXPIRED}),
        # Back to PENDING only when the re-check could not run (a directory was unreachable):
        # nothing was decided or written, so the claim is released for another try.
        _S.APPROVING: frozenset({_S.APPLIED, _S.FAILED, _S.PENDING}),
        _S.APPLIED: frozenset({_S.MATCHED, _S.SYNC_FAILED, _S.SYNC_TIMEOUT, _S.REVERTING}),
        _S.SYNC_FAILED: frozenset({_S.REVERTING}),
        # Sync may still bind the users after our deadline; a later look can record it.
        _S.SYNC_TIMEOUT: frozenset({_S.MATCHED, _S.REVERTING}),
        # A revert's claim ends restored, matched (bound meanwhile: nothing is written), or
        # released to the state it came from when nothing was written.
        _S.REVERTING: frozenset(
            {_S.REVERTED, _S.MATCHED, _S.APPLIED, _S.SYNC_FAILED, _S.SYNC_TIMEOUT}
        ),
        # Once Entra ID has bound the users, restoring the old AD values would not unbind
        # them, so a matched request is final.
        _S.MATCHED: frozenset(),
        _S.REJECTED: frozenset(),
        _S.EXPIRED: frozenset(),
        _S.FAILED: frozenset(),
        _S.REVERTED: frozenset(),
    }
)

#: States nothing can follow.
TERMINAL_STATES: frozenset[RequestState] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

#: States in which a request still waits for a person or for sync (shown as "open").
OPEN_STATES: frozenset[RequestState] = frozenset(
    {_S.PENDING, _S.APPROVING, _S.APPLIED, _S.REVERTING}
)

#: States from which an applied change can be undone (claimed as ``reverting`` first).
REVERTIBLE_STATES: frozenset[RequestState] = frozenset(
    s for s, nxt in TRANSITIONS.items() if _S.REVERTING in nxt
)


def can_transition(from_state: RequestState, to_state: RequestState) -> bool:
    """Tell whether a request in ``from_state`` may move to ``to_state``.

    Args:
        from_state: the state the request is in.
        to_state: the state asked for.

    Returns:
        True when the state machine allows the move. Staying in the same state is not a move.
    """
    return to_state in TRANSITIONS[RequestState(from_state)]


def allowed_next_states(state: RequestState) -> frozenset[RequestState]:
    """Return the states that may follow ``state`` (empty for a terminal state).

    Args:
        state: the current state.

    Returns:
        The set of allowed next states.
    """
    return TRANSITIONS[RequestState(state)]


def decision_transition(decision: Decision) -> tuple[frozenset[RequestState], RequestState]:
    """Return the compare-and-set a decision starts with: (from states, to state).

    Approving only claims the request (``approving``), and so does reverting (``reverting``);
    the service then re-checks and writes.

    Args:
        decision: the approver's decision.

    Returns:
        The states the request must be in, and the state the decision moves it to.
    """
    if decision is Decision.APPROVE:
        return frozenset({_S.PENDING}), _S.APPROVING
    if decision is Decision.REJECT:
        return frozenset({_S.PENDING}), _S.REJECTED
    return REVERTIBLE_STATES, _S.REVERTING
