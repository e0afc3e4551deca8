"""The whole-tenant scan against the real Samba DC and the Graph emulator: for a mixed tenant,
every item's verdict (and failing and warning checks) is what ``check`` says for its address;
the bulk read costs a handful of Graph requests; throttling and unreachable directories."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.directories.ad import ActiveDirectory
from bot.directories.entra import EntraDirectory
from bot.errors import DirectoryUnavailable
from bot.rules.checks import Status, Verdict
from bot.rules.codec import report_to_dict
from bot.rules.engine import Policy
from bot.scan.model import ScanResult
from bot.scan.sources import LiveScanSource
from bot.services.check import Directories, check_match
from bot.services.scan import run_scan
from bot.settings import Settings
from tests.support.graph_emulator import GraphEmulator
from tests.support.samba import AdSandbox, SambaDC


@dataclass
class Tenant:
    """The seeded mixed tenant: what each cloud user is expected to come out as."""

    policy: Policy
    expected: dict[str, Verdict]
    not_candidates: set[str]
    #: The members whose Exchange plan is not provisioned (a mailbox without a licence, and
    #: a user without a mailbox): only they need a per-user mailbox question.
    without_plan: set[str]


def seed_mixed_tenant(ad: AdSandbox, graph: GraphEmulator, samba_dc: SambaDC) -> Tenant:
    """Eligible users, users blocked for various reasons, needs_input, needs_account,
    sync_pending, aliases, guests, synced users and duplicates on both sides."""
    state = graph.state
    scope = ad.add_ou("synced")
    outside = ad.add_ou("unsynced")
    expected: dict[str, Verdict] = {}

    def cloud(local: str, *, aliases: tuple[str, ...] = (), **kw: Any) -> tuple[str, str]:
        address = ad.address(local)
        proxies = [f"SMTP:{address}", *(f"smtp:{a}" for a in aliases)]
        user = state.add_user(address, mail=address, proxy_addresses=proxies, **kw)
        return address, user.id

    # eligible: the AD user found by UPN; with aliases; a mailbox without an Exchange licence
    address, uid = cloud("ella", display_name="Ella Eligible")
    ad.add_user(ad.sam("ella"), upn=address, ou=scope, display_name="Ella Eligible")
    expected[uid] = Verdict.ELIGIBLE
    address, uid = cloud("alia", aliases=(ad.address("alia.sales"),), display_name="Alia Alias")
    ad.add_user(ad.sam("alia"), upn=address, ou=scope, display_name="Alia Alias")
    expected[uid] = Verdict.ELIGIBLE
    address, shared_id = cloud("shared", display_name="Shared Box")
    state.users[shared_id].exchange_licensed = False
    ad.add_user(ad.sam("shared"), upn=address, ou=scope, display_name="Shared Box")
    expected[shared_id] = Verdict.ELIGIBLE

    # blocked: no mailbox; an active admin role; a role through a role-assignable group;
    # outside the sync scope; a protected AD group (nested); a contact holding the address in
    # AD; a cloud group holding it. An eligible role and a disabled AD account only warn.
    address, nobox_id = cloud("nobox", has_mailbox=False, display_name="No Box")
    ad.add_user(ad.sam("nobox"), upn=address, ou=scope, display_name="No Box")
    expected[nobox_id] = Verdict.BLOCKED
    address, uid = cloud("admin", display_name="Ada Admin")
    state.set_roles(uid, active=["Global Administrator"])
    ad.add_user(ad.sam("admin"), upn=address, ou=scope, display_name="Ada Admin")
    expected[uid] = Verdict.BLOCKED
    address, uid = cloud("viagrp", display_name="Vic Group")
    state.add_group(
        "Helpdesk admins", is_assignable_to_role=True, members=[uid], roles=["User Administrator"]
    )
    ad.add_user(ad.sam("viagrp"), upn=address, ou=scope, display_name="Vic Group")
    expected[uid] = Verdict.BLOCKED
    address, uid = cloud("pim", display_name="Pia Pim")
    state.set_roles(uid, eligible=["Exchange Administrator"])
    ad.add_user(ad.sam("pim"), upn=address, ou=scope, display_name="Pia Pim")
    expected[uid] = Verdict.ELIGIBLE  # an eligible role warns, it does not block
    address, uid = cloud("disabled", display_name="Dis Abled")
    ad.add_user(ad.sam("disabled"), upn=address, ou=scope, disabled=True, display_name="Dis Abled")
    expected[uid] = Verdict.ELIGIBLE  # a disabled AD account warns (sign-in after the match)
    address, uid = cloud("outside", display_name="Out Side")
    ad.add_user(ad.sam("outside"), upn=address, ou=outside, display_name="Out Side")
    expected[uid] = Verdict.BLOCKED
    address, uid = cloud("domadm", display_name="Dom Admin")
    admin_dn = ad.add_user(ad.sam("domadm"), upn=address, ou=scope, display_name="Dom Admin")
    nested = ad.add_group(f"nested{ad.tag}", ou=scope)
    ad.add_member(nested, admin_dn)
    ad.add_member(f"CN=Domain Admins,CN=Users,{samba_dc.base_dn}", nested)
    expected[uid] = Verdict.BLOCKED
    address, uid = cloud("contact", display_name="Con Tact")
    ad.add_user(ad.sam("contact"), upn=address, ou=scope, display_name="Con Tact")
    ad.add_contact(f"Contact {ad.tag}", mail=address, ou=scope)
    expected[uid] = Verdict.BLOCKED
    address, uid = cloud("grouped", display_name="Gro Uped")
    ad.add_user(ad.sam("grouped"), upn=address, ou=scope, display_name="Gro Uped")
    state.add_group("Sales", mail=address, proxy_addresses=[f"SMTP:{address}"])
    expected[uid] = Verdict.BLOCKED

    # duplicates in the cloud: another member holds the address as an alias; a guest holds
    # another member's address as its mail
    address, uid = cloud("dupa", display_name="Dup A")
    ad.add_user(ad.sam("dupa"), upn=address, ou=scope, display_name="Dup A")
    expected[uid] = Verdict.BLOCKED
    _, other = cloud("dupb", aliases=(address,), display_name=f"Dup B {ad.tag}")
    expected[other] = Verdict.NEEDS_ACCOUNT
    address, uid = cloud("guested", display_name="Gue Sted")
    ad.add_user(ad.sam("guested"), upn=address, ou=scope, display_name="Gue Sted")
    expected[uid] = Verdict.BLOCKED
    guest_twin = state.add_user(
        f"guested_ext#EXT#{ad.tag}@contoso.onmicrosoft.com", mail=address, user_type="Guest"
    )

    # an earlier failed attempt: a soft-deleted cloud twin carries the AD user's anchor
    address, uid = cloud("ghost", display_name="Gho St")
    ghost_dn = ad.add_user(ad.sam("ghost"), upn=address, ou=scope, display_name="Gho St")
    guid = ad.read(ghost_dn, ["objectGUID"])["objectGUID"][0]
    raw = guid if isinstance(guid, bytes) else uuid.UUID(str(guid)).bytes_le
    twin = state.add_user(
        f"ghost{ad.tag}@contoso.onmicrosoft.com",
        on_premises_immutable_id=base64.b64encode(raw).decode(),
        on_premises_sync_enabled=True,
    )
    state.delete_user(twin.id)
    expected[uid] = Verdict.BLOCKED

    # needs_input: two AD users hold the address; no AD user by address but a lookalike
    address, uid = cloud("twin", display_name="Twi N")
    ad.add_user(ad.sam("twina"), upn=address, ou=scope)
    ad.add_user(ad.sam("twinb"), mail=address, ou=scope)
    expected[uid] = Verdict.NEEDS_INPUT
    _, uid = cloud("looky", display_name=f"Looky Alike {ad.tag}")
    ad.add_user(ad.sam("lookother"), ou=scope, display_name=f"Looky Alike {ad.tag}")
    expected[uid] = Verdict.NEEDS_INPUT

    # needs_account: nothing in AD
    _, uid = cloud("newbie", display_name=f"New Bie {ad.tag}")
    expected[uid] = Verdict.NEEDS_ACCOUNT

    # sync_pending: AD already carries the address as its primary
    address, uid = cloud("ready", display_name="Rea Dy")
    ad.add_user(
        ad.sam("ready"),
        upn=address,
        mail=address,
        proxy_addresses=[f"SMTP:{address}"],
        ou=scope,
        display_name="Rea Dy",
    )
    expected[uid] = Verdict.SYNC_PENDING

    # not candidates: a guest, a synced user
    guest = state.add_user(
        f"guest_ext#EXT#{ad.tag}@contoso.onmicrosoft.com",
        mail=f"guest.{ad.tag}@fabrikam.com",
        user_type="Guest",
    )
    synced = state.add_user(
        ad.address("synced"),
        mail=ad.address("synced"),
        on_premises_immutable_id="c3luY2Vk",
        on_premises_sync_enabled=True,
    )
    return Tenant(
        # Creation offered in the scope's OU, so needs_account items carry a creation plan.
        policy=Policy(sync_scope=(scope,), create_ou=scope),
        expected=expected,
        not_candidates={guest.id, synced.id, guest_twin.id},
        without_plan={shared_id, nobox_id},
    )


@pytest.fixture
def tenant(ad: AdSandbox, graph: GraphEmulator, samba_dc: SambaDC) -> Tenant:
    """The mixed tenant, seeded on Samba and the emulator."""
    return seed_mixed_tenant(ad, graph, samba_dc)


@pytest.fixture
def directories(
    ad_settings: Settings, graph_settings: Settings, graph: GraphEmulator
) -> Iterator[tuple[ActiveDirectory, EntraDirectory]]:
    onprem = ActiveDirectory.from_settings(ad_settings)
    cloud = EntraDirectory.from_settings(
        graph_settings, ca_file=graph.ca_file, sleep=lambda s: None
    )
    try:
        yield onprem, cloud
    finally:
        onprem.close()
        cloud.close()


def outcome(verdict: object, failing: Any, warnings: Any) -> tuple[str, list[str], list[str]]:
    return str(verdict), sorted(map(str, failing)), sorted(map(str, warnings))


def assert_same_as_check(result: ScanResult, dirs: Directories) -> None:
    for item in result.items:
        report = check_match(dirs, item.address)
        failing = [c.id for c in report.checks if c.status is Status.FAIL]
        warnings = [c.id for c in report.checks if c.status in (Status.WARN, Status.UNKNOWN)]
        assert outcome(item.verdict, item.failing, item.warnings) == outcome(
            report.verdict, failing, warnings
        ), item.address
        assert item.onprem_dn == (report.onprem.dn if report.onprem else None)
        assert item.plan == report_to_dict(report)["plan"], item.address


def test_every_item_of_a_mixed_tenant_gets_the_verdict_check_gives_its_address(
    tenant: Tenant,
    directories: tuple[ActiveDirectory, EntraDirectory],
) -> None:
    onprem, cloud = directories

    result = run_scan(LiveScanSource(onprem, cloud), tenant.policy)

    assert_same_as_check(result, Directories(onprem, cloud, tenant.policy))
    creations = [i for i in result.items if i.plan is not None and i.plan["action"] == "create"]
    assert creations and all(i.verdict is Verdict.NEEDS_ACCOUNT for i in creations)
    got = {item.cloud_id: item.verdict for item in result.items}
    assert got == tenant.expected
    assert not tenant.not_candidates & set(got)
    assert result.cloud_users == len(tenant.expected) + len(tenant.not_candidates)


def test_the_bulk_read_costs_a_handful_of_graph_requests_not_fifteen_per_user(
    tenant: Tenant,
    graph: GraphEmulator,
    directories: tuple[ActiveDirectory, EntraDirectory],
) -> None:
    onprem, cloud = directories
    graph.state.requests.clear()

    result = run_scan(LiveScanSource(onprem, cloud), tenant.policy)

    http = [r for r in graph.state.requests if not r.in_batch and r.path.startswith("/v1.0/")]
    assert len(result.items) == len(tenant.expected)
    # users, groups, contacts, deleted users, roles, eligibilities, the tenant's batch, the
    # role group's members, and one batch asking about the users without an Exchange plan.
    assert len(http) <= 10, [r.path for r in http]
    mailbox_asks = [r for r in graph.state.requests if r.path.endswith("/mailboxSettings")]
    assert {r.path.split("/")[3] for r in mailbox_asks} == tenant.without_plan
    assert all(r.in_batch for r in mailbox_asks)


def test_the_mailbox_the_scan_reads_is_what_the_per_user_check_reads(
    tenant: Tenant,
    directories: tuple[ActiveDirectory, EntraDirectory],
) -> None:
    onprem, cloud = directories
    snapshot = LiveScanSource(onprem, cloud).read()
    members = [u.id for u in snapshot.users if u.user_type == "Member"]
    assert snapshot.confirm_mailboxes is not None
    snapshot.confirm_mailboxes(members)

    assert {u: snapshot.cloud.has_mailbox(u) for u in members} == {
        u: cloud.has_mailbox(u) for u in members
    }


def test_a_429_storm_mid_scan_still_completes_with_the_same_result(
    tenant: Tenant,
    graph: GraphEmulator,
    directories: tuple[ActiveDirectory, EntraDirectory],
) -> None:
    onprem, cloud = directories
    calm = run_scan(LiveScanSource(onprem, cloud), tenant.policy)
    graph.state.requests.clear()
    graph.state.knobs.throttle_next = 3
    graph.state.knobs.throttle_next_in_batch = 2

    stormy = run_scan(LiveScanSource(onprem, cloud), tenant.policy)

    assert sum(r.status == 429 for r in graph.state.requests) == 5
    assert [i.to_dict() for i in stormy.items] == [i.to_dict() for i in calm.items]


def test_an_unreachable_directory_fails_the_scan_with_nothing_judged(
    tenant: Tenant,
    ad_settings: Settings,
    directories: tuple[ActiveDirectory, EntraDirectory],
) -> None:
    _, cloud = directories
    dead = ActiveDirectory.from_settings(
        ad_settings.model_copy(
            update={"ldap_url": ("ldaps://127.0.0.1:1",), "ldap_timeout_seconds": 1}
        )
    )
    stages: list[str] = []
    try:
        with pytest.raises(DirectoryUnavailable):
            run_scan(
                LiveScanSource(dead, cloud),
                tenant.policy,
                progress=lambda stage, done, total: stages.append(stage),
            )
    finally:
        dead.close()
    assert stages == ["read"]


def test_through_a_graph_like_throttle_the_scan_waits_out_every_429_and_gets_the_same_result(
    tenant: Tenant,
    graph: GraphEmulator,
    graph_settings: Settings,
    directories: tuple[ActiveDirectory, EntraDirectory],
) -> None:
    onprem, cloud = directories
    calm = run_scan(LiveScanSource(onprem, cloud), tenant.policy)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    patient = EntraDirectory.from_settings(graph_settings, ca_file=graph.ca_file, sleep=sleep)
    graph.state.knobs.throttle_rate, graph.state.knobs.throttle_burst = 10.0, 4
    graph.state.requests.clear()
    try:
        throttled = run_scan(LiveScanSource(onprem, patient), tenant.policy)
    finally:
        patient.close()
        graph.state.knobs.throttle_rate = None

    answers = [r for r in graph.state.requests if r.status == 429]
    assert answers and waits and all(w >= 1 for w in waits)
    assert [i.to_dict() for i in throttled.items] == [i.to_dict() for i in calm.items]
