"""Chaos: break a running stack on purpose, under steady page reloads, and count the cost.

Each fault below is one function that takes a :class:`Chaos`: a running
:class:`mwkit.stack.Stack` (popularity scaled to ``n`` instances) and the page reloads
that run meanwhile. It does one thing a bad day does, lets the kit (and, where a person
would, the learner) repair it, and returns a :class:`Row`:

- ``attempted`` / ``failed``: page reloads of ``/popular.json`` started from the fault
  until the row was measured, and how many of them no instance answered;
- ``whole_after``: seconds from the fault until the monolith's routing table is whole
  again, measured from outside, every 0.1 s: the Directory lists exactly the instances the
  kit runs (``n`` popularity instances, none that is gone), and every one of them has
  answered a page reload since the repair. Sherlock's table itself is inside the monolith;
  reloads reaching every listed instance is how a visitor sees it. (For ``kill-up``, whose
  stack is a separate one: seconds until nothing of that stack is left);
- ``left_behind``: what runs although the kit counts it gone: a process group or a running
  container of the workdir (found by the runtime's own marks and labels) of an instance
  that ``status()`` does not show as running, a second Directory, a Directory entry of an
  instance that no longer runs. A failed instance's row and its exited container are not
  counted: they are the record ``mwkit status`` shows, and ``mwkit down`` removes them.

The target: no failed reload while at least two instances are live (every fault here but
the engine restart leaves at least two: ``live_floor``), nothing left behind, the table
whole again. :func:`run_chaos` runs the faults in turn and returns a :class:`Report`
that prints as a table; ``mwkit chaos`` does it on a stack of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mwkit import contract, procs
from mwkit.contract import LEAVING
from mwkit.directory.client import DirectoryClient, DirectoryError
from mwkit.errors import InvalidInput, StackError
from mwkit.settings import KIT_ROOT
from mwkit.stack import SERVICE, Stack
from mwkit.wizard.runtimes import Handle
from mwkit.wizard.runtimes import process as process_runtime

TAG = "v1"
POLL = 0.1  # seconds between two looks at the table
#: The faults, in the order :func:`run_chaos` runs them.
FAULTS = ("kill-instance", "stop-instance", "kill-directory", "kill-watson", "take-port",
          "kill-up")
#: On Docker the engine binds an instance's published port as it creates the container,
#: right after choosing it: there is no window to take it in.
PROCESS_ONLY = frozenset({"take-port"})
ENGINE_RESTART = "engine-restart"  # Docker only, and only when asked: it stops everyone's


def default_faults(runtime: str) -> tuple[str, ...]:
    """Every fault that means something on ``runtime``."""
    return tuple(f for f in FAULTS if runtime == "process" or f not in PROCESS_ONLY)


@dataclass
class Row:
    """What one fault cost: see the module's docstring for each field."""

    fault: str
    attempted: int = 0
    failed: int = 0
    live_floor: int = 2  # the fewest live instances the fault leaves, by design
    whole_after: float | None = None  # None: not whole within the fault's bound
    left_behind: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def met(self) -> bool:
        """The target: nothing lost while two instances are live, nothing left, whole."""
        return (self.failed == 0 or self.live_floor < 2) and not self.left_behind and \
            self.whole_after is not None


COLUMNS = ("fault", "calls", "failed", "whole after s", "left behind", "target")


@dataclass
class Report:
    """The rows of one run; ``print(report)`` shows them as a table."""

    runtime: str
    rows: list[Row] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return bool(self.rows) and all(row.met for row in self.rows)

    def table(self) -> str:
        """An aligned plain-text table, then one line of notes per fault."""
        cells = [COLUMNS] + [(
            row.fault, str(row.attempted), str(row.failed),
            "never" if row.whole_after is None else f"{row.whole_after:.1f}",
            str(len(row.left_behind)), "met" if row.met else "MISSED") for row in self.rows]
        widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                           for i, (c, w) in enumerate(zip(line, widths, strict=True)))
                 for line in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        notes = [f"{row.fault}: {row.note}" for row in self.rows if row.note]
        notes += [f"{row.fault} left: {thing}" for row in self.rows for thing in row.left_behind]
        head = f"chaos on the {self.runtime} runtime"
        return "\n".join([head, *lines, *([""] + notes if notes else [])])

    __str__ = table


