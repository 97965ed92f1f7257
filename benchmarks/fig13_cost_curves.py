"""Figure 13: cost curves -- what one more instance, or one more subscriber, costs.

Two curves, each measured against the Directory and then against etcd (one server up at
a time, the same client code in one asyncio loop):

- against instances in ONE service (10 -> 10,000): the service is filled to ``n``,
  ``WATCHERS`` subscribers attach, then (a) ``CHANGES`` re-registrations of one instance
  with new metadata, ``PAUSE`` apart, each timed to every subscriber (the push delay, as in
  figure 3) and the bytes one subscriber got per change, (b) the server's resident memory
  (RSS of the process that listens on its port), (c) the closed loop of figure 4
  re-registers the ``n`` instances with new metadata for a short window (every one a
  change pushed to the subscribers, and the service stays at ``n``). A subscriber that
  falls too far behind meanwhile may be cut off by the server: the figure says where;
- against subscribers (10 -> 5,000) of a small service (``SMALL`` instances): the same
  three readings with ``N`` subscribers attached.

etcd is reached through its gRPC gateway (HTTP/JSON, as in figures 3 and 4); an instance
is a key on one lease, a re-registration a put of its key on that lease. A point that
cannot be measured (the service's cap answers 409, more streams than this process may open
even with its soft limit of open files raised to the hard one, the time budget spent) is
left out with a note, and the curve goes on or stops there.

"Flat per operation" here: registrations per second at the largest service stay at least
half of those at 10 instances (a per-change cost that grew with the service's size, as a
whole-list push did, would fall by orders of magnitude over three decades). The figure is
drawn as a PNG, by default ``benchmarks/raw/fig13_cost_curves.png`` (ignored by Git).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import resource
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from urllib.parse import urlsplit

import psutil
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as Picture

from benchmarks.baselines import etcd
from benchmarks.common import Deadline, Figure, Metric, at_least, below, ms
from benchmarks.fig4_heartbeats import CONCURRENCY, closed_loop
from benchmarks.rawhttp import Client
from benchmarks.streams import (
    Fanout,
    client_session,
    directory_put,
    directory_registration,
    etcd_put,
    etcd_registration,
)
from mwkit import plots
from mwkit.directory import run_directory
from mwkit.traffic import percentile

HERE = Path(__file__).resolve().parent
PNG = HERE / "raw" / "fig13_cost_curves.png"
SERVICE = "bench"
INSTANCES = {False: (10, 100, 1_000, 10_000), True: (10, 100, 1_000)}  # by quick
SUBSCRIBERS = {False: (10, 100, 1_000, 5_000), True: (10, 100, 500)}
WATCHERS = 10  # subscribers on the curve against instances
SMALL = 3  # instances on the curve against subscribers
CHANGES = {False: 20, True: 6}  # timed changes per point
SECONDS = {False: 3.0, True: 2.0}  # closed-loop window per point (after a 1 s warm-up)
BUDGET = {False: 220.0, True: 55.0}  # seconds for the whole figure
PAUSE = 0.02  # seconds between timed changes
SPARE_FILES = CONCURRENCY + 200  # descriptors beyond one per stream: loop, clients, logs
MIB = 2**20
NAMES = {"directory": "Directory", "etcd": "etcd"}
COLOURS = {"directory": "#1f77b4", "etcd": "#ff7f0e"}


@dataclass
class Point:
    """One registry at one size: what the curves plot."""

    rates: list[float]  # registrations per 1-s window
    delays: list[float]  # seconds, per subscriber x change
    memory: float  # MiB, resident, with the subscribers attached
    bytes: float  # per change per subscriber
    cut: int  # subscribers whose streams ended during the registrations


@dataclass
class Curve:
    points: dict[int, Point] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def open_files() -> Iterator[int]:
    """This process's soft limit of open files raised to its hard limit for the block (and
    restored after); yields the limit. One stream is one descriptor here and one in the
    server, which inherits the limit when started inside the block."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = soft
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        limit = hard
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def listener(url: str) -> psutil.Process:
    """The process listening on ``url``'s port, among those this one started: the server
    whose memory is read. (A process's own sockets are readable without root, also on
    macOS; the whole machine's, ``psutil.net_connections``, are not.)"""
    port = urlsplit(url).port
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
                   for connection in child.net_connections("tcp")):
                return child
    raise RuntimeError(f"no process of ours listens on {url}")


def server(kind: str, scratch: Path):
    if kind == "directory":
        return run_directory(log_path=scratch / "directory.log")
    return etcd(scratch)


