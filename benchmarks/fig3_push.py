"""Figure 3: one change -> every subscriber notified, with 10, 100 and 1,000 subscribers.

The Directory: N subscribers on ``/v1/watch`` (SSE); the change re-registers one of three
instances of a service with new metadata, and each subscriber gets that instance (an
``event: put``; it keeps the service's list itself). etcd: N watchers on the prefix
through its gRPC gateway's ``/v3/watch`` (JSON lines; etcd's own gRPC watch is not
reachable from the standard library, and etcd-client's ``etcdctl watch`` is one process
per watcher); the change is a put of the
same instance's key with the same JSON value. Same client code (one asyncio loop), same
machine, same counts, one registry at a time. The delay is from just before the change is
sent to the moment the subscriber has read the whole message.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from benchmarks.baselines import etcd
from benchmarks.common import Deadline, Figure, Metric, below, ms
from benchmarks.streams import Fanout, client_session, directory_put, etcd_put
from mwkit.directory import run_directory

SERVICE = "bench"
INSTANCES = 3
PAUSE = 0.02  # seconds between changes: each change is measured on a quiet system


async def measure(kind: str, url: str, n: int, changes: int, deadline: Deadline) -> dict:
    """Delays (s) of every subscriber for every change, and the bytes of one message."""
    async with client_session() as session:
        def put(index: int, change: int = 0):
            if kind == "directory":
                return directory_put(session, url, SERVICE, index, change)
            return etcd_put(session, url, f"{SERVICE}/", index, change)

        for index in range(INSTANCES):
            await put(index)
        fanout = Fanout(n)
        try:
            await fanout.open(kind, url, f"{SERVICE}/")
            delays: list[float] = []
            per_change: list[float] = []
            for k in range(1, changes + 1):
                if deadline.expired and per_change:
                    break
                got = await fanout.change(lambda k=k: put(0, k))
                delays += got
                per_change.append(max(got))
                await asyncio.sleep(PAUSE)
            size = fanout.bytes_per_change()
        finally:
            fanout.close()
    return {"delays": delays, "slowest": per_change,
            "bytes": size}


def run(quick: bool, scratch: Path) -> Figure:
    figure = Figure(3, "one change -> all subscribers notified")
    counts = (10, 100, 1000)
    changes = 8 if quick else 40
    deadline = Deadline(40 if quick else 150)
    results: dict[tuple[str, int], dict] = {}
    with run_directory(log_path=scratch / "directory.log") as directory_url, \
            etcd(scratch) as etcd_url:
        for n in counts:
            for kind, url in (("directory", directory_url), ("etcd", etcd_url)):
                per_count = Deadline(deadline.left() / 2 / (len(counts) - counts.index(n)))
                results[kind, n] = asyncio.run(measure(kind, url, n, changes, per_count))
    for n in counts:
        mine, theirs = results["directory", n], results["etcd", n]
        target = "p99 < 100 ms" if n == 1000 else ""
        figure.add(
            Metric(f"Directory: delay to each of {n} subscribers", "ms",
                   [ms(d) for d in mine["delays"]], per="subscriber x change", target=target,
                   check=below(100) if n == 1000 else None),
            Metric(f"etcd watch: delay to each of {n} watchers", "ms",
                   [ms(d) for d in theirs["delays"]], per="watcher x change"),
            Metric(f"ratio Directory / etcd, delay to the last of {n}", "x",
                   [a / b for a, b in zip(mine["slowest"], theirs["slowest"], strict=False)],
                   per="change", note="each change's slowest subscriber, paired by order"),
            Metric(f"Directory: bytes sent per change, {n} subscribers", "bytes",
                   [mine["bytes"] * n], per="change",
                   note=f"{mine['bytes']:.0f} bytes per subscriber: SSE event with HTTP "
                        "chunk framing"),
            Metric(f"etcd watch: bytes sent per change, {n} watchers", "bytes",
                   [theirs["bytes"] * n], per="change",
                   note=f"{theirs['bytes']:.0f} bytes per watcher: gateway JSON line with "
                        "HTTP chunk framing"),
            Metric(f"ratio Directory / etcd, bytes per change per subscriber, {n}", "x",
                   [mine["bytes"] / theirs["bytes"]], per="change",
                   target="<= 1 (no more than etcd)", check=lambda s: s["p99"] <= 1.0),
        )
    figure.notes.append(
        f"{changes} changes per count, {PAUSE * 1000:.0f} ms apart; the service has "
        f"{INSTANCES} instances. A Directory message carries the one instance that changed "
        "(a put), as etcd's carries the one key that changed; each subscriber keeps its "
        "table (until the second round, a message carried the service's complete list).")
    figure.notes.append(
        "etcd runs with its data folder on tmpfs and is reached through its gRPC gateway "
        "(HTTP/JSON), the only form a Python client without grpcio can use; its native "
        "gRPC stream would carry fewer bytes.")
    return figure