# --- looking at the stack ---------------------------------------------------------------

def running_instances(stack: Stack, service: str | None = SERVICE) -> dict[str, Handle]:
    """The instances the kit counts as running (of ``service``, or all): id -> handle."""
    phases = {s.instance: s.phase for s in stack.status()}
    return {i.id: Handle.from_dict(i.handle) for i in stack.wizard.state.instances()
            if i.handle and phases.get(i.id) not in LEAVING
            and service in (None, i.service)}


def listed(stack: Stack) -> set[str] | None:
    """The popularity instances the Directory lists (None while it does not answer)."""
    with DirectoryClient(stack.directory_url, timeout=1.0) as client:
        try:
            return {i["id"] for i in client.instances(SERVICE)}
        except DirectoryError:
            return None


def answered_since(reloads, since: float) -> set[str]:
    """The instances that answered a reload started after wall-clock ``since``."""
    return {r.instance for r in reloads.records() if r.time >= since and r.ok and r.instance}


def wait_whole(stack: Stack, reloads, n: int, since: float, started: float,
               bound: float) -> float | None:
    """Seconds from ``started`` (monotonic) until the table is whole: the Directory lists
    exactly the ``n`` running popularity instances and each answered a reload started after
    wall-clock ``since``. None when that did not happen before ``started + bound``."""
    while time.monotonic() < started + bound:
        running = set(running_instances(stack))
        if len(running) == n and listed(stack) == running and \
                running <= answered_since(reloads, since):
            return round(time.monotonic() - started, 2)
        time.sleep(POLL)
    return None


def left_behind(stack: Stack) -> list[str]:
    """What still runs of the stack's workdir although the kit counts it gone."""
    running = set(running_instances(stack, None))
    found: list[str] = []
    directories = 0
    if stack.runtime.name == "process":
        for pgid, env in process_runtime.groups_of(stack.workdir).items():
            instance = env.get(contract.INSTANCE_ID)
            directories += env.get(process_runtime.ROLE) == "directory"
            if instance and instance not in running:
                found.append(f"process group {pgid} of {instance}, which the kit counts gone")
    else:
        filters = {"label": ["mwkit.managed=1", f"mwkit.workdir={stack.workdir.resolve()}"]}
        for container in stack.runtime.client.containers.list(filters=filters,
                                                              ignore_removed=True):
            instance = container.labels.get("mwkit.instance")
            directories += container.labels.get("mwkit.role") == "directory"
            if instance and instance not in running:
                found.append(f"container {container.name}, which the kit counts gone")
    if directories > 1:
        found.append(f"{directories} Directories")
    for instance in sorted((listed(stack) or set()) - running):
        found.append(f"the Directory still lists {instance}, which no longer runs")
    return found


# --- doing things to it ----------------------------------------------------------------

def signal_instance(stack: Stack, handle: Handle, sig: signal.Signals) -> None:
    """``kill -<sig>`` the whole instance: its process group, or its container (SIGSTOP
    and SIGCONT as ``docker pause`` / ``unpause``: the cgroup freezer, the same hang)."""
    if stack.runtime.name == "process":
        procs.signal_group(handle.pid, sig)
        return
    container = stack.runtime.client.containers.get(handle.container)
    {signal.SIGSTOP: container.pause, signal.SIGCONT: container.unpause}.get(
        sig, lambda: container.kill(signal=int(sig)))()


#: Run inside a container: SIGKILL the supervisor (Watson's process), nothing else (not
#: the container's init, whose command line names the supervisor too, nor this script).
KILL_SUPERVISOR = """
import os, signal
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\\0")
    except OSError:  # gone meanwhile
        continue
    if argv[1:3] == [b"-m", b"mwkit.wizard.supervisor"]:
        os.kill(int(pid), signal.SIGKILL)
"""


def kill_supervisor(stack: Stack, handle: Handle) -> None:
    """SIGKILL the instance's supervisor process only (Watson is a thread in it)."""
    if stack.runtime.name == "process":
        os.kill(handle.pid, signal.SIGKILL)
    else:
        stack.runtime.client.containers.get(handle.container).exec_run(
            ["python3", "-c", KILL_SUPERVISOR])


def directory_port(stack: Stack) -> int:
    return urlsplit(stack.directory_url).port


