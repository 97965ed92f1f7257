"""The supervisor: what runs inside every instance, on every runtime.

``python -m mwkit.wizard.supervisor`` is started by a runtime in the service folder. It
plays the part of the original Microwizard's container entry point:

0. a standby (``MWKIT_STANDBY=1``, see ``Wizard(standby=True)``) first waits, imports done,
   for the launch that takes it (phase ``standby``, then the wizard's ``go.json``),
1. ``bash microwizard/mw.sh init`` once (phase ``initializing``; failure: ``failed``, exit 3),
2. ``bash microwizard/mw.sh run`` as a child that stays in the foreground (``starting``),
3. Watson beside it, health-checking the service and registering it (``live``),
4. on SIGTERM: ``draining`` -- Watson deregisters first and waits its drain time, only then
   the service gets SIGTERM (SIGKILL after a grace); ``stopped``, exit 0. This order is what
   lets an instance leave without a single failed call.

   Unless the wizard left a stop order ``{"drain": false}`` in ``$MWKIT_STATE_DIR/stop.json``
   (``Wizard.svkill(tag, drain=False)``): then the naive order of the 2015 original is
   followed (``stopping``). The service gets SIGTERM first, while it is still registered;
   Watson goes on checking it and deregisters it only after ``fall`` failed checks in a row,
   so for about ``fall`` x ``period`` routers still send calls to a closed port. It is
   bounded: after :func:`naive_stop_seconds` Watson deregisters it anyway.

Between the routers and the service sits a fault filter (:mod:`mwkit.wizard.fault_filter`):
the service listens on an internal loopback port, the filter on the instance's port, and
Watson checks the service directly. Faults are orders the wizard leaves in
``$MWKIT_STATE_DIR/faults.json`` (see :mod:`mwkit.faults`); the supervisor looks for a new
one every 0.05 s and applies it: the filter's latency and errors, a hang (SIGSTOP of the
service, SIGCONT when it is cleared), a lease left to expire (Watson stops renewing and
registering while the service still answers). It acknowledges each order in ``phase.json``
(``faults_applied``).

If the service exits by itself, Watson deregisters it and the supervisor exits with the
service's code (phase ``failed``, or ``stopped`` on 0). The phase goes to
``$MWKIT_STATE_DIR/phase.json`` (written atomically) so the host can follow the instance on
every runtime. Its settings come from the environment (see :class:`InstanceEnvironment`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from mwkit import contract
from mwkit.contract import Phase

if TYPE_CHECKING:
    from mwkit.wizard.fault_filter import FaultFilter

INIT_FAILED = 3
CONFIG_FAILED = 4
POLL = 0.05
STEP_POLL = 0.01  # how often a running init step looks for a stop order
GO_POLL = 0.005  # how often a standby looks for the launch that takes it


@dataclass(frozen=True)
class InstanceEnvironment:
    """The supervisor's settings, read from the environment the runtime prepared."""

    instance_id: str
    service: str
    state_dir: Path
    watson_config: Path  # the rendered datawire.conf
    advertise_host: str | None  # replaces service_url's host; "container-ip": our own IP
    metadata: dict[str, str]  # extra Directory metadata (tag, commit, runtime, published...)
    token: str | None
    grace: float  # seconds between SIGTERM and SIGKILL of the service
    host: str  # where the instance listens (the fault filter; the service is behind it)
    port: int | None  # None (no PORT): no filter, the service is on its own

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ = os.environ) -> InstanceEnvironment:
        def need(name: str) -> str:
            if not env.get(name):
                raise SystemExit(f"supervisor: environment variable {name} is not set")
            return env[name]

        metadata = json.loads(env.get(contract.METADATA) or "{}")
        return cls(
            instance_id=need(contract.INSTANCE_ID),
            service=need(contract.SERVICE),
            state_dir=Path(need(contract.STATE_DIR)),
            watson_config=Path(need(contract.WATSON_CONFIG)),
            advertise_host=env.get(contract.ADVERTISE_HOST) or None,
            metadata={str(k): str(v) for k, v in metadata.items()},
            token=env.get(contract.DIRECTORY_TOKEN) or None,
            grace=float(env.get(contract.STOP_GRACE) or 5.0),
            host=env.get(contract.HOST) or "127.0.0.1",
            port=int(env[contract.PORT]) if env.get(contract.PORT) else None,
        )


