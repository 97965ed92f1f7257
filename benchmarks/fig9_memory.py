"""Figure 9: the memory of one learner's stack, and how many stacks fit in 24 GiB.

A shared workshop server should hold ``LEARNERS`` learners. Each sample brings up a fresh
stack (Directory, database, the monolith) in a folder of its own, scales popularity to
``INSTANCES``, sends ``RELOADS`` page reloads so that every part has served, waits
``SETTLE`` seconds, and then reads the memory of every part of that stack:

on processes  every process of the workdir's process groups (``groups_of``), told apart by
              ``MWKIT_INSTANCE_ID`` or ``MWKIT_ROLE``: its RSS (``resident``) and, where
              the system allows, its USS (``private``: pages no other process maps);
on Docker     every container labelled ``mwkit.workdir=<workdir>``: the memory its cgroup
              is charged, ``memory_stats.usage`` minus the inactive file cache, as
              ``docker stats`` shows it (both ``resident`` and ``private``: a cgroup is
              charged each page once); plus what Docker runs on the host for each of them
              (its ``containerd-shim`` and the ``docker-proxy`` of its published port) and
              any host process of the workdir, by RSS and USS as above.

A part is an instance (supervisor with its Watson thread, and the service), the
Directory, the database or the watchdog. "Stacks that fit" is ``floor(24 GiB / total)``
with the resident total, which over-counts (see the notes); the private total's count is
in the metric's note.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from benchmarks.common import Deadline, Figure, Metric, at_least
from mwkit import contract, procs
from mwkit.stack import MONOLITH, SERVICE, Stack
from mwkit.wizard.runtimes.process import ROLE, groups_of

MIB = 2**20
SERVER_MIB = 24 * 1024  # the workshop server: 24 GiB
LEARNERS = 30
INSTANCES = 3
RELOADS = 30  # page reloads before measuring, at RATE a second
RATE = 10.0
SETTLE = 1.0  # seconds between the last reload and the reading
HOST_SIDE = "Docker on the host"  # the part: a containerd-shim and a docker-proxy per container


@dataclass
class Reading:
    """One stack's memory in MiB, per part: resident and private (None: not readable)."""

    resident: dict[str, float] = field(default_factory=dict)
    private: dict[str, float | None] = field(default_factory=dict)
    supervisor: list[float] = field(default_factory=list)  # RSS, per popularity instance
    service: list[float] = field(default_factory=list)  # RSS, per popularity instance
    reloads_ok: int = 0

    def add(self, part: str, resident: float, private: float | None) -> None:
        self.resident[part] = self.resident.get(part, 0.0) + resident
        known = self.private.get(part, 0.0)
        self.private[part] = None if known is None or private is None else known + private

    @property
    def total(self) -> float:
        return sum(self.resident.values())

    @property
    def private_total(self) -> float | None:
        values = list(self.private.values())
        return None if None in values else sum(values)


def part_names(ids: list[str]) -> dict[str, str]:
    """A readable part name per instance id or role: popularity instances become
    "popularity 1" to "popularity N" (in the order they were started), the monolith
    "monolith"."""
    popular = sorted((i for i in ids if i.startswith(f"{SERVICE}-")),
                     key=lambda i: (len(i), i))
    names = {i: f"popularity {n}" for n, i in enumerate(popular, 1)}
    for i in ids:
        if i.startswith(f"{MONOLITH}-"):
            names[i] = "monolith"
    return {i: names.get(i, i) for i in ids}


def process_memory(proc: psutil.Process) -> tuple[float, float | None]:
    """RSS and USS of one process in MiB (USS None where the system does not allow it)."""
    rss = proc.memory_info().rss / MIB
    try:
        return rss, proc.memory_full_info().uss / MIB
    except (psutil.AccessDenied, NotImplementedError):
        return rss, None


