"""Round 2 of the rules (docs/rules.md), end to end against the real Samba DC, the Graph
emulator and its sync simulator: a match of a user with cloud aliases keeps every alias on both
sides, and each new outcome gets the verdict the directories really call for."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from bot.directories.ad import ActiveDirectory
from bot.directories.entra import EntraDirectory
from bot.rules.checks import CheckId, Report, Status, Verdict
from bot.rules.requests import RequestState
from bot.services.check import Directories, check_match
from bot.settings import SyncTrigger
from bot.slack_views.ids import ActionId
from tests.e2e.conftest import APPROVER, BotWorld
from tests.e2e.test_cli_directories import environment, run_check
from tests.support.graph_emulator import ExportAction, LdapParams, SyncWebhook
from tests.support.samba import SambaDC

WEBHOOK_SECRET = "round2-hmac-secret"


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def webhook(world: BotWorld, samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch) -> SyncWebhook:
    """The emulator's sync simulator behind the bot's signed webhook trigger."""
    monkeypatch.setenv("SSL_CERT_FILE", str(world.graph.ca_file))
    return world.graph.configure_sync_simulator(
        LdapParams.of_samba(samba_dc), secret=WEBHOOK_SECRET
    )


@pytest.fixture
def dirs(world: BotWorld) -> Iterator[Directories]:
    """The real adapters on both test directories, scoped to the test's OU."""
    directories = world.directories()
    try:
        yield directories
    finally:
        assert isinstance(directories.onprem, ActiveDirectory)
        assert isinstance(directories.cloud, EntraDirectory)
        directories.onprem.close()
        directories.cloud.close()


def smtp_set(values: list[str]) -> set[str]:
    """The SMTP addresses of a proxyAddresses list, lower-cased, without prefixes."""
    return {v.split(":", 1)[1].lower() for v in values if v.lower().startswith("smtp:")}


def test_a_match_of_a_user_with_cloud_aliases_keeps_every_alias_on_both_sides(
    world: BotWorld, webhook: SyncWebhook
) -> None:
    ad, graph = world.ad, world.graph
    address = ad.address("rita")
    aliases = [ad.address("rita.rich"), ad.address("sales.emea")]
    routing = f"rita.{ad.tag}@contoso.onmicrosoft.com"
    dn = ad.add_user(ad.sam("rita"), upn=address, display_name="Rita Rich")
    cloud = graph.state.add_user(
        address,
        mail=address,
        display_name="Rita Rich",
        proxy_addresses=[f"SMTP:{address}", *(f"smtp:{a}" for a in aliases), f"smtp:{routing}"],
    )
    before = smtp_set(list(cloud.proxy_addresses))

    with world.running(
        smtpmatch_sync_trigger=SyncTrigger.WEBHOOK,
        smtpmatch_sync_webhook_url=graph.sync_webhook_url,
        smtpmatch_sync_webhook_secret=SecretStr(WEBHOOK_SECRET),
        smtpmatch_sync_poll_seconds=0.2,
    ) as slack:
        report = slack.check(address)
        assert all(a in json.dumps(report) for a in aliases)  # the plan shows the aliases
        message = slack.request_approval(report)
        request_id = slack.request_id(message)
        slack.press(message, ActionId.APPROVE, APPROVER)
        store = slack.bot.services.store

        def state() -> RequestState:
            request = store.get_request(request_id)
            assert request is not None
            return request.state

        wait_until(lambda: state() is RequestState.MATCHED)

    # AD carries the primary and every alias (the onmicrosoft.com one is Entra ID's own).
    stored = world.ad.read(dn, ["mail", "proxyAddresses"])
    proxies = [str(v) for v in stored["proxyAddresses"]]
    assert [str(v) for v in stored["mail"]] == [address]
    assert f"SMTP:{address}" in proxies
    assert {f"smtp:{a}" for a in aliases} <= set(proxies)
    assert not any("onmicrosoft.com" in v for v in proxies)
    # The bound cloud user lost nothing the mailbox received before.
    [call] = webhook.calls
    [export] = call.exports
    assert export.action is ExportAction.MATCHED and export.errors == ()
    with graph.state.lock:
        bound = graph.state.users[cloud.id]
        assert bound.on_premises_sync_enabled is True
        assert before <= smtp_set(list(bound.proxy_addresses))
        assert f"SMTP:{address}" in bound.proxy_addresses


