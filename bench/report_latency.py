"""How long one full check takes when every round trip costs the same latency.

Starts the Graph emulator with a fixed latency per HTTP request, runs ``check_match`` with the
real ``EntraDirectory`` and an in-memory AD that waits the same latency per call, and prints:
the wall time of one check, the sum of the latencies of the calls it made, and how many Graph
round trips it needed. Run with ``python bench/report_latency.py [--latency-ms 50] [--checks 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.directories.entra import EntraDirectory
from bot.models import Holder, OnPremUser
from bot.ports import ChangePlan
from bot.services.check import Directories, check_match
from bot.settings import Settings
from tests.support.graph_emulator import GraphEmulator

ADDRESS = "jane@contoso.com"


class SlowFakeAD:
    """One AD user and no other holders; every call waits ``latency`` seconds."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.calls = 0
        self.user = OnPremUser(
            dn="CN=Jane Doe,OU=Staff,DC=contoso,DC=com",
            object_guid=bytes(range(16)),
            sam_account_name="jdoe",
            user_principal_name=ADDRESS,
            object_sid="S-1-5-21-1-2-3-1105",
        )

    def find_users(self, address: str, onprem_id: str | None) -> Sequence[OnPremUser]:
        self.calls += 1
        time.sleep(self.latency)
        return [self.user]

    def find_lookalikes(
        self,
        display_name: str | None,
        given_name: str | None,
        surname: str | None,
        account_name: str | None,
    ) -> Sequence[OnPremUser]:
        self.calls += 1
        time.sleep(self.latency)
        return []

    def find_holders(self, address: str) -> Sequence[Holder]:
        self.calls += 1
        time.sleep(self.latency)
        return []

    def apply(self, plan: ChangePlan) -> ChangePlan:
        raise AssertionError("a check never writes")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--checks", type=int, default=5)
    args = parser.parse_args()
    latency = args.latency_ms / 1000

    with GraphEmulator() as graph:
        jane = graph.state.add_user(
            ADDRESS, mail=ADDRESS, proxy_addresses=[f"SMTP:{ADDRESS}"], display_name="Jane Doe"
        )
        graph.state.set_roles(jane.id, eligible=["Global Administrator"])
        graph.state.add_group("Staff", members=[jane.id])
        graph.state.knobs.latency = latency
        settings = Settings(**graph.settings_overrides())
        entra = EntraDirectory.from_settings(settings, ca_file=graph.ca_file)
        ad = SlowFakeAD(latency)
        dirs = Directories(onprem=ad, cloud=entra)
        try:
            # The first check also fetches the OIDC metadata and the token; report it apart.
            started = time.perf_counter()
            first = check_match(dirs, ADDRESS)
            cold = time.perf_counter() - started

            # The same check without latency: CPU cost of client and emulator (one process).
            graph.state.knobs.latency, ad.latency = 0.0, 0.0
            started = time.perf_counter()
            for _ in range(args.checks):
                check_match(dirs, ADDRESS)
            baseline = (time.perf_counter() - started) / args.checks
            graph.state.knobs.latency, ad.latency = latency, latency

            walls: list[float] = []
            trips: list[int] = []
            ad_calls: list[int] = []
            for _ in range(args.checks):
                graph.state.requests.clear()
                ad.calls = 0
                started = time.perf_counter()
                check_match(dirs, ADDRESS)
                walls.append(time.perf_counter() - started)
                trips.append(len(graph.graph_requests()))
                ad_calls.append(ad.calls)
            inner = len(graph.graph_requests(include_batched=True))
        finally:
            entra.close()
            dirs.executor.shutdown()  # type: ignore[attr-defined]

    wall = statistics.median(walls)
    per_check_trips = trips[-1]
    summed = (per_check_trips + ad_calls[-1]) * latency
    print(f"verdict of the check:           {first.verdict}")
    print(f"latency per round trip:         {args.latency_ms:.0f} ms (Graph and AD)")
    print(f"first check (token + metadata): {cold * 1000:.0f} ms")
    print(f"one full check, wall time:      {wall * 1000:.0f} ms (median of {args.checks})")
    print(
        f"sum of its calls' latencies:    {summed * 1000:.0f} ms "
        f"({per_check_trips} Graph round trips + {ad_calls[-1]} AD calls)"
    )
    print(
        f"Graph round trips per check:    {per_check_trips} ({inner} requests incl. $batch items)"
    )
    print(f"token requests in the run:      {graph.token_requests} (for {args.checks + 1} checks)")
    print(f"same check without latency:     {baseline * 1000:.0f} ms (local CPU, TLS, emulator)")
    print(
        f"latency part of the wall time:  {(wall - baseline) / latency:.1f} round trips "
        "(the service runs two concurrent rounds)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
