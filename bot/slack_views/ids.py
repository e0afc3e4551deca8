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


class WaveActionId(StrEnum):
    """Button action ids and the modal's callback id of waves."""

    OPEN = "smtpmatch_wave_open"  # value: the scan id
    APPROVE = "smtpmatch_wave_approve"  # value: the wave id
    REJECT = "smtpmatch_wave_reject"  # value: the wave id
    REVERT = "smtpmatch_wave_revert"  # value: the wave id (its not-yet-matched items)
    REVERT_ONE = "smtpmatch_wave_revert_one"  # value: the wave id (opens the address modal)
    STOP = "smtpmatch_wave_stop"  # value: the wave id (skip every user not yet written)
    RESUME = "smtpmatch_wave_resume"  # value: the wave id (a paused wave, now)
    SUBMIT = "smtpmatch_wave_submit"  # the picker modal's callback id
    REVERT_ONE_SUBMIT = "smtpmatch_wave_revert_one_submit"  # the revert-one modal's callback id
    REJECT_SUBMIT = "smtpmatch_wave_reject_submit"  # the rejection modal's callback id


#: Block ids (and action ids) of the wave modals' inputs.
FIELD_DOMAIN = "wave_domain"
FIELD_OU = "wave_ou"
FIELD_LIMIT = "wave_limit"
FIELD_CREATIONS = "wave_creations"
FIELD_REASON = "wave_reason"
FIELD_REVERT_ADDRESS = "wave_revert_address"
FIELD_REJECT_REASON = "wave_reject_reason"
CREATIONS_VALUE = "include"