def kill_directory_process(stack: Stack) -> None:
    """``kill -9`` the stack's Directory (found by the runtime's marks or its name)."""
    if stack.runtime.name == "process":
        for pgid, env in process_runtime.groups_of(stack.workdir).items():
            if env.get(process_runtime.ROLE) == "directory":
                procs.kill_group(pgid)
    else:
        from mwkit.wizard.runtimes.docker import container_name

        stack.runtime.client.containers.get(
            container_name(stack.workdir, "directory")).kill()


def start_directory_again(stack: Stack) -> None:
    """Start the stack's Directory again on the same URL, with the same token, so that
    Watsons and Sherlocks that point at it find it (an empty one: a new epoch). On Docker
    the container starts again with its name, network and published port."""
    token = getattr(stack, "directory_token", None)
    if stack.runtime.name == "process":
        from mwkit.directory import start_directory

        start_directory(directory_port(stack), token,
                        log_path=stack.workdir / "directory" / "directory.log",
                        env={"PYTHONPATH": str(KIT_ROOT),
                             **process_runtime.marks(stack.workdir, "directory")})
        return
    from mwkit.wizard.runtimes.docker import container_name

    stack.runtime.client.containers.get(container_name(stack.workdir, "directory")).start()
    procs.wait_for_http(f"{stack.directory_url}/health", 20)


# --- the faults -------------------------------------------------------------------------

@dataclass
class Chaos:
    """What every fault gets: the stack, its reloads, how many instances, the bounds."""

    stack: Stack
    reloads: object  # a running mwkit.traffic.PageReloads
    n: int = 3
    seconds: float = 20.0  # the longest a fault may take to be whole again
    rng: random.Random = field(default_factory=random.Random)
    progress: Callable[[str], None] = lambda line: None

    def victim(self) -> tuple[str, Handle]:
        """A random running popularity instance."""
        return self.rng.choice(sorted(running_instances(self.stack).items()))

    def wait_gone(self, victim: str, bound: float = 5.0) -> None:
        """Wait until the kit no longer counts ``victim`` as running (a signal takes a
        moment), so that ``scale`` sees it missing; an error if it never does."""
        deadline = time.monotonic() + bound
        while victim in running_instances(self.stack):
            if time.monotonic() > deadline:
                raise StackError(f"{victim} still counts as running {bound:.0f} s after "
                                 "it was killed")
            time.sleep(POLL)

    def row(self, fault: str, since: float, whole: float | None, note: str = "",
            live_floor: int = 2, left: list[str] | None = None) -> Row:
        """Count the reloads started since wall-clock ``since`` (after letting the last
        ones answer) and look for what is left behind."""
        time.sleep(min(3.0, self.reloads.timeout))  # reloads in flight get their answer
        records = [r for r in self.reloads.records() if r.time >= since]
        failed = [r for r in records if not r.ok]
        if records:
            note = "; ".join(filter(None, [note, "slowest reload "
                                           f"{max(r.latency for r in records):.2f} s"]))
        if self.reloads.skipped:
            note += f"; {self.reloads.skipped} reloads skipped so far (too many waiting)"
        if failed:
            note = "; ".join(filter(None, [note, f"first failure: {failed[0].error}"]))
        return Row(fault, len(records), len(failed), live_floor, whole,
                   left_behind=left_behind(self.stack) if left is None else left, note=note)


def kill_instance(chaos: Chaos) -> Row:
    """``kill -9`` a random instance (its process group, or its container), as a crash.

    Its Watson dies with it, so the Directory lists it until its lease runs out; Sherlock's
    first call to it is refused, retried on another instance, and the dead one is ejected.
    Repair, as a person would: ``scale`` back to n (the crashed row stays, as ``failed``).
    """
    since, started = time.time(), time.monotonic()
    victim, handle = chaos.victim()
    chaos.progress(f"kill -9 {victim}")
    signal_instance(chaos.stack, handle, signal.SIGKILL)
    chaos.wait_gone(victim)
    chaos.stack.scale(chaos.n)
    whole = wait_whole(chaos.stack, chaos.reloads, chaos.n, since, started, chaos.seconds)
    return chaos.row("kill-instance", since, whole, f"killed {victim}; scaled back to "
                                                    f"{chaos.n}")


