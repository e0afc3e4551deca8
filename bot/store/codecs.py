"""Domain types to and from the JSON kept in the database's document columns.

One codec per persisted type, built on pydantic's validation of the frozen dataclasses, so a
field added to a report, a check, a plan or a user round-trips without a change here. Bytes
(the AD object GUID) travel as Base64. JSON exists only here, at the store's edge.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict, JsonValue, create_model

from bot.ports import ChangePlan
from bot.rules.checks import Report

T = TypeVar("T")

#: What a document column holds.
Document = dict[str, JsonValue]

_CONFIG = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64", frozen=True)


class Codec(Generic[T]):
    """Dumps a domain value to a JSON document and loads it back, losslessly.

    Args:
        kind: the frozen dataclass to persist.
    """

    def __init__(self, kind: type[T]) -> None:
        self.kind = kind
        # A one-field model carries the config (stdlib dataclasses cannot take one directly);
        # nested dataclasses follow it, so bytes are Base64 at every depth.
        self._model: type[BaseModel] = create_model(
            f"{kind.__name__}Document", __config__=_CONFIG, value=(kind, ...)
        )

    def dump(self, value: T) -> Document:
        """The JSON document of ``value``."""
        text = self._model(value=value).model_dump_json()
        return cast(Document, json.loads(text)["value"])

    def load(self, document: Mapping[str, JsonValue]) -> T:
        """The value a document holds.

        Raises:
            pydantic.ValidationError: the document does not describe a ``kind``.
        """
        model = self._model.model_validate_json(json.dumps({"value": document}))
        return cast(T, getattr(model, "value"))  # noqa: B009 (a dynamic model's field)


REPORT = Codec(Report)
PLAN = Codec(ChangePlan)
