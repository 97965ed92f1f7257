"""Page reloads of the monolith's ``/popular.json``, and what happened meanwhile.

A learner watches how calls spread across popularity instances while scaling them. This
module makes the reloads (:class:`PageReloads`), keeps the Directory's events and the
learner's own marks on the same wall clock (:class:`EventLog`), and sums the reloads up per
instance (:func:`summarize`, :func:`format_table`, :func:`to_markdown`).

The reloads are *open-loop*: one is started every ``1/rate`` seconds whether or not the
previous ones have answered, as real visitors would. A slow instance therefore shows up as
slow reloads, not as fewer reloads. At most ``max_in_flight`` reloads wait at once; when
that many are pending the next one is skipped and counted, never queued, so a silent
monolith cannot pile up threads or memory.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from mwkit.directory import directory_client

MAX_DURATION = 1800.0  # seconds: a forgotten cell or script stops after 30 minutes
MAX_COUNT = 100_000  # reloads: whatever is asked
OUTCOMES = ("ok", "no_service", "error", "timeout")
#: The monolith's ``reason`` for a failed call to popularity -> the outcome of the reload.
REASONS = {"no_instances": "no_service", "timeout": "timeout", "error": "error"}
NO_ANSWER = "no answer"  # the label of reloads that no instance answered


@dataclass(frozen=True)
class Reload:
    """One page reload, as the visitor saw it."""

    time: float  # wall clock (time.time()) when the reload started
    latency: float  # seconds until the page answered (or failed)
    service_id: str | None  # the popularity process that answered, if any
    call_ms: float | None  # how long the monolith's call to popularity took, as it measured
    outcome: str  # one of OUTCOMES
    status: int | None  # the page's HTTP status; None when there was no answer
    error: str | None = None  # what went wrong, when outcome is not "ok"
    instance: str | None = None  # the Directory's name for the instance that answered
    attempts: int = 1  # how many instances the monolith's Sherlock tried (hedges included)
    hedged: bool = False  # Sherlock sent a second copy of the call (its hedge option)
    ejected: bool = False  # an attempt of the call got an instance ejected

    @property
    def retried(self) -> bool:
        """Sherlock tried more than one instance and none of them was a hedge."""
        return self.attempts > 1 and not self.hedged

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass(frozen=True)
class Mark:
    """A moment the learner named: "scale to 3", "add v2 canary", "kill -9"."""

    time: float  # wall clock
    label: str


def outcome_of(body: dict) -> str:
    """Classify a 200 answer of ``/popular.json``: one of :data:`OUTCOMES`.

    The monolith always answers 200. When no service answered it says why in ``reason``,
    decided by the exception it caught (:data:`REASONS` maps it to an outcome): Sherlock
    knew no live instance (or there is no Sherlock at all), the call timed out, or anything
    else went wrong. ``error`` is only the human text; a failed reload without a known
    ``reason`` (an older monolith, say) counts as an ``"error"``.
    """
    if body.get("service_id"):
        return "ok"
    reason = body.get("reason")
    return REASONS.get(reason, "error") if isinstance(reason, str) else "error"


def check_loopback(url: str) -> None:
    """Refuse a URL outside 127.0.0.0/8 (or ::1): the kit sends traffic to this machine only.

    Only ``localhost`` and IP literals are accepted, so no name is ever looked up.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http URL; give e.g. "
                         "http://127.0.0.1:8000/popular.json")
    host = parts.hostname
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            pass
    if not loopback:
        raise ValueError(f"{url!r} is not on this machine; page reloads go to loopback "
                         "addresses only (127.0.0.1, ::1, localhost)")


