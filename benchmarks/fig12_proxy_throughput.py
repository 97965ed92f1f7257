"""Figure 12: requests per second and latency through each proxy, closed loop, one backend.

One popularity instance (a real process on SQLite, fig5's) is called through four ways,
each ``GET /`` of popularity: directly; through Sherlock's Python proxy (``mwkit
sherlock``, another process); through Sherlock's HAProxy data plane
(:mod:`mwkit.sherlock.haproxy_plane`: HAProxy driven through its runtime API from the
Directory's stream); through plain HAProxy configured by hand (the yardstick of fig5). Each
way is loaded closed-loop, 10 then 50 keep-alive connections, each sending its next call
as soon as the last is answered (the bare HTTP/1.1 client of ``benchmarks/rawhttp.py`` on
uvloop when installed), for ``seconds`` per block; blocks repeat the four ways in a
rotating order so that machine noise falls on all alike.

Per block and connection count: requests per second, latency p50 and p99 (in the report
behind the fixed answer only; popularity's are in the picture); a proxy's *added p50* is its
p50 minus the direct p50 of the same block and connection count. The
targets are goal 1 of issue 13 for the data plane: added p50 at most 3x HAProxy's and at
least half its requests per second. The Python proxy's ratios are reported without a
target. The figure is written as a PNG, by default ``benchmarks/raw/fig12_proxy_throughput.png``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import time
from pathlib import Path

import requests
from matplotlib.backends.backend_agg import FigureCanvasAgg

from benchmarks.baselines import haproxy
from benchmarks.common import Deadline, Figure, Metric, at_least, ms
from benchmarks.fig5_overhead import SERVICE, popularity
from benchmarks.rawhttp import Client
from mwkit import plots
from mwkit.aio import new_event_loop
from mwkit.approaches.haproxy import config_head, haproxy_process
from mwkit.directory import DirectoryClient, run_directory
from mwkit.procs import free_port, python_command, running, wait_for_http
from mwkit.sherlock.haproxy_plane import HaproxyPlane
from mwkit.traffic import percentile

HERE = Path(__file__).resolve().parent
PNG = HERE / "raw" / "fig12_proxy_throughput.png"
DIRECT, PYTHON, PLANE, HAPROXY = "direct", "Python proxy", "HAProxy data plane", "HAProxy"
WAYS = (DIRECT, PYTHON, PLANE, HAPROXY)
CONNECTIONS = (10, 50)
FIXED = "fixed"  # the backend answering from memory (fixed_answer)
BACKENDS = (SERVICE, FIXED)
TITLES = {SERVICE: "popularity (the ceiling)", FIXED: "a fixed answer (from memory)"}


async def closed_loop(url: str, path: str, connections: int, seconds: float,
                      reconnect: bool = False) -> tuple[list[float], int]:
    """``connections`` callers of ``GET path`` for ``seconds`` after each one's first call
    (its connection opening, not counted): the latencies (s) of the calls answered in
    time, and how many failed. ``reconnect``: a new connection for every call (popularity's
    server closes each one after its answer: the proxies keep theirs to the caller open)."""
    latencies: list[float] = []
    failed = 0

    async def caller() -> None:
        nonlocal failed
        client = Client(url)
        try:
            await client.call("GET", path)
            while time.perf_counter() < end:
                if reconnect:
                    client.close()
                    client = Client(url)
                began = time.perf_counter()
                try:
                    await client.call("GET", path)
                except (OSError, RuntimeError, TimeoutError):
                    failed += 1
                    client.close()
                    client = Client(url)
                    continue
                latencies.append(time.perf_counter() - began)
        finally:
            client.close()

    end = time.perf_counter() + seconds
    await asyncio.gather(*(caller() for _ in range(connections)))
    return latencies, failed


def load(url: str, path: str, connections: int, seconds: float, reconnect: bool = False
         ) -> tuple[list[float], int]:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(closed_loop(url, path, connections, seconds, reconnect))


@contextlib.contextmanager
def fixed_answer(scratch: Path, body: bytes):
    """A backend that is never the bottleneck: HAProxy answering every request with
    ``body`` from memory, on kept-alive connections. Yields its host:port."""
    (scratch / "answer.json").write_bytes(body)
    port = free_port()
    config = scratch / "fixed.cfg"
    config.write_text("\n".join(config_head() + [
        "frontend fixed", f"    bind 127.0.0.1:{port}",
        f"    http-request return status 200 content-type application/json file "
        f"{scratch / 'answer.json'}"]) + "\n")
    with haproxy_process(config, scratch / "fixed.log"):
        wait_for_http(f"http://127.0.0.1:{port}/health", timeout=10)
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def python_proxy(directory: str, scratch: Path):
    """``mwkit sherlock`` in a process of its own, as a user runs it; yields its URL."""
    listen = f"127.0.0.1:{free_port()}"
    command = python_command("-m", "mwkit", "sherlock", "--directory", directory,
                             "--listen", listen)
    with running(command, ready_url=f"http://{listen}/{SERVICE}/health",
                 log_path=scratch / "proxy.log"):
        yield f"http://{listen}"


@contextlib.contextmanager
def the_ways(scratch: Path):
    """Both backends and the three proxies in front of each: backend -> way -> (base URL,
    path, a new connection per call)."""
    with contextlib.ExitStack() as stack:
        directory = stack.enter_context(run_directory(log_path=scratch / "directory.log"))
        address = stack.enter_context(popularity(scratch))
        body = requests.get(f"http://{address}/", timeout=5).content
        backends = {SERVICE: address, FIXED: stack.enter_context(fixed_answer(scratch, body))}
        with DirectoryClient(directory) as client:
            for service, where in backends.items():
                client.register(service, f"{service}-1", where, ttl=3600)
        proxy = stack.enter_context(python_proxy(directory, scratch))
        plane = stack.enter_context(HaproxyPlane(directory, tuple(backends)))
        ways = {}
        for service, where in backends.items():
            folder = scratch / service
            folder.mkdir()
            ways[service] = {
                DIRECT: (f"http://{where}", "/", service == SERVICE),
                PYTHON: (proxy, f"/{service}/", False),
                PLANE: (plane.url, f"/{service}/", False),
                HAPROXY: (stack.enter_context(haproxy(folder, service, [where])),
                          f"/{service}/", False)}
        yield ways


def run(quick: bool, scratch: Path, png: Path = PNG) -> Figure:
    figure = Figure(12, "requests per second and latency through each proxy, closed loop")
    blocks, seconds = (2, 0.4) if quick else (4, 0.9)
    deadline = Deadline(40 if quick else 120)
    # (backend, connections, way) -> per block: requests/s, p50 (s), p99 (s)
    rates: dict[tuple, list[float]] = {}
    p50s: dict[tuple, list[float]] = {}
    p99s: dict[tuple, list[float]] = {}
    failed = dict.fromkeys(WAYS, 0)
    with the_ways(scratch) as ways:
        for block in range(blocks):
            if deadline.expired and rates:
                break
            order = WAYS[block % len(WAYS):] + WAYS[:block % len(WAYS)]
            for backend, connections in itertools.product(BACKENDS, CONNECTIONS):
                for way in order:
                    url, path, reconnect = ways[backend][way]
                    latencies, lost = load(url, path, connections, seconds, reconnect)
                    failed[way] += lost
                    key = (backend, connections, way)
                    rates.setdefault(key, []).append(len(latencies) / seconds)
                    p50s.setdefault(key, []).append(statistics.median(latencies))
                    p99s.setdefault(key, []).append(percentile(latencies, 99))
    for backend, connections in itertools.product(BACKENDS, CONNECTIONS):
        figure.add(*case_metrics(backend, connections, rates, p50s, p99s))
    figure.notes += [
        f"{blocks} blocks x {seconds:g} s per backend, connection count and way, after each "
        f"connection's first call; failed calls: {failed}.",
        "Two backends, the same for every way: popularity (Flask on SQLite, one process; "
        "its server closes each connection after the answer, so a direct caller connects "
        "for every call while a proxy keeps the caller's connection) is itself the ceiling "
        "at about a thousand calls a second: every proxy's rate is near it, and a proxy's "
        "p50 can be below the direct one, so its added p50 is not reported there. The "
        "fixed answer (popularity's own page, served from memory by a bare HAProxy on "
        "kept-alive connections) is never the bottleneck: it measures the proxies.",
        "The client is Python too (one asyncio loop on uvloop, the bare HTTP/1.1 client of "
        "benchmarks/rawhttp.py) and shares the machine's 2 cores with the backend and the "
        "proxy under test: the direct rate is the client's own ceiling, and a proxy takes "
        "CPU from the client (the Python proxy a whole core's share, HAProxy far less).",
        "Plain HAProxy is fig5's (http-reuse always, no checks); the data plane also checks "
        "its servers every 0.5 s, retries a refused or dropped call on another instance, "
        "sets Host and names the slot in X-Mwkit-Server.",
        f"The figure: {plots.save(draw(rates, p50s, p99s), png)}",
    ]
    return figure


def case_metrics(backend: str, connections: int, rates: dict, p50s: dict, p99s: dict
                 ) -> list[Metric]:
    """One backend and connection count: per way its rate and latency; behind the fixed
    answer what each proxy adds (p50); the ratios to HAProxy, the data plane's with goal
    1's targets."""
    at = f"{backend}, {connections} connections"
    metrics = []
    for way in WAYS:
        key = (backend, connections, way)
        metrics.append(Metric(f"{at}, {way}: requests per second", "1/s", rates[key],
                              per="block"))
        if backend == FIXED:  # behind popularity, its own ceiling: the picture has them
            metrics += [Metric(f"{at}, {way}: latency {which}", "ms", [ms(v) for v in got[key]],
                               per="block") for which, got in (("p50", p50s), ("p99", p99s))]
    added = {}
    if backend == FIXED:
        direct = p50s[(backend, connections, DIRECT)]
        added = {way: [p - d for p, d in zip(p50s[(backend, connections, way)], direct,
                                             strict=True)]
                 for way in (PYTHON, PLANE, HAPROXY)}
        metrics += [Metric(f"{at}, {way}: adds (p50)", "ms", [ms(a) for a in added[way]],
                           per="block") for way in added]
    for way, targets in ((PLANE, True), (PYTHON, False)):
        if added:
            ratio = [a / b for a, b in zip(added[way], added[HAPROXY], strict=True) if b > 0]
            metrics.append(Metric(
                f"{at}: ratio {way} / HAProxy, added p50", "x", ratio, per="block",
                target="<= 3x" if targets else "",
                check=(lambda summary: summary["median"] <= 3) if targets else None,
                note="" if len(ratio) == len(added[way]) else
                f"{len(added[way]) - len(ratio)} block(s) where HAProxy added nothing "
                "measurable left out"))
        metrics.append(Metric(
            f"{at}: ratio {way} / HAProxy, requests per second", "x",
            [a / b for a, b in zip(rates[(backend, connections, way)],
                                   rates[(backend, connections, HAPROXY)], strict=True) if b],
            per="block", target=">= 0.5x" if targets else "",
            check=at_least(0.5) if targets else None))
    return metrics


