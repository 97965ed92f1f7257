"""Faults on purpose, without touching the service's code: what each does, and how.

Seven faults, each injected into one instance (or, for ``directory``, the stack) from the
Python API (``stack.inject("popularity-v1-2", "latency", seconds=0.5)``), the CLI (``mwkit
fault add popularity-v1-2 latency --seconds 0.5``) or the control panel, each shown in
``mwkit status`` with one sentence of what it does, each removed by ``clear``:

=============  ===========================================================================
``latency``    the instance's fault filter holds every call (or a ``fraction``) ``seconds``
               before passing it on
``errors``     the filter answers a ``fraction`` of calls with ``status`` (500-599) without
               calling the service
``fast-fail``  the filter answers every call 503 at once, while Watson's health checks
               (which go to the service directly) still pass: the instance stays listed
               and looks fast to a latency-aware balancer
``hang``       the supervisor SIGSTOPs the service (SIGCONT on clear); Watson's checks time
               out and deregister it after ``fall`` of them
``lease``      the supervisor's Watson stops renewing (and registering): the Directory
               forgets the instance when its lease runs out, while its service answers
``crash``      ``kill -9`` of the whole instance, as :mod:`mwkit.chaos` does it (service,
               supervisor and Watson); clearing it removes the dead instance's record
``directory``  the stack's Directory is killed; clearing it starts it again (empty, on the
               same address: every Watson registers again)
=============  ===========================================================================

Where they live: the first five are orders the wizard writes atomically into the instance's
state folder (``faults.json``, :data:`mwkit.contract.FAULTS_FILE`), which the supervisor
inside the instance carries out and acknowledges, the same way on every runtime (the fault
filter, :mod:`mwkit.wizard.fault_filter`, sits in front of the service in the instance
itself, as a sidecar would). ``crash`` and ``directory`` are done from outside, by
:mod:`mwkit.chaos`'s own functions, and recorded (in the instance's order file, in
``<workdir>/faults.json``). ``mwkit down`` removes them all with the stack.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from mwkit import contract
from mwkit.errors import InvalidFault, WizardError

#: Every fault and the values it takes (name -> default; None: required).
KINDS: dict[str, dict[str, float | None]] = {
    "latency": {"seconds": None, "fraction": 1.0},
    "errors": {"fraction": None, "status": 500},
    "fast-fail": {},
    "hang": {},
    "lease": {},
    "crash": {},
    "directory": {},
}
#: The faults the supervisor carries out from its order file.
ORDERS = frozenset({"latency", "errors", "fast-fail", "hang", "lease"})
STACK_FAULTS_FILE = "faults.json"  # <workdir>/faults.json: the directory fault
ACK_SECONDS = 5.0  # how long the supervisor may take to acknowledge an order
MAX_LATENCY = 60.0


@dataclass(frozen=True)
class Fault:
    """One active fault: ``kind`` on ``instance`` (None: the stack), since ``since``."""

    kind: str
    instance: str | None
    params: dict
    since: float

    @property
    def id(self) -> str:
        return self.kind if self.instance is None else f"{self.instance}/{self.kind}"

    @property
    def sentence(self) -> str:
        return describe(self.kind, self.params)

    def __str__(self) -> str:
        return f"{self.instance or 'the stack'}: {self.kind}: {self.sentence}"


def describe(kind: str, params: dict) -> str:
    """One sentence of what the fault does."""
    share = params.get("fraction", 1.0)
    calls, verb = ("every call", "s") if share >= 1 else (f"{share:.0%} of calls", "")
    if kind == "latency":
        return (f"{calls} wait{verb} {params['seconds']:g} s more in the instance's fault "
                "filter before reaching the service.")
    if kind == "errors":
        return (f"{calls} {'is' if verb else 'are'} answered {params['status']} by the fault "
                "filter, without reaching the service.")
    return {
        "fast-fail": "every call is answered 503 at once, while its health checks still pass:"
                     " it stays listed and looks fast to a latency-aware balancer.",
        "hang": "its service is stopped (SIGSTOP): calls wait for an answer that never comes,"
                " and Watson deregisters it when its checks time out; clear sends SIGCONT.",
        "lease": "its Watson no longer renews its lease: the Directory forgets it when the "
                 "lease runs out, while its service still answers.",
        "crash": "killed with kill -9 (service, supervisor, Watson): the Directory lists it "
                 "until its lease runs out; clear removes its record.",
        "directory": "the Directory is stopped: nothing registers, renews or reads, routers "
                     "keep the table they have; clear starts it again, empty.",
    }[kind]


def check_fault(kind: str, instance_id: str | None, params: dict) -> dict:
    """The fault's values with defaults filled in; :class:`InvalidFault` if anything is
    wrong (an unknown fault or value, a number out of range, an instance missing or given
    where none is wanted)."""
    if kind not in KINDS:
        raise InvalidFault(f"unknown fault {kind!r}; known: {', '.join(KINDS)}")
    if (kind == "directory") != (instance_id is None):
        raise InvalidFault("the directory fault is the stack's: give no instance"
                           if kind == "directory" else f"the {kind} fault needs an instance")
    known = KINDS[kind]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise InvalidFault(f"the {kind} fault takes {', '.join(known) or 'no values'}, not "
                           f"{', '.join(unknown)}")
    values = {name: params.get(name, default) for name, default in known.items()}
    for name, value in values.items():
        if value is None:
            raise InvalidFault(f"the {kind} fault needs {name}=")
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not math.isfinite(value):
            raise InvalidFault(f"{kind}: {name} must be a number, not {value!r}")
    if not 0 <= values.get("fraction", 0) <= 1:
        raise InvalidFault(f"{kind}: fraction must be between 0 and 1, not {values['fraction']}")
    if not 0 <= values.get("seconds", 0) <= MAX_LATENCY:
        raise InvalidFault(f"latency: seconds must be between 0 and {MAX_LATENCY:g}, not "
                           f"{values['seconds']}")
    if "status" in values:
        if values["status"] != int(values["status"]) or not 500 <= values["status"] <= 599:
            raise InvalidFault(f"errors: status must be a whole number from 500 to 599, not "
                               f"{values['status']}")
        values["status"] = int(values["status"])
    return values


# --- the records ----------------------------------------------------------------------------

def orders_path(instance_dir: str | Path) -> Path:
    return Path(instance_dir) / "state" / contract.FAULTS_FILE


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict) -> None:
    """Replace ``path`` atomically: the supervisor never reads half an order."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def _faults_in(data: dict, instance: str | None) -> list[Fault]:
    return [Fault(kind, instance, {k: v for k, v in params.items() if k != "since"},
                  params.get("since", 0.0))
            for kind, params in (data.get("faults") or {}).items() if kind in KINDS]