class Target:
    """One running registry: its registrations, as the load client and as a timed change."""

    def __init__(self, kind: str, url: str, lease: str | None) -> None:
        self.kind, self.url, self.lease = kind, url, lease
        self.changes = itertools.count(1)  # every put carries new metadata: a change

    def registration(self, index: int) -> tuple[str, str, dict]:
        if self.kind == "directory":
            return directory_registration(SERVICE, index, next(self.changes))
        return etcd_registration(f"{SERVICE}/", index, next(self.changes), self.lease)

    async def fill(self, start: int, stop: int) -> None:
        """Register instances ``start`` to ``stop - 1``, CONCURRENCY at a time."""
        indexes = iter(range(start, stop))
        clients = [Client(self.url) for _ in range(CONCURRENCY)]

        async def worker(client: Client) -> None:
            for index in indexes:
                await client.call(*self.registration(index))

        try:
            await asyncio.gather(*(worker(client) for client in clients))
        finally:
            for client in clients:
                client.close()

    def put(self, session, index: int):
        if self.kind == "directory":
            return directory_put(session, self.url, SERVICE, index, next(self.changes))
        return etcd_put(session, self.url, f"{SERVICE}/", index, next(self.changes),
                        self.lease)

    def reregistrations(self, size: int):
        """The closed loop's work: re-register instance ``number % size`` with new
        metadata."""
        async def reregister(client: Client, number: int) -> None:
            await client.call(*self.registration(number % size))

        return reregister

    async def warm_up(self, size: int) -> None:
        """One window of re-registrations, not measured: the server's change history (the
        Directory keeps the last 10,000 changes) is full before the first point's memory
        is read, so that the first point does not look lighter than it is."""
        await closed_loop(self.url, self.reregistrations(size), 0.0)

    async def point(self, size: int, subscribers: int, changes: int, seconds: float,
                    deadline: Deadline, process: psutil.Process) -> Point:
        """With ``subscribers`` attached to a service of ``size``: timed changes, the
        server's memory, the closed loop of re-registrations."""
        fanout = Fanout(subscribers)
        try:
            async with client_session() as session:
                await fanout.open(self.kind, self.url, f"{SERVICE}/",
                                  timeout=max(1.0, min(60.0, deadline.left())))
                delays: list[float] = []
                for _ in range(changes):
                    if deadline.expired and delays:
                        break
                    delays += await fanout.change(lambda: self.put(session, 0))
                    await asyncio.sleep(PAUSE)
            size_of_change = fanout.bytes_per_change()
            memory = process.memory_info().rss / MIB
            rates = await closed_loop(self.url, self.reregistrations(size), seconds)
            cut = sum(s.transport is None for s in fanout.subscribers)
        finally:
            fanout.close()
        return Point(rates, delays, memory, size_of_change, cut)


async def target_for(kind: str, url: str) -> Target:
    lease = None
    if kind == "etcd":  # every key on one lease, as every Directory instance has a TTL
        client = Client(url)
        try:
            lease = (await client.call("POST", "/v3/lease/grant", {"TTL": 600}))["ID"]
        finally:
            client.close()
    return Target(kind, url, lease)


async def against_instances(kind: str, url: str, counts: tuple[int, ...], quick: bool,
                            deadline: Deadline) -> Curve:
    curve, target, process = Curve(), await target_for(kind, url), listener(url)
    filled = 0
    for n in counts:
        if deadline.expired:
            curve.notes.append(f"{NAMES[kind]}: {n:,} instances and more not measured, "
                               "out of time")
            break
        try:
            await target.fill(filled, n)
        except (RuntimeError, OSError) as error:  # 409: the service's cap
            curve.notes.append(f"{NAMES[kind]}: stopped filling the service at {n:,} "
                               f"instances: {error}")
            break
        if not filled:
            await target.warm_up(n)
        filled = n
        try:
            curve.points[n] = await target.point(n, WATCHERS, CHANGES[quick],
                                                 SECONDS[quick], deadline, process)
        except (RuntimeError, OSError) as error:  # streams or a change that did not come
            curve.notes.append(f"{NAMES[kind]}: {n:,} instances not measured: {error}")
            break
    return curve


async def against_subscribers(kind: str, url: str, counts: tuple[int, ...], quick: bool,
                              deadline: Deadline, files: int) -> Curve:
    curve, target, process = Curve(), await target_for(kind, url), listener(url)
    await target.fill(0, SMALL)
    await target.warm_up(SMALL)
    for n in counts:
        if n + SPARE_FILES > files:
            curve.notes.append(f"{NAMES[kind]}: {n:,} subscribers not measured: they need "
                               f"about {n + SPARE_FILES:,} open files and this machine "
                               f"allows {files:,} (raise it with `ulimit -n`)")
            continue
        if deadline.expired:
            curve.notes.append(f"{NAMES[kind]}: {n:,} subscribers not measured, out of time")
            continue
        try:
            curve.points[n] = await target.point(SMALL, n, CHANGES[quick], SECONDS[quick],
                                                 deadline, process)
        except (RuntimeError, OSError) as error:  # streams that do not come up in time
            curve.notes.append(f"{NAMES[kind]}: {n:,} subscribers not measured: {error}")
            break
    return curve


