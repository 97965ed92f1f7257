"""Finding popularity through DNS, on a real dnsmasq: without health, and with it.

Both approaches run one dnsmasq on a free loopback port and differ only in what feeds it:

- :class:`PureDns` serves every instance the operator *deployed* (the wizard's view: a
  row in its state, running or not). Nothing checks health: an instance killed with
  ``kill -9`` stays in DNS until the deployment changes; a graceful scale-down removes it.
- :class:`HealthDns` serves only the instances that pass their checks: the Directory's
  (Watson registers an instance once its check passes; its lease runs out when it stops),
  followed through the Directory's push stream, as SkyDNS or Consul's DNS interface do.

**Why SRV records.** On one machine every instance is ``127.0.0.1``: they differ only by
port, and an A record has no port. So the server answers ``_popularity._tcp.<domain>``
with one SRV record per instance (a target name and a port), and an A record for each
target. In Docker or Kubernetes every instance has an IP address of its own, and A records
of those addresses on one well-known port suffice (a Kubernetes headless service).

**How records change.** On SIGHUP dnsmasq 2.90 clears its cache and re-reads its hosts
files (``--addn-hosts``; ``--hostsdir`` even without a signal) but *not* its configuration
(``man dnsmasq``, NOTES), and SRV records exist only in the configuration (``--srv-host``).
Here every change is a port, so an SRV record: the server is restarted, on the same port,
whenever the rendered records differ, and never when they do not (``record updates``
counts the restarts). A restart takes milliseconds; a query sent meanwhile gets no answer
within :data:`QUERY_TRY` and is sent again. With A records only, a hosts file and SIGHUP
(or ``--hostsdir``) would be gentler: no moment without a server.

**The caller** (:class:`DnsCaller`) does what most runtimes do: it resolves through that
server, keeps each answer for its TTL (``ttl``, dnsmasq's ``--local-ttl``, which answers
from its own records carry; ``--auth-ttl`` is for its authoritative mode, unused here),
picks one SRV record at random by weight, and calls popularity there once, no retries.
The TTL is how stale a caller may be: a new instance gets calls only once the cached
answer expired, a dead one keeps getting them until then.

    with PureDns(stack, ttl=5) as dns:
        reload = dns.call(session)      # a mwkit.traffic.Reload
        dns.costs()                     # {"DNS queries": 1, "record updates": 0}
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import random
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import dns.resolver
import requests

from mwkit.approaches import POPULARITY_PATH
from mwkit.contract import Phase
from mwkit.directory import ServiceTable, directory_client
from mwkit.errors import (
    DirectoryError,
    InvalidInput,
    MwkitError,
    StartFailed,
    StartTimeout,
)
from mwkit.procs import find_program, free_port, log_tail_text, spawn, stop_group
from mwkit.traffic import Reload
from mwkit.wizard.runtimes.process import marks

log = logging.getLogger("mwkit.approaches.dns")

SERVICE = "popularity"
#: The names live under ``.test``, a top-level domain reserved for testing (RFC 6761):
#: no resolver on the Internet answers for it.
DOMAIN = "mwkit.test"
#: Every SRV record gets the same priority and weight: instances are picked uniformly.
PRIORITY, WEIGHT = 0, 10
#: How long one DNS query waits for an answer before it is sent again (seconds).
QUERY_TRY = 0.2
#: ... and while waiting for a (re)started dnsmasq to answer: the gap stays this short.
READY_TRY = 0.01
#: How often :class:`PureDns` reads the deployment (seconds), and the bounds of that.
POLL, POLL_MIN, POLL_MAX = 0.5, 0.1, 10.0
#: The operator asked these to stop: no longer deployed. A crashed instance (``failed``:
#: its supervisor is gone) still is, until someone changes the deployment.
STOPPED_BY_OPERATOR = frozenset({Phase.DRAINING, Phase.STOPPING, Phase.STOPPED})
#: Where system daemons live (Debian, Homebrew), often not on a user's PATH.
INSTALL = ("dnsmasq is not installed: `apt-get install dnsmasq-base` (Debian, Ubuntu) or "
           "`brew install dnsmasq` (macOS)")


# --- records: what the server serves --------------------------------------------------

@dataclass(frozen=True, order=True)
class Target:
    """One instance as DNS serves it."""

    instance: str  # its id, the first label of its target name
    host: str  # an IPv4 address
    port: int


def parse_target(instance: str, address: str | None) -> Target | None:
    """``"127.0.0.1:8080"`` (the wizard's and the Directory's form) -> a Target; None when
    the instance has no address yet."""
    host, _, port = (address or "").removeprefix("http://").rpartition(":")
    return Target(instance, host, int(port)) if host and port.isdigit() else None


def label(instance: str) -> str:
    """An instance id as a DNS label: lower-case letters, digits, hyphens; 63 at most."""
    return re.sub(r"[^a-z0-9-]", "-", instance.lower()).strip("-")[:63] or "instance"


def srv_name(service: str, domain: str = DOMAIN) -> str:
    return f"_{service}._tcp.{domain}"


def target_name(target: Target, service: str, domain: str = DOMAIN) -> str:
    return f"{label(target.instance)}.{service}.{domain}"


def render_records(service: str, targets: Iterable[Target], ttl: int,
                   domain: str = DOMAIN) -> str:
    """dnsmasq's configuration: an SRV record and an A record per target, ``ttl`` s each.

    ``local=/<domain>/``: dnsmasq answers every name of the domain itself, so a name
    without records is NXDOMAIN at once (there is no upstream server to ask anyway).
    """
    lines = [f"# {srv_name(service, domain)}: written by mwkit.approaches.dns",
             f"local=/{domain}/", f"local-ttl={ttl}"]
    for target in sorted(set(targets)):
        name = target_name(target, service, domain)
        lines += [f"host-record={name},{target.host}",
                  f"srv-host={srv_name(service, domain)},{name},{target.port},"
                  f"{PRIORITY},{WEIGHT}"]
    return "\n".join(lines) + "\n"


# --- the server -------------------------------------------------------------------------

def dnsmasq_binary() -> str:
    """Where dnsmasq is (Debian puts it in /usr/sbin, often not on a user's PATH), or an
    error that says what to install."""
    return find_program("dnsmasq", INSTALL)


def free_dns_port(attempts: int = 20) -> int:
    """A loopback port free for both TCP and UDP (dnsmasq listens on both)."""
    for _ in range(attempts):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise StartFailed(f"no loopback port was free for both TCP and UDP in {attempts} tries")


def same_user() -> list[str]:
    """dnsmasq started by root drops to ``nobody``, who may not read our folder: keep it
    root. Started by anyone else it changes nothing (and ``--user`` would only need a name
    that exists), so it runs as that user without the option."""
    if os.geteuid() == 0:
        return [f"--user={pwd.getpwuid(0).pw_name}"]
    return []


class DnsServer:
    """One dnsmasq on ``127.0.0.1:port`` serving the records of :meth:`serve`.

    Everything is in ``<parent>/dnsmasq-<port>`` (configuration, pid file, log: one
    folder per server, so that two approaches of one stack never share a file), removed
    by :meth:`close`. ``env`` marks the process
    (the stack's workdir, as the process runtime marks what it starts), so that
    ``mwkit down`` and a stack's watchdog find it should this Python die.
    """

    def __init__(self, parent: Path | str, ttl: int, service: str = SERVICE,
                 env: dict[str, str] | None = None, domain: str = DOMAIN) -> None:
        self.binary = dnsmasq_binary()
        self.ttl, self.service, self.domain = ttl, service, domain
        self.env = dict(env or {})
        self.port = free_dns_port()
        self.folder = Path(parent) / f"dnsmasq-{self.port}"
        self.updates = 0  # restarts with new records
        self.targets: tuple[Target, ...] = ()  # what it serves now
        self._served: str | None = None  # the last configuration it ran with
        self._proc = None
        self._closed = False  # once closed, a late serve() (a thread's) starts nothing
        self._lock = threading.Lock()

    @property
    def config(self) -> Path:
        # "mwkit" on dnsmasq's command line: the tests' leak check looks for it there
        return self.folder / "mwkit-dnsmasq.conf"

    def command(self) -> list[str]:
        return [self.binary, "--keep-in-foreground", f"--conf-file={self.config}",
                f"--pid-file={self.folder / 'dnsmasq.pid'}", *same_user(),
                f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
                "--no-resolv", "--no-hosts", "--log-facility=-"]

    def serve(self, targets: Iterable[Target]) -> bool:
        """Serve exactly ``targets`` (starting dnsmasq the first time); True when the
        records changed, which restarts dnsmasq on the same port."""
        targets = tuple(sorted(set(targets)))
        text = render_records(self.service, targets, self.ttl, self.domain)
        with self._lock:
            if self._closed or (text == self._served and self._proc is not None):
                return False
            self.folder.mkdir(parents=True, exist_ok=True)
            self.config.write_text(text, encoding="utf-8")
            self._stop()
            self._start()  # when it fails, no dnsmasq runs: the next serve() starts one
            changed = self._served is not None and text != self._served
            self._served, self.targets = text, targets
            if changed:
                self.updates += 1
            return changed

    def _start(self, timeout: float = 5.0) -> None:
        log_path = self.folder / "dnsmasq.log"
        self._proc = spawn(self.command(), log_path=log_path, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise StartFailed(f"dnsmasq exited before it answered on port {self.port}"
                                  f"{log_tail_text(log_path)}")
            # One query at a time, no resolver (it would back off 0.1 s between rounds):
            # before dnsmasq binds, a query just gets no answer within READY_TRY.
            query = dns.message.make_query(srv_name(self.service, self.domain) + ".", "SRV")
            with contextlib.suppress(dns.exception.DNSException, OSError):
                dns.query.udp(query, "127.0.0.1", port=self.port, timeout=READY_TRY)
                return
        self._stop()
        raise StartTimeout(f"dnsmasq did not answer on port {self.port} within "
                           f"{timeout:.0f} s{log_tail_text(log_path)}")

    def _stop(self) -> None:
        if self._proc is not None:
            stop_group(self._proc, grace=2.0)
            self._proc = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stop()
            shutil.rmtree(self.folder, ignore_errors=True)


# --- the caller -------------------------------------------------------------------------

@dataclass(frozen=True)
class Record:
    """One SRV record of an answer: where one instance listens."""

    target: str  # its name, without the final dot
    port: int
    priority: int
    weight: int
    address: str | None = None  # the target's A record, when the answer carried it

    @property
    def instance(self) -> str:
        return self.target.split(".", 1)[0]


@dataclass(frozen=True)
class Lookup:
    """One answer: SRV :class:`Record` s or, for an A query, addresses; empty: none."""

    records: tuple
    ttl: int


def lookup(port: int, name: str, rdtype: str, lifetime: float) -> Lookup:
    """Ask 127.0.0.1:``port`` once (sent again after :data:`QUERY_TRY` s without an
    answer, within ``lifetime``). NXDOMAIN is an empty Lookup; no answer raises."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], port
    resolver.timeout, resolver.lifetime = QUERY_TRY, lifetime
    try:
        answer = resolver.resolve(name.rstrip(".") + ".", rdtype, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return Lookup((), 0)
    if rdtype == "A":
        return Lookup(tuple(r.address for r in answer.rrset), answer.rrset.ttl)
    addresses = {rrset.name: rrset[0].address for rrset in answer.response.additional
                 if rrset.rdtype == dns.rdatatype.A}
    return Lookup(tuple(Record(r.target.to_text(omit_final_dot=True), r.port, r.priority,
                               r.weight, addresses.get(r.target)) for r in answer.rrset),
                  answer.rrset.ttl)


def pick(records: Iterable[Record], rng: random.Random) -> Record:
    """As RFC 2782 says: among the records of the lowest priority, one at random in
    proportion to its weight (uniformly when every weight is 0)."""
    records = list(records)
    best = min(r.priority for r in records)
    group = [r for r in records if r.priority == best]
    weights = [r.weight for r in group]
    return rng.choices(group, weights=weights if any(weights) else None)[0]


class TtlCache:
    """Answers kept for their TTL on ``clock`` (seconds), as a stub resolver keeps them.

    A TTL of 0 keeps nothing; an empty answer (NXDOMAIN) is not kept either: dnsmasq sends
    no SOA with it, so it has no negative TTL.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._entries: dict[tuple[str, str], tuple[Lookup, float]] = {}

    def get(self, key: tuple[str, str]) -> Lookup | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self.clock() >= entry[1]:
            del self._entries[key]
            return None
        return entry[0]

    def put(self, key: tuple[str, str], found: Lookup) -> None:
        if found.records and found.ttl > 0:
            self._entries[key] = (found, self.clock() + found.ttl)


class DnsCaller:
    """Resolve ``_<service>._tcp.<domain>`` through 127.0.0.1:``port`` with a TTL cache,
    pick a record, call popularity there once. ``queries`` counts the queries that reached
    the server (cache misses)."""

    def __init__(self, port: int, service: str = SERVICE, domain: str = DOMAIN,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.port, self.name = port, srv_name(service, domain)
        self.cache = TtlCache(clock)
        self.rng = rng or random.Random()
        self.queries = 0
        self._lock = threading.Lock()  # callers share one cache, as a process's threads do

    def resolve(self, name: str, rdtype: str, lifetime: float) -> Lookup:
        with self._lock:
            found = self.cache.get((name, rdtype))
            if found is None:
                self.queries += 1
                found = lookup(self.port, name, rdtype, lifetime)
                self.cache.put((name, rdtype), found)
            return found

    def find(self, lifetime: float) -> tuple[str, int, str] | None:
        """``(address, port, instance id)`` of one instance, or None when DNS has none."""
        srv = self.resolve(self.name, "SRV", lifetime)
        if not srv.records:
            return None
        record = pick(srv.records, self.rng)
        address = record.address or next(
            iter(self.resolve(record.target, "A", lifetime).records), None)
        return (address, record.port, record.instance) if address else None

    def call(self, session: requests.Session, timeout: float = 2.0) -> Reload:
        """One call to popularity, found through DNS; never raises."""
        started, clock = time.time(), time.perf_counter()

        def failed(outcome: str, error: str) -> Reload:
            return Reload(started, time.perf_counter() - clock, None, None, outcome, None, error)

        try:
            found = self.find(timeout)
        except dns.exception.Timeout:
            return failed("timeout", f"no DNS answer within {timeout} s")
        except dns.exception.DNSException as error:
            return failed("error", f"DNS: {error}")
        if found is None:
            return failed("no_service", f"DNS has no record for {self.name}")
        address, port, instance = found
        left = max(0.05, timeout - (time.perf_counter() - clock))  # one deadline for both
        return call_once(session, f"http://{address}:{port}{POPULARITY_PATH}", left,
                         started, clock, instance)


def call_once(session: requests.Session, url: str, timeout: float, started: float,
              clock: float, instance: str | None) -> Reload:
    """GET ``url`` once: a Reload that began at ``started`` (wall) / ``clock`` (perf);
    ``call_ms`` is the HTTP call alone."""
    call_clock = time.perf_counter()
    status = body = None
    try:
        response = session.get(url, timeout=timeout)
        status = response.status_code
        body = response.json() if response.ok else None
        error = None if isinstance(body, dict) and body.get("service_id") else \
            f"HTTP {status}: {response.text[:200]}"
        outcome = "error" if error else "ok"
    except requests.Timeout:
        outcome, error = "timeout", f"no answer within {timeout} s"
    except (requests.RequestException, ValueError) as exc:
        outcome, error = "error", f"{type(exc).__name__}: {exc}"
    now = time.perf_counter()
    service_id = body.get("service_id") if outcome == "ok" else None
    return Reload(started, now - clock, service_id, (now - call_clock) * 1000, outcome,
                  status, error, instance)


# --- the two approaches -----------------------------------------------------------------

class DnsApproach:
    """What both DNS approaches share: a server, a caller, the costs, the threads' stop.

    A subclass says where the records come from: :meth:`_first` (the records before the
    first call) and :meth:`_follow` (a thread that keeps them current until closed).
    """

    name = "DNS"

    def __init__(self, stack, ttl: int = 5, service: str = SERVICE) -> None:
        if not isinstance(ttl, int | float) or ttl < 0 or ttl != int(ttl):
            raise InvalidInput(f"ttl must be a whole number of seconds >= 0 (DNS has no "
                               f"fractions), not {ttl!r}")
        workdir = Path(stack.workdir)
        self.stack, self.ttl, self.service = stack, int(ttl), service
        self.server = DnsServer(workdir / "approaches", self.ttl, service,
                                env=marks(workdir, "dns"))
        self.caller = DnsCaller(self.server.port, service)
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> DnsApproach:
        try:
            self.server.serve(self._first())
            self._thread = threading.Thread(target=self._follow, daemon=True,
                                            name=f"mwkit {self.name}")
            self._thread.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _first(self) -> list[Target]:
        raise NotImplementedError

    def _follow(self) -> None:
        raise NotImplementedError

    def call(self, session: requests.Session, timeout: float = 2.0) -> Reload:
        return self.caller.call(session, timeout)

    def costs(self) -> dict[str, int]:
        return {"DNS queries": self.caller.queries, "record updates": self.server.updates}

    def records(self) -> list[str]:
        """The instances the server answers with now (their ids)."""
        return [t.instance for t in self.server.targets]

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.server.close()


class PureDns(DnsApproach):
    """Records for every popularity instance ``stack`` deployed (``stack.status()``),
    running or not, read every ``poll`` seconds (or at once with :meth:`refresh`)."""

    name = "pure DNS"

    def __init__(self, stack, ttl: int = 5, poll: float = POLL,
                 service: str = SERVICE) -> None:
        if not POLL_MIN <= poll <= POLL_MAX:
            raise InvalidInput(f"poll must be between {POLL_MIN} and {POLL_MAX} s, not {poll!r}")
        self.poll = poll
        super().__init__(stack, ttl, service)

    def deployed(self) -> list[Target]:
        """The instances the operator deployed and did not ask to stop, with an address."""
        rows = [r for r in self.stack.status()
                if r.service == self.service and r.phase not in STOPPED_BY_OPERATOR]
        return [t for r in rows if (t := parse_target(r.instance, r.address))]

    def refresh(self) -> bool:
        """Read the deployment now; True when the records changed."""
        return self.server.serve(self.deployed())

    def _first(self) -> list[Target]:
        return self.deployed()

    def _follow(self) -> None:
        while not self._closed.wait(self.poll):
            try:
                self.refresh()
            except (MwkitError, OSError) as error:  # the state or dnsmasq: try next time
                log.warning("pure DNS: records not updated (%s)", error)


class HealthDns(DnsApproach):
    """Records for the popularity instances the Directory of ``stack`` lists (those whose
    checks pass), followed through its push stream."""

    name = "DNS with health"
    #: How long to wait for the Directory's first snapshot, and between reconnections.
    FIRST_WAIT, RECONNECT = 5.0, 0.5

    def __init__(self, stack, ttl: int = 5, service: str = SERVICE) -> None:
        self.directory_url = stack.directory_url
        self._subscription = None
        self._listed = ServiceTable()  # the Directory's lists, kept from its stream
        super().__init__(stack, ttl, service)

    def listed(self, instances: list[dict]) -> list[Target]:
        return [t for i in instances if (t := parse_target(i["id"], i.get("address")))]

    def _subscribe(self):
        """A new push stream; its first message is the snapshot of every service."""
        subscription = directory_client(self.directory_url).subscribe()
        first = subscription.next(timeout=self.FIRST_WAIT)
        if first is None or first.kind != "snapshot":
            subscription.close()
            raise DirectoryError(f"the Directory at {self.directory_url} sent no snapshot "
                                 f"within {self.FIRST_WAIT:.0f} s")
        self._listed = ServiceTable()
        self._listed.apply(first)
        return subscription, self.listed(self._listed.instances(self.service))

    def _first(self) -> list[Target]:
        self._subscription, targets = self._subscribe()
        return targets

    def _follow(self) -> None:
        while not self._closed.is_set():
            try:
                if self._subscription is None:
                    self._subscription, targets = self._subscribe()
                    self.server.serve(targets)
                message = self._subscription.next(timeout=0.2)
                if message is None:
                    continue
                if self.service in self._listed.apply(message):
                    self.server.serve(self.listed(self._listed.instances(self.service)))
            except (MwkitError, OSError) as error:  # the stream ended: keep the records
                log.warning("DNS with health: %s; subscribing again", error)
                self._drop_subscription()
                self._closed.wait(self.RECONNECT)
        self._drop_subscription()

    def _drop_subscription(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    def close(self) -> None:
        super().close()
        self._drop_subscription()
