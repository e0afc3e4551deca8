"""The store against real databases: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.exc import IntegrityError

from bot.errors import ConfigurationError
from bot.models import CloudUser, ObjectKind, OnPremUser, ProvisioningError
from bot.ports import AttributeChange, ChangePlan
from bot.rules.checks import Check, CheckId, Report, Status, Verdict
from bot.rules.codec import plan_to_dict, report_to_dict
from bot.rules.requests import InvalidTransition, RequestState
from bot.store import MatchRequest, RequestNotFound, Store
from bot.store.repository import MIGRATIONS_DIR
from bot.store.tables import BigId, JsonDoc, UtcDateTime
from tests.support.postgres import PostgresStartError, ThrowawayPostgres

S = RequestState
HEAD = "0006"
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

PLAN = ChangePlan(
    dn="CN=Jane Doe,OU=Staff,DC=contoso,DC=com",
    changes=(
        AttributeChange("mail", (), ("jane@contoso.com",)),
        AttributeChange(
            "proxyAddresses",
            ("smtp:jdoe@contoso.local",),
            ("SMTP:jane@contoso.com", "smtp:jdoe@contoso.local"),
        ),
    ),
)
#: What the write reports as done (the old values it replaced, the new ones it stored).
APPLIED = ChangePlan(dn=PLAN.dn, changes=(AttributeChange("mail", (), ("jane@contoso.com",)),))
REPORT = Report(
    address="jane@contoso.com",
    verdict=Verdict.ELIGIBLE,
    checks=(
        Check(CheckId.CLOUD_USER_FOUND, Status.PASS, "Cloud user found", "jane@contoso.com"),
        Check(
            CheckId.ONPREM_UPN_DIFFERS,
            Status.WARN,
            "UPN differs",
            "jdoe@contoso.local <> jane@contoso.com",
            "Align the UPNs after the match.",
        ),
    ),
    target_address="jane@contoso.com",
    cloud=CloudUser(
        id="6f1f4a4e-0000-4000-8000-000000000001",
        user_principal_name="jane@contoso.onmicrosoft.com",
        display_name="Jane Doe",
        mail="jane@contoso.com",
        proxy_addresses=("SMTP:jane@contoso.com",),
    ),
    onprem=OnPremUser(
        dn=PLAN.dn,
        object_guid=bytes(range(16)),
        sam_account_name="jdoe",
        user_principal_name="jdoe@contoso.local",
        proxy_addresses=("smtp:jdoe@contoso.local",),
        object_sid="S-1-5-21-1-2-3-1105",
    ),
    plan=PLAN,
    summary="Jane can be matched.",
)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def timed_store(store: Store, store_url: str, clock: FakeClock) -> Iterator[Store]:
    """A store on the same (migrated) database whose "now" is the fake clock."""
    with Store(store_url, clock=clock) as timed:
        yield timed


def new_request(store: Store, **overrides: Any) -> MatchRequest:
    fields: dict[str, Any] = {
        "address": "jane@contoso.com",
        "onprem_id": "jdoe",
        "target_address": "jane@contoso.com",
        "onprem_dn": "CN=Jane Doe,OU=Staff,DC=contoso,DC=com",
        "cloud_user_id": "6f1f4a4e-0000-4000-8000-000000000001",
        "cloud_upn": "jane@contoso.onmicrosoft.com",
        "anchor": "TmV3IEFuY2hvcg==",
        "plan": PLAN,
        "report": REPORT,
        "requester_id": "U0HELPDESK",
        "requester_name": "Hal Helpdesk",
        "reason": "new starter, mailbox created in the cloud first",
        "expires_at": datetime.now(UTC) + timedelta(days=2),
        "requester_channel": "D0HAL",
    }
    fields.update(overrides)
    return store.create_request(**fields)


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released at the same instant; return their results."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [f.result() for f in futures]


# -- requests ------------------------------------------------------------------------------


def test_a_created_request_reads_back_with_its_json_and_aware_utc_datetimes(
    store: Store,
) -> None:
    expires = datetime(2026, 3, 3, 11, 0, tzinfo=timezone(timedelta(hours=2)))
    created = new_request(store, expires_at=expires)

    loaded = store.get_request(created.id)

    assert loaded == created
    assert loaded.state is S.PENDING
    assert loaded.version == 1
    assert loaded.plan == PLAN
    assert loaded.report == REPORT
    assert loaded.applied is None
    assert loaded.expires_at == expires
    assert loaded.expires_at.tzinfo is UTC
    assert loaded.expires_at.hour == 9
    assert loaded.created_at.tzinfo is UTC
    assert loaded.created_at == loaded.updated_at
    assert abs(loaded.created_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_a_new_request_gets_a_short_unique_url_safe_id(store: Store) -> None:
    ids = {new_request(store).id for _ in range(20)}

    assert len(ids) == 20
    for request_id in ids:
        assert 8 <= len(request_id) <= 16
        assert all(c.isalnum() or c in "-_" for c in request_id)


def test_an_unknown_request_id_reads_as_none(store: Store) -> None:
    assert store.get_request("no-such-id") is None


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        new_request(store, expires_at=datetime(2026, 3, 3, 11, 0))


def test_a_transition_moves_the_state_sets_fields_and_bumps_the_version(
    timed_store: Store, clock: FakeClock
) -> None:
    request = new_request(timed_store)
    decided_at = clock.advance(minutes=5)

    claimed = timed_store.transition(
        request.id,
        [S.PENDING],
        S.APPROVING,
        decided_by="U0APPROVER",
        decided_at=decided_at,
        decision_reason="looks right",
    )
    applied = timed_store.transition(request.id, [S.APPROVING], S.APPLIED, applied=APPLIED)

    assert claimed is not None
    assert claimed.state is S.APPROVING
    assert claimed.version == 2
    assert claimed.decided_by == "U0APPROVER"
    assert claimed.decided_at == decided_at
    assert claimed.updated_at == decided_at
    assert claimed.created_at == request.created_at
    assert applied is not None
    assert applied.version == 3
    assert applied.applied == APPLIED
    assert timed_store.get_request(request.id) == applied


def test_a_transition_from_a_state_the_request_is_not_in_returns_none_and_changes_nothing(
    store: Store,
) -> None:
    request = new_request(store)
    store.transition(request.id, [S.PENDING], S.REJECTED, decided_by="U0APPROVER")
    before = store.get_request(request.id)

    lost = store.transition(request.id, [S.PENDING], S.APPROVING, decided_by="U0OTHER")

    assert lost is None
    assert store.get_request(request.id) == before


def test_a_transition_of_an_unknown_request_returns_none(store: Store) -> None:
    assert store.transition("no-such-id", [S.PENDING], S.APPROVING) is None


def test_a_transition_the_state_machine_forbids_is_refused_and_changes_nothing(
    store: Store,
) -> None:
    request = new_request(store)

    with pytest.raises(InvalidTransition):
        store.transition(request.id, [S.PENDING], S.APPLIED)
    with pytest.raises(InvalidTransition):
        # One forbidden source is enough to refuse the whole call.
        store.transition(request.id, [S.PENDING, S.MATCHED], S.REJECTED)

    assert store.get_request(request.id) == request


def test_the_state_id_and_bookkeeping_fields_cannot_be_set_directly(store: Store) -> None:
    request = new_request(store)

    for field in ("state", "id", "version", "created_at", "updated_at", "no_such_field"):
        with pytest.raises(TypeError, match=field):
            store.update_fields(request.id, **{field: "x"})
    with pytest.raises(TypeError):
        store.transition(request.id, [S.PENDING], S.REJECTED, version=7)

    assert store.get_request(request.id) == request


def test_update_fields_records_where_the_messages_are(store: Store) -> None:
    request = new_request(store)

    updated = store.update_fields(
        request.id, approval_channel="C0APPROVE", approval_ts="1700000000.000100"
    )
    notified = store.update_fields(request.id, notify_ts="1700000001.000200")

    assert updated.approval_channel == "C0APPROVE"
    assert updated.approval_ts == "1700000000.000100"
    assert updated.state is S.PENDING
    assert notified.notify_ts == "1700000001.000200"
    assert notified.approval_ts == "1700000000.000100"
    assert notified.version == request.version + 2


def test_update_fields_of_an_unknown_request_raises_not_found(store: Store) -> None:
    with pytest.raises(RequestNotFound):
        store.update_fields("no-such-id", notify_ts="1.2")


def test_exactly_one_of_two_threads_racing_to_claim_a_request_wins(store: Store) -> None:
    for _ in range(50):
        request = new_request(store)

        results = race(
            partial(store.transition, request.id, [S.PENDING], S.APPROVING, decided_by="A"),
            partial(store.transition, request.id, [S.PENDING], S.APPROVING, decided_by="B"),
        )

        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        final = store.get_request(request.id)
        assert final is not None
        assert final.decided_by == winners[0].decided_by
        assert final.version == 2


def test_exactly_one_of_two_replicas_racing_to_decide_a_request_wins(
    store: Store, store_factory: Callable[[], Store]
) -> None:
    replica_a, replica_b = store, store_factory()
    for _ in range(50):
        request = new_request(replica_a)

        results = race(
            partial(replica_a.transition, request.id, [S.PENDING], S.APPROVING, decided_by="A"),
            partial(replica_b.transition, request.id, [S.PENDING], S.REJECTED, decided_by="B"),
        )

        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        final = replica_b.get_request(request.id)
        assert final is not None
        assert final.state is winners[0].state
        assert final.decided_by == winners[0].decided_by


def test_requests_are_listed_newest_first_by_requester_and_state(
    timed_store: Store, clock: FakeClock
) -> None:
    first = new_request(timed_store, requester_id="U1")
    clock.advance(minutes=1)
    second = new_request(timed_store, requester_id="U1")
    clock.advance(minutes=1)
    other = new_request(timed_store, requester_id="U2")
    clock.advance(minutes=1)
    third = new_request(timed_store, requester_id="U1")
    timed_store.transition(second.id, [S.PENDING], S.REJECTED)

    mine = timed_store.list_requests(requester_id="U1")
    pending = timed_store.list_requests(states=[S.PENDING])
    latest_two = timed_store.list_requests(limit=2)

    assert [r.id for r in mine] == [third.id, second.id, first.id]
    assert [r.id for r in pending] == [third.id, other.id, first.id]
    assert [r.id for r in latest_two] == [third.id, other.id]


def test_expire_due_expires_only_pending_requests_past_their_expiry_once(store: Store) -> None:
    due = new_request(store, expires_at=T0)
    exactly_due = new_request(store, expires_at=T0 + timedelta(hours=1))
    not_yet = new_request(store, expires_at=T0 + timedelta(hours=2))
    decided = new_request(store, expires_at=T0)
    store.transition(decided.id, [S.PENDING], S.APPROVING)
    now = T0 + timedelta(hours=1)

    expired = store.expire_due(now)
    again = store.expire_due(now)

    assert [r.id for r in expired] == [due.id, exactly_due.id]
    assert all(r.state is S.EXPIRED and r.updated_at == now for r in expired)
    assert again == []
    still_pending = store.get_request(not_yet.id)
    assert still_pending is not None and still_pending.state is S.PENDING
    claimed = store.get_request(decided.id)
    assert claimed is not None and claimed.state is S.APPROVING


def test_two_replicas_expiring_at_once_each_announce_different_requests(
    store: Store, store_factory: Callable[[], Store]
) -> None:
    replica_b = store_factory()
    ids = {new_request(store, expires_at=T0).id for _ in range(30)}

    got_a, got_b = race(lambda: store.expire_due(T0), lambda: replica_b.expire_due(T0))

    ids_a = {r.id for r in got_a}
    ids_b = {r.id for r in got_b}
    assert not ids_a & ids_b
    assert ids_a | ids_b == ids


# -- audit ---------------------------------------------------------------------------------


def test_audit_events_are_listed_oldest_first_since_a_time_and_by_request(
    timed_store: Store, clock: FakeClock
) -> None:
    request = new_request(timed_store)
    asked = timed_store.append_audit(
        "request.created", request_id=request.id, actor="U0HELPDESK", details={"a": [1, 2]}
    )
    clock.advance(minutes=10)
    cut = clock.now
    approved = timed_store.append_audit(
        "request.approved", request_id=request.id, actor="U0APPROVER"
    )
    startup = timed_store.append_audit("bot.started", details={"version": "0.1.0"})

    everything = timed_store.list_audit()
    recent = timed_store.list_audit(since=cut)
    about_request = timed_store.list_audit(request_id=request.id)

    assert everything == [asked, approved, startup]
    assert recent == [approved, startup]
    assert about_request == [asked, approved]
    assert asked.details == {"a": [1, 2]}
    assert approved.details == {}
    assert approved.at == cut and approved.at.tzinfo is UTC
    assert startup.request_id is None and startup.actor is None


def test_the_audit_log_refuses_updates_and_deletes(store: Store) -> None:
    event = store.append_audit("request.created", actor="U0HELPDESK")
    audit = sa.table("audit_events", sa.column("id"), sa.column("actor"))

    with pytest.raises(IntegrityError, match="append-only"), store.connection() as conn:
        conn.execute(sa.update(audit).where(audit.c.id == event.id).values(actor="U0EVIL"))
    with pytest.raises(IntegrityError, match="append-only"), store.connection() as conn:
        conn.execute(sa.delete(audit))
    if store.dialect == "postgresql":
        with pytest.raises(IntegrityError, match="append-only"), store.connection() as conn:
            conn.execute(sa.text("TRUNCATE audit_events"))

    assert store.list_audit() == [event]


# -- sync watches --------------------------------------------------------------------------


def new_watch(store: Store, *, next_poll_at: datetime = T0) -> int:
    request = new_request(store)
    watch = store.create_watch(
        request.id,
        anchor=request.anchor,
        cloud_user_id=request.cloud_user_id,
        deadline=T0 + timedelta(hours=2),
        next_poll_at=next_poll_at,
    )
    return watch.id


def test_a_new_watch_is_open_unleased_and_found_by_its_request(store: Store) -> None:
    request = new_request(store)

    watch = store.create_watch(
        request.id, "QW5jaG9y", "cloud-1", deadline=T0 + timedelta(hours=2), next_poll_at=T0
    )

    assert store.get_watch(request.id) == watch
    assert store.list_open_watches() == [watch]
    assert watch.attempts == 0
    assert watch.lease_owner is None and watch.lease_until is None
    assert watch.outcome is None and watch.finished_at is None
    assert watch.deadline == T0 + timedelta(hours=2)
    assert store.get_watch("no-such-request") is None


def test_only_due_watches_are_leased_and_not_again_while_the_lease_holds(store: Store) -> None:
    due = new_watch(store, next_poll_at=T0)
    later = new_watch(store, next_poll_at=T0 + timedelta(minutes=5))

    first = store.lease_due_watches("replica-a", T0, lease_seconds=30)
    second = store.lease_due_watches("replica-b", T0 + timedelta(seconds=29), lease_seconds=30)

    assert [w.id for w in first] == [due]
    assert first[0].lease_owner == "replica-a"
    assert first[0].lease_until == T0 + timedelta(seconds=30)
    assert second == []
    assert later in {w.id for w in store.list_open_watches()}


def test_leasing_respects_the_limit_and_takes_the_earliest_due_first(store: Store) -> None:
    ids = [new_watch(store, next_poll_at=T0 - timedelta(minutes=m)) for m in range(5)]

    leased = store.lease_due_watches("replica-a", T0, lease_seconds=30, limit=2)

    assert [w.id for w in leased] == [ids[4], ids[3]]


def test_two_replicas_leasing_concurrently_never_claim_the_same_watch(
    store: Store, store_factory: Callable[[], Store]
) -> None:
    replica_b = store_factory()
    ids = {new_watch(store) for _ in range(40)}

    def drain(replica: Store, owner: str) -> list[int]:
        claimed: list[int] = []
        while batch := replica.lease_due_watches(owner, T0, lease_seconds=60, limit=3):
            claimed.extend(w.id for w in batch)
        return claimed

    got_a, got_b = race(lambda: drain(store, "replica-a"), lambda: drain(replica_b, "replica-b"))

    assert len(got_a) + len(got_b) == len(ids)
    assert set(got_a) | set(got_b) == ids
    assert not set(got_a) & set(got_b)
    owners = {w.id: w.lease_owner for w in store.list_open_watches()}
    assert all(owners[i] == "replica-a" for i in got_a)
    assert all(owners[i] == "replica-b" for i in got_b)


def test_an_expired_lease_lets_another_replica_take_over_and_fences_off_the_first(
    store: Store, store_factory: Callable[[], Store]
) -> None:
    replica_b = store_factory()
    watch_id = new_watch(store)
    store.lease_due_watches("replica-a", T0, lease_seconds=30)

    taken = replica_b.lease_due_watches("replica-b", T0 + timedelta(seconds=31), lease_seconds=30)
    late_finish = store.finish_watch(watch_id, "replica-a", "matched", "bound")
    late_reschedule = store.reschedule_watch(watch_id, "replica-a", T0, attempts=9)

    assert [w.id for w in taken] == [watch_id]
    assert taken[0].lease_owner == "replica-b"
    assert late_finish is False
    assert late_reschedule is False
    assert replica_b.finish_watch(watch_id, "replica-b", "matched", "bound to the AD user")
    finished = store.list_open_watches()
    assert finished == []


def test_a_watch_can_only_be_finished_by_its_lease_holder_and_only_once(
    timed_store: Store, clock: FakeClock
) -> None:
    watch_id = new_watch(timed_store)
    request_id = next(w.request_id for w in timed_store.list_open_watches())
    never_leased = timed_store.finish_watch(watch_id, "replica-a", "matched", "x")
    timed_store.lease_due_watches("replica-a", T0, lease_seconds=30)
    finished_at = clock.advance(seconds=10)

    by_other = timed_store.finish_watch(watch_id, "replica-b", "sync_failed", "x")
    by_holder = timed_store.finish_watch(watch_id, "replica-a", "sync_failed", "duplicate UPN")
    twice = timed_store.finish_watch(watch_id, "replica-a", "matched", "x")

    assert (never_leased, by_other, by_holder, twice) == (False, False, True, False)
    watch = timed_store.get_watch(request_id)
    assert watch is not None
    assert watch.outcome == "sync_failed"
    assert watch.detail == "duplicate UPN"
    assert watch.finished_at == finished_at
    assert watch.lease_owner is None and watch.lease_until is None
    assert timed_store.lease_due_watches("replica-b", T0 + timedelta(days=1), 30) == []


def test_rescheduling_releases_the_lease_and_defers_the_next_poll(store: Store) -> None:
    watch_id = new_watch(store)
    store.lease_due_watches("replica-a", T0, lease_seconds=30)

    by_other = store.reschedule_watch(watch_id, "replica-b", T0 + timedelta(minutes=1), 1)
    by_holder = store.reschedule_watch(watch_id, "replica-a", T0 + timedelta(minutes=1), 1)
    too_early = store.lease_due_watches("replica-b", T0 + timedelta(seconds=59), 30)
    on_time = store.lease_due_watches("replica-b", T0 + timedelta(minutes=1), 30)

    assert by_other is False
    assert by_holder is True
    assert too_early == []
    assert [w.id for w in on_time] == [watch_id]
    assert on_time[0].attempts == 1
    assert on_time[0].lease_owner == "replica-b"


# -- schema and lifecycle ------------------------------------------------------------------


def test_migrating_an_up_to_date_database_again_changes_nothing(store: Store) -> None:
    request = new_request(store)

    store.migrate()

    assert store.schema_revision() == HEAD
    assert store.get_request(request.id) == request


def test_upgrading_a_revision_1_database_keeps_its_data(store_url: str) -> None:
    with Store(store_url) as old:
        old.migrate("0001")
        assert old.schema_revision() == "0001"
        # Written as revision 1 code would: its columns only, without the store's helpers.
        with old.connection() as conn:
            insert_revision_1_rows(conn)

    with Store(store_url) as upgraded:
        upgraded.migrate()

        assert upgraded.schema_revision() == HEAD
        request = upgraded.get_request("OLDREQUEST01")
        assert request is not None
        assert request.state is S.APPLIED
        assert request.plan == PLAN
        assert request.applied == APPLIED
        assert request.report == REPORT
        assert request.expires_at == T0 + timedelta(days=2)
        assert [e.event for e in upgraded.list_audit(request_id=request.id)] == [
            "request.created",
            "request.applied",
        ]
        watch = upgraded.get_watch(request.id)
        assert watch is not None
        assert watch.attempts == 3 and watch.finished_at is None
        # The new column and the new guard work on the old data.
        [leased] = upgraded.lease_due_watches("replica-a", T0 + timedelta(hours=1), 30)
        assert upgraded.finish_watch(leased.id, "replica-a", "matched", "bound")
        watch = upgraded.get_watch(request.id)
        assert watch is not None and watch.finished_at is not None
        with pytest.raises(IntegrityError), upgraded.connection() as conn:
            conn.execute(sa.text("DELETE FROM audit_events"))
        with upgraded.connection() as conn:
            indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("requests")}
        assert "ix_requests_state_expires_at" in indexes


def insert_revision_1_rows(conn: sa.Connection) -> None:
    requests = sa.table(
        "requests",
        *(
            sa.column(name, JsonDoc if name in {"plan", "report", "applied"} else None)
            for name in [
                "id",
                "address",
                "onprem_id",
                "target_address",
                "onprem_dn",
                "cloud_user_id",
                "cloud_upn",
                "anchor",
                "plan",
                "report",
                "requester_id",
                "state",
                "decided_by",
                "applied",
                "version",
            ]
        ),
        *(
            sa.column(name, UtcDateTime())
            for name in ("created_at", "expires_at", "updated_at", "decided_at")
        ),
    )
    audit = sa.table(
        "audit_events",
        sa.column("at", UtcDateTime()),
        sa.column("event"),
        sa.column("request_id"),
        sa.column("actor"),
        sa.column("details", JsonDoc),
    )
    watches = sa.table(
        "sync_watches",
        sa.column("id", BigId),
        sa.column("request_id"),
        sa.column("anchor"),
        sa.column("cloud_user_id"),
        sa.column("attempts"),
        *(
            sa.column(name, UtcDateTime())
            for name in ("created_at", "deadline", "next_poll_at", "lease_until")
        ),
    )
    conn.execute(
        sa.insert(requests).values(
            id="OLDREQUEST01",
            address="jane@contoso.com",
            onprem_id=None,
            target_address="jane@contoso.com",
            onprem_dn="CN=Jane Doe,OU=Staff,DC=contoso,DC=com",
            cloud_user_id="cloud-1",
            cloud_upn="jane@contoso.onmicrosoft.com",
            anchor="QW5jaG9y",
            # What the code of revisions 1 and 2 wrote: the --json shape.
            plan=plan_to_dict(PLAN),
            report=report_to_dict(REPORT),
            requester_id="U0HELPDESK",
            state="applied",
            decided_by="U0APPROVER",
            applied=plan_to_dict(APPLIED),
            version=3,
            created_at=T0,
            expires_at=T0 + timedelta(days=2),
            updated_at=T0,
            decided_at=T0,
        )
    )
    conn.execute(
        sa.insert(audit),
        [
            {
                "at": T0,
                "event": "request.created",
                "request_id": "OLDREQUEST01",
                "actor": "U0HELPDESK",
                "details": {},
            },
            {
                "at": T0 + timedelta(minutes=1),
                "event": "request.applied",
                "request_id": "OLDREQUEST01",
                "actor": "U0APPROVER",
                "details": {"mail": "jane@contoso.com"},
            },
        ],
    )
    conn.execute(
        sa.insert(watches).values(
            request_id="OLDREQUEST01",
            anchor="QW5jaG9y",
            cloud_user_id="cloud-1",
            attempts=3,
            created_at=T0,
            deadline=T0 + timedelta(hours=2),
            next_poll_at=T0 + timedelta(minutes=3),
            lease_until=None,
        )
    )


def test_a_new_store_on_the_same_database_loses_nothing(store: Store, store_url: str) -> None:
    request = new_request(store)
    store.update_fields(request.id, approval_channel="C0APPROVE", approval_ts="1.1")
    store.transition(request.id, [S.PENDING], S.APPROVING, decided_by="U0APPROVER")
    applied = store.transition(request.id, [S.APPROVING], S.APPLIED, applied=APPLIED)
    watch = store.create_watch(request.id, "QW5jaG9y", "cloud-1", T0, T0)
    events = [store.append_audit("request.applied", request_id=request.id, details={"n": 1})]
    store.close()

    with Store(store_url) as restarted:
        restarted.migrate()

        assert restarted.get_request(request.id) == applied
        assert restarted.get_watch(request.id) == watch
        assert restarted.list_audit() == events


def test_a_postgresql_url_is_served_by_psycopg_3(store_url: str) -> None:
    with Store(store_url) as plain:
        assert plain.dialect in {"sqlite", "postgresql"}
        plain.migrate()
        assert plain.schema_revision() == HEAD
    if store_url.startswith("postgresql"):
        explicit = store_url.replace("postgresql://", "postgresql+psycopg://", 1)
        with Store(explicit) as with_driver:
            assert with_driver.schema_revision() == HEAD


@pytest.mark.parametrize(
    "url", ["mysql://root@localhost/db", "postgresql+psycopg2://u@h/db", "not a url"]
)
def test_an_unsupported_database_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="SMTPMATCH_DATABASE_URL"):
        Store(url)


def test_a_configuration_error_never_shows_the_password() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Store("oracle://scott:tiger-secret@db.example/orcl")

    assert "tiger-secret" not in str(raised.value)


def test_the_migrations_downgrade_to_revision_1_and_back(store: Store) -> None:
    request = new_request(store)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))

    with store.connection() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    downgraded = store.schema_revision()
    store.migrate()

    assert downgraded == "0001"
    assert store.schema_revision() == HEAD
    assert store.get_request(request.id) == request


def test_a_postgresql_that_cannot_start_is_reported_with_the_reason(tmp_path: Path) -> None:
    server = ThrowawayPostgres(tmp_path / "no-such-bin")
    try:
        with pytest.raises(PostgresStartError, match="initdb could not run"):
            server.start()
    finally:
        server.stop()


# -- audit written with the change it records ------------------------------------------------


def test_a_transition_and_its_audit_event_are_written_together(store: Store) -> None:
    from bot.store.repository import AuditNote

    request = new_request(store, audit=AuditNote("requested", "U1", {"reason": "x"}))
    moved = store.transition(
        request.id,
        [RequestState.PENDING],
        RequestState.REJECTED,
        audit=AuditNote("rejected", "U2", {"reason": "no"}),
        decided_by="U2",
    )
    lost = store.transition(
        request.id,
        [RequestState.PENDING],
        RequestState.EXPIRED,
        audit=AuditNote("expired"),
    )
    assert moved is not None and lost is None
    events = store.list_audit(request_id=request.id)
    assert [(e.event, e.actor) for e in events] == [("requested", "U1"), ("rejected", "U2")]
    assert store.get_audit(events[1].id) == events[1]
    assert store.get_audit(10**9) is None


# -- typed documents: round trips and the conversion of rows the previous schema wrote -----


FULL_REPORT = replace(
    REPORT,
    verdict=Verdict.BLOCKED,
    cloud=replace(
        REPORT.cloud,
        on_premises_sync_enabled=False,
        provisioning_errors=(
            ProvisioningError("PropertyConflict", "ProxyAddresses", "SMTP:jane@contoso.com", "x"),
        ),
    ),
    onprem=replace(
        REPORT.onprem,
        kind=ObjectKind.CONTACT,
        consistency_guid=bytes(range(16, 32)),
        user_account_control=0x202,
        exchange_schema=True,
        exchange_mailbox_guid="5b2c…",
        exchange_recipient_type_details=1,
    ),
    candidates=(REPORT.onprem, replace(REPORT.onprem, dn="CN=Jane Two,DC=contoso,DC=com")),
)


@pytest.mark.parametrize("report", [REPORT, FULL_REPORT], ids=["eligible", "every-field"])
def test_every_persisted_type_reads_back_equal(store: Store, report: Report) -> None:
    request = new_request(store, report=report, plan=PLAN)
    store.transition(request.id, [S.PENDING], S.APPROVING)
    store.transition(request.id, [S.APPROVING], S.APPLIED, applied=APPLIED)

    loaded = store.get_request(request.id)

    assert loaded is not None
    assert loaded.report == report and loaded.plan == PLAN and loaded.applied == APPLIED
    assert loaded.report.onprem is not None
    assert loaded.report.onprem.anchor == report.onprem.anchor  # bytes survive the JSON


def test_a_field_that_is_not_a_domain_value_is_refused(store: Store) -> None:
    request = new_request(store)
    with pytest.raises(TypeError, match="ChangePlan"):
        store.update_fields(request.id, applied={"dn": "x", "changes": []})


def test_rows_the_previous_schema_wrote_are_converted_to_typed_values(store_url: str) -> None:
    with Store(store_url) as old:
        old.migrate("0002")
        with old.connection() as conn:
            insert_revision_1_rows(conn)  # 0002 wrote the same documents as 0001
            conn.execute(
                sa.text(
                    "INSERT INTO requests (id, address, target_address, onprem_dn, "
                    "cloud_user_id, cloud_upn, anchor, plan, report, requester_id, state, "
                    "created_at, expires_at, updated_at, version) VALUES ('OLDPENDING01', "
                    "'jane@contoso.com', 'jane@contoso.com', 'CN=x', 'cloud-1', 'j@x', 'QQ==', "
                    ":plan, :report, 'U1', 'pending', :t, :t, :t, 1)"
                ).bindparams(
                    sa.bindparam("plan", type_=JsonDoc),
                    sa.bindparam("report", type_=JsonDoc),
                    sa.bindparam("t", type_=UtcDateTime()),
                ),
                {
                    "plan": plan_to_dict(PLAN),
                    "report": report_to_dict(replace(REPORT, cloud=None, onprem=None)),
                    "t": T0,
                },
            )

    with Store(store_url) as upgraded:
        upgraded.migrate()

        assert upgraded.schema_revision() == HEAD
        applied = upgraded.get_request("OLDREQUEST01")
        pending = upgraded.get_request("OLDPENDING01")
        assert applied is not None and pending is not None
        assert applied.report == REPORT and applied.plan == PLAN and applied.applied == APPLIED
        assert pending.report == replace(REPORT, cloud=None, onprem=None)
        assert pending.applied is None
        # The converted request goes on like any other: its revert restores the old values.
        assert applied.applied.inverse().changes[0].after == ()


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "private.db"
    with Store(f"sqlite:///{path}") as store:
        store.migrate()
        new_request(store)
        files = [p for p in tmp_path.iterdir() if p.name.startswith("private.db")]
        assert {p.name for p in files} >= {"private.db", "private.db-wal"}
        for file in files:
            assert file.stat().st_mode & 0o777 == 0o600, file.name


def test_two_submissions_racing_for_one_address_create_one_request(store: Store) -> None:
    from bot.domain import OpenRequestExists

    def create() -> MatchRequest | OpenRequestExists:
        try:
            return new_request(store, exclusive=True)
        except OpenRequestExists as exc:
            return exc

    results = race(create, create, create)

    created = [r for r in results if isinstance(r, MatchRequest)]
    refused = [r for r in results if isinstance(r, OpenRequestExists)]
    assert len(created) == 1 and len(refused) == 2
    assert {r.existing.id for r in refused} == {created[0].id}
    assert len(store.list_requests()) == 1
