"""Slack's payloads, parsed into small typed values at the edge (nothing else reads JSON)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.errors import InvalidInput
from bot.slack_views.ids import REASON_ACTION, REASON_BLOCK


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _User(_Loose):
    id: str
    username: str | None = None
    name: str | None = None


class _Action(_Loose):
    action_id: str = ""
    value: str | None = None


class _Input(_Loose):
    value: str | None = None


class _State(_Loose):
    values: dict[str, dict[str, _Input]] = {}


class _View(_Loose):
    callback_id: str = ""
    private_metadata: str | None = None
    state: _State = _State()


class Click(_Loose):
    """A button press: who, which button's value, and the trigger for a modal."""

    user: _User
    actions: list[_Action]
    trigger_id: str | None = None
    response_url: str | None = None

    @property
    def clicker(self) -> str:
        """Slack user id of who clicked."""
        return self.user.id

    @property
    def value(self) -> str:
        """The pressed button's value (a request or check id)."""
        return (self.actions[0].value or "") if self.actions else ""


class Submission(_Loose):
    """A modal submission."""

    user: _User
    view: _View

    @property
    def submitter(self) -> str:
        """Slack user id of who submitted."""
        return self.user.id

    @property
    def submitter_name(self) -> str | None:
        """The submitter's user name, when Slack sent one."""
        return self.user.username or self.user.name or None

    @property
    def metadata(self) -> str:
        """The modal's private metadata (the id it is about)."""
        return self.view.private_metadata or ""

    @property
    def reason(self) -> str:
        """The reason typed in the modal, stripped ("" when empty)."""
        field = self.view.state.values.get(REASON_BLOCK, {}).get(REASON_ACTION)
        return (field.value or "").strip() if field else ""


class Command(_Loose):
    """A slash command."""

    user_id: str = ""
    text: str = ""


class HomeOpened(_Loose):
    """The ``app_home_opened`` event."""

    user: str


def parse_click(body: Mapping[str, object]) -> Click:
    """The button press in a ``block_actions`` payload."""
    return _parse(Click, body)


def parse_submission(body: Mapping[str, object]) -> Submission:
    """The ``view_submission`` payload."""
    return _parse(Submission, body)


def parse_command(body: Mapping[str, object]) -> Command:
    """The slash command's fields."""
    return _parse(Command, body)


def parse_home_opened(event: Mapping[str, object]) -> HomeOpened:
    """The Home tab event."""
    return _parse(HomeOpened, event)


M = TypeVar("M", bound=_Loose)


def _parse(model: type[M], body: Mapping[str, object]) -> M:
    try:
        return model.model_validate(body)
    except ValidationError:
        raise InvalidInput("Slack sent a payload this bot does not understand") from None
