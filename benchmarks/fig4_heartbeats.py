"""Figure 4: registrations and heartbeats per second the Directory sustains, next to etcd.

The same closed-loop client (``CONCURRENCY`` keep-alive connections in one asyncio loop,
each sending its next request as soon as the last one is answered) drives both:

- the Directory: a registration is ``PUT /v1/services/bench/instances/<id>`` of a new
  instance (or, once a service holds its cap of 1,000, of one already there with a new
  address: a change pushed all the same); a heartbeat is ``POST .../<id>/heartbeat`` of
  one of the registered ones;
- etcd, through its gRPC gateway: a registration is a lease grant plus a put of the
  instance's key on that lease (what an etcd client does); a heartbeat is one
  ``/v3/lease/keepalive`` of one of those leases.

Rates are counted per one-second window; the samples are those windows.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmarks.baselines import b64, etcd
from benchmarks.common import Figure, Metric, at_least
from benchmarks.rawhttp import Client
from benchmarks.streams import instance_body
from mwkit.directory import run_directory
from mwkit.directory.registry import MAX_INSTANCES_PER_SERVICE

CONCURRENCY = 32
WINDOW = 1.0


async def closed_loop(url: str, work: Callable[[Client, int], Awaitable[None]],
                      seconds: float) -> list[float]:
    """Run ``work`` from CONCURRENCY connections for ``seconds`` after a one-window warm-up
    (connections opening); completions per window, the warm-up left out."""
    seconds += WINDOW
    numbers = itertools.count()
    done: list[float] = []
    clients = [Client(url) for _ in range(CONCURRENCY)]
    start = time.perf_counter()
    end = start + seconds

    async def worker(client: Client):
        while time.perf_counter() < end:
            await work(client, next(numbers))
            done.append(time.perf_counter())

    try:
        await asyncio.gather(*(worker(client) for client in clients))
    finally:
        for client in clients:
            client.close()
    windows = [0] * max(1, int(seconds / WINDOW))
    for moment in done:
        index = int((moment - start) / WINDOW)
        if index < len(windows):
            windows[index] += 1
    return [count / WINDOW for count in windows[1:]]


def service_of(prefix: str, number: int, services: int) -> str:
    return f"{prefix}{number % services}"


def directory_work(prefix: str, services: int):
    """Register new instances spread over ``services`` services; renew random ones."""
    registered: list[str] = []

    async def register(client: Client, number: int):
        # A service holds at most MAX_INSTANCES_PER_SERVICE instances: past that, an
        # instance registers again with a new address, a change pushed like a registration.
        slot = number % (MAX_INSTANCES_PER_SERVICE * services)
        path = f"/v1/services/{service_of(prefix, number, services)}/instances/i{slot}"
        await client.call("PUT", path, instance_body(slot, change=number))
        registered.append(path)

    async def heartbeat(client: Client, number: int):
        await client.call("POST", f"{random.choice(registered)}/heartbeat")

    return register, heartbeat


def etcd_work(prefix: str, services: int):
    leases: list[str] = []

    async def register(client: Client, number: int):
        lease = (await client.call("POST", "/v3/lease/grant", {"TTL": 600}))["ID"]
        await client.call("POST", "/v3/kv/put", {
            "key": b64(f"{service_of(prefix, number, services)}/i{number}"),
            "value": b64(json.dumps(instance_body(number))), "lease": lease})
        leases.append(lease)

    async def heartbeat(client: Client, number: int):
        await client.call("POST", "/v3/lease/keepalive", {"ID": random.choice(leases)})

    return register, heartbeat


PHASES = ("registrations, 1 service", "registrations, 100 services", "heartbeats")


def measure(make_work, url: str, seconds: float) -> dict[str, list[float]]:
    """The three phases against one registry; rates per window."""
    register_in_one, _ = make_work("one", 1)
    register_in_many, heartbeat = make_work("many", 100)
    return {PHASES[0]: asyncio.run(closed_loop(url, register_in_one, seconds)),
            PHASES[1]: asyncio.run(closed_loop(url, register_in_many, seconds)),
            PHASES[2]: asyncio.run(closed_loop(url, heartbeat, seconds))}


def run(quick: bool, scratch: Path) -> Figure:
    figure = Figure(4, "registrations and heartbeats per second")
    seconds = 1.0 if quick else 6.0
    with run_directory(log_path=scratch / "directory.log") as directory_url, \
            etcd(scratch) as etcd_url:
        rates = {"Directory": measure(directory_work, directory_url, seconds),
                 "etcd": measure(etcd_work, etcd_url, seconds)}
    for what in PHASES:
        mine, theirs = rates["Directory"][what], rates["etcd"][what]
        heartbeats = what == "heartbeats"
        figure.add(
            Metric(f"Directory: {what} per second", "1/s", mine, per="1-s window",
                   target=">= 5,000/s" if heartbeats else "",
                   check=at_least(5000) if heartbeats else None),
            Metric(f"etcd: {'lease keep-alives' if heartbeats else what} per second", "1/s",
                   theirs, per="1-s window"),
            Metric(f"ratio Directory / etcd, {what}", "x",
                   [a / b for a, b in zip(mine, theirs, strict=False) if b], per="window pair",
                   target=">= 1 (as fast as etcd)" if what == PHASES[0] else "",
                   check=at_least(1.0) if what == PHASES[0] else None),
        )
    figure.notes.append(
        f"{CONCURRENCY} keep-alive connections from one Python asyncio client (the bare "
        "HTTP/1.1 client of benchmarks/rawhttp.py), "
        f"{seconds:.0f} s per phase after a 1 s warm-up; both servers share this machine's "
        "2 cores with the client (the same client for both), so these are lower bounds.")
    figure.notes.append(
        "Registrations add new instances: into one service (it grows to thousands), or spread "
        "over 100 services. Heartbeats renew random instances of the 100-service phase.")
    figure.notes.append(
        "etcd: registration = lease grant + put with the lease (2 requests); keep-alive = one "
        "gateway /v3/lease/keepalive request (a gRPC client would stream them on one call).")
    return figure
