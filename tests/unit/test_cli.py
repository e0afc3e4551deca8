"""`smtpmatch check` on the embedded demo directories: every row of the demo table."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bot.cli import main
from bot.errors import AuthenticationFailed, DirectoryUnavailable, PermissionMissing

DEMO_TABLE = [
    ("jane@contoso.com", "eligible", None, None),
    ("alex.admin@contoso.com", "blocked", "cloud.no_admin_roles", "fail"),
    ("dana.dup@contoso.com", "blocked", "unique.onprem", "fail"),
    ("mia.matched@contoso.com", "already_matched", None, None),
    ("nina.nobox@contoso.com", "blocked", "cloud.has_mailbox", "fail"),
    ("sam.synced@contoso.com", "blocked", "onprem.not_yet_synced", "fail"),
    ("chris@contoso.com", "needs_input", "onprem.user_found", "fail"),
    ("nobody@contoso.com", "blocked", "cloud.user_found", "fail"),
    ("gina.guest@contoso.com", "blocked", "cloud.member_user", "fail"),
    ("paul.primary@contoso.com", "eligible", None, None),
    ("jane.doe@contoso.com", "eligible", "cloud.address_is_primary", "warn"),
    # Round 2 (docs/rules.md): one demo account per new outcome.
    ("rita@contoso.com", "eligible", None, None),
    ("hank.hard@contoso.com", "sync_pending", "cloud.hard_match_allowed", "pass"),
    ("olga.onms@contoso.com", "blocked", "cloud.address_is_primary", "fail"),
    ("dora.deleted@contoso.com", "blocked", "onprem.not_yet_synced", "fail"),
    ("nora.new@contoso.com", "needs_account", "onprem.user_found", "fail"),
    ("lucas@contoso.com", "needs_input", "onprem.user_found", "fail"),
    ("adam.ops@contoso.com", "blocked", "onprem.not_privileged", "fail"),
]


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["check", "--demo", "--json", *args])
    return code, json.loads(capsys.readouterr().out) if code == 0 else {}


@pytest.mark.parametrize(("address", "verdict", "check_id", "status"), DEMO_TABLE)
def test_each_demo_account_gets_its_verdict(
    capsys: pytest.CaptureFixture[str], address: str, verdict: str, check_id: str, status: str
) -> None:
    code, report = run_json(capsys, address)
    assert code == 0
    assert report["verdict"] == verdict
    assert set(report) >= {"address", "verdict", "cloud", "onprem", "checks", "plan"}
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    if check_id:
        assert statuses[check_id] == status
    failed = [k for k, v in statuses.items() if v == "fail"]
    if verdict == "blocked":
        assert check_id in failed
    if verdict in ("eligible", "already_matched"):
        assert failed == []
    for check in report["checks"]:
        assert set(check) == {"id", "status", "title", "detail", "remediation"}


def test_jane_is_eligible_and_the_plan_sets_mail_and_proxy_addresses(capsys) -> None:
    _, report = run_json(capsys, "jane@contoso.com")
    assert all(c["status"] in ("pass", "skip") for c in report["checks"])
    changes = {c["attribute"]: c for c in report["plan"]["changes"]}
    assert changes["mail"] == {"attribute": "mail", "before": None, "after": "jane@contoso.com"}
    # Revised rules: the plan carries the cloud alias jane.doe@ (it used to be dropped).
    assert changes["proxyAddresses"]["after"] == [
        "SMTP:jane@contoso.com",
        "smtp:jane.doe@contoso.com",
    ]
    assert report["plan"]["dn"] == report["onprem"]["dn"]


def test_paul_keeps_his_old_primary_as_a_secondary(capsys) -> None:
    _, report = run_json(capsys, "paul.primary@contoso.com")
    proxies = {c["attribute"]: c for c in report["plan"]["changes"]}["proxyAddresses"]
    assert proxies["before"][0] == "SMTP:paul@fabrikam.com"
    assert proxies["after"][:2] == ["SMTP:paul.primary@contoso.com", "smtp:paul@fabrikam.com"]


def test_an_alias_plans_the_primary_address(capsys) -> None:
    _, report = run_json(capsys, "jane.doe@contoso.com")
    assert {c["attribute"]: c for c in report["plan"]["changes"]}["mail"]["after"] == (
        "jane@contoso.com"
    )


def test_chris_lists_both_ad_candidates_and_naming_one_makes_it_eligible(capsys) -> None:
    _, report = run_json(capsys, "chris@contoso.com")
    assert {c["sAMAccountName"] for c in report["candidates"]} == {"chris", "cbrown"}
    detail = {c["id"]: c for c in report["checks"]}["onprem.user_found"]["detail"]
    assert "chris" in detail and "cbrown" in detail
    _, named = run_json(capsys, "chris@contoso.com", "--onprem", "cbrown")
    assert named["verdict"] == "eligible"


def test_rita_s_plan_carries_every_cloud_alias_and_the_json_plan_is_a_modify(capsys) -> None:
    _, report = run_json(capsys, "rita@contoso.com")
    assert report["plan"]["action"] == "modify"
    proxies = {c["attribute"]: c for c in report["plan"]["changes"]}["proxyAddresses"]
    assert proxies["after"] == [
        "SMTP:rita@contoso.com",
        "smtp:rita.rich@contoso.com",
        "smtp:r.rich@contoso.com",
        "smtp:sales.emea@contoso.com",
    ]
    assert all("onmicrosoft" not in value for value in proxies["after"])


def test_hank_s_pending_hard_match_is_sync_pending_not_already_matched(capsys) -> None:
    _, report = run_json(capsys, "hank.hard@contoso.com")
    assert report["plan"] is None
    assert "hard-match" in report["summary"]


def test_dora_s_soft_deleted_duplicate_is_named_with_the_remedy(capsys) -> None:
    _, report = run_json(capsys, "dora.deleted@contoso.com")
    check = {c["id"]: c for c in report["checks"]}["onprem.not_yet_synced"]
    assert "dora.deleted4711@contoso.onmicrosoft.com" in check["detail"]
    assert "Hard-delete" in check["remediation"]


def test_nora_needs_an_account_and_the_demo_offers_its_creation(capsys) -> None:
    _, report = run_json(capsys, "nora.new@contoso.com")
    assert report["plan"]["action"] == "create"  # the demo sets SMTPMATCH_CREATE_OU (issue 11)
    assert "SMTPMATCH_CREATE_OU" in report["summary"]


def test_lucas_s_likely_account_under_another_name_is_named(capsys) -> None:
    _, report = run_json(capsys, "lucas@contoso.com")
    assert [c["sAMAccountName"] for c in report["candidates"]] == ["lli"]
    assert report["plan"] is None


def test_a_named_account_that_is_not_the_person_is_blocked(capsys) -> None:
    _, report = run_json(capsys, "ceo@contoso.com", "--onprem", "mallory.test")
    assert report["verdict"] == "blocked"
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert statuses["onprem.same_person"] == "fail"


def test_mia_has_no_plan(capsys) -> None:
    _, report = run_json(capsys, "mia.matched@contoso.com")
    assert report["plan"] is None


def test_the_human_report_shows_both_sides_checks_verdict_and_plan(capsys) -> None:
    assert main(["check", "--demo", "paul.primary@contoso.com"]) == 0
    out = capsys.readouterr().out
    for words in (
        "Entra ID",
        "Active Directory",
        "[PASS] unique.onprem",
        "Verdict: ELIGIBLE",
        "before: paul@fabrikam.com",
        "after:  paul.primary@contoso.com",
    ):
        assert words in out


@pytest.mark.parametrize(
    "address",
    ["not-an-address", "a@b@contoso.com", "x" * 300 + "@contoso.com", "ja\tne@contoso.com"],
)
def test_bad_addresses_exit_2_with_a_message(capsys, address: str) -> None:
    assert main(["check", "--demo", address]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "smtpmatch:" in captured.err


def test_without_demo_or_directory_settings_it_says_what_to_configure(
    capsys, monkeypatch, tmp_path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("LDAP_", "AZURE_", "SMTPMATCH_")):
            monkeypatch.delenv(name)
    assert main(["check", "jane@contoso.com"]) == 2
    err = capsys.readouterr().err
    assert "LDAP_URL" in err and "AZURE_TENANT_ID" in err and "--demo" in err


def test_a_malformed_setting_exits_2_naming_the_variable(capsys, monkeypatch) -> None:
    monkeypatch.setenv("SMTPMATCH_SYNC_POLL_SECONDS", "soon")
    assert main(["check", "--demo", "jane@contoso.com"]) == 2
    assert "SMTPMATCH_SYNC_POLL_SECONDS" in capsys.readouterr().err


def test_the_console_script_is_installed_and_prints_json() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check", "--demo", "--json", "jane@contoso.com"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verdict"] == "eligible"


class Refusing:
    """A directory that answers every call with the given fault."""

    def __init__(self, fault: Exception) -> None:
        self.fault = fault

    def __getattr__(self, name: str):
        def call(*args, **kwargs):
            raise self.fault

        return call


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (DirectoryUnavailable("Active Directory", "dc1.contoso.com:636", "timed out"), 3),
        (AuthenticationFailed("Active Directory", "dc1.contoso.com:636", "bad credentials"), 2),
        (PermissionMissing("Entra ID", "graph.microsoft.com", "needs User.Read.All"), 2),
    ],
)
def test_directory_faults_map_to_exit_codes_and_name_the_server(
    capsys, monkeypatch, fault: Exception, code: int
) -> None:
    from bot import bootstrap as compose
    from bot.directories.demo import build_demo_directories
    from bot.services.check import Directories

    _, cloud, policy = build_demo_directories()
    monkeypatch.setattr(
        compose, "build_directories", lambda *a, **k: Directories(Refusing(fault), cloud, policy)
    )
    assert main(["check", "jane@contoso.com"]) == code
    err = capsys.readouterr().err
    assert "dc1.contoso.com" in err or "graph.microsoft.com" in err