def measure(kind: str, scratch: Path, against: str, counts: tuple[int, ...], quick: bool,
            deadline: Deadline, files: int) -> Curve:
    with server(kind, scratch) as url:
        if against == "instances":
            return asyncio.run(against_instances(kind, url, counts, quick, deadline))
        return asyncio.run(against_subscribers(kind, url, counts, quick, deadline, files))


def point_metrics(kind: str, what: str, n: int, point: Point) -> list[Metric]:
    name = f"{NAMES[kind]}, {n:,} {what}"
    watchers = WATCHERS if what == "instances" else n
    metrics = [
        Metric(f"{name}: registrations per second", "1/s", point.rates, per="1-s window",
               note="re-registrations with new metadata, each a change pushed to "
                    f"{watchers:,} subscribers" + (f"; {point.cut:,} of them were cut off "
                    "meanwhile" if point.cut else "")),
        Metric(f"{name}: push delay" + (f" to {watchers} subscribers" if what == "instances"
                                         else ""), "ms",
               [ms(d) for d in point.delays], per="subscriber x change"),
        Metric(f"{name}: memory (RSS)", "MiB", [point.memory], per="reading"),
    ]
    if what == "instances":
        metrics.append(Metric(f"{name}: bytes per change per subscriber", "bytes",
                              [point.bytes], per="subscriber",
                              note="HTTP body bytes, chunk framing included"))
    return metrics


def memory_growth(curve: Curve) -> float | None:
    """KiB of resident memory per instance (or subscriber) added along the curve."""
    if len(curve.points) < 2:
        return None
    first, last = min(curve.points), max(curve.points)
    return (curve.points[last].memory - curve.points[first].memory) * 1024 / (last - first)


def largest_in_both(curves: dict[str, Curve]) -> tuple[int, Point, Point] | None:
    """The largest size both registries reached, and their points there."""
    mine, theirs = curves["directory"].points, curves["etcd"].points
    both = set(mine) & set(theirs)
    return (max(both), mine[max(both)], theirs[max(both)]) if both else None


def comparisons(by_instances: dict[str, Curve], by_subscribers: dict[str, Curve]) -> list[Metric]:
    """The issue's three targets, at the largest size both registries reached."""
    metrics = []
    if reached := largest_in_both(by_instances):
        n, mine, theirs = reached
        metrics.append(Metric(
            f"ratio Directory / etcd, registrations per second at {n:,} instances", "x",
            [a / b for a, b in zip(mine.rates, theirs.rates, strict=False) if b],
            per="window pair", target=">= 1", check=at_least(1.0)))
    for kind in ("directory", "etcd"):
        points = by_instances[kind].points
        if len(points) > 1:
            first, last = min(points), max(points)
            metrics.append(Metric(
                f"{NAMES[kind]}: registrations per second at {last:,} / at {first:,} "
                "instances", "x", [median(points[last].rates) / median(points[first].rates)],
                per="run", target=">= 0.5" if kind == "directory" else "",
                check=at_least(0.5) if kind == "directory" else None,
                note="flat per operation: a change costs about the same in a big service"))
    if reached := largest_in_both(by_subscribers):
        n, mine, theirs = reached
        metrics.append(Metric(
            f"ratio Directory / etcd, push delay p99 at {n:,} subscribers", "x",
            [percentile(mine.delays, 99) / percentile(theirs.delays, 99)],
            per="run", target="< 1", check=below(1.0),
            note="the Directory's p99 over etcd's, every subscriber x change"))
    return metrics


PANELS = (  # y label, what of a point, log y
    ("registrations per second", lambda p: median(p.rates), True),
    ("push delay p99 (ms)", lambda p: ms(percentile(p.delays, 99)), True),
    ("server memory, RSS (MiB)", lambda p: p.memory, False),
)


