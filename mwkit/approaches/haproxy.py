"""A server-side balancer: HAProxy in front of popularity, fed from the Directory.

The caller knows one address, HAProxy's; HAProxy knows the instances. Every call takes one
more hop (caller -> HAProxy -> instance), and the balancer, not the caller, decides where
it goes. What the balancer knows comes from the Directory, in one of two ways:

- :class:`HaproxyReload`, as the 2015 original did: render ``haproxy.cfg`` from the
  Directory's list (one ``server`` line per instance) and reload HAProxy on every change,
  debounced;
- :class:`HaproxyRuntime`, what 2015's HAProxy could not do: the configuration is written
  once with empty server *slots*, and each change is a few commands on HAProxy's runtime
  API (its admin socket): ``set server popularity/s3 addr 127.0.0.1 port 41234``,
  ``set server popularity/s3 state ready`` (or ``maint``). No reload, ever.

Both run Debian's HAProxy (2.6) on a free loopback port, with its files in a scratch
folder of their own, and stop it (its whole process group) when the ``with`` block ends.

Health: HAProxy checks every instance itself (``option httpchk GET /health`` every half
second, down after two failures), as server-side balancers do, and a call whose connection
is refused, or that an instance drops without an answer (it died with the call in flight),
is sent once more, to another instance (``retries 1``, ``option redispatch``, ``retry-on
conn-failure empty-response``: popularity's GET is safe to repeat). So after a ``kill -9``
the Directory still lists the dead instance until its lease runs out (2 to 3 s with
popularity's Watson), yet no call fails: the calls sent to it are retried elsewhere, and
within about a second HAProxy's own checks take it out (its log says ``Server
popularity/... is DOWN``). ``check=False`` leaves checks and retries out: then HAProxy
sends a share of the calls to the dead instance until the Directory drops it, and those
fail (HAProxy's 503; no answer at all for a call the instance had in flight).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from mwkit.approaches import POPULARITY_PATH
from mwkit.directory import ServiceTable, directory_client
from mwkit.errors import DirectoryError, StartFailed
from mwkit.procs import find_program, free_port, running
from mwkit.traffic import Reload

log = logging.getLogger(__name__)

INSTALL = "apt-get install haproxy (on macOS: brew install haproxy)"
#: HAProxy names the server a call went to in this header (a server name of its config);
#: its own 503 without it means it had no server to send the call to.
SERVED_BY = "X-Mwkit-Server"
#: How HAProxy's runtime API answers a ``set server ... addr`` that it applied.
APPLIED = ("IP changed", "no need to change", "port changed")
RELOAD_TIMEOUT = 5.0  # seconds a reload may take before it counts as failed
STREAM_TICK = 0.2  # seconds between two looks at the push stream (and the debounce clock)
RECONNECT = 1.0  # seconds before following the Directory again after the stream ended


def haproxy_binary() -> str:
    """The path of ``haproxy`` (Debian installs it in /usr/sbin, often not on a user's
    PATH); a short error saying what to install when there is none."""
    return find_program("haproxy", f"HAProxy is not installed: {INSTALL}")


@contextlib.contextmanager
def haproxy_process(config: Path, log_path: Path, env: dict[str, str] | None = None
                    ) -> Iterator[subprocess.Popen]:
    """HAProxy on ``config`` for the ``with`` block, its output in ``log_path``: HAProxy's
    master process (``-W``: it stays, and re-executes itself on SIGUSR2, a reload) in the
    foreground (``-db``), so that its process group, workers included, is what gets stopped.
    ``env`` is added to its environment (a workdir's marks)."""
    with running([haproxy_binary(), "-W", "-db", "-f", str(config)], log_path=log_path,
                 env=env) as process:
        yield process


# --- the configuration (pure logic) ---------------------------------------------------


@dataclass(frozen=True)
class Server:
    """One ``server`` line: HAProxy's name for it, where it listens, the Directory's id."""

    name: str
    address: str  # host:port
    instance: str


def server_name(instance_id: str) -> str:
    """An instance id as a server name HAProxy accepts (letters, digits, ``_.-``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", instance_id) or "_"


def servers_of(instances: list[dict]) -> list[Server]:
    """The Directory's instance list as server lines, in a stable order (by id): the same
    list always renders the same configuration, so an unchanged list needs no reload."""
    return [Server(server_name(i["id"]), i["address"], i["id"])
            for i in sorted(instances, key=lambda i: i["id"])]


def render_config(port: int, backend: str, servers: list[Server] | None = None,
                  slots: int = 0, admin_socket: Path | None = None,
                  check: bool = True) -> str:
    """HAProxy's whole configuration: a frontend on ``127.0.0.1:port`` and one backend.

    The backend lists ``servers`` (the reloaded way), or ``slots`` empty servers
    ``s1`` ... ``sN``, all in maintenance until the runtime API gives them an address
    (``server-template``). ``admin_socket`` opens that API on a unix socket.
    """
    lines = config_head(admin_socket) + [
        f"frontend {backend}_in",
        f"    bind 127.0.0.1:{port}",
        f"    default_backend {backend}",
    ] + backend_lines(backend, servers, slots, check, retries=1 if check else 0)
    return "\n".join(lines) + "\n"


def config_head(admin_socket: Path | None = None) -> list[str]:
    """The ``global`` and ``defaults`` sections every configuration here starts with."""
    # an old worker still draining after a reload is stopped 10 s later, whatever it holds
    lines = ["global", "    hard-stop-after 10s"]
    if admin_socket is not None:
        lines.append(f"    stats socket {admin_socket} level admin")
    return lines + [
        "defaults",
        "    mode http",
        "    timeout connect 1s",
        "    timeout client 30s",
        "    timeout server 30s",  # longer than a caller waits: the caller times out first
    ]


def backend_lines(backend: str, servers: list[Server] | None = None, slots: int = 0,
                  check: bool = True, balance: str = "roundrobin", retries: int = 0,
                  rules: list[str] | tuple[str, ...] = ()) -> list[str]:
    """One ``backend`` section: ``servers`` and/or ``slots`` (see :func:`render_config`),
    balanced by ``balance`` (HAProxy's algorithm), ``rules`` (``http-request ...`` lines,
    a ``timeout server``) before the servers. ``check``: HAProxy's health checks;
    ``retries``: a call refused or dropped without an answer is sent again that many
    times, to another server."""
    server_options = " check inter 500ms fall 2 rise 1" if check else ""
    lines = [
        f"backend {backend}",
        f"    balance {balance}",
        # every answer, HAProxy's own errors too, names the server it went to, if any
        f"    http-after-response set-header {SERVED_BY} %[srv_name] if {{ srv_name -m found }}",
        *(f"    {rule}" for rule in rules),
    ]
    if check:
        lines.append("    option httpchk GET /health")
    if retries:
        lines += [f"    retries {retries}", "    option redispatch",
                  "    retry-on conn-failure empty-response"]
    else:
        lines.append("    retries 0")
    lines += [f"    server {s.name} {s.address}{server_options}" for s in servers or []]
    if slots:
        lines.append(f"    server-template s 1-{slots} 127.0.0.1:1 disabled{server_options}")
    return lines


def assign_slots(slots: list[Server | None], instances: list[dict], backend: str
                 ) -> tuple[list[Server | None], list[str], list[str]]:
    """Fit the Directory's ``instances`` into the backend's ``slots`` (slot ``i`` is server
    ``s{i+1}``; None: free). Returns the new slots, the runtime-API commands that make
    HAProxy match them, and the ids of instances left out because every slot is taken.

    An instance keeps its slot while it is listed; one no longer listed is put in
    maintenance (calls in flight finish, no new one goes there) and its slot is freed;
    a new one takes the first free slot: its address, then ``state ready``.
    """
    wanted = {s.instance: s for s in servers_of(instances)}
    slots, commands = list(slots), []
    for index, held in enumerate(slots):
        if held is not None and held.instance not in wanted:
            commands.append(f"set server {backend}/s{index + 1} state maint")
            slots[index] = None
    placed = {s.instance: i for i, s in enumerate(slots) if s is not None}
    left_out = []
    for instance, server in wanted.items():
        index = placed.get(instance)
        if index is not None and slots[index].address == server.address:
            continue
        if index is None:
            index = next((i for i, s in enumerate(slots) if s is None), None)
            if index is None:
                left_out.append(instance)
                continue
        host, port = server.address.rsplit(":", 1)
        name = f"{backend}/s{index + 1}"
        commands += [f"set server {name} addr {host} port {port}",
                     f"set server {name} state ready"]
        slots[index] = Server(f"s{index + 1}", server.address, instance)
    return slots, commands, left_out


# --- running HAProxy ------------------------------------------------------------------


def worker_pids(master: int) -> set[int]:
    """The worker processes of HAProxy's master (``-W``): the ones that serve calls."""
    with contextlib.suppress(psutil.Error):
        return {child.pid for child in psutil.Process(master).children()
                if child.status() != psutil.STATUS_ZOMBIE}
    return set()


class _Haproxy:
    """What both ways share: HAProxy's process, the Directory's stream, the call."""

    name = "HAProxy"
    #: where :meth:`call` finds popularity behind HAProxy's frontend (a path prefix)
    prefix = ""

    def __init__(self, directory_url: str, service: str = "popularity", check: bool = True,
                 workdir: Path | str | None = None) -> None:
        """``workdir``: a stack's workdir; HAProxy then carries its marks, so that
        ``mwkit down`` (and ``teardown``) of that workdir stops it should this process die."""
        self.directory_url = directory_url
        self.service = service
        self.check = check
        self.workdir = Path(workdir) if workdir is not None else None
        self.host = "127.0.0.1"
        self.port = 0  # a free one unless set before entering
        self.url = ""
        self.scratch: Path | None = None
        self.config_path: Path | None = None
        self.process = None  # HAProxy's master (a Popen) while running
        self._counts: dict[str, int] = {}
        self._instances: dict[str, str] = {}  # server name -> the Directory's instance id
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._follower: threading.Thread | None = None
        self._exit = contextlib.ExitStack()

    # --- to be given by each way ----------------------------------------------------

    def _first_config(self, instances: list[dict]) -> str:
        raise NotImplementedError

    def _started(self, instances: list[dict]) -> None:
        """HAProxy listens; ``instances`` is the list its first configuration came from."""

    def _on_change(self, instances: list[dict] | None) -> None:
        """The service's new list (None: no news within a tick, for a debounce clock)."""
        raise NotImplementedError

    # --- starting and stopping --------------------------------------------------------

    def __enter__(self):
        haproxy_binary()  # before anything else: the error says what to install
        try:
            self.scratch = Path(tempfile.mkdtemp(prefix="mwkit-haproxy-"))
            self._exit.callback(shutil.rmtree, self.scratch, ignore_errors=True)
            self.port = self.port or free_port()
            self.url = f"http://{self.host}:{self.port}"
            self.config_path = self.scratch / "haproxy.cfg"
            with directory_client(self.directory_url) as directory:
                instances = directory.instances(self.service)
            self.write_config(self._first_config(instances))
            self.process = self._exit.enter_context(haproxy_process(
                self.config_path, self.scratch / "haproxy.log", self._marks()))
            self._wait_until_listening()
            self._started(instances)
            self._follower = threading.Thread(target=self._follow, daemon=True,
                                              name=f"{self.name} follower")
            self._follower.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _marks(self) -> dict[str, str] | None:
        if self.workdir is None:
            return None
        from mwkit.wizard.runtimes.process import marks

        return marks(self.workdir, "haproxy")

    def _wait_until_listening(self, timeout: float = 10.0) -> None:
        """Until HAProxy's frontend accepts a connection (any answer will do: there may be
        no server yet); a short error with its log if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StartFailed(f"HAProxy exited with code {self.process.returncode}; "
                                  f"see {self.scratch / 'haproxy.log'}")
            with contextlib.suppress(OSError), \
                    socket.create_connection((self.host, self.port), timeout=0.5):
                return
            time.sleep(0.02)
        raise StartFailed(f"HAProxy did not listen on port {self.port} within {timeout:g} s")

    def __exit__(self, *exc_info) -> None:
        self._closing.set()
        if self._follower is not None:
            self._follower.join(5)
            self._follower = None
        self._exit.close()
        self.process = None

    def write_config(self, text: str) -> None:
        """Replace the configuration in one step (a reader never sees half a file)."""
        draft = self.config_path.with_suffix(".new")
        draft.write_text(text, encoding="utf-8")
        os.replace(draft, self.config_path)

    def workers(self) -> set[int]:
        """The pids of HAProxy's workers now (a reload starts a new one)."""
        return worker_pids(self.process.pid) if self.process else set()

    # --- following the Directory ------------------------------------------------------

    def _follow(self) -> None:
        """Follow the push stream until closing; a lost stream is followed again (its
        first message is a snapshot, so nothing missed meanwhile is lost)."""
        directory = directory_client(self.directory_url)
        while not self._closing.is_set():
            try:
                with directory.subscribe() as stream:
                    listed = ServiceTable()  # the stream's snapshot, then its changes
                    while not self._closing.is_set():
                        self._on_change(self._listed(listed, stream.next(STREAM_TICK)))
            except DirectoryError as error:
                log.warning("%s: lost the Directory (%s); HAProxy keeps what it has",
                            self.name, error)
                self._closing.wait(RECONNECT)
            except OSError as error:  # HAProxy's socket or process gone: say so, go on
                log.error("%s: could not apply a change (%s); see %s", self.name, error,
                          self.scratch / "haproxy.log")
                self._closing.wait(RECONNECT)
        directory.close()

    def _listed(self, listed: ServiceTable, message) -> list[dict] | None:
        """The service's instance list after a stream message, or None if it has no news."""
        if message is None or self.service not in listed.apply(message):
            return None
        return listed.instances(self.service)

    def _count(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self._counts[kind] = self._counts.get(kind, 0) + n

    # --- the caller -------------------------------------------------------------------

    def call(self, session: requests.Session, timeout: float = 2.0) -> Reload:
        """GET popularity's page through HAProxy's frontend, once (HAProxy may retry a
        refused connection itself, on another instance)."""
        started, clock = time.time(), time.monotonic()

        def reload(outcome, status=None, error=None, service_id=None, server=None):
            return Reload(started, time.monotonic() - clock, service_id, None, outcome,
                          status, error, self._instances.get(server) if server else None)

        try:
            response = session.get(self.url + self.prefix + POPULARITY_PATH, timeout=timeout)
        except requests.Timeout as error:
            self._count("extra hops")
            return reload("timeout", error=f"no answer within {timeout:g} s: {error}")
        except requests.RequestException as error:  # refused, reset: HAProxy not there
            return reload("error", error=f"HAProxy did not answer: {error}")
        self._count("extra hops")
        try:
            service_id = response.json().get("service_id")
        except (ValueError, AttributeError):
            service_id = None
        server = response.headers.get(SERVED_BY)
        if response.status_code == 503 and not server:
            return reload("no_service", 503, "HAProxy has no server up")
        if response.status_code == 504:
            return reload("timeout", 504, "HAProxy's server timeout", service_id, server)
        if response.status_code >= 400 or not service_id:
            return reload("error", response.status_code, response.text[:200], service_id,
                          server)
        return reload("ok", response.status_code, None, service_id, server)

    def costs(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class HaproxyReload(_Haproxy):
    """HAProxy reloaded on every change of the Directory's list, as the 2015 original did.

    A change starts a debounce window of ``debounce`` seconds; at its end the list as it
    is then is rendered, and HAProxy is reloaded if the configuration changed: every change
    within the window makes one reload. Until then HAProxy routes with the old list: a new
    instance waits for the window and the reload before its first call.

    The reload is HAProxy's own, as Debian's ``systemctl reload haproxy`` does it: the
    master process (``-W``) gets SIGUSR2, re-executes itself on the new file and starts a
    new worker; the old worker stops accepting, finishes the calls it has in flight (its
    connections drain) and exits. HAProxy 2.6's master hands the listening sockets to the
    new worker itself (``-x sockpair@...`` on the new worker's command line), so no
    connection is refused while the listener changes hands: the *reload gap* of 2015 (a
    new process binding beside the old one, ``-sf``, and connections queued on the old
    listener reset when it closed) is closed here. One race is left, HTTP's own: the old
    worker closes the connections callers keep alive, and a call sent on one just then
    fails ("Remote end closed connection without response"). Measured on the kit's
    machine: 1 failed call of 206 across 11 reloads with one caller at 50 calls a second;
    2 of about 9,700 across 40 reloads with four callers as fast as they could. A caller
    that retried such a call would hide it (a browser does); ``option
    idle-close-on-response`` (left out here, as in Debian's configuration) keeps those
    connections open until their next call instead, which the old worker answers with the
    old list (0 of about 10,000 failed across 40 reloads). What a reload also costs: the
    debounce window and the re-execution (tens of milliseconds) before a change is live;
    HAProxy's state starts again (health-check results, counters, connections to the
    instances, kept-alive connections of callers, which the old worker closes); and for as
    long as it drains (10 s at most: ``hard-stop-after``), one more process.
    """

    name = "HAProxy (reload)"

    def __init__(self, directory_url: str, service: str = "popularity",
                 debounce: float = 1.0, check: bool = True,
                 workdir: Path | str | None = None) -> None:
        super().__init__(directory_url, service, check, workdir)
        self.debounce = debounce
        self._pending: list[dict] | None = None
        self._due = 0.0  # monotonic time the debounce window ends
        self._config = ""
        self._counts = {"extra hops": 0, "reloads": 0}

    def _render(self, instances: list[dict]) -> str:
        servers = servers_of(instances)
        self._instances.update({s.name: s.instance for s in servers})
        return render_config(self.port, self.service, servers, check=self.check)

    def _first_config(self, instances: list[dict]) -> str:
        self._config = self._render(instances)
        return self._config

    def _on_change(self, instances: list[dict] | None) -> None:
        now = time.monotonic()
        if instances is not None:
            if self._pending is None:
                if self._render(instances) == self._config:
                    return  # what HAProxy has already (the stream's first snapshot, say)
                self._due = now + self.debounce  # a window opens with the first change
            self._pending = instances
        if self._pending is not None and now >= self._due:
            config, self._pending = self._render(self._pending), None
            if config != self._config:
                self._config = config
                self.reload(config)

    def reload(self, config: str) -> None:
        """Write ``config`` and reload HAProxy; returns once the new worker runs."""
        before = self.workers()
        self.write_config(config)
        os.kill(self.process.pid, signal.SIGUSR2)
        self._count("reloads")
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while not self.workers() - before:
            if time.monotonic() > deadline or self._closing.is_set():
                log.warning("%s: no new worker %g s after the reload; see %s", self.name,
                            RELOAD_TIMEOUT, self.scratch / "haproxy.log")
                return
            time.sleep(0.01)


class HaproxyRuntime(_Haproxy):
    """HAProxy kept up to date through its runtime API, never reloaded.

    The configuration is rendered once, with ``slots`` servers ``s1`` ... ``sN`` in
    maintenance, and opens the admin socket (``<scratch>/haproxy.sock``). Every change of
    the Directory's list is applied at once, as commands on that socket
    (:func:`assign_slots`): a new instance gets a free slot's address and ``state ready``;
    one that left goes to ``state maint`` (calls in flight finish; with the graceful
    scale-down the instance has already left the Directory and still drains, so none
    fails). HAProxy's process, its health-check results and its connections stay.

    Slots exhausted: an instance beyond ``slots`` gets no slot and no call; this is logged
    as an error and listed in :attr:`left_out`. Entering with more listed instances than
    slots is refused. (Growing would take a reload: render more slots and SIGUSR2, as
    :class:`HaproxyReload` does; the API cannot add a server to this backend in 2.6.)
    """

    name = "HAProxy (runtime API)"

    def __init__(self, directory_url: str, service: str = "popularity", slots: int = 10,
                 check: bool = True, workdir: Path | str | None = None) -> None:
        super().__init__(directory_url, service, check, workdir)
        if slots < 1:
            raise ValueError(f"slots must be at least 1, not {slots!r}")
        self.slots: list[Server | None] = [None] * slots
        self.left_out: list[str] = []
        self._counts = {"extra hops": 0, "runtime commands": 0}

    @property
    def admin_socket(self) -> Path:
        return self.scratch / "haproxy.sock"

    def _first_config(self, instances: list[dict]) -> str:
        if len(instances) > len(self.slots):
            raise StartFailed(f"{len(instances)} instances of {self.service} are listed but "
                              f"HAProxy (runtime API) has {len(self.slots)} slots: give "
                              f"slots={len(instances)} or more")
        return render_config(self.port, self.service, slots=len(self.slots),
                             admin_socket=self.admin_socket, check=self.check)

    def _started(self, instances: list[dict]) -> None:
        self._on_change(instances)  # the first list too goes through the API

    def _on_change(self, instances: list[dict] | None) -> None:
        if instances is None:
            return
        self.slots, self.left_out = self._fit(self.service, self.slots, instances)
        self._instances = {s.name: s.instance for s in self.slots if s is not None}

    def _fit(self, backend: str, slots: list[Server | None], instances: list[dict]
             ) -> tuple[list[Server | None], list[str]]:
        """Make ``backend``'s servers match ``instances`` through the runtime API
        (:func:`assign_slots`); the new slots and the ids left out for want of a slot
        (logged as an error when one is newly left out)."""
        slots, commands, left_out = assign_slots(slots, instances, backend)
        for command in commands:
            answer = self.command(command)
            self._count("runtime commands")
            if answer and not answer.startswith(APPLIED):
                log.warning("%s: %r -> %s", self.name, command, answer)
        if set(left_out) - set(self.left_out):
            log.error("%s: all %d slots of %s are taken; %s get no call (make it with more "
                      "slots)", self.name, len(slots), backend, ", ".join(left_out))
        return slots, left_out

    def command(self, line: str) -> str:
        """Send one command to HAProxy's runtime API and return its answer (a look with
        ``show servers state`` is not counted in :meth:`costs`, the changes are)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(self.admin_socket))
            sock.sendall(line.encode() + b"\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        return answer.decode("utf-8", "replace").strip()
