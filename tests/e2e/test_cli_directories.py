"""`smtpmatch check` without --demo, configured only through the environment, against the real
Samba DC and the HTTPS Graph emulator (a separate process, as an admin would run it)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import Any

from tests.support.environment import directory_environment
from tests.support.graph_emulator import GraphEmulator
from tests.support.samba import AdSandbox, SambaDC


def environment(
    samba_dc: SambaDC, graph: GraphEmulator, ad: AdSandbox, **extra: str
) -> dict[str, str]:
    return directory_environment(samba_dc, graph, scope=ad.ou, **extra)


def run_check(env: dict, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "check", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def seed(ad: AdSandbox, graph: GraphEmulator, local: str = "jane") -> tuple[str, str]:
    address = ad.address(local)
    dn = ad.add_user(ad.sam(local), upn=address)
    graph.state.add_user(address, mail=address, proxy_addresses=[f"SMTP:{address}"])
    return address, dn


def test_a_configured_check_reports_on_both_real_directories(samba_dc, graph, ad) -> None:
    address, dn = seed(ad, graph)
    result = run_check(environment(samba_dc, graph, ad), address, "--json")
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["verdict"] == "eligible"
    assert report["onprem"]["dn"] == dn
    assert {c["id"]: c["status"] for c in report["checks"]}["onprem.in_sync_scope"] == "pass"
    assert report["plan"]["changes"][0] == {"attribute": "mail", "before": None, "after": address}
    assert ad.read(dn, ["mail"]).get("mail", []) == []  # a check never writes


def test_a_duplicate_contact_in_ad_blocks_and_is_named(samba_dc, graph, ad) -> None:
    address, _ = seed(ad, graph)
    ad.add_contact("Jane external", mail=address)
    result = run_check(environment(samba_dc, graph, ad), address)
    assert result.returncode == 0, result.stderr
    assert "Verdict: BLOCKED" in result.stdout and "Jane external" in result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_domain_controller_exits_3_naming_it(samba_dc, graph, ad) -> None:
    address, _ = seed(ad, graph)
    port = free_port()
    env = environment(samba_dc, graph, ad, LDAP_URL=f"ldaps://127.0.0.1:{port}")
    result = run_check(env, address)
    assert result.returncode == 3
    assert f"127.0.0.1:{port}" in result.stderr
    assert samba_dc.admin_password not in result.stderr + result.stdout


def test_an_unreachable_graph_exits_3_and_keeps_the_secret(samba_dc, graph, ad) -> None:
    address, _ = seed(ad, graph)
    port = free_port()
    closed = f"https://127.0.0.1:{port}"
    env = environment(samba_dc, graph, ad, GRAPH_URL=closed, AZURE_AUTHORITY_HOST=closed)
    result = run_check(env, address)
    assert result.returncode == 3, result.stderr
    assert "Entra ID" in result.stderr and f"127.0.0.1:{port}" in result.stderr
    assert graph.client_secret not in result.stderr + result.stdout


def test_refused_credentials_exit_2_naming_the_setting_not_the_secret(samba_dc, graph, ad) -> None:
    address, _ = seed(ad, graph)
    wrong_graph = run_check(
        environment(samba_dc, graph, ad, AZURE_CLIENT_SECRET="not-the-secret-42"), address
    )
    assert wrong_graph.returncode == 2
    assert "AZURE_CLIENT_SECRET" in wrong_graph.stderr
    assert "not-the-secret-42" not in wrong_graph.stderr + wrong_graph.stdout

    wrong_ldap = run_check(
        environment(samba_dc, graph, ad, LDAP_BIND_PASSWORD="Wrong-Passw0rd!"), address
    )
    assert wrong_ldap.returncode == 2
    assert "Wrong-Passw0rd!" not in wrong_ldap.stderr + wrong_ldap.stdout
    assert f"{samba_dc.host}:636" in wrong_ldap.stderr
