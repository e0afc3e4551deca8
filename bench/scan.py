"""Whole-tenant scan at scale: ``python bench/scan.py [--users N] [--rate R]``.

Starts a throwaway Samba AD DC and the Graph emulator (as the tests' support code does), seeds
N cloud users and N AD users in a realistic mix (about 60% eligible), throttles the emulator
like Graph (a token bucket per application answering 429 with ``Retry-After``), then runs
``smtpmatch scan`` as an admin would (a separate process, configured by the environment) and
prints:

- the scan's wall time, its Graph requests (HTTP and inside ``$batch``) and 429s;
- the scan process's peak resident memory;
- ``check``'s time per user for a random sample (same directories, same throttle) and the
  projected time of running ``check`` for every user, i.e. the scan's speed-up.

Budget (docs): 10,000 users in under 5 minutes through the throttle, at least 20 times faster
than ``check`` per user, under 500 MB resident.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ldap3
from ldap3.utils.dn import escape_rdn

from bot.directories.ad import ActiveDirectory
from bot.directories.entra import EntraDirectory
from bot.rules.engine import Policy
from bot.services.check import Directories, check_match
from bot.settings import Settings
from tests.support.environment import directory_environment
from tests.support.graph_emulator import GraphEmulator
from tests.support.samba import SambaDC

DOMAIN = "contoso.com"
SEED_WORKERS = 8
#: A user enabled without a password (PASSWD_NOTREQD): seeding skips password hashing.
UAC_NO_PASSWORD = 0x200 | 0x20
UAC_DISABLED = UAC_NO_PASSWORD | 0x2


def _connection(dc: SambaDC) -> ldap3.Connection:
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(dc.ca_file))
    server = ldap3.Server(dc.ldaps_url, tls=tls, connect_timeout=5, get_info=ldap3.NONE)
    return ldap3.Connection(
        server, dc.admin_dn, dc.admin_password, auto_bind=ldap3.AUTO_BIND_NO_TLS, receive_timeout=60
    )


def _ldap_add_all(dc: SambaDC, entries: list[tuple[str, list[str], dict[str, object]]]) -> None:
    """Add entries over LDAPS from a pool of connections (one per thread)."""
    local = threading.local()

    def add(entry: tuple[str, list[str], dict[str, object]]) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = _connection(dc)
        dn, classes, attributes = entry
        if not conn.add(dn, classes, {k: v for k, v in attributes.items() if v not in (None, [])}):
            raise RuntimeError(f"adding {dn} failed: {conn.result}")

    with ThreadPoolExecutor(SEED_WORKERS) as pool:
        list(pool.map(add, entries, chunksize=64))


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def seed(dc: SambaDC, graph: GraphEmulator, users: int, rng: random.Random) -> Policy:
    """N cloud users and N AD users in a realistic mix; returns the policy (sync scope)."""
    base = dc.base_dn
    conn = _connection(dc)
    scope = f"OU=Staff,{base}"
    outside = f"OU=Unsynced,{base}"
    for ou in (scope, outside):
        conn.add(ou, ["top", "organizationalUnit"])
    state = graph.state
    entries: list[tuple[str, list[str], dict[str, object]]] = []
    user_classes = ["top", "person", "organizationalPerson", "user"]

    def ad_user(sam: str, ou: str, **attributes: object) -> None:
        entries.append(
            (
                f"CN={escape_rdn(sam)},{ou}",
                user_classes,
                {"sAMAccountName": sam, "userAccountControl": str(UAC_NO_PASSWORD), **attributes},
            )
        )

    kinds = (
        ["eligible"] * 470
        + ["eligible_disabled_ad"] * 20
        + ["eligible_unlicensed"] * 20
        + ["no_mailbox"] * 60
        + ["needs_account"] * 80
        + ["lookalike"] * 40
        + ["duplicate_contact"] * 30
        + ["outside_scope"] * 30
        + ["admin"] * 20
        + ["sync_pending"] * 20
        + ["guest"] * 20
        + ["synced"] * 100
    )
    ad_count = 0
    for i in range(users):
        kind = rng.choice(kinds)
        first, last = f"First{i}", f"Last{i}"
        address = f"user{i}@{DOMAIN}"
        sam = f"u{i}"
        if kind == "guest":
            state.add_user(
                f"guest{i}_fabrikam.com#EXT#@contoso.onmicrosoft.com",
                mail=f"guest{i}@fabrikam.com",
                user_type="Guest",
                has_mailbox=False,
            )
            continue
        cloud = state.add_user(
            address,
            mail=address,
            proxy_addresses=[f"SMTP:{address}", f"smtp:{sam}@contoso.onmicrosoft.com"],
            display_name=f"{first} {last}",
            given_name=first,
            surname=last,
            has_mailbox=kind != "no_mailbox",
        )
        if kind == "eligible_unlicensed":
            cloud.exchange_licensed = False
        if kind == "admin":
            state.set_roles(cloud.id, active=["Exchange Administrator"])
        if kind == "synced":
            cloud.on_premises_immutable_id = f"synced{i}"
            cloud.on_premises_sync_enabled = True
        if kind == "needs_account":
            continue
        if kind == "lookalike":
            ad_user(f"x{i}", scope, displayName=f"{first} {last}", givenName=first, sn=last)
            ad_count += 1
            continue
        attributes: dict[str, object] = {
            "userPrincipalName": address,
            "displayName": f"{first} {last}",
            "givenName": first,
            "sn": last,
        }
        if kind == "eligible_disabled_ad":
            attributes["userAccountControl"] = str(UAC_DISABLED)
        if kind == "sync_pending":
            attributes |= {"mail": address, "proxyAddresses": [f"SMTP:{address}"]}
        ad_user(sam, outside if kind == "outside_scope" else scope, **attributes)
        ad_count += 1
        if kind == "duplicate_contact":
            entries.append(
                (
                    f"CN=Contact {i},{scope}",
                    ["top", "person", "organizationalPerson", "contact"],
                    {"displayName": f"Contact {i}", "mail": address},
                )
            )
    # AD-only users (leavers, service accounts) up to N AD users.
    for j in range(max(0, users - ad_count)):
        ad_user(f"adonly{j}", scope, userPrincipalName=f"adonly{j}@{DOMAIN}")
    _ldap_add_all(dc, entries)
    conn.unbind()
    return Policy(sync_scope=(scope,))


def _environment(dc: SambaDC, graph: GraphEmulator, database: Path, scope: str) -> dict[str, str]:
    return directory_environment(
        dc, graph, scope=scope, ldap_timeout=60, SMTPMATCH_DATABASE_URL=f"sqlite:///{database}"
    )


def main() -> None:
    """Seed, scan through the throttle, sample check, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=50.0, help="Graph requests/s per app")
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.03, help="Graph round trip, s")
    parser.add_argument("--sample", type=int, default=20, help="users timed with check")
    args = parser.parse_args()
    rng = random.Random(12)
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="smtpmatch-bench-scan-"))
    dc = SambaDC(work / "samba")
    graph = GraphEmulator(work / "graph")
    try:
        dc.start()
        graph.start()
        started = time.monotonic() - began
        policy = seed(dc, graph, args.users, rng)
        seeded = time.monotonic() - began - started
        knobs = graph.state.knobs
        knobs.throttle_rate, knobs.throttle_burst, knobs.latency = (
            args.rate,
            args.burst,
            args.latency,
        )
        graph.state.requests.clear()
        throttled_before = graph.app.bucket.throttled

        out = work / "scan.json"
        env = _environment(dc, graph, work / "scan.db", policy.sync_scope[0])
        t0 = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "scan", "--format", "json", "--out", str(out)],
            env=env,
            stderr=subprocess.PIPE,
        )
        _, status, usage = os.wait4(process.pid, 0)
        scan_seconds = time.monotonic() - t0
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            error = process.stderr.read().decode() if process.stderr else ""
            raise SystemExit(f"scan failed ({process.returncode}): {error}")
        requests = list(graph.state.requests)
        throttled = graph.app.bucket.throttled - throttled_before
        doc = json.loads(out.read_text())
        items = doc["items"]

        # check per user: the same directories, the same throttle, a random sample.
        settings = Settings(
            _env_file=None,
            ldap_url=(dc.ldaps_url,),
            ldap_bind_dn=dc.admin_dn,
            ldap_bind_password=dc.admin_password,
            ldap_base_dn=dc.base_dn,
            ldap_ca_file=dc.ca_file,
            ldap_timeout_seconds=60,
            **graph.settings_overrides(),
        )
        onprem = ActiveDirectory.from_settings(settings)
        cloud = EntraDirectory.from_settings(settings, ca_file=graph.ca_file)
        dirs = Directories(onprem, cloud, policy)
        sample = rng.sample(items, min(args.sample, len(items)))
        check_match(dirs, sample[0]["address"])  # token, connections, schema: once
        before = len(graph.state.requests)
        times: list[float] = []
        mismatches = 0
        for item in sample:
            t1 = time.perf_counter()
            report = check_match(dirs, item["address"])
            times.append(time.perf_counter() - t1)
            mismatches += str(report.verdict) != item["verdict"]
        per_check_requests = (len(graph.state.requests) - before) / len(sample)
        onprem.close()
        cloud.close()
        per_user = statistics.mean(times)
        # Sustained, the throttle bounds check too: requests per check / allowed rate.
        sustained = max(per_user, per_check_requests / args.rate)
        projected = sustained * len(items)

        print(f"Whole-tenant scan of {args.users} cloud users against {args.users} AD users")
        print(f"  DC and emulator started in {started:.1f} s; seeded in {seeded:.1f} s")
        print(
            f"  Graph throttle: {args.rate:g} requests/s per app, burst {args.burst}, "
            f"{args.latency * 1000:.0f} ms per round trip"
        )
        verdicts = doc["totals"]["by_verdict"]
        judged = len(items)
        print(
            f"  judged {judged} cloud-only users: "
            + ", ".join(f"{v} {n} ({100 * n / judged:.0f}%)" for v, n in verdicts.items() if n)
        )
        http = [r for r in requests if not r.in_batch and r.path.startswith("/v1.0/")]
        inner = [r for r in requests if r.in_batch]
        print(
            f"  scan wall time {scan_seconds:.1f} s; Graph requests {len(http)} HTTP + "
            f"{len(inner)} inside $batch; 429 answers {throttled}"
        )
        print(f"  scan peak resident memory {usage.ru_maxrss / 1024:.0f} MB")
        print(
            f"  check per user (sample of {len(sample)}): {per_user * 1000:.0f} ms, "
            f"{per_check_requests:.1f} Graph requests; sustained under the throttle "
            f"{sustained * 1000:.0f} ms/user"
        )
        print(
            f"  check for every user: {projected / 60:.1f} min projected; speed-up of the scan "
            f"{projected / scan_seconds:.0f}x; sample verdicts differing from the scan: "
            f"{mismatches}"
        )
        print(f"  total bench time {time.monotonic() - began:.1f} s")
    finally:
        graph.stop()
        dc.remove()


if __name__ == "__main__":
    main()
