"""What modern client-side balancers add to picking an instance, each off unless asked for.

- :class:`OutlierEjection`: an instance that answered ``consecutive`` 5xx in a row is left
  out for a while, longer each time (Envoy's outlier detection, ``consecutive_5xx``).
- :class:`RetryBudget`: retries (and hedges) are allowed only while they stay a share of
  the recent calls, plus a small floor (Finagle's ``RetryBudget``).
- :class:`HedgeTimer`: when an idempotent call has not answered within the service's
  recent latency quantile, a second copy goes to another instance ("The Tail at Scale",
  Dean and Barroso 2013).

Each is pure logic over a clock passed in (``now``, monotonic seconds), so that a test
can play minutes of traffic in microseconds; :class:`mwkit.sherlock.Sherlock` feeds them.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence

from mwkit.errors import InvalidInput
from mwkit.sherlock.endpoint import Endpoint

#: Envoy's default for ``consecutive_5xx``.
CONSECUTIVE_5XX = 5
#: How long the first outlier ejection lasts (s); the n-th lasts n times as long. Envoy's
#: ``base_ejection_time`` is 30 s: the kit's lessons last minutes, so 1 s here.
OUTLIER_BASE, OUTLIER_MAX = 1.0, 10.0
#: At most this share of a service's instances is left out at once (at least one may be).
#: Envoy's ``max_ejection_percent`` is 10 %, meant for fleets of dozens; with the kit's
#: two to four instances it would mean "exactly one", so half: a service that fails as a
#: whole keeps at least half its instances called, and ejection never empties it.
MAX_EJECTED_SHARE = 0.5


class OutlierEjection:
    """Leave out an instance after ``consecutive`` 5xx answers in a row."""

    def __init__(self, consecutive: int = CONSECUTIVE_5XX, base: float = OUTLIER_BASE,
                 longest: float = OUTLIER_MAX, max_share: float = MAX_EJECTED_SHARE) -> None:
        if consecutive < 1:
            raise InvalidInput(f"outlier ejection needs 1 or more consecutive 5xx, "
                               f"not {consecutive}")
        self.consecutive, self.base, self.longest = consecutive, base, longest
        self.max_share = max_share

    def observe(self, endpoint: Endpoint, status: int | None, peers: Sequence[Endpoint],
                now: float) -> bool:
        """Count one answer of ``endpoint`` (one of ``peers``, its service's instances);
        True when it is ejected now.

        Any answer below 500 ends a run of 5xx. The n-th ejection of an instance lasts n
        times ``base`` (at most ``longest``); none happens when that would leave out more
        than ``max_share`` of ``peers`` (but one instance may always be).
        """
        if status is None or status < 500:
            endpoint.consecutive_5xx = 0
            return False
        endpoint.consecutive_5xx += 1
        if endpoint.consecutive_5xx < self.consecutive or not endpoint.available(now):
            return False
        out = sum(1 for peer in peers if not peer.available(now))
        if out >= max(1, math.floor(self.max_share * len(peers))):
            return False
        endpoint.ejections += 1
        endpoint.consecutive_5xx = 0
        endpoint.ejected_until = now + min(self.base * endpoint.ejections, self.longest)
        return True


#: Finagle's RetryBudget defaults are a 10 s window, 20 % and 10 retries a second; the
#: kit's loads are tens of calls a second, where a floor of 10 a second would hide the
#: budget, so 1 a second here.
BUDGET_WINDOW, BUDGET_MIN_PER_SECOND = 10.0, 1.0


class RetryBudget:
    """Retries may be at most ``share`` of the calls of the last ``window`` seconds, plus
    ``min_per_second`` x ``window`` (so that a quiet client may still retry).

    A retry that would go over is denied: the caller gets the failure, and a failing
    service gets ``1 + share`` times its load at most, not ``1 + retries`` times.
    """

    def __init__(self, share: float, window: float = BUDGET_WINDOW,
                 min_per_second: float = BUDGET_MIN_PER_SECOND) -> None:
        if not 0 < share <= 1:
            raise InvalidInput(f"a retry budget is a share of the calls, above 0 and at most "
                               f"1 (0.2: 20 %), not {share!r}")
        self.share, self.window, self.min_per_second = share, window, min_per_second
        self._calls: deque[float] = deque()
        self._retries: deque[float] = deque()

    def _forget(self, now: float) -> None:
        for times in (self._calls, self._retries):
            while times and times[0] <= now - self.window:
                times.popleft()

    def called(self, now: float) -> None:
        """One call began (its first attempt)."""
        self._forget(now)
        self._calls.append(now)

    def try_retry(self, now: float) -> bool:
        """True, and the retry is counted, when the budget allows one more."""
        self._forget(now)
        allowed = self.min_per_second * self.window + self.share * len(self._calls)
        if len(self._retries) + 1 > allowed:
            return False
        self._retries.append(now)
        return True


#: Hedging waits at least this long (s), so that a service answering in 2 ms is not called
#: twice for a 3 ms answer; and needs this many latencies before it hedges at all.
HEDGE_FLOOR, HEDGE_MIN_SAMPLES, HEDGE_SAMPLES = 0.05, 20, 1000


class HedgeTimer:
    """The delay after which a call is hedged: the ``quantile`` of the service's latest
    answers' latencies (the last :data:`HEDGE_SAMPLES`), never below ``floor``.

    With the 95th percentile, about 5 % of calls are hedged when all is well: extra load
    of 5 % for a tail cut down to about the p95, as Dean and Barroso measured.
    """

    def __init__(self, quantile: float, floor: float = HEDGE_FLOOR,
                 samples: int = HEDGE_SAMPLES) -> None:
        if not 0 < quantile < 1:
            raise InvalidInput(f"hedging takes a latency quantile between 0 and 1 (0.95: "
                               f"after the 95th percentile), not {quantile!r}")
        self.quantile, self.floor = quantile, floor
        self._recent: deque[float] = deque(maxlen=samples)
        self._sorted: list[float] = []

    def record(self, latency: float) -> None:
        """One answer's latency (s)."""
        if len(self._recent) == self._recent.maxlen:
            del self._sorted[bisect.bisect_left(self._sorted, self._recent[0])]
        self._recent.append(latency)
        bisect.insort(self._sorted, latency)

    def delay(self) -> float | None:
        """Seconds to wait before hedging; None until enough answers are known."""
        if len(self._sorted) < HEDGE_MIN_SAMPLES:
            return None
        index = min(len(self._sorted) - 1, math.ceil(self.quantile * len(self._sorted)) - 1)
        return max(self._sorted[index], self.floor)
