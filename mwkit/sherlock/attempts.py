"""One routed call and its attempts: the retry loop the requests adapter and the proxy share.

A transport (``adapter.py`` with requests, ``proxy.py`` with aiohttp) only sends; this
module decides where each attempt goes and what its outcome was::

    call = Call(sherlock, service, method)
    for endpoint in call:               # NoInstances when no instance is left to try
        try:
            answer = send(endpoint)     # the transport's own call
        except Refused as reason:       # the instance did not answer at all
            call.refused(reason)        # ejected; an idempotent call goes on to another
            continue
        except Timeout as reason:       # it accepted the call and said nothing in time
            call.timed_out(reason)      # ejected too; an idempotent call goes on
            continue
        call.answered(answer.status)    # "ok" below 500, "error" from 500 on
        return answer
    raise call.failure                  # every allowed attempt was refused or timed out

Retries: an idempotent method (:data:`IDEMPOTENT`) refused by one instance, or not
answered within the caller's timeout, is tried once more (``sherlock.retries``) on
another, never on one already tried; a POST or PATCH is sent once, since neither a refused
connection nor a silence proves the instance did nothing. The caller's timeout is each
attempt's: an instance that hangs (stopped, deadlocked: the kernel still accepts the
connection) costs a GET one timeout, not the call, and is ejected like one that refuses,
so the next calls do not wait for it. A slow instance that answers within the timeout
is not touched (notebook 07's slow canary).

This module imports neither the router nor a transport: the router's side is the small
:class:`Router` protocol below, which :class:`mwkit.sherlock.Sherlock` implements.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol

from mwkit.errors import NoInstances
from mwkit.sherlock.endpoint import Endpoint

#: Methods that may be sent again to another instance when the first refused the connection.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class Router(Protocol):
    """What a :class:`Call` needs of Sherlock: picking, counting and recording."""

    retries: int
    timeout: float
    connect_timeout: float

    def acquire(self, service: str, exclude: frozenset[str] = ...) -> Endpoint: ...

    def release(self, endpoint: Endpoint, started_wall: float, began_monotonic: float,
                outcome: str, status: int | None, attempt: int) -> None: ...

    def record_no_instances(self, service: str, started_wall: float) -> None: ...


class Call:
    """One call to ``service``, sent to one instance, or to another when the first refuses.

    Iterate over it to get the instance for each attempt; after each one, say how it went
    with exactly one of :meth:`answered`, :meth:`refused` or :meth:`timed_out`.
    """

    def __init__(self, router: Router, service: str, method: str) -> None:
        self.router, self.service = router, service
        self.attempts = 1 + (router.retries if method.upper() in IDEMPOTENT else 0)
        #: Wall-clock time (``time.time()``) the call started: the call log's ``time``.
        self.started_wall = time.time()
        #: Monotonic time (``time.monotonic()``) the current attempt began: its latency's 0.
        self.began_monotonic = 0.0
        self.attempt = 0
        self.endpoint: Endpoint | None = None  # the instance of the current (or last) attempt
        self.failure: BaseException | None = None  # why the last failed attempt failed
        self.timed_out_last = False  # the last attempt timed out (rather than refused)
        self._tried: set[str] = set()
        self._open = False  # an attempt was sent and its outcome not yet recorded

    def __iter__(self) -> Iterator[Endpoint]:
        try:
            while self.attempt < self.attempts:
                try:
                    endpoint = self.router.acquire(self.service, frozenset(self._tried))
                except NoInstances:
                    if self.attempt == 0:
                        self.router.record_no_instances(self.service, self.started_wall)
                    elif self.timed_out_last:
                        return  # no other instance: the caller gets the timeout
                    raise
                self.attempt += 1
                self.endpoint, self._open = endpoint, True
                self._tried.add(endpoint.id)
                self.began_monotonic = time.monotonic()
                yield endpoint
                if self._open:
                    raise RuntimeError("an attempt ended with neither answered(), refused() "
                                       "nor timed_out()")
        finally:
            if self._open:  # the transport raised something else: the instance is not
                self._release("error", None)  # left counted as in flight for ever

    def answered(self, status: int) -> None:
        """The instance answered with HTTP ``status``: "ok" below 500, else "error"."""
        self._release("ok" if status < 500 else "error", status)

    def refused(self, reason: BaseException | None = None) -> None:
        """The instance did not answer (connection refused or cut): eject it for a while."""
        self.failure, self.timed_out_last = reason, False
        self._release("refused", None)

    def timed_out(self, reason: BaseException | None = None) -> None:
        """The instance did not answer in time: eject it for a while, as a refusal."""
        self.failure, self.timed_out_last = reason, True
        self._release("timeout", None)

    def _release(self, outcome: str, status: int | None) -> None:
        if not self._open:
            raise RuntimeError(f"no attempt in flight to record as {outcome!r}")
        self._open = False
        self.router.release(self.endpoint, self.started_wall, self.began_monotonic, outcome,
                            status, self.attempt)