def read_processes(workdir: Path, reading: Reading) -> None:
    """Every live process of the workdir's process groups, per instance or role."""
    groups = groups_of(workdir)
    names = part_names([env.get(contract.INSTANCE_ID) or env.get(ROLE) or "other"
                        for env in groups.values()])
    for pgid, env in groups.items():
        part = names[env.get(contract.INSTANCE_ID) or env.get(ROLE) or "other"]
        supervisor = service = 0.0
        for proc in procs.group_members(pgid):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                rss, uss = process_memory(proc)
                reading.add(part, rss, uss)
                if proc.pid == pgid:
                    supervisor += rss  # the group's leader: the supervisor, Watson inside
                else:
                    service += rss
        if part.startswith("popularity"):
            reading.supervisor.append(supervisor)
            reading.service.append(service)


def in_use(memory_stats: dict) -> float:
    """A container's memory in MiB as ``docker stats`` shows it: usage minus the inactive
    file cache (cgroup v2 ``inactive_file``, v1 ``total_inactive_file``, older ``cache``)."""
    stats = memory_stats.get("stats") or {}
    cache = next((stats[key] for key in ("total_inactive_file", "inactive_file", "cache")
                  if key in stats), 0)
    return (memory_stats["usage"] - cache) / MIB


def host_side(containers: list) -> list[psutil.Process]:
    """Docker's processes on this machine for ``containers``: the containerd-shim started
    with the container's id and the docker-proxy of each of its published ports (none
    where the engine runs in a VM, as Docker Desktop's does)."""
    ids = {container.id for container in containers}
    ports = {str(binding.get("HostPort")) for container in containers
             for bindings in (container.ports or {}).values() for binding in bindings or []}
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            args = proc.info["cmdline"] or []
            flags = dict(zip(args, args[1:], strict=False))
            if ("shim" in (proc.info["name"] or "") and flags.get("-id") in ids) or \
                    ("docker-proxy" in (proc.info["name"] or "")
                     and flags.get("-host-port") in ports):
                found.append(proc)
    return found


def read_containers(stack: Stack, reading: Reading) -> None:
    """Every container labelled with the workdir, and Docker's host side for them."""
    filters = {"label": ["mwkit.managed=1", f"mwkit.workdir={stack.workdir.resolve()}"]}
    containers = stack.runtime.client.containers.list(ignore_removed=True, filters=filters)
    with ThreadPoolExecutor(max(1, len(containers))) as pool:  # about 1 s each
        stats = list(pool.map(lambda c: c.stats(stream=False), containers))
    keys = [c.labels.get("mwkit.instance") or c.labels.get("mwkit.role") or c.name
            for c in containers]
    names = part_names(keys)
    for key, stat in zip(keys, stats, strict=True):
        memory = in_use(stat["memory_stats"])
        reading.add(names[key], memory, memory)
    for proc in host_side(containers):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            reading.add(HOST_SIDE, *process_memory(proc))


def measure(runtime: str, database: str, folder: Path) -> Reading:
    """One fresh stack, warmed up, read, and taken down."""
    reading = Reading()
    with Stack(folder, runtime=runtime, database=database) as stack:
        stack.scale(INSTANCES)
        records = stack.reloads(rate=RATE, count=RELOADS).run()
        reading.reloads_ok = sum(r.ok for r in records)
        time.sleep(SETTLE)
        read_processes(stack.workdir, reading)  # on Docker: the watchdog, if any
        if runtime == "docker":
            read_containers(stack, reading)
    return reading


def fits(total_mib: float) -> int:
    return math.floor(SERVER_MIB / total_mib)


