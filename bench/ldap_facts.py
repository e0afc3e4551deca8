"""How long the AD side of a report takes: ``python bench/ldap_facts.py``.

Starts a throwaway Samba AD DC (tests/support/samba.py), seeds a few hundred objects, then
measures gathering one user's AD facts (``find_users`` + ``find_holders``, what a report needs):

- cold: a new adapter each time (TLS handshake + bind + schema probe + the two searches);
- warm: one adapter whose pooled connection is reused;
- throughput: fact gatherings per second with 1 and 8 concurrent callers (threads).

The whole run is bounded (about 30 s including the DC start).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import SecretStr

from bot.directories.ad import ActiveDirectory
from tests.support.samba import AdSandbox, SambaDC

SEED_USERS = 300
COLD_RUNS = 30
WARM_RUNS = 300
THROUGHPUT_SECONDS = 3.0


def _adapter(dc: SambaDC) -> ActiveDirectory:
    return ActiveDirectory(
        [dc.ldaps_url],
        dc.admin_dn,
        SecretStr(dc.admin_password),
        base_dn=dc.base_dn,
        ca_file=dc.ca_file,
        timeout=5,
    )


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {p50 * 1000:6.1f} ms   p95 {p95 * 1000:6.1f} ms   (n={len(ordered)})"


def _gather(directory: ActiveDirectory, address: str) -> None:
    users = directory.find_users(address, None)
    holders = directory.find_holders(address)
    if len(users) != 1 or not holders:
        raise RuntimeError(f"unexpected facts: {len(users)} users, {len(holders)} holders")


def _throughput(call: Callable[[], None], callers: int) -> float:
    stop = time.monotonic() + THROUGHPUT_SECONDS
    counts = [0] * callers
    barrier = threading.Barrier(callers)

    def worker(index: int) -> None:
        barrier.wait()
        while time.monotonic() < stop:
            call()
            counts[index] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=callers) as pool:
        list(pool.map(worker, range(callers)))
    return sum(counts) / (time.monotonic() - started)


def main() -> None:
    """Start the DC, seed it, measure, print, stop the DC."""
    began = time.monotonic()
    dc = SambaDC()
    try:
        dc.start()
        started = time.monotonic() - began
        sandbox = AdSandbox(dc)
        for i in range(SEED_USERS):
            sandbox.add_user(
                f"u{i}{sandbox.tag}"[:20],
                mail=sandbox.address(f"user{i}"),
                proxy_addresses=[f"SMTP:{sandbox.address(f'user{i}')}"],
            )
        address = sandbox.address("target")
        sandbox.add_user(sandbox.sam("target"), mail=address, proxy_addresses=[f"SMTP:{address}"])
        sandbox.add_contact(f"dup {sandbox.tag}", mail=address)
        seeded = time.monotonic() - began - started

        cold: list[float] = []
        for _ in range(COLD_RUNS):
            t0 = time.perf_counter()
            with _adapter(dc) as directory:
                _gather(directory, address)
            cold.append(time.perf_counter() - t0)

        warm: list[float] = []
        with _adapter(dc) as directory:
            _gather(directory, address)  # open, bind and read the schema once
            for _ in range(WARM_RUNS):
                t0 = time.perf_counter()
                _gather(directory, address)
                warm.append(time.perf_counter() - t0)
            single = _throughput(lambda: _gather(directory, address), 1)
            eight = _throughput(lambda: _gather(directory, address), 8)
            connections = directory.connections_opened

        print("AD facts for one user (find_users + find_holders) against Samba AD DC over LDAPS")
        print(
            f"  DC provisioned and started in {started:.1f} s; {SEED_USERS + 2} objects seeded"
            f" in {seeded:.1f} s"
        )
        print(f"  cold (new adapter: TLS + bind + schema): {_percentiles(cold)}")
        print(f"  warm (reused connection):                {_percentiles(warm)}")
        print(f"  throughput, 1 caller:   {single:7.1f} fact gatherings/s")
        print(
            f"  throughput, 8 callers:  {eight:7.1f} fact gatherings/s "
            f"({connections} pooled connection(s) opened)"
        )
        print(f"  total run time {time.monotonic() - began:.1f} s")
    finally:
        dc.remove()


if __name__ == "__main__":
    main()