def stop_instance(chaos: Chaos, hang: float = 4.0) -> Row:
    """SIGSTOP a random instance for ``hang`` seconds, then SIGCONT it: a hang, not a crash.

    The whole instance stops (service, supervisor, Watson): its calls time out, its lease
    runs out and the Directory drops it; after SIGCONT its Watson finds itself forgotten
    and registers it again. Whole: when it answers reloads again.
    """
    since, started = time.time(), time.monotonic()
    victim, handle = chaos.victim()
    chaos.progress(f"SIGSTOP {victim} for {hang:.0f} s")
    signal_instance(chaos.stack, handle, signal.SIGSTOP)
    try:
        time.sleep(hang)
    finally:
        signal_instance(chaos.stack, handle, signal.SIGCONT)
    chaos.progress(f"SIGCONT {victim}")
    whole = wait_whole(chaos.stack, chaos.reloads, chaos.n, time.time(), started,
                       chaos.seconds)
    return chaos.row("stop-instance", since, whole, f"stopped {victim} for {hang:.0f} s")


def kill_directory(chaos: Chaos) -> Row:
    """``kill -9`` the Directory and start it again on the same URL (empty: a new epoch).

    Sherlock routes with the table it has while the Directory is gone, and keeps the last
    epoch's instances for one lease beside the new, empty table; every Watson finds its
    instance forgotten at its next renewal and registers it again.
    """
    since, started = time.time(), time.monotonic()
    chaos.progress("kill -9 the Directory, and start it again on the same URL")
    kill_directory_process(chaos.stack)
    start_directory_again(chaos.stack)
    whole = wait_whole(chaos.stack, chaos.reloads, chaos.n, time.time(), started,
                       chaos.seconds)
    return chaos.row("kill-directory", since, whole, "restarted on "
                                                     f"{chaos.stack.directory_url}")


def kill_watson(chaos: Chaos) -> Row:
    """``kill -9`` a random instance's Watson, and let the kit bring one back.

    Watson is a thread of the instance's supervisor process, on both runtimes (the
    original ran it as a process beside the service): a thread cannot be killed alone, so
    this SIGKILLs the supervisor process, and with it Watson. Its service must not go on
    unseen: nobody would renew its lease or ever stop it. Repair: ``scale`` back to n.
    """
    since, started = time.time(), time.monotonic()
    victim, handle = chaos.victim()
    chaos.progress(f"kill -9 the supervisor (and so Watson) of {victim}")
    kill_supervisor(chaos.stack, handle)
    chaos.wait_gone(victim)
    chaos.stack.scale(chaos.n)
    whole = wait_whole(chaos.stack, chaos.reloads, chaos.n, since, started, chaos.seconds)
    return chaos.row("kill-watson", since, whole, f"killed {victim}'s supervisor; scaled "
                                                  f"back to {chaos.n}")


def take_port(chaos: Chaos) -> Row:
    """Take the port a new instance is about to listen on, between the runtime choosing
    it and the service binding it (the process runtime picks a free port, writes it into
    the instance's ``datawire.conf``, and the service binds it after ``mw.sh init``).

    The kit must lose nothing: the launch fails with a clear error and leaves nothing, or
    the instance comes up all the same; either way ``scale`` then runs n instances.
    Process runtime only (:data:`PROCESS_ONLY`).
    """
    since, started = time.time(), time.monotonic()
    instances = chaos.stack.workdir / "instances"
    before = set(os.listdir(instances))
    outcome: dict[str, object] = {}

    def launch() -> None:
        try:
            outcome["instance"] = chaos.stack.wizard.svrun(SERVICE, TAG, TAG)
        except Exception as error:  # noqa: BLE001 - the outcome is what we report
            outcome["error"] = error

    thread = threading.Thread(target=launch, name="chaos-launch")
    thread.start()
    taken = _take_new_instance_port(instances, before, thread)
    thread.join()
    if taken is not None:
        chaos.progress(f"took port {taken[1]}, which {taken[0]} was about to listen on")
        taken[2].close()
    error = outcome.get("error")
    lines = str(error).strip().splitlines() if error else []
    why = next((line for line in lines if "in use" in line), lines[-1] if lines else "")
    note = (f"took {taken[0]}'s port {taken[1]}; " if taken else "the race was lost; ") + (
        f"launch failed: {lines[0][:140]} ... {why.strip()[-100:]}" if error
        else "launch succeeded")
    chaos.stack.scale(chaos.n)
    whole = wait_whole(chaos.stack, chaos.reloads, chaos.n, since, started, chaos.seconds)
    return chaos.row("take-port", since, whole, note)