def add_variant(figure: Figure, label: str, runtime: str, readings: list[Reading]) -> None:
    parts = sorted({part for r in readings for part in r.resident},
                   key=lambda p: (p.startswith("popularity"), p == HOST_SIDE, p))
    totals = [r.total for r in readings]
    privates = [r.private_total for r in readings]
    counted = ("RSS of every process" if runtime == "process" else
               "containers' cgroup memory + Docker's host processes by RSS")
    private_note = ("USS of every process" if runtime == "process" else
                    "containers' cgroup memory + Docker's host processes by USS")
    figure.add(Metric(f"{label}: total, resident", "MiB", totals, per="stack", note=counted))
    if None not in privates:
        figure.add(Metric(f"{label}: total, private", "MiB", privates, per="stack",
                          note=private_note))
    for part in parts:
        figure.add(Metric(f"{label}: {part}", "MiB", [r.resident.get(part, 0.0)
                                                      for r in readings], per="stack"))
    by_private = ("; by the private total: "
                  f"{fits(statistics.median(privates))}") if None not in privates else ""
    figure.add(Metric(f"{label}: stacks that fit in 24 GiB", "stacks",
                      [fits(total) for total in totals], per="stack",
                      target=f">= {LEARNERS}", check=at_least(LEARNERS),
                      note=f"by the resident total{by_private}"))
    median = statistics.median(totals)
    largest = max(parts, key=lambda p: statistics.median(
        [r.resident.get(p, 0.0) for r in readings]))
    largest_mib = statistics.median([r.resident.get(largest, 0.0) for r in readings])
    private_mib = [r.private.get(largest) for r in readings]
    private_text = (f", {statistics.median(private_mib):.0f} MiB private"
                    if None not in private_mib else "")
    text = (f"{label}: {median:.0f} MiB per stack (resident), so {fits(median)} stacks in "
            f"24 GiB; the largest part is {largest} ({largest_mib:.0f} MiB resident"
            f"{private_text})")
    if fits(median) < LEARNERS:
        budget = SERVER_MIB / LEARNERS
        text += (f". Target missed by {LEARNERS - fits(median)} stacks: {LEARNERS} need "
                 f"at most {budget:.0f} MiB each, {median - budget:.0f} MiB less")
    supervisors = [m for r in readings for m in r.supervisor]
    services = [m for r in readings for m in r.service]
    if supervisors and services:
        text += (f". One popularity instance: supervisor with Watson "
                 f"{statistics.median(supervisors):.0f} MiB, service "
                 f"{statistics.median(services):.0f} MiB (RSS)")
    ok = sum(r.reloads_ok for r in readings)
    figure.notes.append(f"{text}. Warm-up: {ok} of {RELOADS * len(readings)} page "
                        "reloads answered.")


def variants(runtimes: tuple[str, ...], quick: bool) -> list[tuple[str, str, str]]:
    """(label, runtime, database): each runtime with SQLite, and Docker with MariaDB."""
    chosen = [(f"{runtime}, SQLite", runtime, "sqlite") for runtime in runtimes]
    if "docker" in runtimes and not quick:
        chosen.append(("docker, MariaDB", "docker", "mariadb"))
    return chosen


def run(quick: bool, scratch: Path, runtimes: tuple[str, ...] = ("process", "docker")) -> Figure:
    figure = Figure(9, "memory of one learner's stack, and stacks per 24 GiB")
    samples = 1 if quick else 3
    for label, runtime, database in variants(runtimes, quick):
        deadline = Deadline(40 if quick else 90)
        readings: list[Reading] = []
        try:
            while len(readings) < samples and not (deadline.expired and readings):
                folder = scratch / f"{runtime}-{database}-{len(readings) + 1}"
                readings.append(measure(runtime, database, folder))
        except Exception as error:  # noqa: BLE001 - one variant failing keeps the others'
            figure.notes.append(f"{label}: not measured: {type(error).__name__}: {error}")
            if not readings:
                continue
        add_variant(figure, label, runtime, readings)
    figure.notes.append(
        f"One sample is a fresh stack: Directory, database, the monolith and {INSTANCES} "
        f"popularity instances, after {RELOADS} page reloads at {RATE:.0f}/s and a "
        f"{SETTLE:.0f} s pause (with SQLite, the database is a file the monolith opens: "
        "no part of its own). Resident (RSS) counts a page shared by several processes "
        "once in each of them (the Python interpreter and its libraries: most of each "
        "process's RSS), so the resident total over-counts; private (USS) counts only pages "
        "no other process maps, and under-counts what the first stack on a server costs. "
        "A container's cgroup is charged each page once, the first time it is touched, so "
        "its number is near the private one.")
    figure.notes.append(
        "Not counted: the learner's own Python (a notebook kernel and JupyterLab), the "
        "operating system, and what one Docker engine costs whatever the number of stacks "
        "(dockerd and containerd); 24 GiB for 30 learners leaves "
        f"{SERVER_MIB / LEARNERS:.0f} MiB per learner for the stack and all of these.")
    return figure