# -- each new outcome, against the real directories -------------------------------------------


def check(dirs: Directories, address: str, onprem_id: str | None = None) -> Report:
    return check_match(dirs, address, onprem_id)


def status(report: Report, check_id: CheckId) -> Status:
    return report.check(check_id).status


def test_a_pending_hard_match_is_sync_pending_and_the_next_sync_takes_the_user_over(
    world: BotWorld, dirs: Directories, samba_dc: SambaDC
) -> None:
    ad, graph = world.ad, world.graph
    address = ad.address("hank")
    dn = ad.add_user(ad.sam("hank"), upn=address, mail=address, proxy_addresses=[f"SMTP:{address}"])
    (ad_user,) = dirs.onprem.find_users(address, dn)
    cloud = graph.state.add_user(
        address,
        mail=address,
        proxy_addresses=[f"SMTP:{address}"],
        on_premises_immutable_id=ad_user.anchor,
    )

    report = check(dirs, address)
    simulator = graph.configure_sync_simulator(LdapParams.of_samba(samba_dc)).simulator
    [export] = simulator.run(dn=dn)

    assert report.verdict is Verdict.SYNC_PENDING
    assert status(report, CheckId.CLOUD_HARD_MATCH_ALLOWED) is Status.PASS
    assert export.action is ExportAction.UPDATED
    assert graph.state.users[cloud.id].on_premises_sync_enabled is True
    assert check(dirs, address).verdict is Verdict.ALREADY_MATCHED


def test_a_soft_deleted_duplicate_blocks_and_the_sync_would_restore_it(
    world: BotWorld, dirs: Directories, samba_dc: SambaDC
) -> None:
    ad, graph = world.ad, world.graph
    address = ad.address("dora")
    dn = ad.add_user(ad.sam("dora"), upn=address)
    (ad_user,) = dirs.onprem.find_users(address, dn)
    graph.state.add_user(address, mail=address, proxy_addresses=[f"SMTP:{address}"])
    ghost = graph.state.add_user(
        f"dora{ad.tag}@contoso.onmicrosoft.com",
        on_premises_immutable_id=ad_user.anchor,
        on_premises_sync_enabled=True,
    )
    graph.state.delete_user(ghost.id)

    report = check(dirs, address)
    simulator = graph.configure_sync_simulator(LdapParams.of_samba(samba_dc)).simulator
    [export] = simulator.run(dn=dn)

    assert report.verdict is Verdict.BLOCKED
    assert status(report, CheckId.ONPREM_NOT_YET_SYNCED) is Status.FAIL
    assert ghost.id in report.check(CheckId.ONPREM_NOT_YET_SYNCED).detail
    assert export.action is ExportAction.RESTORED and export.cloud_user_id == ghost.id


def test_a_privileged_ad_account_is_blocked(
    world: BotWorld, dirs: Directories, samba_dc: SambaDC
) -> None:
    ad, graph = world.ad, world.graph
    address = ad.address("adam")
    dn = ad.add_user(ad.sam("adam"), upn=address)
    ad.add_member(f"CN=Account Operators,CN=Builtin,{samba_dc.base_dn}", dn)
    graph.state.add_user(address, mail=address, proxy_addresses=[f"SMTP:{address}"])

    report = check(dirs, address)

    assert report.verdict is Verdict.BLOCKED
    assert status(report, CheckId.ONPREM_NOT_PRIVILEGED) is Status.FAIL
    assert "Account Operators" in report.check(CheckId.ONPREM_NOT_PRIVILEGED).detail


def test_a_named_ad_account_that_is_not_the_person_is_blocked(
    world: BotWorld, dirs: Directories
) -> None:
    ad, graph = world.ad, world.graph
    address = ad.address("ceo")
    graph.state.add_user(
        address, mail=address, proxy_addresses=[f"SMTP:{address}"], display_name="Carla Chief"
    )
    mallory = ad.add_user(ad.sam("mallory"), upn=ad.address("mallory"), display_name="Mallory")

    report = check(dirs, address, mallory)

    assert report.verdict is Verdict.BLOCKED
    assert status(report, CheckId.ONPREM_SAME_PERSON) is Status.FAIL


