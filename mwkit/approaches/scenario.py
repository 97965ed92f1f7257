"""One scripted scenario, run against several approaches at once: a fair comparison.

Every approach gets its own stream of calls to popularity (:class:`ApproachCalls`, open
loop, ``rate`` a second), all at the same time, against the same instances, through the
same events. The script (:func:`run_scenario`)::

    one instance    -> "scale 1 -> 3"        two more instances start and register
                    -> "kill -9 v1-1"        the oldest dies without a word (its lease
                                             keeps it in the Directory for a few seconds)
                    -> "+ slow canary"       a v2 instance whose answers take ~1.5 s
                    -> "- slow canary"       removed again, gracefully

and what it measures per approach, from the calls alone (:func:`summarize`, pure
functions, so a test can check them on made-up calls):

- **first call on a new instance**: seconds from the Directory registering an instance the
  scale-up added to that approach's first call answered by it (for the first and for the
  last of them); measured from the registration, not the mark, since the instances take
  the same while to start whatever finds them;
- **failed after the kill**: calls that failed from the kill to the canary;
- **canary share**: the share of calls the slow canary answered while it was registered;
- **costs**: what the approach counted itself (:meth:`Approach.costs`).

Which popularity process answered a call is its ``service_id``; the scenario asks each new
instance once, directly, for its own (:func:`roll_call`), so that tables and plots can
name instances as the Directory does (``v1-2``) whichever way a call found them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import requests

from mwkit.approaches import POPULARITY_PATH, Approach, dns, haproxy
from mwkit.approaches.sherlock import SherlockApproach
from mwkit.errors import StartFailed
from mwkit.traffic import Mark, PageReloads, Reload

SERVICE = "popularity"
SCALE, KILL, CANARY, REMOVE = "scale 1 -> 3", "kill -9", "+ slow canary", "- slow canary"


@dataclass(frozen=True)
class Phases:
    """How long each phase lasts (seconds, once its event is done) and the calls' rate.

    The defaults keep the whole scenario around half a minute on processes (a notebook's
    cell); the benchmark passes longer ones."""

    warm_up: float = 2.0  # one instance: every approach has found it, caches are warm
    scaled: float = 5.0  # three instances
    killed: float = 6.0  # one of them dead, its lease still running out
    canary: float = 6.0  # the slow canary registered
    after: float = 3.0  # the canary removed
    rate: float = 8.0  # calls a second, per approach
    timeout: float = 2.0  # seconds a call may take (the monolith's own limit)

    @property
    def total(self) -> float:
        return self.warm_up + self.scaled + self.killed + self.canary + self.after


class ApproachCalls(PageReloads):
    """Page reloads whose every "reload" is one ``approach.call()``: the same open loop,
    the same bounds (``duration``, ``count``, at most ``max_in_flight`` waiting), the same
    :class:`~mwkit.traffic.Reload` records, whichever way the approach finds popularity."""

    def __init__(self, approach: Approach, rate: float, duration: float,
                 timeout: float = 2.0) -> None:
        # The URL is never called (reload_once below is): it only satisfies PageReloads.
        super().__init__("http://127.0.0.1/", rate=rate, duration=duration,
                         count=int(rate * duration) + 1, timeout=timeout)
        self.approach = approach

    def reload_once(self, session: requests.Session, url: str, timeout: float) -> Reload:
        return self.approach.call(session, timeout)


@dataclass
class Run:
    """What one run of the scenario recorded; :func:`summarize` turns it into rows."""

    records: dict[str, list[Reload]]  # approach name -> its calls, in order
    marks: list[Mark]
    labels: dict[str, str]  # service_id -> instance id ("popularity-v1-2")
    new: dict[str, float]  # service_id of each instance the scale-up added -> registered at
    canary: str | None  # the canary's service_id
    windows: dict[str, tuple[float, float]]  # "killed", "canary": (from, to), wall clock
    costs: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)


# -- what is measured (pure functions) --------------------------------------------------

def first_calls(records: Sequence[Reload], registered: dict[str, float]) -> dict[str, float | None]:
    """For each instance of ``registered`` (service_id -> when the Directory registered
    it), seconds until the first call it answered; None when it answered none.

    A call answered before the registration (an approach that does not wait for the
    Directory) counts as 0 s."""
    first: dict[str, float] = {}
    for record in records:
        if record.ok and record.service_id in registered and record.service_id not in first:
            first[record.service_id] = max(0.0, record.time - registered[record.service_id])
    return {service_id: first.get(service_id) for service_id in registered}


def failed_between(records: Sequence[Reload], start: float, end: float) -> int:
    """Calls started in [start, end) that failed (no instance, an error, a timeout)."""
    return sum(not record.ok for record in records if start <= record.time < end)


def share_of(records: Sequence[Reload], service_id: str | None, start: float,
             end: float) -> float | None:
    """Percent of the calls started in [start, end) that ``service_id`` answered; None
    when no call started then."""
    window = [record for record in records if start <= record.time < end]
    if not window:
        return None
    return 100.0 * sum(record.service_id == service_id for record in window) / len(window)


def summarize(run: Run) -> list[dict]:
    """One row per approach: its calls, failures, the scenario's three measures, costs."""
    rows = []
    for name, records in run.records.items():
        delays = first_calls(records, run.new)
        known = [delay for delay in delays.values() if delay is not None]
        rows.append({
            "approach": name, "calls": len(records),
            "failed": sum(not record.ok for record in records),
            "first_new_s": min(known) if known else None,
            "all_new_s": max(known) if known and len(known) == len(delays) else None,
            "failed_after_kill": failed_between(records, *run.windows["killed"]),
            "canary_share": share_of(records, run.canary, *run.windows["canary"]),
            "costs": dict(run.costs.get(name, {})),
        })
    return rows


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def format_summary(rows: Sequence[dict]) -> str:
    """The rows as a fixed-width table a notebook prints; costs in the last column."""
    width = max([len("approach"), *(len(row["approach"]) for row in rows)])
    head = (f"{'approach':<{width}} {'calls':>5} {'failed':>6} {'1st new':>8} "
            f"{'all new':>8} {'failed after kill':>17} {'canary %':>8}  costs")
    lines = [head, "-" * len(head)]
    for row in rows:
        share = "-" if row["canary_share"] is None else f"{row['canary_share']:.0f}"
        costs = ", ".join(f"{key} {value}" for key, value in row["costs"].items())
        lines.append(f"{row['approach']:<{width}} {row['calls']:>5} {row['failed']:>6} "
                     f"{seconds(row['first_new_s']):>8} {seconds(row['all_new_s']):>8} "
                     f"{row['failed_after_kill']:>17} {share:>8}  {costs}")
    return "\n".join(lines)