class PhaseFile:
    """``phase.json``: the instance's phase, replaced atomically at every change."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict = {"supervisor_pid": os.getpid()}

    def note(self, **fields) -> None:
        """Add ``fields`` and replace the file (a new phase, or an acknowledged order)."""
        self.data.update(fields)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)

    def write(self, phase: Phase, **fields) -> None:
        self.note(phase=phase, time=time.time(), **fields)
        print(f"[supervisor] phase {phase}" + (f": {fields['reason']}" if "reason" in fields
                                                else ""), flush=True)


def own_ip() -> str:
    """This container's address on its network (what other containers can reach)."""
    return socket.gethostbyname(socket.gethostname())


def watson_config(settings: InstanceEnvironment, service_port: int | None = None):
    """Watson's configuration: the rendered datawire.conf plus what only we know here.

    With ``service_port`` (the internal port behind the fault filter) Watson checks the
    service there, directly: the filter's faults are for the routers' calls, not its checks.
    """
    from mwkit.watson import WatsonConfig

    config = WatsonConfig.from_file(settings.watson_config)
    health_check_url = None
    if service_port is not None:
        parts = urlsplit(config.health_check_url)
        health_check_url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{service_port}"))
    service_url = None
    if settings.advertise_host:
        host = own_ip() if settings.advertise_host == "container-ip" else settings.advertise_host
        parts = urlsplit(config.service_url)
        netloc = f"{host}:{parts.port}" if parts.port else host
        service_url = urlunsplit(parts._replace(netloc=netloc))
    return config.replace(
        service_url=service_url,
        health_check_url=health_check_url,
        instance_id=config.instance_id or settings.instance_id,
        token=config.token or settings.token,
        metadata={**config.metadata, **settings.metadata},
    )


def naive_stop_seconds(config) -> float:
    """The longest Watson needs to see ``fall`` failed checks in a row once the service is
    gone (each check waits its timeout, then a period), plus one period of slack."""
    return config.fall * (config.period + config.timeout) + config.period