def _take_new_instance_port(instances: Path, before: set[str], launching: threading.Thread):
    """Watch for the new instance's ``datawire.conf`` and listen on its service port at
    once; ``(instance, port, socket)``, or None when the launch ended first."""
    while launching.is_alive():
        for name in set(os.listdir(instances)) - before:
            with contextlib.suppress(OSError, ValueError, TypeError):
                conf = (instances / name / "datawire.conf").read_text()
                url = next(line.split("=", 1)[1].strip() for line in conf.splitlines()
                           if line.startswith("service_url"))
                port = urlsplit(url).port
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                sock.listen()
                return name, port, sock
        time.sleep(0.002)
    return None


def kill_up(chaos: Chaos, timeout: float = 90.0) -> Row:
    """``kill -9`` a separate ``mwkit up`` (its own workdir, one instance), then ``mwkit
    down``: nothing of that stack may be left (processes, containers, network, files).

    ``whole_after`` here is the seconds from the kill until nothing of it was left. The
    main stack's reloads run on meanwhile and are counted as usual.
    """
    since = time.time()
    stack = chaos.stack
    workdir = stack.workdir / "kill-up"
    env = {**os.environ, "PYTHONPATH": str(KIT_ROOT)}
    mwkit = [sys.executable, "-m", "mwkit"]
    where = ["--workdir", str(workdir), "--runtime", stack.runtime.name]
    chaos.progress(f"a separate `mwkit up` in {workdir}")
    up = subprocess.Popen([*mwkit, "up", *where], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env,
                          start_new_session=True)
    ready = threading.Event()

    def follow() -> None:  # reads every line, so that `mwkit up` never blocks on its pipe
        for line in up.stdout:
            if "the stack is up" in line:
                ready.set()

    reader = threading.Thread(target=follow, name="chaos-mwkit-up", daemon=True)
    reader.start()
    try:
        if not ready.wait(timeout):
            raise StackError(f"the separate `mwkit up` in {workdir} was not up within "
                             f"{timeout:.0f} s")
        subprocess.run([*mwkit, "scale", SERVICE, TAG, "1", *where], env=env, check=True,
                       capture_output=True, timeout=timeout)
    except BaseException:
        up.kill()
        subprocess.run([*mwkit, "down", *where[:2]], env=env, capture_output=True)
        raise
    chaos.progress(f"kill -9 `mwkit up` (pid {up.pid}), then `mwkit down`")
    started = time.monotonic()
    up.kill()
    up.wait()
    reader.join(5)
    up.stdout.close()
    down = subprocess.run([*mwkit, "down", *where[:2]], env=env, capture_output=True,
                          text=True, timeout=timeout)
    left = leftovers_of(workdir, stack.runtime)
    whole = round(time.monotonic() - started, 2) if not left else None
    shutil.rmtree(workdir, ignore_errors=True)  # its checkouts and logs
    note = f"`mwkit down` said: {' / '.join(down.stdout.split(chr(10))[:3]).strip()}"[:200]
    return chaos.row("kill-up", since, whole, note, left=left)


def leftovers_of(workdir: Path, runtime) -> list[str]:
    """Everything of a workdir's stack that still exists: marked processes, labelled
    containers (running or not), its network, its stack.json and instance folders."""
    found = [f"process group {pgid} ({env.get(contract.INSTANCE_ID) or env.get('MWKIT_ROLE')})"
             for pgid, env in process_runtime.groups_of(workdir).items()]
    if runtime.name == "docker":
        from mwkit.wizard.runtimes.docker import network_name

        filters = {"label": ["mwkit.managed=1", f"mwkit.workdir={workdir.resolve()}"]}
        found += [f"container {c.name}" for c in runtime.client.containers.list(
            all=True, filters=filters, ignore_removed=True)]
        name = network_name(workdir)
        found += [f"network {n.name}" for n in runtime.client.networks.list(names=[name])
                  if n.name == name]
    found += [f"file {path}" for path in (workdir / "stack.json", workdir / "instances")
              if path.exists()]
    return found


