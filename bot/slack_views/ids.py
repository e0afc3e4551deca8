"""Action and view callback ids (the one place they are defined)."""

from __future__ import annotations

from enum import StrEnum


class ActionId(StrEnum):
    """Button action ids."""

    REQUEST_APPROVAL = "smtpmatch_request_approval"
    APPROVE = "smtpmatch_approve"
    REJECT = "smtpmatch_reject"
    REVERT = "smtpmatch_revert"


class CallbackId(StrEnum):
    """Modal callback ids."""

    REQUEST_REASON = "smtpmatch_request_reason"
    REJECT_REASON = "smtpmatch_reject_reason"


#: Block and action ids of the reason input in both modals.
REASON_BLOCK = "reason"
REASON_ACTION = "reason_input"
MAX_REASON_LENGTH = 500