class PageReloads:
    """Reload ``url`` ``rate`` times a second, for ``duration`` seconds or ``count`` reloads.

    At least one of ``duration`` and ``count`` is required; whatever is asked, a run stops
    after :data:`MAX_DURATION` seconds (30 minutes: a lesson at talking pace) and
    :data:`MAX_COUNT` reloads (100,000).
    ``count`` counts skipped reloads too, so a run takes about ``count / rate`` seconds.

    ``run()`` reloads in the foreground and returns the records; ``start()`` / ``stop()``
    (or ``with PageReloads(...):``) reload in a background thread, so a notebook can scale
    instances meanwhile and plot ``records()`` live. Each reload waits at most ``timeout``
    seconds, so ``stop()`` returns at the latest ``timeout`` seconds after it is called.
    """

    def __init__(self, url: str, rate: float = 10.0, duration: float | None = None,
                 count: int | None = None, timeout: float = 3.0,
                 max_in_flight: int = 8) -> None:
        if duration is None and count is None:
            raise ValueError("PageReloads needs a bound: give duration (seconds) or count")
        if not (rate > 0 and timeout > 0 and max_in_flight >= 1):
            raise ValueError(f"rate ({rate}) and timeout ({timeout}) must be > 0 and "
                             f"max_in_flight ({max_in_flight}) >= 1")
        check_loopback(url)
        self.url, self.rate, self.timeout = url, float(rate), float(timeout)
        self.duration = min(MAX_DURATION, MAX_DURATION if duration is None else duration)
        self.count = min(MAX_COUNT, MAX_COUNT if count is None else int(count))
        self.max_in_flight = max_in_flight
        self.skipped = 0  # reloads not sent because max_in_flight were pending
        self.started_at: float | None = None  # wall clock
        self._records: list[Reload] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._local = threading.local()
        self._sessions: list[requests.Session] = []

    # -- running ---------------------------------------------------------------------------

    def run(self) -> list[Reload]:
        """Reload in the foreground until a bound is reached; return the records."""
        self._stop.clear()
        self.started_at = time.time()
        start = time.monotonic()
        with ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="reload") as pool:
            for tick in range(self.count):
                due = tick / self.rate  # seconds after the start: open loop, no drift
                if due >= self.duration:
                    break
                if self._stop.wait(max(0.0, start + due - time.monotonic())):
                    break
                if self._slots.acquire(blocking=False):
                    pool.submit(self._reload)
                else:
                    with self._lock:
                        self.skipped += 1
        self._close_sessions()
        return self.records()

    def start(self) -> PageReloads:
        """Reload in a background thread; returns at once."""
        if self.running:
            raise RuntimeError("these page reloads are already running; stop() them first")
        self._thread = threading.Thread(target=self.run, name="page-reloads", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Reload]:
        """Stop sending at once, wait for the pending reloads (at most ``timeout`` s)."""
        self._stop.set()
        self.wait()
        return self.records()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background run to end by itself; True when it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> PageReloads:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- one reload ------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        """One keep-alive session per worker thread (a Session is not meant to be shared)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            with self._lock:
                self._sessions.append(session)
        return session

    def _close_sessions(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def _reload(self) -> None:
        try:
            record = self.reload_once(self._session(), self.url, self.timeout)
            with self._lock:
                self._records.append(record)
        finally:
            self._slots.release()

    @staticmethod
    def reload_once(session: requests.Session, url: str, timeout: float) -> Reload:
        """Load the page once and record what the visitor saw; never raises."""
        started, clock = time.time(), time.perf_counter()
        status = body = error = None
        try:
            response = session.get(url, timeout=timeout)
            status = response.status_code
            body = response.json() if response.ok else None
            if not isinstance(body, dict):
                error = f"HTTP {status}: {response.text[:200]}"
                body = None
        except requests.Timeout:
            error = f"no answer within {timeout} s"
        except (requests.RequestException, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency = time.perf_counter() - clock
        if body is None:
            outcome = "timeout" if error.startswith("no answer") else "error"
            return Reload(started, latency, None, None, outcome, status, error)
        done = body.get("sherlock") or {}  # what Sherlock did; none from an older monolith
        return Reload(started, latency, body.get("service_id") or None, body.get("call_ms"),
                      outcome_of(body), status, body.get("error"), body.get("instance"),
                      done.get("attempts", 1), done.get("hedged", False),
                      done.get("ejected", False))

    # -- results ---------------------------------------------------------------------------

    def records(self) -> list[Reload]:
        """A snapshot of the reloads answered so far, in the order they started."""
        with self._lock:
            return sorted(self._records, key=lambda record: record.time)

    def summary(self) -> dict:
        """Counts at a glance: reloads, per outcome, skipped, and the rate achieved."""
        records = self.records()
        counts = {outcome: 0 for outcome in OUTCOMES}
        for record in records:
            counts[record.outcome] += 1
        seconds = (max(r.time for r in records) - self.started_at) if records else 0.0
        return {"reloads": len(records), **counts, "skipped": self.skipped,
                "seconds": round(seconds, 2),
                "per_second": round(len(records) / seconds, 2) if seconds else None}


class EventLog:
    """The Directory's events and the learner's marks, on the reloads' wall clock.

    The log reads what the Directory has when it is made (on etcd, that starts the feed
    that notes the events from then on: see :class:`mwkit.directory.etcd.EventFeed`);
    ``poll()`` fetches the events the log has not seen yet (call it once at the end, or
    before each live plot); ``mark(label)`` notes a moment of the learner's own.
    ``service`` keeps only that service's events (None: every service).
    """

    def __init__(self, directory_url: str, service: str | None = "popularity") -> None:
        self.client = directory_client(directory_url)
        self.service = service
        self.version = 0
        self._events: list[dict] = []
        self._marks: list[Mark] = []
        self._lock = threading.Lock()
        self.poll()

    def poll(self) -> list[dict]:
        """Fetch the new events; returns them (raises DirectoryError when unreachable)."""
        with self._lock:
            fresh = self.client.events(since=self.version)
            if fresh:
                self.version = max(event["version"] for event in fresh)
            fresh = [e for e in fresh if self.service in (None, e["service"])]
            self._events.extend(fresh)
            return fresh

    def mark(self, label: str, at: float | None = None) -> Mark:
        """Note a moment (now, or wall-clock ``at``) with a short label."""
        mark = Mark(time.time() if at is None else at, label)
        with self._lock:
            self._marks.append(mark)
        return mark

    def events(self) -> list[dict]:
        with self._lock:
            return list(self._events)

    def marks(self) -> list[Mark]:
        with self._lock:
            return list(self._marks)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# -- summing up ----------------------------------------------------------------------------

def instance_labels(records: list[Reload]) -> dict[str, str]:
    """``{service_id: instance id}`` as the monolith reported them: names people recognise."""
    return {r.service_id: r.instance for r in records if r.service_id and r.instance}


def label_for(service_id: str | None, labels: dict[str, str] | None = None) -> str:
    """How a popularity process is named in tables and plots: ``labels`` or 8 characters."""
    if service_id is None:
        return NO_ANSWER
    return (labels or {}).get(service_id) or service_id[:8]


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile: the smallest value with at least p % of values <= it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _row(service: str, records: list[Reload], total: int) -> dict:
    latencies = [record.latency * 1000 for record in records]
    return {"service": service, "calls": len(records),
            "share": round(100 * len(records) / total, 1),
            "failures": sum(not record.ok for record in records),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1)}


def summarize(records: list[Reload], labels: dict[str, str] | None = None) -> list[dict]:
    """One row per answering process (most calls first), then "no answer", then "total".

    ``share`` is the percentage of all reloads; ``p50_ms`` / ``p99_ms`` are the reloads'
    latencies as the visitor saw them (nearest-rank percentiles).
    """
    if not records:
        return []
    groups: dict[str | None, list[Reload]] = {}
    for record in records:
        groups.setdefault(record.service_id, []).append(record)
    answered = sorted((sid for sid in groups if sid is not None),
                      key=lambda sid: (-len(groups[sid]), label_for(sid, labels)))
    order = answered + ([None] if None in groups else [])
    rows = [_row(label_for(sid, labels), groups[sid], len(records)) for sid in order]
    return rows + [_row("total", records, len(records))]


COLUMNS = (("service", "service"), ("calls", "calls"), ("share", "share %"),
           ("failures", "failures"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"))


def _cells(rows: list[dict]) -> list[list[str]]:
    return [[str(row[key]) for key, _ in COLUMNS] for row in rows]


def format_table(rows: list[dict]) -> str:
    """The rows as an aligned plain-text table (names left, numbers right)."""
    if not rows:
        return "no reloads recorded"
    table = [[title for _, title in COLUMNS], *_cells(rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths, strict=True)))

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(table[0]), rule, *map(line, table[1:])])


def to_markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table, for a notebook's Markdown output or a report."""
    if not rows:
        return "_no reloads recorded_"
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    align = "| --- |" + " ---: |" * (len(COLUMNS) - 1)
    body = ["| " + " | ".join(cells) + " |" for cells in _cells(rows)]
    return "\n".join([head, align, *body])

