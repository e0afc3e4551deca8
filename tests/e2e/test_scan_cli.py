"""`smtpmatch scan` configured through the environment, as an admin would run it, against the
real Samba DC and the HTTPS Graph emulator: the report, stored scans and what changed since the
previous one, and an unreachable directory (exit 3, nothing written)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_cli_directories import environment, free_port, seed
from tests.support.graph_emulator import GraphEmulator
from tests.support.samba import AdSandbox, SambaDC


def run_scan(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "scan", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_configured_scan_judges_every_cloud_only_user_and_stores_the_scan(
    samba_dc: SambaDC, graph: GraphEmulator, ad: AdSandbox, tmp_path: Path
) -> None:
    address, dn = seed(ad, graph)
    lonely = ad.address("lonely")
    graph.state.add_user(lonely, mail=lonely, proxy_addresses=[f"SMTP:{lonely}"])
    env = environment(
        samba_dc, graph, ad, SMTPMATCH_DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}"
    )

    result = run_scan(env, "--format", "json")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # not a terminal: no progress bar
    doc = json.loads(result.stdout)
    verdicts = {i["address"]: (i["verdict"], i["onprem"]) for i in doc["items"]}
    assert verdicts == {address: ("eligible", {"dn": dn}), lonely: ("needs_account", None)}
    assert doc["totals"]["by_check"] == {"onprem.user_found": 1}

    # Later: the AD account for the lonely user exists; only that user changed.
    ad.add_user(ad.sam("lonely"), upn=lonely)
    since = run_scan(env, "--since-last", "--format", "csv")
    assert since.returncode == 0, since.stderr
    rows = list(csv.DictReader(io.StringIO(since.stdout)))
    assert [(r["address"], r["before"], r["after"]) for r in rows] == [
        (lonely, "needs_account", "eligible")
    ]


def test_an_unreachable_domain_controller_exits_3_and_writes_nothing(
    samba_dc: SambaDC, graph: GraphEmulator, ad: AdSandbox, tmp_path: Path
) -> None:
    seed(ad, graph)
    port = free_port()
    out = tmp_path / "scan.csv"
    env = environment(
        samba_dc,
        graph,
        ad,
        LDAP_URL=f"ldaps://127.0.0.1:{port}",
        SMTPMATCH_DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
    )

    result = run_scan(env, "--format", "csv", "--out", str(out))

    assert result.returncode == 3
    assert f"127.0.0.1:{port}" in result.stderr
    assert samba_dc.admin_password not in result.stderr + result.stdout
    assert list(tmp_path.iterdir()) == []
