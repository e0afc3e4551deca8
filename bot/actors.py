"""Who is acting, by name: the display name a person had when they acted, recorded next to
their id in every audit event written while they act (ids outlive names; auditors read
names)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar

from pydantic import JsonValue

#: The acting person's (id, name), bound while their request is handled.
_ACTING: ContextVar[tuple[str, str] | None] = ContextVar("smtpmatch_acting", default=None)

#: The audit detail that holds the actor's name.
ACTOR_NAME = "actor_name"


@contextlib.contextmanager
def acting(actor: str | None, name: str | None) -> Iterator[None]:
    """Bind ``actor``'s display name for the duration of the ``with`` (and the work it hands
    to the bot's executors, which run in their submitter's context)."""
    token = _ACTING.set((actor, name) if actor and name else None)
    try:
        yield
    finally:
        _ACTING.reset(token)


def with_actor_name(details: Mapping[str, JsonValue], actor: str | None) -> dict[str, JsonValue]:
    """``details`` plus the actor's name, when ``actor`` is the person acting now."""
    acting_now = _ACTING.get()
    out = dict(details)
    if acting_now is not None and actor == acting_now[0] and ACTOR_NAME not in out:
        out[ACTOR_NAME] = acting_now[1]
    return out