def test_a_named_built_in_account_is_blocked_as_never_exported(
    world: BotWorld, dirs: Directories, samba_dc: SambaDC
) -> None:
    address = world.ad.address("krb")
    world.graph.state.add_user(address, mail=address, proxy_addresses=[f"SMTP:{address}"])

    report = check(dirs, address, f"CN=krbtgt,CN=Users,{samba_dc.base_dn}")

    assert report.verdict is Verdict.BLOCKED
    assert status(report, CheckId.ONPREM_IN_SYNC_SCOPE) is Status.FAIL


def test_a_cloud_only_user_needs_an_account_and_a_likely_one_needs_input(
    world: BotWorld, dirs: Directories
) -> None:
    ad, graph = world.ad, world.graph
    nora = ad.address("nora")
    graph.state.add_user(
        nora, mail=nora, proxy_addresses=[f"SMTP:{nora}"], display_name=f"Nora {ad.tag}"
    )
    lucas = ad.address("lucas")
    graph.state.add_user(
        lucas, mail=lucas, proxy_addresses=[f"SMTP:{lucas}"], display_name=f"Lucas Li {ad.tag}"
    )
    alike = ad.add_user(ad.sam("lli"), upn=ad.address("lli"), display_name=f"Lucas Li {ad.tag}")

    needs_account = check(dirs, nora)
    needs_input = check(dirs, lucas)

    assert needs_account.verdict is Verdict.NEEDS_ACCOUNT and needs_account.plan is None
    assert "SMTPMATCH_CREATE_OU" in needs_account.summary
    assert needs_input.verdict is Verdict.NEEDS_INPUT
    assert [u.dn.casefold() for u in needs_input.candidates] == [alike.casefold()]


def test_an_onmicrosoft_primary_and_a_guest_beside_the_member_are_judged_right(
    world: BotWorld, dirs: Directories
) -> None:
    ad, graph = world.ad, world.graph
    olga = ad.address("olga")
    ad.add_user(ad.sam("olga"), upn=olga)
    graph.state.add_user(
        olga,
        mail=f"olga.{ad.tag}@contoso.onmicrosoft.com",
        proxy_addresses=[f"SMTP:olga.{ad.tag}@contoso.onmicrosoft.com", f"smtp:{olga}"],
    )
    jane = ad.address("jane")
    ad.add_user(ad.sam("jane"), upn=jane)
    member = graph.state.add_user(jane, mail=jane, proxy_addresses=[f"SMTP:{jane}"])
    guest = graph.state.add_user(
        f"jane_{ad.tag}#EXT#@contoso.onmicrosoft.com", mail=jane, user_type="Guest"
    )

    onmicrosoft = check(dirs, olga)
    shared = check(dirs, jane)

    assert onmicrosoft.verdict is Verdict.BLOCKED
    assert status(onmicrosoft, CheckId.CLOUD_ADDRESS_IS_PRIMARY) is Status.FAIL
    assert shared.cloud is not None and shared.cloud.id == member.id
    assert status(shared, CheckId.CLOUD_USER_FOUND) is Status.PASS
    assert status(shared, CheckId.ONPREM_UPN_CONFLICT) is Status.PASS
    assert status(shared, CheckId.UNIQUE_CLOUD) is Status.FAIL
    assert guest.id in shared.check(CheckId.UNIQUE_CLOUD).detail


def test_the_command_line_json_plan_is_a_modify_carrying_the_aliases(
    world: BotWorld, samba_dc: SambaDC
) -> None:
    ad, graph = world.ad, world.graph
    address, alias = ad.address("cli"), ad.address("cli.alias")
    ad.add_user(ad.sam("cli"), upn=address)
    graph.state.add_user(
        address, mail=address, proxy_addresses=[f"SMTP:{address}", f"smtp:{alias}"]
    )

    result = run_check(environment(samba_dc, graph, ad), address, "--json")

    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["verdict"] == "eligible"
    assert report["plan"]["action"] == "modify"
    proxies = {c["attribute"]: c for c in report["plan"]["changes"]}["proxyAddresses"]
    assert proxies["after"] == [f"SMTP:{address}", f"smtp:{alias}"]
