"""Figure 5: what Sherlock adds to a call, next to a direct call and to HAProxy.

One popularity instance (a real process on SQLite) is called four ways, one call of each
in turn so that machine noise falls on all of them alike: directly with ``requests``;
through Sherlock in-process (``sherlock.session()``, the monolith's way); through the
Sherlock proxy (``mwkit sherlock``, another process); through HAProxy configured as the
original Sherlock generated it. Each way uses its own keep-alive session. The samples of
the "adds" metrics are per block of calls (p50 of the block against the direct p50).
The pick itself is timed in a tight loop over four endpoints, per policy.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from pathlib import Path

import requests

from benchmarks.baselines import haproxy
from benchmarks.common import REPO, Deadline, Figure, Metric, below, ms
from lobsters import db
from mwkit.directory import DirectoryClient, run_directory
from mwkit.procs import free_port, python_command, running
from mwkit.sherlock import POLICIES, Endpoint, Sherlock
from mwkit.sherlock.policies import make_policy

SERVICE = "popularity"


@contextlib.contextmanager
def popularity(scratch: Path):
    """One popularity process on a seeded SQLite database; yields its host:port."""
    database = f"sqlite:///{scratch / 'lobsters.db'}"
    db.init(database)
    port = free_port()
    folder = REPO / "services" / "popularity"
    with running([sys.executable, str(folder / "popularity.py")], cwd=folder,
                 ready_url=f"http://127.0.0.1:{port}/health", log_path=scratch / "pop.log",
                 env={"HOST": "127.0.0.1", "PORT": str(port), "DATABASE_URL": database}):
        yield f"127.0.0.1:{port}"


def time_pick(policy: str, picks: int) -> float:
    """Microseconds per pick among four endpoints."""
    pick = make_policy(policy)
    endpoints = [Endpoint(SERVICE, f"e{i}", f"127.0.0.1:{i}", f"http://127.0.0.1:{i}", {}, 0.0)
                 for i in range(4)]
    began = time.perf_counter()
    for _ in range(picks):
        pick(endpoints)
    return (time.perf_counter() - began) / picks * 1e6


def time_acquire(sherlock: Sherlock, picks: int) -> float:
    """Microseconds per acquire + release: the pick as a routed call makes it."""
    began = time.perf_counter()
    for _ in range(picks):
        endpoint = sherlock.acquire(SERVICE)
        sherlock.release(endpoint, 0.0, time.monotonic(), "ok", 200, 1)
    return (time.perf_counter() - began) / picks * 1e6


def timed_get(session: requests.Session, url: str) -> float:
    began = time.perf_counter()
    response = session.get(url, timeout=5)
    elapsed = time.perf_counter() - began
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:200]}")
    return elapsed


def run(quick: bool, scratch: Path) -> Figure:
    figure = Figure(5, "Sherlock overhead per call")
    blocks, per_block = (3, 100) if quick else (10, 300)
    picks = 20_000 if quick else 100_000
    deadline = Deadline(40 if quick else 120)
    latencies: dict[str, list[float]] = {}
    added: dict[str, list[float]] = {"in-process": [], "proxy": [], "haproxy": []}
    with contextlib.ExitStack() as stack:
        directory = stack.enter_context(run_directory(log_path=scratch / "directory.log"))
        address = stack.enter_context(popularity(scratch))
        with DirectoryClient(directory) as client:
            client.register(SERVICE, "popularity-1", address, ttl=3600)
        sherlock = stack.enter_context(Sherlock(directory))
        sherlock.wait_for(SERVICE, 1)
        proxy_port = free_port()
        stack.enter_context(running(
            python_command("-m", "mwkit", "sherlock", "--directory", directory, "--listen",
                           f"127.0.0.1:{proxy_port}"),
            ready_url=f"http://127.0.0.1:{proxy_port}/{SERVICE}/health",
            log_path=scratch / "proxy.log"))
        haproxy_url = stack.enter_context(haproxy(scratch, SERVICE, [address]))
        ways = {
            "direct": (stack.enter_context(requests.Session()), f"http://{address}/"),
            "in-process": (stack.enter_context(sherlock.session()), f"http://{SERVICE}/"),
            "proxy": (stack.enter_context(requests.Session()),
                      f"http://127.0.0.1:{proxy_port}/{SERVICE}/"),
            "haproxy": (stack.enter_context(requests.Session()), f"{haproxy_url}/{SERVICE}/"),
        }
        for session, url in ways.values():  # warm up: connections, caches
            for _ in range(20):
                timed_get(session, url)
        for _ in range(blocks):
            if deadline.expired and added["proxy"]:
                break
            block = {name: [] for name in ways}
            for _ in range(per_block):
                for name, (session, url) in ways.items():
                    block[name].append(timed_get(session, url))
            direct = statistics.median(block["direct"])
            for name, values in block.items():
                latencies.setdefault(name, []).extend(values)
                if name != "direct":
                    added[name].append(statistics.median(values) - direct)
        acquire = [time_acquire(sherlock, picks // 4) for _ in range(5)]
    direct_p50 = statistics.median(latencies["direct"])
    figure.add(*(Metric(f"call latency, {name}", "ms", [ms(v) for v in values], per="call")
                 for name, values in latencies.items()))
    figure.add(
        Metric("in-process Sherlock adds to a direct call", "%",
               [100 * a / direct_p50 for a in added["in-process"]], per="block p50",
               target="< 5 %", check=below(5, "median")),
        Metric("proxy adds (p50)", "ms", [ms(a) for a in added["proxy"]], per="block p50",
               target="< 1 ms", check=below(1, "median")),
        Metric("HAProxy adds (p50)", "ms", [ms(a) for a in added["haproxy"]], per="block p50"),
        Metric("ratio Sherlock proxy / HAProxy, added p50", "x",
               [a / b for a, b in zip(added["proxy"], added["haproxy"], strict=True) if b > 0],
               per="block"),
        Metric("acquire + release (pick, count, log)", "us", acquire, per="batch",
               note=f"{picks // 4} calls per batch, one instance"),
    )
    for policy in POLICIES:
        figure.add(Metric(f"pick, {policy}", "us", [time_pick(policy, picks) for _ in range(5)],
                          per="batch", target="< 20 us", check=below(20),
                          note=f"{picks} picks among 4 endpoints per batch"))
    figure.notes.append(
        f"{blocks} blocks x {per_block} calls per way, interleaved call by call; the instance "
        f"answers GET / from SQLite in about {ms(direct_p50):.1f} ms (direct p50). "
        "HAProxy strips /popularity like the Sherlock proxy does (http-reuse always).")
    return figure