# -- running it ---------------------------------------------------------------------------

def roll_call(stack, known: dict[str, str]) -> dict[str, str]:
    """Ask each live popularity instance not in ``known`` (service_id -> instance id)
    for its ``service_id``, directly at its address; returns ``known`` with them added."""
    named = set(known.values())
    for instance in stack.wizard.state.instances():
        if instance.service != SERVICE or instance.id in named or not instance.url:
            continue
        with contextlib.suppress(requests.RequestException, ValueError, KeyError):
            body = requests.get(instance.url + POPULARITY_PATH, timeout=5).json()
            known = {**known, body["service_id"]: instance.id}
    return known


def registrations(events: Sequence[dict], labels: dict[str, str],
                  since: float) -> dict[str, float]:
    """service_id -> when the Directory first registered that instance after ``since``."""
    ids = {instance: service_id for service_id, instance in labels.items()}
    found: dict[str, float] = {}
    for event in sorted(events, key=lambda event: event["time"]):
        service_id = ids.get(event["instance"])
        if event["kind"] == "registered" and event["time"] >= since and service_id \
                and service_id not in found:
            found[service_id] = event["time"]
    return found


def popularity_instances(stack, tag: str) -> list[str]:
    return [instance.id for instance in stack.wizard.state.instances()
            if instance.service == SERVICE and instance.tag == tag]


