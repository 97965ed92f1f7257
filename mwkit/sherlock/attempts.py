"""One routed call and its attempts: the retry loop the requests adapter and the proxy share.

A transport (``adapter.py`` with requests, ``proxy.py`` with aiohttp) only sends; this
module decides where each attempt goes and what its outcome was::

    call = Call(sherlock, service, method)
    for endpoint in call:               # NoInstances when no instance is left to try
        try:
            answer = send(endpoint)     # the transport's own call, within call.current's
        except Refused as reason:       # timeout() and with its headers()
            call.refused(reason)        # the instance did not answer at all: ejected;
            continue                    # an idempotent call goes on to another
        except Timeout as reason:       # it accepted the call and said nothing in time
            call.timed_out(reason)      # ejected too; an idempotent call goes on
            continue
        if call.answered(answer.status):  # "ok" below 500, "error" from 500 on: final,
            return answer               # unless a 5xx is to be retried (retry_5xx)
        call.set_aside(answer)          # returned if no other instance is left to try
    if call.kept is not None:
        return call.kept
    raise call.failure                  # every allowed attempt was refused or timed out

Retries: an idempotent method (:data:`IDEMPOTENT`) refused by one instance, or not
answered within the caller's timeout, is tried once more (``sherlock.retries``) on
another, never on one already tried; a POST or PATCH is sent once, since neither a refused
connection nor a silence proves the instance did nothing. The caller's timeout is each
attempt's: an instance that hangs (stopped, deadlocked: the kernel still accepts the
connection) costs a GET one timeout, not the call, and is ejected like one that refuses,
so the next calls do not wait for it. A slow instance that answers within the timeout
is not touched (notebook 07's slow canary).

Three options of Sherlock's act here, each off by default:

- a retry budget (:class:`mwkit.sherlock.guards.RetryBudget`): a retry it denies is not
  made; the failed attempt's log record says ``denied="budget"``;
- a deadline: the call's time, from its start. Each attempt waits at most what is left of
  it, and tells the instance so in :data:`DEADLINE_HEADER` (milliseconds left, relative as
  gRPC's ``grpc-timeout``, so that clocks need not agree); once it is spent no retry or
  hedge is made (``denied="deadline"``). A caller's own ``X-Deadline-Ms`` is kept when it
  is shorter, so a deadline travels on through services that pass the header on;
- hedging: :meth:`Call.hedge_delay` says when the transport should send a second copy of
  an idempotent call (:meth:`Call.hedge`) to another instance; the first answer wins;
- retrying a 5xx (``retry_5xx``, Envoy's ``retry_on: 5xx``): an idempotent call answered
  with a 5xx is sent to another instance, within the retries, the budget and the
  deadline. Off by default, because an answer is not a silence: the instance did the work
  and said it failed, and only the caller knows whether doing it again is safe. A failing
  instance of four then costs its callers one extra call instead of a failed page.

This module imports neither the router nor a transport: the router's side is the small
:class:`Router` protocol below, which :class:`mwkit.sherlock.Sherlock` implements.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Protocol

from mwkit.errors import NoInstances
from mwkit.sherlock.endpoint import Endpoint

#: Methods that may be sent again to another instance when the first refused the connection.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: The header that carries a call's deadline to the instance: whole milliseconds left.
DEADLINE_HEADER = "X-Deadline-Ms"
#: An attempt is given at least this long (s), even when the deadline is all but spent.
SHORTEST_ATTEMPT = 0.001


def deadline_of(header: str | None) -> float | None:
    """Seconds in a :data:`DEADLINE_HEADER` value; None when absent or not a number."""
    try:
        return max(0, int(header)) / 1000 if header is not None else None
    except ValueError:
        return None


class Router(Protocol):
    """What a :class:`Call` needs of Sherlock: picking, counting and recording."""

    retries: int
    retry_5xx: bool
    timeout: float
    connect_timeout: float
    deadline: float | None

    def acquire(self, service: str, exclude: frozenset[str] = ...) -> Endpoint: ...

    def release(self, endpoint: Endpoint, started_wall: float, began_monotonic: float,
                outcome: str, status: int | None, attempt: int, *, hedged: bool = False,
                denied: str | None = None) -> bool: ...

    def record_no_instances(self, service: str, started_wall: float) -> None: ...

    def call_started(self, service: str) -> None: ...

    def try_retry(self, service: str) -> bool: ...

    def hedge_delay(self, service: str) -> float | None: ...


class Attempt:
    """One attempt of a call: sent to one instance, recorded exactly once."""

    def __init__(self, call: Call, endpoint: Endpoint, number: int, hedged: bool) -> None:
        self.call, self.endpoint, self.number, self.hedged = call, endpoint, number, hedged
        #: Monotonic time (``time.monotonic()``) it began: its latency's 0.
        self.began_monotonic = time.monotonic()
        self.recorded = False
        self.in_thread = False  # a transport sends it in a thread that records it
        self._lock = threading.Lock()

    def timeout(self, longest: float) -> float:
        """How long it may wait for the answer: ``longest``, or less if the deadline says."""
        left = self.call.time_left()
        return longest if left is None else max(min(longest, left), SHORTEST_ATTEMPT)

    def headers(self) -> dict[str, str]:
        """Headers to add to the request: the deadline, when the call has one."""
        left = self.call.time_left()
        return {} if left is None else {DEADLINE_HEADER: str(max(0, int(left * 1000)))}

    def record(self, outcome: str, status: int | None, denied: str | None = None) -> bool:
        """Log it; True if the instance was ejected. A second record is refused."""
        with self._lock:
            if self.recorded:
                raise RuntimeError(f"attempt {self.number} is recorded already")
            self.recorded = True
        call = self.call
        ejected = call.router.release(self.endpoint, call.started_wall, self.began_monotonic,
                                      outcome, status, self.number, hedged=self.hedged,
                                      denied=denied)
        call.ejected = call.ejected or bool(ejected)
        return ejected


class Call:
    """One call to ``service``, sent to one instance, or to another when the first refuses.

    Iterate over it to get the instance for each attempt; after each one, say how it went
    with exactly one of :meth:`answered`, :meth:`refused` or :meth:`timed_out`.
    ``deadline``: seconds the caller gives the whole call (a header it received, say);
    the router's own deadline applies when it is shorter.
    """

    def __init__(self, router: Router, service: str, method: str,
                 deadline: float | None = None) -> None:
        self.router, self.service = router, service
        self.idempotent = method.upper() in IDEMPOTENT
        self.attempts = 1 + (router.retries if self.idempotent else 0)
        #: Wall-clock time (``time.time()``) the call started: the call log's ``time``.
        self.started_wall = time.time()
        self.started_monotonic = time.monotonic()
        given = [d for d in (deadline, router.deadline) if d is not None]
        self.deadline = min(given) if given else None
        self.attempt = 0  # attempts made so far, hedges included: the last one's number
        self.current: Attempt | None = None  # the attempt the loop yielded last
        self.failure: BaseException | None = None  # why the last failed attempt failed
        self.timed_out_last = False  # the last attempt timed out (rather than refused)
        self.hedged = False  # a hedge was sent
        #: The last 5xx answer, set aside while another instance is tried (``retry_5xx``):
        #: the caller gets it when no other instance is left. The transport's own object.
        self.kept = None
        self.ejected = False  # an attempt's outcome ejected its instance
        self._go_on = True  # the last failed attempt may be retried
        self._tried: set[str] = set()
        router.call_started(service)

    @property
    def endpoint(self) -> Endpoint | None:
        """The instance of the current (or last) attempt."""
        return None if self.current is None else self.current.endpoint

    def time_left(self) -> float | None:
        """Seconds left of the deadline (negative once spent); None without a deadline."""
        if self.deadline is None:
            return None
        return self.deadline - (time.monotonic() - self.started_monotonic)

    def summary(self) -> dict:
        """What Sherlock did for this call, for the caller's own records."""
        return {"attempts": self.attempt, "hedged": self.hedged, "ejected": self.ejected}

    def __iter__(self) -> Iterator[Endpoint]:
        try:
            while self.attempt < self.attempts and self._go_on:
                try:
                    endpoint = self.router.acquire(self.service, frozenset(self._tried))
                except NoInstances:
                    if self.attempt == 0:
                        self.router.record_no_instances(self.service, self.started_wall)
                    elif self.timed_out_last or self.kept is not None:
                        return  # no other instance: the caller gets the timeout or 5xx
                    raise
                self.current = self._start(endpoint, hedged=False)
                yield endpoint
                if not self.current.recorded and not self.current.in_thread:
                    raise RuntimeError("an attempt ended with neither answered(), refused() "
                                       "nor timed_out()")
        finally:
            current = self.current
            if current is not None and not current.recorded and not current.in_thread:
                # the transport raised something else: the instance is not left counted
                current.record("error", None)  # as in flight for ever

    def _start(self, endpoint: Endpoint, hedged: bool) -> Attempt:
        self.attempt += 1
        self._tried.add(endpoint.id)
        return Attempt(self, endpoint, self.attempt, hedged)

    def answered(self, status: int, attempt: Attempt | None = None) -> bool:
        """The instance answered with HTTP ``status``: "ok" below 500, else "error".

        True when the answer is the call's; False when it is a 5xx that another instance
        is asked instead (``retry_5xx``): the transport sets it aside (:meth:`set_aside`).
        """
        attempt = attempt or self.current
        if status < 500:
            attempt.record("ok", status)
            return True
        retry = self.router.retry_5xx and not self.hedged and self.attempt < self.attempts
        denied = self._retry_denied() if retry else None
        attempt.record("error", status, denied)
        self._go_on = retry and denied is None
        return not self._go_on

    def set_aside(self, answer) -> None:
        """Keep a 5xx answer (the transport's object) while another instance is tried."""
        self.kept = answer

    def refused(self, reason: BaseException | None = None,
                attempt: Attempt | None = None) -> None:
        """The instance did not answer (connection refused or cut): eject it for a while."""
        self._failed(attempt or self.current, "refused", reason)

    def timed_out(self, reason: BaseException | None = None,
                  attempt: Attempt | None = None) -> None:
        """The instance did not answer in time: eject it for a while, as a refusal."""
        self._failed(attempt or self.current, "timeout", reason)

    def _failed(self, attempt: Attempt, outcome: str, reason: BaseException | None) -> None:
        self.failure, self.timed_out_last = reason, outcome == "timeout"
        # a retry would follow: is one allowed?
        denied = self._retry_denied() if self.attempt < self.attempts else None
        self._go_on = denied is None
        attempt.record(outcome, None, denied)

    def _retry_denied(self) -> str | None:
        """Why a retry may not be made ("deadline", "budget"), or None when it may."""
        left = self.time_left()
        if left is not None and left <= 0:
            return "deadline"
        if not self.router.try_retry(self.service):
            return "budget"
        return None

    # --- hedging: the transport runs the attempts side by side --------------------------

    def hedge_delay(self) -> float | None:
        """Seconds after which the current attempt should be hedged; None: never."""
        if not self.idempotent or self.hedged:
            return None
        delay = self.router.hedge_delay(self.service)
        left = self.time_left()
        if delay is None or (left is not None and delay >= left):
            return None
        return delay

    def hedge(self) -> Attempt | None:
        """A second attempt, on an instance not tried yet; None when there is none or the
        retry budget denies it (a hedge is extra load, as a retry is). It takes the number
        after the current attempt's, so a call makes at most ``max(1 + retries, 2)``."""
        if not self.router.try_retry(self.service):
            return None
        try:
            endpoint = self.router.acquire(self.service, frozenset(self._tried))
        except NoInstances:
            return None
        self.hedged = True
        return self._start(endpoint, hedged=True)