def draw(rates: dict, p50s: dict, p99s: dict) -> plots.Picture:
    """Per backend two panels: requests per second per way (bars, one group per
    connection count), and latency per way (p50 bars, p99 marks); medians over blocks."""
    picture = plots.Picture(figsize=(11, 8), layout="constrained")
    FigureCanvasAgg(picture)
    panels = picture.subplots(len(BACKENDS), 2, squeeze=False)
    width = 0.8 / len(WAYS)
    for (throughput, latency), backend in zip(panels, BACKENDS, strict=True):
        for index, way in enumerate(WAYS):
            colour = plots.PALETTE[index]
            xs = [group + (index - (len(WAYS) - 1) / 2) * width
                  for group in range(len(CONNECTIONS))]
            keys = [(backend, c, way) for c in CONNECTIONS]
            throughput.bar(xs, [statistics.median(rates[k]) for k in keys], width,
                           label=way, color=colour)
            latency.bar(xs, [ms(statistics.median(p50s[k])) for k in keys], width,
                        color=colour)
            latency.scatter(xs, [ms(statistics.median(p99s[k])) for k in keys],
                            marker="_", s=200, color=colour)
        for ax, title in ((throughput, "requests per second"),
                          (latency, "latency, ms (bar: p50, mark: p99)")):
            ax.set_xticks(range(len(CONNECTIONS)), [f"{c} connections" for c in CONNECTIONS])
            ax.set_title(f"{TITLES[backend]}: {title}")
    picture.legend(*panels[0][0].get_legend_handles_labels(), loc="outside upper center",
                   ncols=len(WAYS))
    return picture
