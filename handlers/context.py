"""What every handler needs, built once by the composition root."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient

from bot.errors import DirectoryError, SmtpMatchError
from bot.services.requests import RequestServices, new_reference
from bot.slack_views.blocks import error_blocks

log = logging.getLogger("smtpmatch.handlers")


@dataclass
class BotContext:
    """Services and Slack destinations for the handlers."""

    services: RequestServices
    approval_channel: str | None
    notify_channel: str | None = None
    #: Where slow work runs after the ack. Bolt's own listener pool is small; if the lookups
    #: ran there, a burst of commands against a slow directory would queue later acks.
    background: Executor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=32, thread_name_prefix="work")
    )


class SlackTeamDirectory:
    """User-group membership from the Slack Web API, asked at click time (no caching, so a
    member removed from the approvers' group loses the right at once)."""

    def __init__(self, client: WebClient) -> None:
        self._client = client

    def group_members(self, group_id: str) -> Collection[str]:
        """User ids of the group ``group_id`` (``usergroups.users.list``)."""
        response = self._client.usergroups_users_list(usergroup=group_id)
        users = response.get("users") or []
        return frozenset(str(u) for u in users)


@contextlib.contextmanager
def reply_on_fault(reply: Callable[..., Any], what: str) -> Iterator[None]:
    """Turn a fault into a short user message with a reference id that is also in the log.

    A "no" from the rules is never an exception, so anything caught here is a fault: a directory
    that could not answer, or a bug. The full error goes to the log only.
    """
    try:
        yield
    except DirectoryError as exc:
        reference = new_reference()
        log.warning("%s failed [ref %s]: %s", what, reference, exc)
        reply(
            text=f"{exc.directory} could not answer; nothing was changed. (ref {reference})",
            blocks=error_blocks(
                f"{exc.directory} could not answer, so {what} did not finish. Nothing was "
                f"changed. {exc}",
                reference,
            ),
        )
    except SmtpMatchError as exc:
        reference = new_reference()
        log.warning("%s failed [ref %s]: %s", what, reference, exc)
        reply(text=f"{exc} (ref {reference})", blocks=error_blocks(str(exc), reference))
    except Exception:
        reference = new_reference()
        log.exception("%s failed unexpectedly [ref %s]", what, reference)
        reply(
            text=f"Something went wrong; nothing was changed. (ref {reference})",
            blocks=error_blocks("Something went wrong; nothing was changed.", reference),
        )