def restart_engine(chaos: Chaos, stop: str, start: str) -> Row:
    """Stop and start the Docker engine under the running stack (``stop`` and ``start``
    are shell commands given by the caller: this stops every container on the engine).

    The stack's own parts (the Directory, the database, the monolith: ``restart:
    unless-stopped`` in its microwizard.yml) come back by themselves with the engine; the
    popularity instances do not (the wizard decides how many run). Afterwards ``status()``
    must tell the truth (no popularity instance shown as running), and ``scale`` alone
    must bring the instances back.
    """
    since, started = time.time(), time.monotonic()
    stack = chaos.stack
    chaos.progress(f"stopping the Docker engine: {stop}")
    subprocess.run(shlex.split(stop), check=True, timeout=120)
    chaos.progress(f"starting the Docker engine: {start}")
    subprocess.run(shlex.split(start), check=True, timeout=180)
    lying = sorted(running_instances(stack))
    note = "status after the restart: " + (f"shows {', '.join(lying)} as running"
                                           if lying else "no instance running (true)")
    procs.wait_for_http(f"{stack.directory_url}/health", 60)  # it came back by itself
    stack.scale(chaos.n)
    whole = wait_whole(stack, chaos.reloads, chaos.n, since, started, chaos.seconds * 3)
    row = chaos.row(ENGINE_RESTART, since, whole, note, live_floor=0)
    if lying:
        row.left_behind.append(f"status said running: {', '.join(lying)}")
    return row


RUNS: dict[str, Callable[[Chaos], Row]] = {
    "kill-instance": kill_instance, "stop-instance": stop_instance,
    "kill-directory": kill_directory, "kill-watson": kill_watson, "take-port": take_port,
    "kill-up": kill_up,
}


def check_faults(faults, runtime: str | None = None, engine_restart=None) -> None:
    """Refuse an unknown fault, or one that means nothing on ``runtime`` (when known),
    before anything starts."""
    unknown = [f for f in faults if f not in RUNS]
    if unknown:
        raise InvalidInput(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(RUNS)}")
    if runtime not in (None, "auto", "process") and PROCESS_ONLY & set(faults):
        raise InvalidInput(f"{', '.join(sorted(PROCESS_ONLY & set(faults)))}: on the process "
                           "runtime only")
    if engine_restart and runtime not in (None, "auto", "docker"):
        raise InvalidInput("the engine restart is for the Docker runtime only")


def run_chaos(stack: Stack, faults: list[str] | tuple[str, ...] | None = None,
              rate: float = 10.0,
              seconds: float = 20.0, n: int = 3, seed: int | None = None,
              engine_restart: tuple[str, str] | None = None,
              progress: Callable[[str], None] = lambda line: None) -> Report:
    """Scale popularity to ``n``, reload ``rate`` times a second, and run ``faults`` in
    turn (each whole again within ``seconds``, or reported as never). ``engine_restart``
    (stop and start commands) adds the Docker engine restart at the end. ``faults``
    default: :func:`default_faults` of the stack's runtime."""
    from mwkit.traffic import PageReloads

    faults = default_faults(stack.runtime.name) if faults is None else tuple(faults)
    check_faults(faults, stack.runtime.name, engine_restart)
    budget = (seconds + 15) * (len(faults) + (3 if engine_restart else 0)) + 30
    report = Report(stack.runtime.name)
    progress(f"scaling {SERVICE} to {n}")
    stack.scale(n)
    reloads = PageReloads(f"{stack.monolith_url}/popular.json", rate=rate, duration=budget,
                          count=int(rate * budget))
    chaos = Chaos(stack, reloads, n, seconds, random.Random(seed), progress)
    with reloads:
        for fault in faults:
            whole = wait_whole(stack, reloads, n, time.time(), time.monotonic(), seconds)
            if whole is None:
                progress(f"not whole before {fault}: the rows after this are not clean")
            row = RUNS[fault](chaos)
            progress(f"{fault}: {row.attempted} calls, {row.failed} failed, whole after "
                     f"{row.whole_after} s, {len(row.left_behind)} left behind")
            report.rows.append(row)
        if engine_restart:
            report.rows.append(restart_engine(chaos, *engine_restart))
    return report


def report_json(report: Report) -> str:
    """The report as JSON (for a benchmark figure or a CI artifact)."""
    return json.dumps({"runtime": report.runtime, "met": report.met,
                       "rows": [{**row.__dict__, "met": row.met} for row in report.rows]},
                      indent=2)
