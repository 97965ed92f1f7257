"""Sherlock's core: a live routing table fed by the Directory's push stream.

A background thread holds the Directory's watch stream open. The first message is a
snapshot of every service; each later one puts or deletes one instance, and Sherlock keeps
the Directory's lists itself (a :class:`~mwkit.directory.client.ServiceTable`). If the
stream breaks (the Directory restarted, say), Sherlock keeps routing with the table it
has and reconnects with the last version it saw, so it gets exactly what it missed.

A Directory that restarted remembers nothing: its first snapshot (a new epoch) is empty
until every Watson has registered again. Sherlock does not drop its table for that: the
instances it knew stay routable for one lease (the grace), beside those the new Directory
lists, and are forgotten once the grace is over. A Watson renews within its lease, so by
then every live instance is back in the new table; one that died meanwhile refuses its
first call, which is retried elsewhere and ejects it.

Routing a call is: pick an instance with the policy (skipping ejected ones), count it as
in flight, and afterwards record the outcome, the latency, and eject the instance if it
refused the connection. ``attempts.Call`` strings these steps into the one retry loop
that the requests adapter and the proxy share.

Three settings say how much Sherlock protects its caller, and each can be turned off to
see what it prevents (the "break it" runs of notebooks 06 and 07):

- ``policy``: how an instance is picked (:mod:`mwkit.sherlock.policies`);
- ``retries``: how many other instances an idempotent call refused by one instance (or
  not answered in time) is sent to (0: the caller gets the failure);
- ``eject``: whether an instance that refused a connection or timed out is left out for
  a while (False: it keeps getting calls until the Directory drops it, as with a router
  that only follows the registry).

Four more, off unless given, are what modern client-side balancers add (see
:mod:`mwkit.sherlock.guards` and :mod:`mwkit.sherlock.attempts`): ``outlier_5xx`` (leave
out an instance after that many 5xx in a row, Envoy), ``retry_budget`` (retries at most
that share of the calls, Finagle), ``hedge`` (a second copy of a call slower than that
latency quantile, Dean and Barroso) and ``deadline`` (seconds a call may take, told to the
instance in a header); 0 or None is off. ``retry_5xx`` (Envoy's ``retry_on: 5xx``) also
retries an idempotent call that an instance answered with a 5xx, within ``retries``.
The policy ``p2c_least_request`` is Envoy's least-request balancer with its default two
choices.
"""


from __future__ import annotations

import logging
import threading
import time

import requests

from mwkit.directory import DirectoryError, Message, ServiceTable, directory_client
from mwkit.errors import InvalidInput, NoInstances
from mwkit.sherlock.adapter import SherlockAdapter
from mwkit.sherlock.calls import CallLog, CallRecord
from mwkit.sherlock.endpoint import Endpoint
from mwkit.sherlock.guards import HedgeTimer, OutlierEjection, RetryBudget
from mwkit.sherlock.policies import DEFAULT_POLICY, make_policy

log = logging.getLogger("mwkit.sherlock")

RECONNECT_FIRST, RECONNECT_MAX = 0.05, 1.0