def draw(by_instances: dict[str, Curve], by_subscribers: dict[str, Curve], png: Path) -> Path:
    """Two rows (against instances in one service, against subscribers) of three panels."""
    picture = Picture(figsize=(14, 8), layout="constrained")
    FigureCanvasAgg(picture)
    axes = picture.subplots(2, 3, squeeze=False)
    rows = ((by_instances, f"instances in one service ({WATCHERS} subscribers)"),
            (by_subscribers, f"subscribers ({SMALL} instances)"))
    for row, (curves, x_label) in zip(axes, rows, strict=True):
        for ax, (y_label, value, log_y) in zip(row, PANELS, strict=True):
            for kind, curve in curves.items():
                sizes = sorted(curve.points)
                ax.plot(sizes, [value(curve.points[n]) for n in sizes], marker="o",
                        color=COLOURS[kind], label=NAMES[kind])
                cut = [n for n in sizes if curve.points[n].cut] if ax is row[0] else []
                if cut:  # the rate was measured while (some) subscribers were gone
                    ax.plot(cut, [value(curve.points[n]) for n in cut], "o", ms=9,
                            mfc="white", color=COLOURS[kind],
                            label=f"{NAMES[kind]}: subscribers cut off meanwhile")
            ax.set_xscale("log")
            if log_y:
                ax.set_yscale("log")
            ax.set_xlabel(x_label)
            ax.set_ylabel(y_label)
            ax.grid(True, which="major", alpha=0.3)
            ax.legend()
    picture.suptitle("Cost curves: the Directory and etcd, one server at a time")
    return plots.save(picture, png)


def run(quick: bool, scratch: Path, png: Path = PNG, instances: tuple[int, ...] | None = None,
        subscribers: tuple[int, ...] | None = None) -> Figure:
    figure = Figure(13, "cost curves: registrations/s, push delay and memory against "
                        "instances and subscribers, etcd alongside")
    instances = instances or INSTANCES[quick]
    subscribers = subscribers or SUBSCRIBERS[quick]
    deadline = Deadline(BUDGET[quick])
    by_instances: dict[str, Curve] = {}
    by_subscribers: dict[str, Curve] = {}
    parts = [(kind, against) for against in ("instances", "subscribers")
             for kind in ("directory", "etcd")]
    with open_files() as files:
        for left, (kind, against) in zip(range(len(parts), 0, -1), parts, strict=True):
            share = Deadline(deadline.left() / left)  # what the earlier parts left over
            counts = instances if against == "instances" else subscribers
            curve = measure(kind, scratch, against, counts, quick, share, files)
            (by_instances if against == "instances" else by_subscribers)[kind] = curve
            figure.notes += curve.notes
    for what, curves in (("instances", by_instances), ("subscribers", by_subscribers)):
        for kind, curve in curves.items():
            for n, point in sorted(curve.points.items()):
                figure.add(*point_metrics(kind, what, n, point))
    figure.add(*comparisons(by_instances, by_subscribers))
    figure.notes.append(
        f"Per point: {CHANGES[quick]} timed changes {PAUSE * 1000:.0f} ms apart; the RSS "
        f"of the server's process; then {SECONDS[quick]:.0f} s of re-registrations from "
        f"{CONCURRENCY} keep-alive connections (after a 1 s warm-up) while every "
        "subscriber's stream is read by the same client loop. Server and client share "
        "this machine's cores: at thousands of subscribers the client's reading is part of "
        "what is measured, for both registries alike.")
    figure.notes.append(
        "Flat per operation: registrations per second at the largest service at least half "
        "of those at 10 instances. Memory is the process's resident set when the point was "
        "read, after one unmeasured second of re-registrations at the first point (the "
        "Directory's history of the last 10,000 changes is full from the start; etcd keeps "
        "every revision, uncompacted, so its memory also grows with the changes made); it "
        "is rarely given back, so along a curve it is a high-water mark.")
    growths = [f"{NAMES[kind]} {growth:.1f} per {what[:-1]}"
               for what, curves in (("instances", by_instances), ("subscribers", by_subscribers))
               for kind, curve in curves.items() if (growth := memory_growth(curve)) is not None]
    if growths:
        figure.notes.append("Resident memory per instance, per subscriber added (KiB, from "
                            "the smallest point to the largest): " + "; ".join(growths) + ".")
    cut = [f"{NAMES[kind]} {n:,} {what}" for what, curves in (("instances", by_instances),
                                                              ("subscribers", by_subscribers))
           for kind, curve in curves.items() for n, point in curve.points.items() if point.cut]
    if cut:
        figure.notes.append(
            "Subscribers cut off during the registrations (a Directory ends the stream of a "
            "subscriber more than SUBSCRIBER_QUEUE messages behind; it resyncs when it "
            "reconnects): the rate was then measured with fewer listeners. At: "
            + ", ".join(cut) + ".")
    figure.notes.append(f"The figure: {draw(by_instances, by_subscribers, png)}")
    return figure
