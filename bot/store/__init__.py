"""Storage adapter: requests, decisions, audit events and sync watches (SQLAlchemy).

Use ``Store(url)``, call ``migrate()`` once at start-up, and work with the frozen dataclasses
it returns.
"""

from bot.store.repository import (
    AuditEvent,
    MatchRequest,
    RequestNotFound,
    Store,
    StoreError,
    SyncWatch,
)

__all__ = [
    "AuditEvent",
    "MatchRequest",
    "RequestNotFound",
    "Store",
    "StoreError",
    "SyncWatch",
]
