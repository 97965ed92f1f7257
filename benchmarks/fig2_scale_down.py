"""Figure 2: graceful scale-down and ``kill -9`` under steady page reloads.

Three popularity v1 instances serve the monolith while page reloads run at ``RATE`` a
second. Each round removes the newest instance, gracefully (the wizard: deregister,
drain, SIGTERM) or with SIGKILL, keeps reloading for ``AFTER`` seconds, then scales
back to three. Counted: page reloads that failed (any outcome but ok) from the removal to
the end of the round, and how long after the removal the gone instance was last called.

The monolith's Sherlock is another process; to see every attempt (also the refused ones
that a retry hid from the page), a second Sherlock runs here, with the same code and
policy, calling popularity directly at the same rate. Its call log gives "calls sent to
the gone instance after the removal", which is what "out of rotation within one call"
counts.

The same rounds run once with the kit's Directory and once with a three-member etcd cluster
as the Directory (``Stack(registry="etcd")``; rows ``etcd, ...``): both Sherlocks then
list-then-watch etcd.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import requests

from benchmarks.common import Deadline, Figure, Metric, ms
from mwkit.sherlock import Sherlock
from mwkit.stack import Stack

RATE = 20.0
AFTER = 2.0  # seconds of reloads after the removal
INSTANCES = 3


class SherlockCaller:
    """Calls ``http://popularity/`` through an in-process Sherlock, ``RATE`` a second."""

    def __init__(self, directory_url: str, seconds: float) -> None:
        self.sherlock = Sherlock(directory_url)
        self._stop = threading.Event()
        self._seconds = seconds
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        end = time.monotonic() + self._seconds
        with self.sherlock.session() as session:
            while not self._stop.wait(1 / RATE) and time.monotonic() < end:
                with contextlib.suppress(requests.RequestException):
                    session.get("http://popularity/", timeout=2)

    def attempts_to(self, instance: str, since: float) -> list:
        return [r for r in self.sherlock.calls.records(since) if r.instance == instance]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sherlock.close()


def one_round(stack: Stack, reloads, caller: SherlockCaller, hard: bool) -> dict:
    stack.scale(INSTANCES)
    time.sleep(0.5)  # every Sherlock has the three
    removed_at = time.time()
    gone = stack.wizard.svkill("v1", now=hard)
    time.sleep(AFTER)
    window = [r for r in reloads.records() if r.time >= removed_at]
    answered_by_gone = [r.time + r.latency for r in window if r.instance == gone.id]
    attempts = caller.attempts_to(gone.id, removed_at)
    last_attempt = max((r.time for r in attempts), default=removed_at)
    return {"failed": sum(not r.ok for r in window), "reloads": len(window),
            "last_answer": max(answered_by_gone, default=removed_at) - removed_at,
            "attempts": len(attempts), "refused": sum(r.outcome != "ok" for r in attempts),
            "last_attempt": last_attempt - removed_at}


def measure(registry: str, rounds: int, scratch: Path, runtime: str,
            deadline: Deadline) -> dict[str, list[dict]]:
    """``rounds`` rounds of each removal (fewer when ``deadline`` expires), on one stack."""
    results: dict[str, list[dict]] = {"graceful": [], "kill -9": []}
    with Stack(scratch / f"stack-{runtime}-{registry}", runtime=runtime,
               registry=registry) as stack:
        stack.scale(INSTANCES)
        caller = SherlockCaller(stack.directory_url, deadline.left() + 30)
        try:
            with stack.reloads(rate=RATE, duration=deadline.left() + 30) as reloads:
                for _ in range(rounds):
                    if deadline.expired and results["kill -9"]:
                        break
                    for how in results:
                        results[how].append(one_round(stack, reloads, caller,
                                                      hard=how == "kill -9"))
        finally:
            caller.close()
    return results


def add_rounds(figure: Figure, prefix: str, results: dict[str, list[dict]]) -> None:
    for how, rounds_done in results.items():
        name = f"{prefix}{how}"
        figure.add(
            Metric(f"{name}: failed page reloads", "reloads", [r["failed"] for r in rounds_done],
                   per="round", target="0", check=lambda s: s["max"] == 0,
                   note=f"of {sum(r['reloads'] for r in rounds_done)} reloads in the windows"),
            Metric(f"{name}: last page reload answered by the gone instance", "ms",
                   [ms(r["last_answer"]) for r in rounds_done], per="round",
                   note="after the removal started; 0: none after it"),
            Metric(f"{name}: calls Sherlock sent to the gone instance after the removal",
                   "calls", [r["attempts"] for r in rounds_done], per="round",
                   target="<= 1" if how == "kill -9" else "",
                   check=(lambda s: s["max"] <= 1) if how == "kill -9" else None,
                   note=f"{sum(r['refused'] for r in rounds_done)} of them refused "
                        "(and retried on another instance)"),
            Metric(f"{name}: last call to the gone instance", "ms",
                   [ms(r["last_attempt"]) for r in rounds_done], per="round",
                   note="after the removal started (in-process Sherlock at the same rate)"),
        )


def run(quick: bool, scratch: Path, runtime: str = "process",
        registries: tuple[str, ...] = ("directory", "etcd")) -> Figure:
    figure = Figure(2, "graceful scale-down and kill -9 under steady reloads")
    rounds = 1 if quick else 4
    for registry in registries:
        prefix = "" if registry == "directory" else f"{registry}, "  # the rows as before etcd
        deadline = Deadline(45 if quick else 120)
        try:
            results = measure(registry, rounds, scratch, runtime, deadline)
        except Exception as error:  # noqa: BLE001 - one failing keeps the other's rows
            figure.notes.append(f"{registry}: not measured: {type(error).__name__}: {error}")
            continue
        add_rounds(figure, prefix, results)
    figure.notes.append(
        f"{rounds} round(s) of each, {INSTANCES} instances, page reloads at {RATE:.0f}/s and an "
        f"in-process Sherlock calling popularity at {RATE:.0f}/s; {AFTER:.0f} s watched after "
        "each removal. Graceful calls to the instance during its drain are expected and fine.")
    if "etcd" in registries:
        figure.notes.append("Rows `etcd, ...`: the same rounds with a three-member etcd "
                            "cluster as the Directory.")
    return figure
