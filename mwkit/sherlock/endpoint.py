"""One instance as Sherlock sees it: where it is, and how it has been behaving."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

EWMA_DECAY_SECONDS = 10.0   # how fast a remembered slow answer is forgiven
DEFAULT_LATENCY = 0.05      # what a new instance is assumed to cost until measured
EJECT_FIRST, EJECT_MAX = 1.0, 10.0


@dataclass
class Endpoint:
    service: str
    id: str
    address: str
    url: str
    metadata: dict
    registered_at: float
    ttl: float = EJECT_FIRST  # the lease the Directory gave it
    outstanding: int = 0
    latency_ewma: float = DEFAULT_LATENCY
    ejected_until: float = 0.0
    eject_seconds: float = EJECT_FIRST
    ok: int = 0
    failed: int = 0
    consecutive_5xx: int = 0  # answers from 500 on in a row (outlier ejection)
    ejections: int = 0  # times ejected as an outlier: the next ejection lasts longer
    _ewma_at: float = field(default=0.0, repr=False)  # 0: the first answer replaces the guess

    @classmethod
    def from_json(cls, data: dict) -> Endpoint:
        return cls(service=data["service"], id=data["id"], address=data["address"],
                   url=data["url"], metadata=data.get("metadata", {}),
                   registered_at=data.get("registered_at", 0.0),
                   ttl=data.get("ttl", EJECT_FIRST))

    def available(self, now: float) -> bool:
        return now >= self.ejected_until

    def eject(self, now: float) -> None:
        """Take it out of rotation for a while; twice as long each time it fails again.

        The first time, at least for its lease: a dead instance's Watson renews nothing, so
        by then the Directory has dropped it; a live one is tried again after that.
        """
        seconds = max(self.eject_seconds, self.ttl)
        self.ejected_until = now + seconds
        self.eject_seconds = min(seconds * 2, EJECT_MAX)

    def record(self, latency: float, ok: bool, now: float) -> None:
        """Peak-EWMA: a slow answer counts at once; a fast one pulls the average down slowly."""
        if ok:
            self.ok += 1
            self.ejected_until, self.eject_seconds = 0.0, EJECT_FIRST
        else:
            self.failed += 1
        if latency > self.latency_ewma:
            self.latency_ewma = latency
        else:
            weight = math.exp(-max(now - self._ewma_at, 0.0) / EWMA_DECAY_SECONDS)
            self.latency_ewma = self.latency_ewma * weight + latency * (1 - weight)
        self._ewma_at = now