def the_four(stack, ttl: int = 5, debounce: float = 1.0) -> tuple[list[Approach], list[str]]:
    """The approaches of the lesson, fed from ``stack``: pure DNS and DNS with health
    (answers valid ``ttl`` s), HAProxy reloaded (``debounce`` s after a change) and kept
    live through its runtime API, and Sherlock. Those whose program is not installed are
    left out: the second list says, for each, what to install. Nothing starts before an
    approach is entered."""
    approaches: list[Approach] = []
    missing: list[str] = []
    for binary, make in (
            (dns.dnsmasq_binary, lambda: [dns.PureDns(stack, ttl=ttl),
                                          dns.HealthDns(stack, ttl=ttl)]),
            (haproxy.haproxy_binary, lambda: [
                haproxy.HaproxyReload(stack.directory_url, debounce=debounce,
                                      workdir=stack.workdir),
                haproxy.HaproxyRuntime(stack.directory_url, workdir=stack.workdir)])):
        try:
            binary()
        except StartFailed as error:  # ProgramMissing: the sentence says what to install
            missing.append(str(error))
            continue
        approaches += make()
    return [*approaches, SherlockApproach(stack.directory_url)], missing


def run_scenario(stack, approaches: Sequence[Approach], phases: Phases = Phases(),
                 progress: Callable[[str], None] = print) -> Run:
    """Run the script against every approach at once; returns the :class:`Run`.

    Starts from one v1 instance and no canary (scaling the stack so); enters every
    approach (each starts its own parts) and leaves them all at the end, whatever happens.
    Afterwards two v1 instances run: the dead one's record is removed, the canary too."""
    stack.scale(0, tag="v2")
    stack.scale(1)
    marks: list[Mark] = []
    windows: dict[str, tuple[float, float]] = {}
    victim = None

    def mark(label: str) -> float:
        marks.append(Mark(time.time(), label))
        progress(label)
        return marks[-1].time

    with contextlib.ExitStack() as exits:
        for approach in approaches:
            exits.enter_context(approach)
        events = exits.enter_context(stack.events())
        labels = roll_call(stack, {})
        began = time.time()
        loads = {approach.name: ApproachCalls(approach, phases.rate, phases.total + 60,
                                              phases.timeout) for approach in approaches}
        for load in loads.values():
            exits.callback(load.stop)
            load.start()
        try:
            time.sleep(phases.warm_up)
            mark(SCALE)
            stack.scale(3)
            labels = roll_call(stack, labels)
            time.sleep(phases.scaled)
            victim = popularity_instances(stack, "v1")[0]  # the oldest: every approach knows it
            killed = mark(f"{KILL} {victim.removeprefix(SERVICE + '-')}")
            stack.inject(victim, "crash")
            time.sleep(phases.killed)
            canary_asked = mark(CANARY)
            stack.scale(1, tag="v2")
            canary_up = time.time()
            labels = roll_call(stack, labels)
            windows["killed"] = (killed, canary_asked)
            time.sleep(phases.canary)
            removed = mark(REMOVE)
            stack.scale(0, tag="v2")
            time.sleep(phases.after)
        finally:
            records = {name: load.stop() for name, load in loads.items()}
            costs = {approach.name: approach.costs() for approach in approaches}
            events.poll()
            if victim is not None:
                stack.clear(victim)
    new = registrations(events.events(), labels, began)
    canaries = [sid for sid, instance in labels.items() if "-v2-" in instance]
    canary = canaries[-1] if canaries else None
    windows["canary"] = (new.pop(canary, canary_up) if canary else canary_up, removed)
    return Run(records, marks, labels, new, canary, windows, costs,
               {name: load.skipped for name, load in loads.items()})
