"""Sherlock's data plane on HAProxy: the Directory's stream drives HAProxy's runtime API.

Why: ``mwkit sherlock`` (:mod:`mwkit.sherlock.proxy`) is a readable proxy in Python; every
call goes through an event loop, an HTTP parser and a client written in Python, which adds
about 0.6 ms to a call, where HAProxy, written in C for exactly this, adds a few hundredths
of a millisecond (benchmark figures 5 and 12). So Sherlock can leave the forwarding to
HAProxy and keep only what it is for: following the Directory. This is what the 2015
original did too, with one difference: it rendered ``haproxy.cfg`` and *reloaded* HAProxy on
every change; here HAProxy is started once and every change is a few commands on its
runtime API (:class:`mwkit.approaches.haproxy.HaproxyRuntime`, whose slots, commands and
configuration pieces this module reuses):

- one frontend on ``host:port`` routes ``/<service>/rest`` to a backend per service, which
  strips ``/<service>`` (``/rest`` reaches the instance, the query unchanged) and sends
  ``Host: <service>``, like the Python proxy;
- each backend has ``slots`` empty servers; a new instance takes a free slot (its address,
  then ``state ready``), one that left is put in ``maint``: HAProxy drains it, the calls it
  has in flight finish, so a graceful scale-down fails no call;
- HAProxy checks every instance itself (``GET /health`` every half second) and a call
  whose connection is refused, or that an instance drops without an answer, is sent to
  another instance (``retry-on conn-failure empty-response``, ``option redispatch``), so a
  ``kill -9`` fails no call either, while the Directory still lists the dead instance;
- the services are fixed when HAProxy starts (one backend each, given by ``services``): a
  new service needs a restart. Slots are fixed too: an instance beyond them gets no call,
  and the log says so (``all N slots of <service> are taken``); give more ``slots``.

A Directory that restarts lists nothing until the Watsons have registered again (about
a lease); the data plane follows its stream and drains every instance meanwhile, where the
Python proxy keeps routing to the instances it knew for one lease (Sherlock's grace).

What only the Python data plane has: the outlier ejection on 5xx, retry budget, hedging,
deadline, retry of a 5xx answer, and the ``peak_ewma`` policy (HAProxy has no
latency-based balancing); :data:`BALANCE` maps the other policies to HAProxy's.
The answer names the slot that served it in ``X-Mwkit-Server`` (``s3``), not the instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mwkit.approaches.haproxy import HaproxyRuntime, Server, backend_lines, config_head
from mwkit.directory import ServiceTable, directory_client
from mwkit.errors import InvalidInput, StartFailed
from mwkit.names import check_service_name

#: Sherlock's policies as HAProxy's ``balance`` algorithms: ``random(2)`` is HAProxy's own
#: power of two choices (the less loaded of two random servers), as ``least_request`` is.
BALANCE = {"round_robin": "roundrobin", "random": "random",
           "least_request": "random(2)", "p2c_least_request": "random(2)"}
DEFAULT_SLOTS = 32
UNROUTED = "unrouted"  # the backend of a path that names no service of the data plane


def render_plane(host: str, port: int, services: Sequence[str], slots: int,
                 admin_socket: Path, check: bool = True, balance: str = "roundrobin",
                 retries: int = 1, timeout: float | None = None) -> str:
    """HAProxy's configuration for the data plane: ``/<service>/...`` of each of
    ``services`` to its backend of ``slots`` servers, as ``/...``; any other path a 503
    that says which services are routed."""
    lines = config_head(admin_socket) + ["frontend sherlock", f"    bind {host}:{port}"]
    lines += [f"    use_backend {s} if {{ path /{s} }} || {{ path_beg /{s}/ }}"
              for s in services]
    lines.append(f"    default_backend {UNROUTED}")
    for service in services:
        rules = [f"http-request set-path %[path,regsub(^/{service}/?,/)]",
                 f"http-request set-header Host {service}"]
        if timeout is not None:
            rules.append(f"timeout server {round(timeout * 1000)}ms")
        lines += backend_lines(service, slots=slots, check=check, balance=balance,
                               retries=retries, rules=rules)
    routed = ", ".join(services)
    lines += [f"backend {UNROUTED}",
              f"    http-request return status 503 content-type application/json string "
              f"'{{\"error\": \"this data plane routes {routed} (a new service needs a "
              f"restart)\"}}'"]
    return "\n".join(lines) + "\n"


class HaproxyPlane(HaproxyRuntime):
    """HAProxy on ``host:port`` routing ``/<service>/...`` for each of ``services``, its
    servers kept in step with the Directory through the runtime API, never reloaded.

    A context manager: entering starts HAProxy (with the workdir's marks when ``workdir``
    is given, so ``mwkit down`` stops it) and returns once every service's current
    instances are in their slots; leaving stops HAProxy. :meth:`call` calls popularity
    through it, as the approaches of :mod:`mwkit.approaches` do (``services`` must then
    begin with ``popularity``).
    """

    name = "Sherlock (HAProxy data plane)"

    def __init__(self, directory_url: str, services: Sequence[str] = ("popularity",),
                 host: str = "127.0.0.1", port: int = 0, slots: int = DEFAULT_SLOTS,
                 policy: str = "round_robin", retries: int = 1, check: bool = True,
                 timeout: float | None = None, workdir: Path | str | None = None) -> None:
        self.services = tuple(dict.fromkeys(check_service_name(s) for s in services))
        if not self.services:
            raise InvalidInput("the data plane needs at least one service")
        if slots < 1:
            raise InvalidInput(f"the data plane needs at least 1 slot per service, not {slots}")
        if policy not in BALANCE:
            raise InvalidInput(f"HAProxy's data plane balances with {', '.join(BALANCE)}, "
                             f"not {policy!r} (that one only the Python data plane has)")
        super().__init__(directory_url, self.services[0], slots, check, workdir)
        self.host, self.port = host, port
        self.prefix = f"/{self.service}"
        self.balance, self.retries, self.timeout = BALANCE[policy], retries, timeout
        #: each service's slots (the first service's are also :attr:`slots`)
        self.slots_of: dict[str, list[Server | None]] = {s: [None] * slots
                                                         for s in self.services}
        self._left_of: dict[str, list[str]] = {}

    def _first_config(self, instances: list[dict]) -> str:
        return render_plane(self.host, self.port, self.services, len(self.slots),
                            self.admin_socket, self.check, self.balance, self.retries,
                            self.timeout)

    def _started(self, instances: list[dict]) -> None:
        """Every service's current list in its slots before the first call."""
        with directory_client(self.directory_url) as directory:
            listed = {service: directory.instances(service) for service in self.services}
        for service, found in listed.items():
            if len(found) > len(self.slots):
                raise StartFailed(f"{len(found)} instances of {service} are listed but the "
                                  f"data plane has {len(self.slots)} slots: give "
                                  f"--slots {len(found)} or more")
        self._on_change(listed)

    def _listed(self, listed: ServiceTable, message) -> dict[str, list[dict]] | None:
        """The changed services' instance lists after a stream message (None: no news)."""
        if message is None:
            return None
        return {s: listed.instances(s) for s in listed.apply(message) if s in self.slots_of}

    def _on_change(self, changes: dict[str, list[dict]] | None) -> None:
        if not changes:
            return
        for service, instances in changes.items():
            self.slots_of[service], self._left_of[service] = self._fit(
                service, self.slots_of[service], instances)
        self.left_out = [i for left in self._left_of.values() for i in left]
        self.slots = self.slots_of[self.service]
        self._instances = {s.name: s.instance for s in self.slots if s is not None}