class Sherlock:
    """Subscribe to the Directory and route calls to services by name."""

    def __init__(
        self,
        directory_url: str,
        policy: str = DEFAULT_POLICY,
        *,
        timeout: float = 5.0,
        connect_timeout: float = 0.5,
        retries: int = 1,
        eject: bool = True,
        token: str | None = None,
        log_size: int = 100_000,
        outlier_5xx: int = 0,
        retry_budget: float | None = None,
        hedge: float | None = None,
        deadline: float | None = None,
        retry_5xx: bool = False,
    ) -> None:
        if retries < 0:
            raise InvalidInput(f"Sherlock's retries must be 0 or more, not {retries}")
        if deadline is not None and deadline < 0:
            raise InvalidInput(f"Sherlock's deadline is seconds, 0 or None for none, not "
                               f"{deadline!r}")
        #: Envoy's consecutive-5xx outlier ejection, or None (``outlier_5xx=0``: off).
        self.outliers = OutlierEjection(outlier_5xx) if outlier_5xx else None
        # 0 is off too, as in the settings (MWKIT_SHERLOCK_HEDGE=0)
        self.retry_budget, self.hedge = retry_budget or None, hedge or None
        self.deadline = deadline or None
        if self.retry_budget is not None:
            RetryBudget(self.retry_budget)  # a wrong share fails now, not at the first call
        if self.hedge is not None:
            HedgeTimer(self.hedge)
        self._budgets: dict[str, RetryBudget] = {}
        self._hedge_timers: dict[str, HedgeTimer] = {}
        self.directory = directory_client(directory_url, token, timeout=connect_timeout * 4)
        self.policy_name = policy
        make_policy(policy)  # fail now on an unknown name
        self.timeout, self.connect_timeout, self.retries = timeout, connect_timeout, retries
        self.eject, self.retry_5xx = eject, retry_5xx
        self.calls = CallLog(log_size)
        self.version = 0
        self.epoch: str | None = None
        self.connected = False
        self._listed = ServiceTable()  # what the Directory lists, kept from its stream
        self._table: dict[str, list[Endpoint]] = {}  # ... as endpoints, with their statistics
        self._previous: dict[str, list[Endpoint]] = {}  # the table of the Directory's last epoch
        self._previous_until = 0.0  # ... routable until then (monotonic seconds)
        self._policies: dict[str, object] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True, name="sherlock-watch")
        self._thread.start()

    # --- the table, from the Directory -----------------------------------------------

    def _follow(self) -> None:
        delay = RECONNECT_FIRST
        while not self._closed.is_set():
            try:
                since = self.version if self.epoch else None
                for message in self.directory.watch(since, self.epoch):
                    self._apply(message)
                    delay = RECONNECT_FIRST
            except DirectoryError as error:
                if self.connected and not self._closed.is_set():
                    log.warning("lost the Directory (%s); routing with the last table", error)
            self.connected = False
            self._closed.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    def _apply(self, message: Message) -> None:
        with self._changed:
            if message.kind == "snapshot" and self.epoch is not None \
                    and message.epoch != self.epoch:
                self._keep_for_grace(time.monotonic())
            for service in self._listed.apply(message):
                self._replace(service, self._listed.instances(service))
            self.version, self.epoch = self._listed.version, self._listed.epoch
            self.connected = True
            self._changed.notify_all()

    def _keep_for_grace(self, now: float) -> None:
        """The Directory restarted: keep routing to what it listed, for one lease."""
        endpoints = [e for known in self._table.values() for e in known]
        if not endpoints:
            return
        self._previous = {service: list(known) for service, known in self._table.items()}
        self._previous_until = now + max(e.ttl for e in endpoints)
        log.warning("the Directory restarted (new epoch): routing to the %d instance(s) it "
                    "listed before for %.1f s while they register again", len(endpoints),
                    self._previous_until - now)

    def _routable(self, service: str, now: float) -> list[Endpoint]:
        """The service's instances, and within a grace those of the Directory's last epoch
        that the new one does not list (yet)."""
        listed = self._table.get(service, [])
        if not self._previous:
            return listed
        if now >= self._previous_until:
            self._previous = {}
            return listed
        ids = {e.id for e in listed}
        return listed + [e for e in self._previous.get(service, []) if e.id not in ids]

    def _replace(self, service: str, instances: list[dict]) -> None:
        """New instance list; an instance registered at the same moment keeps its statistics."""
        known = {e.id: e for e in self._table.get(service, [])}
        fresh = []
        for data in instances:
            endpoint = known.get(data["id"])
            if endpoint is None or endpoint.registered_at != data.get("registered_at"):
                endpoint = Endpoint.from_json(data)
            fresh.append(endpoint)
        if fresh:
            self._table[service] = fresh
        else:
            self._table.pop(service, None)

    def instances(self, service: str) -> list[Endpoint]:
        with self._lock:
            return list(self._table.get(service, []))

    def services(self) -> dict[str, list[Endpoint]]:
        with self._lock:
            return {name: list(endpoints) for name, endpoints in self._table.items()}

    def wait_for(self, service: str, count: int, timeout: float = 10.0) -> list[Endpoint]:
        """Block until the table holds exactly ``count`` instances of ``service``."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._table.get(service, [])) == count,
                                          timeout):
                have = len(self._table.get(service, []))
                raise TimeoutError(f"{service} has {have} instance(s) after {timeout} s, "
                                   f"expected {count}")
            return list(self._table[service])

    # --- routing steps -----------------------------------------------------------------

    def acquire(self, service: str, exclude: frozenset[str] = frozenset()) -> Endpoint:
        """Pick an instance for one call and count it as in flight."""
        now = time.monotonic()
        with self._lock:
            known = self._routable(service, now)
            candidates = [e for e in known if e.id not in exclude and e.available(now)]
            if not candidates:
                why = (f"all {len(known)} are ejected or already tried" if known
                       else "none is registered")
                raise NoInstances(f"no instances of {service} ({why})")
            if service not in self._policies:
                self._policies[service] = make_policy(self.policy_name)
            endpoint = self._policies[service](candidates)
            endpoint.outstanding += 1
            return endpoint

    def release(self, endpoint: Endpoint, started_wall: float, began_monotonic: float,
                outcome: str, status: int | None, attempt: int, *, hedged: bool = False,
                denied: str | None = None) -> bool:
        """Record how one attempt went: statistics, ejection of an instance that refused
        or timed out (unless ``eject`` is off) or answered too many 5xx in a row (with
        ``outlier_5xx``), and the call log. True when the instance was ejected.

        ``started_wall`` is when the whole call started, from ``time.time()`` (the call
        log's ``time``); ``began_monotonic`` is when this attempt began, from
        ``time.monotonic()`` (its latency is measured from there). ``hedged``: the
        attempt was a hedge; ``denied``: why no retry followed it (see :class:`CallRecord`).
        A ``"cancelled"`` attempt (a hedge's loser) only leaves the log and the count.
        """
        now = time.monotonic()
        latency = now - began_monotonic
        ejected = False
        with self._lock:
            endpoint.outstanding -= 1
            if outcome != "cancelled":
                endpoint.record(latency, outcome == "ok", now)
            if outcome in ("refused", "timeout") and self.eject:
                endpoint.eject(now)
                ejected = True
            elif outcome in ("ok", "error") and self.outliers is not None:
                peers = self._routable(endpoint.service, now)
                ejected = self.outliers.observe(endpoint, status, peers, now)
            if outcome == "ok" and self.hedge is not None:
                timer = self._hedge_timers.setdefault(endpoint.service, HedgeTimer(self.hedge))
                timer.record(latency)
        if ejected:
            log.info("ejected %s after %s", endpoint.id, outcome if status is None else status)
        self.calls.append(CallRecord(started_wall, endpoint.service, endpoint.id,
                                     endpoint.address, latency, outcome, status, attempt,
                                     hedged=hedged, ejected=ejected, denied=denied))
        return ejected

    def call_started(self, service: str) -> None:
        """A call began: it adds to the service's retry budget."""
        if self.retry_budget is not None:
            with self._lock:
                budget = self._budgets.setdefault(service, RetryBudget(self.retry_budget))
                budget.called(time.monotonic())

    def try_retry(self, service: str) -> bool:
        """May a call to ``service`` make one more attempt (a retry or a hedge)? Counted."""
        if self.retry_budget is None:
            return True
        with self._lock:
            budget = self._budgets.setdefault(service, RetryBudget(self.retry_budget))
            return budget.try_retry(time.monotonic())

    def hedge_delay(self, service: str) -> float | None:
        """When to hedge a call to ``service``: None with hedging off or too few answers."""
        if self.hedge is None:
            return None
        with self._lock:
            timer = self._hedge_timers.get(service)
            return None if timer is None else timer.delay()

    def record_no_instances(self, service: str, started_wall: float) -> None:
        """Log a call that found no instance; ``started_wall`` is from ``time.time()``."""
        self.calls.append(CallRecord(started_wall, service, None, None, 0.0, "no_instances",
                                     None, 1))

    def counters(self) -> dict[str, dict]:
        """Live per-instance numbers: calls that succeeded, failed, are in flight."""
        with self._lock:
            return {e.id: {"service": e.service, "ok": e.ok, "failed": e.failed,
                           "outstanding": e.outstanding, "latency_ewma": e.latency_ewma,
                           "ejected": not e.available(time.monotonic()),
                           "ejections": e.ejections}
                    for endpoints in self._table.values() for e in endpoints}

    # --- the requests-compatible front ------------------------------------------------

    def session(self) -> requests.Session:
        """A ``requests.Session`` that sends ``http://<service>/...`` to an instance."""
        session = requests.Session()
        session.mount("http://", SherlockAdapter(self))
        return session

    def close(self) -> None:
        self._closed.set()
        self.directory.interrupt()
        self._thread.join(timeout=2)
        self.directory.close()

    def __enter__(self) -> Sherlock:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
