"""What the control panel shows and does, without any widget: a plain, testable object.

As in the ipywidgets tutorial, the panel is split in two. This *model* holds the state (how
many instances of each tag are wanted, what runs, the live page reloads) and does the work;
the *view* (:mod:`mwkit.widgets.view`) only draws it and forwards clicks. So a notebook
cell, a test or a slider can all drive the same model.

Scaling takes seconds (a checkout, an ``init``, a health check), so the model scales in one
worker thread of its own: requests are queued and served one after the other, and a count
asked for while an earlier count of the same tag still waits *replaces* it (the latest
request wins: dragging a slider 1, 2, 3, 4 quickly scales once, to 4). Whatever fails in the
worker is kept in :attr:`ControlPanelModel.last_error`, never raised in a thread where nobody
would see it.

Faults (:mod:`mwkit.faults`) are quicker (an order the instance applies in a tenth of a
second, the Directory killed or started), so :meth:`ControlPanelModel.inject` and
:meth:`ControlPanelModel.clear_fault` act at once and raise what they refuse; the active
faults are part of every snapshot (:attr:`ControlPanelModel.faults`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from mwkit.contract import LEAVING
from mwkit.stack import SERVICE
from mwkit.traffic import EventLog, PageReloads, Reload, instance_labels

REFS = {"v1": "v1", "v2": "v2"}  # tag -> the commit it runs; v2 is the slow canary
LIMITS = {"v1": 5, "v2": 1}  # the most instances a tag may be scaled to from the panel
RATE = 10.0  # page reloads per second while the panel is open
TRAFFIC_SECONDS = 1800.0  # the reloads stop by themselves after 30 minutes
WINDOW = 30.0  # seconds of reloads the panel looks back over
#: The faults the panel offers, in its menu's order; ``directory`` needs no instance.
FAULT_KINDS = ("latency", "errors", "fast-fail", "hang", "lease", "crash", "directory")


@dataclass(frozen=True)
class Job:
    """One queued request: scale ``tag`` to ``count``, or remove its newest instance."""

    kind: str  # "count", "kill" or "kill_hard"
    tag: str
    count: int = 0

    def describe(self) -> str:
        if self.kind == "count":
            return f"scale {self.tag} to {self.count}"
        return f"{'kill -9' if self.kind == 'kill_hard' else 'kill'} newest {self.tag}"


class ControlPanelModel:
    """The control panel's state and actions over a running :class:`mwkit.stack.Stack`.

    ``observe(callback)`` registers ``callback(what)``, called (from any thread) with
    ``"counts"``, ``"busy"``, ``"error"`` or ``"faults"`` when that changed; ``refresh()``
    takes a fresh snapshot of the instances, the faults and the Directory's events (the view
    calls it a few times a second). ``start()`` begins the page reloads and the worker;
    ``stop()`` ends both.
    """

    def __init__(self, stack, rate: float = RATE, window: float = WINDOW) -> None:
        self.stack = stack
        self.rate, self.window = rate, window
        self.snapshot: list = []  # InstanceStatus rows of popularity, from refresh()
        self.faults: list = []  # the active faults (mwkit.faults.Fault), from refresh()
        self.counts = {tag: 0 for tag in REFS}  # what is wanted
        self.last_error: str | None = None
        self.current: Job | None = None  # what the worker is doing now
        self.reloads: PageReloads | None = None
        self.events: EventLog | None = None
        self._jobs: deque[Job] = deque()
        self._changed = threading.Condition()
        self._observers: list[Callable[[str], None]] = []
        self._worker: threading.Thread | None = None
        self._stopping = False
        self.refresh_snapshot()
        for tag in REFS:
            self.counts[tag] = len(self.running(tag))

    # -- lifetime --------------------------------------------------------------------------

    def start(self) -> ControlPanelModel:
        """Start the worker and the page reloads (again, after ``stop()``)."""
        with self._changed:
            if self.running_model:
                return self
            self._stopping = False
            self._worker = threading.Thread(target=self._work, name="panel-worker",
                                            daemon=True)
            self._worker.start()
        self.events = self.stack.events()  # a fresh log: stop() closed the last one
        self.start_traffic()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the reloads, drop queued requests, wait for the one under way to end."""
        with self._changed:
            self._stopping = True
            self._jobs.clear()
            self._changed.notify_all()
        self.stop_traffic()
        if self._worker is not None:
            self._worker.join(timeout)
        if self.events is not None:
            self.events.close()

    @property
    def running_model(self) -> bool:
        """True while the worker serves requests (between ``start()`` and ``stop()``)."""
        return self._worker is not None and self._worker.is_alive() and not self._stopping

    def start_traffic(self) -> None:
        """Reload the monolith's page ``rate`` times a second, for at most 30 minutes."""
        if self.reloads is None or not self.reloads.running:
            self.reloads = self.stack.reloads(rate=self.rate, duration=TRAFFIC_SECONDS).start()

    def stop_traffic(self) -> None:
        if self.reloads is not None:
            self.reloads.stop()

    @property
    def traffic_on(self) -> bool:
        return self.reloads is not None and self.reloads.running

    # -- observers -------------------------------------------------------------------------

    def observe(self, callback: Callable[[str], None]) -> None:
        self._observers.append(callback)

    def unobserve(self, callback: Callable[[str], None]) -> None:
        if callback in self._observers:
            self._observers.remove(callback)

    def _notify(self, what: str) -> None:
        for callback in list(self._observers):
            callback(what)

    # -- actions ---------------------------------------------------------------------------

    def set_count(self, tag: str, n: int) -> None:
        """Ask for exactly ``n`` instances of ``tag``; returns at once (see :meth:`wait`)."""
        check_tag(tag)
        if not 0 <= n <= LIMITS[tag]:
            raise ValueError(f"{tag} can be scaled to 0..{LIMITS[tag]} instances here, "
                             f"not {n}")
        self._submit(Job("count", tag, n), wanted=n)
        if self.events:
            self.events.mark(f"{tag} \u2192 {n}")
        self._notify("counts")

    def kill_newest(self, tag: str = "v1") -> None:
        """Remove the newest instance of ``tag`` gracefully (deregister, drain, SIGTERM)."""
        self._kill(tag, "kill")

    def kill_hard(self, tag: str = "v1") -> None:
        """SIGKILL the newest instance of ``tag``: it crashes, the Directory still lists it."""
        self._kill(tag, "kill_hard")

    def add_canary(self) -> None:
        """Run one instance of the slow v2 beside v1."""
        self.set_count("v2", 1)

    def remove_canary(self) -> None:
        self.set_count("v2", 0)

    def inject(self, instance_id: str | None, kind: str, **params) -> None:
        """Inject a fault now (see :meth:`mwkit.stack.Stack.inject`); a refusal raises
        :class:`mwkit.errors.InvalidFault` and changes nothing."""
        fault = self.stack.inject(None if kind == "directory" else instance_id, kind, **params)
        if self.events:
            self.events.mark(f"{kind} {short_name(fault.instance)}")
        self._sync_counts()  # a crash: the slider shows one instance fewer
        self._notify("faults")

    def clear_fault(self, fault_id: str | None = None) -> None:
        """Remove one active fault by its ``id`` (``popularity-v1-2/hang``, ``directory``),
        or all of them."""
        instance, kind = (None, None) if fault_id is None else (
            fault_id.rpartition("/")[0] or None, fault_id.rpartition("/")[2])
        self.stack.clear(instance, kind)
        if self.events:
            self.events.mark(f"cleared {short_name(instance) if fault_id else 'all'}")
        self._sync_counts()
        self._notify("faults")

    def _kill(self, tag: str, kind: str) -> None:
        check_tag(tag)
        self._submit(Job(kind, tag), wanted=max(0, self.counts[tag] - 1))
        if self.events:
            self.events.mark(f"{'kill -9' if kind == 'kill_hard' else 'kill'} {tag}")
        self._notify("counts")

    def _submit(self, job: Job, wanted: int) -> None:
        """Queue ``job``; from now on ``wanted`` instances of its tag are wanted."""
        with self._changed:
            if job.kind == "count":  # the latest count of a tag replaces a waiting one
                for waiting in [j for j in self._jobs if j.kind == "count" and j.tag == job.tag]:
                    self._jobs.remove(waiting)
            if not self.running_model:
                raise RuntimeError("the control panel's model is stopped: call start() "
                                   "(or build a new ControlPanel) before scaling")
            self._jobs.append(job)
            self.counts[job.tag] = wanted
            self._changed.notify_all()

    def wait(self, timeout: float = 120.0) -> bool:
        """Wait until every request is done; True when idle, False after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._jobs or self.current is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not self.running_model:
                    return not (self._jobs or self.current)
                self._changed.wait(min(left, 0.5))
        return True

    @property
    def busy(self) -> bool:
        return self.current is not None or bool(self._jobs)

    # -- the worker ------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._changed:
                while not self._jobs and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
                self.current = self._jobs.popleft()
            self._notify("busy")
            self._attempt(self.current.describe(), self._do, self.current)
            with self._changed:
                self.current = None
                self._changed.notify_all()
            self._attempt("reading the instances", self._sync_counts)
            self._notify("busy")

    def _attempt(self, what: str, work: Callable, *args) -> None:
        """Run ``work``; keep what went wrong in ``last_error`` for the view to show."""
        try:
            work(*args)
        except Exception as error:  # noqa: BLE001 - kept for the view and the learner
            self.last_error = f"{what} failed: {error}"
            self._notify("error")

    def _do(self, job: Job) -> None:
        if job.kind == "count":
            self.stack.scale(job.count, tag=job.tag, ref=REFS[job.tag])
        else:
            self.stack.wizard.svkill(job.tag, now=job.kind == "kill_hard", service=SERVICE)

    def _sync_counts(self) -> None:
        """Take a fresh snapshot; after a failure, show what really runs (unless more
        requests for that tag are waiting), so that the slider does not lie."""
        self.refresh_snapshot()
        with self._changed:
            waiting = {job.tag for job in self._jobs}
        changed = False
        for tag in REFS:
            actual = len(self.running(tag))
            if tag not in waiting and actual != self.counts[tag]:
                self.counts[tag], changed = min(actual, LIMITS[tag]), True
        if changed:
            self._notify("counts")

    # -- looking ---------------------------------------------------------------------------

    def refresh_snapshot(self) -> list:
        """The popularity instances and their states, as the wizard sees them now."""
        self.snapshot = [row for row in self.stack.status() if row.service == SERVICE]
        self.faults = self.stack.faults()
        return self.snapshot

    def refresh(self) -> None:
        """A fresh snapshot of the instances and the Directory's new events."""
        self.refresh_snapshot()
        if self.events is not None:
            self.events.poll()

    def running(self, tag: str) -> list:
        """The instances of ``tag`` in the last snapshot that are not leaving or gone."""
        return [row for row in self.snapshot
                if row.tag == tag and row.phase not in LEAVING]

    def recent(self, seconds: float | None = None) -> list[Reload]:
        """The page reloads of the last ``seconds`` (default: the panel's window)."""
        if self.reloads is None:
            return []
        since = time.time() - (self.window if seconds is None else seconds)
        return [record for record in self.reloads.records() if record.time >= since]

    def answered_by(self, seconds: float = 3.0) -> list[str]:
        """The instances that answered a reload in the last ``seconds``, sorted."""
        return sorted(set(instance_labels(self.recent(seconds)).values()))

    def clear_error(self) -> None:
        self.last_error = None
        self._notify("error")


def short_name(instance: str | None) -> str:
    """``popularity-v1-2`` -> ``v1-2``; the stack's own fault has no instance."""
    return "the Directory" if instance is None else instance.removeprefix(SERVICE + "-")


def check_tag(tag: str) -> None:
    if tag not in REFS:
        raise ValueError(f"the panel scales the tags {', '.join(REFS)}, not {tag!r}")
