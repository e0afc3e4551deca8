"""Who may talk to the bot at all: the one Bolt middleware that pins the workspace.

With ``SLACK_TEAM_ID`` set, every request must come from that team: the team of the request
and, when Slack names it, the team of the user (a shared channel or another organisation of an
Enterprise Grid carries its own). Anything else is answered with a short refusal and goes no
further: no listener runs, nothing is looked up, App Home shows nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from slack_bolt.response import BoltResponse

log = logging.getLogger("smtpmatch.handlers")

#: What a person of another workspace is told (a slash command shows it; other kinds do not).
FOREIGN_WORKSPACE = (
    ":no_entry: This smtpmatch bot serves another Slack workspace; nothing was looked up."
)

Middleware = Callable[..., BoltResponse | None]


def _id_of(value: object) -> str | None:
    """A team or enterprise id given as a string or as ``{"id": …}``."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def teams_of(body: Mapping[str, object]) -> set[str | None]:
    """Every team id a Slack request names (``None`` when it names none).

    Slash commands carry ``team_id``, interactions ``team.id`` and ``user.team_id``, events
    ``team_id`` and their authorizations' ``team_id``.
    """
    teams: set[str | None] = {_id_of(body.get("team_id")) or _id_of(body.get("team"))}
    user = body.get("user")
    if isinstance(user, Mapping) and user.get("team_id"):
        teams.add(_id_of(user.get("team_id")))
    if body.get("user_team"):
        teams.add(_id_of(body.get("user_team")))
    return teams


def workspace_guard(team_id: str | None) -> Middleware:
    """The Bolt middleware that refuses requests from any team but ``team_id``.

    Args:
        team_id: ``SLACK_TEAM_ID``; ``None`` lets every request through (warned at start-up).
    """

    def guard(body: Mapping[str, object], next: Callable[[], None]) -> BoltResponse | None:
        if team_id is None or teams_of(body) == {team_id}:
            next()
            return None
        log.warning(
            "refused a Slack %s from team %s (this bot serves %s)",
            body.get("type") or ("command" if body.get("command") else "request"),
            sorted(t or "?" for t in teams_of(body)),
            team_id,
        )
        if body.get("command"):
            return BoltResponse(
                status=200,
                body={"response_type": "ephemeral", "text": FOREIGN_WORKSPACE},
            )
        return BoltResponse(status=200, body="")

    return guard


def actor_of(body: Mapping[str, object]) -> tuple[str | None, str | None]:
    """The Slack user id and user name a request carries (``user_id``/``user_name`` for a
    slash command, ``user.id`` and ``user.username``/``user.name`` for interactions)."""
    user = body.get("user")
    if isinstance(user, Mapping):
        name = user.get("username") or user.get("name")
        return _id_of(user.get("id")), name if isinstance(name, str) and name else None
    name = body.get("user_name")
    return _id_of(body.get("user_id")), name if isinstance(name, str) and name else None