def instance_faults(instance_id: str, instance_dir: str | Path) -> list[Fault]:
    """The faults recorded for one instance (its order file)."""
    return _faults_in(read_json(orders_path(instance_dir)), instance_id)


def stack_faults(workdir: Path) -> list[Fault]:
    """The stack's own faults (the Directory stopped)."""
    return _faults_in(read_json(Path(workdir) / STACK_FAULTS_FILE), None)


@dataclass(frozen=True)
class StackParts:
    """What :mod:`mwkit.chaos`'s functions use of a stack, for a process that has only its
    workdir (the CLI): where it runs and where its Directory is."""

    runtime: object
    workdir: Path
    directory_url: str
    directory_token: str | None


class FaultInjector:
    """Inject, list and clear the faults of one workdir's stack, through its
    :class:`~mwkit.wizard.Wizard`."""

    def __init__(self, wizard) -> None:
        self.wizard = wizard

    @property
    def parts(self) -> StackParts:
        return StackParts(self.wizard.runtime, self.wizard.workdir,
                          self.wizard.directory_url, self.wizard.token)

    def faults(self) -> list[Fault]:
        """Every active fault: the stack's first, then each instance's, oldest first."""
        found = stack_faults(self.wizard.workdir)
        for instance in self.wizard.state.instances():
            found += instance_faults(instance.id, instance.instance_dir)
        return found

    def inject(self, instance_id: str | None, kind: str, **params) -> Fault:
        """Start ``kind`` on ``instance_id`` (None for ``directory``); a fault of the same
        kind on it is replaced. Returns once the fault acts."""
        values = check_fault(kind, instance_id, params)
        fault = Fault(kind, instance_id, values, time.time())
        if kind == "directory":
            self._stop_directory()
        else:
            instance, handle = self._running(instance_id)
            faults = dict(read_json(orders_path(instance.instance_dir)).get("faults") or {})
            faults[kind] = {**values, "since": fault.since}
            if kind == "crash":
                from mwkit.chaos import signal_instance

                self._order(instance, handle, faults, acknowledged=False)
                signal_instance(self.parts, handle, signal.SIGKILL)
                self._wait_gone(instance_id)
            else:
                self._order(instance, handle, faults)
        self.wizard.progress(f"fault: {fault}")
        return fault

    def clear(self, instance_id: str | None = None, kind: str | None = None) -> list[Fault]:
        """Remove the faults of ``instance_id`` (None: every instance and the stack), of
        ``kind`` only when given; returns what was removed."""
        if kind is not None and kind not in KINDS:
            raise InvalidFault(f"unknown fault {kind!r}; known: {', '.join(KINDS)}")
        ids = {i.id for i in self.wizard.state.instances()}
        if instance_id is not None and instance_id not in ids:
            raise InvalidFault(f"no instance {instance_id!r} in {self.wizard.workdir} "
                               "(see `mwkit status`)")
        cleared = [f for f in self.faults() if kind in (None, f.kind)
                   and instance_id in (None, f.instance)]
        for instance_id_ in sorted({f.instance for f in cleared if f.instance}):
            self._clear_instance(instance_id_, {f.kind for f in cleared
                                                if f.instance == instance_id_})
        if any(f.kind == "directory" for f in cleared):
            from mwkit.chaos import start_directory_again

            start_directory_again(self.parts)
            (self.wizard.workdir / STACK_FAULTS_FILE).unlink(missing_ok=True)
        for fault in cleared:
            self.wizard.progress(f"cleared: {fault.id}")
        return cleared

    # --- helpers ------------------------------------------------------------------------

    def _running(self, instance_id: str):
        """The instance and its handle; :class:`InvalidFault` unless it runs now."""
        from mwkit.contract import LEAVING, Phase
        from mwkit.wizard.runtimes import Handle

        instance = next((i for i in self.wizard.state.instances() if i.id == instance_id),
                        None)
        if instance is None or not instance.handle:
            raise InvalidFault(f"no instance {instance_id!r} in {self.wizard.workdir} "
                               "(see `mwkit status`)")
        row = next(r for r in self.wizard.status() if r.instance == instance_id)
        if row.phase in LEAVING or row.phase in (Phase.INITIALIZING, Phase.STARTED):
            raise InvalidFault(f"instance {instance_id} is {row.phase}: faults go to an "
                               "instance whose service runs")
        return instance, Handle.from_dict(instance.handle)

    def _order(self, instance, handle, faults: dict, acknowledged: bool = True) -> None:
        """Write the instance's new order file; wait until its supervisor applied it (or
        put the old one back and raise)."""
        from mwkit.wizard.wizard import read_phase

        path = orders_path(instance.instance_dir)
        before = path.read_bytes() if path.exists() else None
        serial = time.time_ns()
        write_json(path, {"serial": serial, "faults": faults})
        deadline = time.monotonic() + ACK_SECONDS
        while acknowledged and read_phase(handle).get("faults_applied") != serial:
            if time.monotonic() > deadline:
                if before is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_bytes(before)
                raise WizardError(f"{instance.id}'s supervisor did not apply the fault order "
                                  f"within {ACK_SECONDS:g} s (is it running? `mwkit logs "
                                  f"{instance.id}`)")
            time.sleep(0.02)

    def _wait_gone(self, instance_id: str) -> None:
        """Return once the kit counts the killed instance as failed (a signal takes a
        moment): whoever looks next sees it gone."""
        from mwkit.contract import LEAVING

        deadline = time.monotonic() + ACK_SECONDS
        while any(r.instance == instance_id and r.phase not in LEAVING
                  for r in self.wizard.status()):
            if time.monotonic() > deadline:
                raise WizardError(f"{instance_id} still runs {ACK_SECONDS:g} s after kill -9")
            time.sleep(0.02)

    def _clear_instance(self, instance_id: str, kinds: set[str]) -> None:
        instance = next(i for i in self.wizard.state.instances() if i.id == instance_id)
        path = orders_path(instance.instance_dir)
        faults = {k: v for k, v in (read_json(path).get("faults") or {}).items()
                  if k not in kinds}
        if "crash" in (read_json(path).get("faults") or {}):  # nothing left to order
            if "crash" in kinds:
                self.wizard.forget(instance_id)
            return
        from mwkit.contract import LEAVING
        from mwkit.wizard.runtimes import Handle

        row = next((r for r in self.wizard.status() if r.instance == instance_id), None)
        running = instance.handle and row is not None and row.phase not in LEAVING
        self._order(instance, Handle.from_dict(instance.handle) if running else None, faults,
                    acknowledged=bool(running))

    def _stop_directory(self) -> None:
        from mwkit.chaos import kill_directory_process
        from mwkit.directory.etcd import is_etcd_url

        if is_etcd_url(self.wizard.directory_url or ""):
            raise InvalidFault(
                "this stack registers in etcd, a three-member cluster: it has no one Directory "
                "to stop, and losing one member changes nothing. Kill a member (notebook 08b, "
                "`stack.etcd`), or two to lose the majority")
        if stack_faults(self.wizard.workdir):
            raise InvalidFault("the Directory is stopped already")
        kill_directory_process(self.parts)
        write_json(self.wizard.workdir / STACK_FAULTS_FILE,
                   {"faults": {"directory": {"since": time.time()}}})
