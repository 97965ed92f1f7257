"""The record of every call Sherlock routed, for plots, tests and curiosity."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass

import requests

from mwkit.errors import NoInstances

OUTCOMES = ("ok", "error", "refused", "timeout", "no_instances", "cancelled")
#: Why a failed attempt was not retried although retries were left (``denied``).
DENIALS = ("budget", "deadline")


def failure_reason(exc: BaseException) -> str:
    """Why a call through Sherlock failed: ``"no_instances"``, ``"timeout"`` or ``"error"``.

    Decided by the exception's class, so that readers of it (the monolith's
    ``/popular.json``, :mod:`mwkit.traffic`) never parse class names out of the human text.
    """
    if isinstance(exc, NoInstances):  # first: it is a requests.ConnectionError too
        return "no_instances"
    if isinstance(exc, requests.Timeout):
        return "timeout"
    return "error"


@dataclass(frozen=True)
class CallRecord:
    time: float          # wall-clock start of the call
    service: str
    instance: str | None
    address: str | None
    latency: float       # seconds
    outcome: str         # one of OUTCOMES
    status: int | None   # HTTP status, when there was one
    attempt: int         # 1 for the first try, 2 for the retry (or the hedge)
    hedged: bool = False  # this attempt was a hedge: a copy sent while the first waited
    ejected: bool = False  # its outcome ejected the instance (refused, timed out, 5xx)
    denied: str | None = None  # no retry followed, although one was left: see DENIALS

    def to_json(self) -> dict:
        return asdict(self)


class CallLog:
    """A bounded, thread-safe list of :class:`CallRecord`, newest last."""

    def __init__(self, size: int = 100_000) -> None:
        self._records: deque[CallRecord] = deque(maxlen=size)
        self._lock = threading.Lock()

    def append(self, record: CallRecord) -> None:
        with self._lock:
            self._records.append(record)

    def records(self, since: float = 0.0, service: str | None = None) -> list[CallRecord]:
        with self._lock:
            return [r for r in self._records
                    if r.time >= since and (service is None or r.service == service)]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        return len(self._records)