def read_stop_order(state_dir: Path) -> dict:
    """The wizard's stop order (``{"drain": false}``), {} when it left none: drain."""
    try:
        order = json.loads((state_dir / contract.STOP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return order if isinstance(order, dict) else {}


def read_fault_orders(state_dir: Path) -> dict:
    """The wizard's fault orders (``{"serial": n, "faults": {kind: params}}``), {} when it
    left none or the file is half a thought (it is written atomically, so: never)."""
    try:
        orders = json.loads((state_dir / contract.FAULTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return orders if isinstance(orders, dict) else {}


def silenceable_watson(config):
    """A Watson whose renewals a fault can silence: while ``silenced`` is set it neither
    renews the lease nor registers again, so the Directory forgets the instance when the
    lease runs out although its service still answers (a Watson stuck, a network split
    between it and the Directory)."""
    from mwkit.watson import Watson

    class SilenceableWatson(Watson):
        def __init__(self, config) -> None:
            super().__init__(config)
            self.silenced = threading.Event()

        def _renew(self) -> None:
            if not self.silenced.is_set():
                super()._renew()

    return SilenceableWatson(config)


def import_the_rest() -> None:
    """Import what is needed only once ``mw.sh init`` is done: the fault filter (asyncio)
    and Watson's agent (its Directory client). Called while init runs, so that the time
    this takes (about 40 ms) overlaps init instead of following it: a scale-up waits for
    both. (They are not imported at the top for that reason.)"""
    import mwkit.watson.agent  # noqa: F401
    import mwkit.wizard.fault_filter  # noqa: F401


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent():
    """What a child runs before ``exec`` so that it is SIGKILLed when the supervisor dies,
    even by SIGKILL (``prctl(PR_SET_PDEATHSIG)``; kept across the ``exec`` of ``mw.sh
    run``), or None where there is no such call (macOS).

    Without it, ``kill -9`` of the supervisor (and so of Watson, a thread in it) left the
    service running unseen: nobody renewed its lease or would ever stop it. On Docker the
    container's init ends the whole container in that case; this does the same for a
    process group, for the process ``mw.sh`` runs as (a service it forks off is not
    covered: ``exec`` it, as the kit's services do).
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not after the fork
    parent = os.getpid()

    def in_the_child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the supervisor died before the call took effect
            os._exit(1)

    return in_the_child


class Supervisor:
    """One instance's lifecycle; ``run()`` returns the process exit code."""

    def __init__(self, settings: InstanceEnvironment):
        self.settings = settings
        self.phase = PhaseFile(settings.state_dir / contract.PHASE_FILE)
        self.stopping = threading.Event()
        self.child: subprocess.Popen | None = None
        self.filter: FaultFilter | None = None
        self.service_port: int | None = None  # where the service listens, behind the filter
        self.hung = False  # the service is SIGSTOPped by a hang fault
        self._orders_seen: tuple | None = None

    def request_stop(self, signum, _frame) -> None:
        print(f"[supervisor] got {signal.Signals(signum).name}", flush=True)
        self.stopping.set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        try:
            return self._lifecycle()
        finally:
            self._end_child(grace=0)
            if self.filter is not None:
                self.filter.stop()

    def _lifecycle(self) -> int:
        try:
            config = watson_config(self.settings)
        except Exception as error:  # noqa: BLE001 - any bad config ends the instance
            self.phase.write(Phase.FAILED, reason=f"bad Watson configuration: {error}")
            return CONFIG_FAILED
        if os.environ.pop(contract.STANDBY, "") == "1" and not self._wait_for_go():
            self.phase.write(Phase.STOPPED, reason="stopped in standby")
            return 0
        self.phase.write(Phase.INITIALIZING, instance=self.settings.instance_id,
                         address=urlsplit(config.service_url).netloc)
        code = self._run_child("init", meanwhile=import_the_rest)
        if self.stopping.is_set():
            self.phase.write(Phase.STOPPED, reason="stopped during init")
            return 0
        if code != 0:
            self.phase.write(Phase.FAILED, reason=f"mw.sh init exited with code {code}",
                             exit_code=code)
            return INIT_FAILED

        if self.settings.port is not None:
            try:
                self._start_filter()
            except OSError as error:
                self.phase.write(Phase.FAILED, reason=f"the fault filter cannot listen on "
                                                      f"{self.settings.host}:"
                                                      f"{self.settings.port}: "
                                                      f"{error.strerror or error}")
                return CONFIG_FAILED
            config = watson_config(self.settings, self.service_port)
        self.phase.write(Phase.STARTING)
        self.child = self._spawn("run")
        self.phase.write(Phase.STARTING, service_pid=self.child.pid,
                         service_port=self.service_port)
        watson = silenceable_watson(config)
        watson.start()
        drain = True
        try:
            code = self._watch(watson)
            self._continue_service()  # a hung service could not even take its SIGTERM
            watson.silenced.clear()  # and a silenced Watson deregisters as usual
            if code is None:
                drain = read_stop_order(self.settings.state_dir).get("drain", True) is not False
                if drain:
                    self.phase.write(Phase.DRAINING,
                                     reason="SIGTERM: deregistering, then draining")
                else:
                    self._stop_service_first(watson, naive_stop_seconds(config))
        finally:
            watson.stop(drain=drain)  # deregister (and drain) before the service is stopped
        if code is None:  # asked to stop: Watson has drained, now the service goes
            self._end_child(self.settings.grace)
            self.phase.write(Phase.STOPPED, reason="stopped on request")
            return 0
        if code == 0:
            self.phase.write(Phase.STOPPED, reason="mw.sh run exited with code 0", exit_code=0)
            return 0
        self.phase.write(Phase.FAILED, reason=f"mw.sh run exited with code {code}", exit_code=code)
        return code if code > 0 else 128 - code

    def _wait_for_go(self) -> bool:
        """A standby: get everything ready that does not start the service, then wait until
        a launch takes this instance (the wizard's ``go.json``); False when asked to stop.

        What a launch then waits for is only init, the service and Watson: the runtime's
        start (a container's, about 0.3 s) and this process's own start are behind it.
        """
        import_the_rest()
        self.phase.write(Phase.STANDBY)
        go = self.settings.state_dir / contract.GO_FILE
        while not go.exists():
            if self.stopping.wait(GO_POLL):
                return False
        return True

    def _watch(self, watson) -> int | None:
        """Follow the service and Watson; the service's exit code, or None when asked to stop."""
        was_live = False
        while not self.stopping.is_set():
            code = self.child.poll()
            if code is not None:
                return code
            self._follow_fault_orders(watson)
            was_live = was_live or watson.registered
            phase = Phase.LIVE if watson.registered else (
                Phase.UNHEALTHY if was_live else Phase.STARTING)
            if phase != self.phase.data.get("phase"):
                self.phase.write(phase, registered=watson.registered)
            self.stopping.wait(POLL)
        return None

    def _start_filter(self) -> None:
        """The fault filter on the instance's port; the service moves to an internal one."""
        from mwkit.wizard.fault_filter import FaultFilter, internal_port

        self.service_port = internal_port()
        self.filter = FaultFilter(self.settings.host, self.settings.port,
                                  self.service_port).start()

    def _follow_fault_orders(self, watson) -> None:
        """Apply the wizard's fault orders when the file changed; acknowledge them."""
        path = self.settings.state_dir / contract.FAULTS_FILE
        try:
            stat = path.stat()
            seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except OSError:
            seen = None
        if seen == self._orders_seen:
            return
        self._orders_seen = seen
        orders = read_fault_orders(self.settings.state_dir)
        faults = orders.get("faults") or {}
        if self.filter is not None:
            from mwkit.wizard.fault_filter import FilterFaults

            self.filter.faults = FilterFaults.from_orders(faults)
        if "lease" in faults:
            watson.silenced.set()
        else:
            watson.silenced.clear()
        if "hang" in faults and not self.hung and self.child is not None:
            os.kill(self.child.pid, signal.SIGSTOP)
            self.hung = True
        elif "hang" not in faults:
            self._continue_service()
        print(f"[supervisor] faults now: {', '.join(sorted(faults)) or 'none'}", flush=True)
        self.phase.note(faults_applied=orders.get("serial"))

    def _continue_service(self) -> None:
        """SIGCONT the service if a hang stopped it."""
        if self.hung and self.child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child.pid, signal.SIGCONT)
        self.hung = False

    def _stop_service_first(self, watson, bound: float) -> None:
        """The naive stop order: SIGTERM the service while it is still registered, then
        wait (at most ``bound`` seconds) until Watson's failed checks deregister it."""
        self.phase.write(Phase.STOPPING, reason="SIGTERM without drain: the service stops "
                                                "first, still registered")
        self._end_child(self.settings.grace)
        deadline = time.monotonic() + bound
        while watson.registered and time.monotonic() < deadline:
            time.sleep(POLL)

    def _spawn(self, step: str) -> subprocess.Popen:
        """``bash microwizard/mw.sh <step>`` in the service folder; output to ours (the log).
        The child dies with us (see :func:`die_with_parent`). Once the filter listens on the
        instance's port, the service gets the internal one (on loopback) instead."""
        print(f"[supervisor] mw.sh {step}", flush=True)
        env = None
        if self.service_port is not None:
            env = {**os.environ, contract.HOST: "127.0.0.1",
                   contract.PORT: str(self.service_port)}
        return subprocess.Popen(["bash", "microwizard/mw.sh", step], stdin=subprocess.DEVNULL,
                                env=env, preexec_fn=die_with_parent())

    def _run_child(self, step: str, meanwhile: Callable[[], None] | None = None) -> int:
        """Run a step to its end (doing ``meanwhile`` as it runs), or end it early when we
        are asked to stop.

        Its end is seen within a few milliseconds (``Popen.wait`` polls from 0.5 ms up):
        a short ``init`` is on the path of every scale-up, and a 0.05 s poll made a 30 ms
        init cost 50 ms. A stop is seen within :data:`STEP_POLL`.
        """
        child = self.child = self._spawn(step)
        if meanwhile is not None:
            meanwhile()
        while child.returncode is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=STEP_POLL)
            if self.stopping.is_set():
                self._end_child(self.settings.grace)  # waits for it: returncode is set
        self.child = None
        return child.returncode

    def _end_child(self, grace: float) -> None:
        """SIGTERM the current child, SIGKILL it after ``grace`` seconds."""
        child, self.child = self.child, None
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            print(f"[supervisor] service still running after {grace:.0f} s: SIGKILL",
                  flush=True)
            child.kill()
            child.wait()


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="[%(name)s] %(message)s")
    settings = InstanceEnvironment.from_env()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return Supervisor(settings).run()


if __name__ == "__main__":
    sys.exit(main())
