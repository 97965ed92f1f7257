"""The Microwizard's public API: launch, scale, inspect and remove service instances.

``Wizard.svrun("popularity", "v1", "v1")`` does what the original ``svrun`` did: check out
the ref into a folder of its own, read its ``microwizard/``, start an instance on a runtime
(a local process group or a Docker container) and wait until its Watson has registered it
in the Directory. What it started is written to ``<workdir>/state.json``, so the CLI (one
process per command), a notebook and a background slider thread all see the same instances.

A launch either ends with a registered instance or with a :class:`WizardError` that carries
the tail of the instance's log, and then nothing of it is left: no process (also none that
left the instance's process group), no registration, no row in ``state.json``, no instance
folder, and no checkout that the launch exported only for itself.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mwkit import contract
from mwkit.contract import LEAVING, SERVING, Phase
from mwkit.directory import DirectoryError, directory_client
from mwkit.errors import StateError, WizardError
from mwkit.faults import STACK_FAULTS_FILE, instance_faults
from mwkit.names import check_identifier, check_service_name
from mwkit.settings import KIT_ROOT, Settings
from mwkit.wizard.runtimes import RUNTIMES, Handle, LaunchPlan, Runtime, get_runtime
from mwkit.wizard.source import UNCOMMITTED, UNCOMMITTED_COPY, checkout
from mwkit.wizard.state import Instance, State

SERVICE_GRACE = 5.0  # seconds a service gets between SIGTERM and SIGKILL
STOP_MARGIN = 5.0  # what the supervisor may need beyond its stop order and the grace

__all__ = ["Instance", "InstanceStatus", "Wizard", "WizardError"]


@dataclass(frozen=True)
class InstanceStatus:
    """One row of ``status()``: where the instance is in its lifecycle (``phase``, see
    :class:`mwkit.contract.Phase`) and why, when it failed; the faults injected into it
    (:class:`mwkit.faults.Fault`, each with its one-sentence ``sentence``)."""

    instance: str
    service: str
    tag: str
    ref: str
    commit: str
    runtime: str
    address: str | None
    phase: Phase
    reason: str = ""
    faults: tuple = ()


def read_stack(workdir: Path) -> dict:
    """``<workdir>/stack.json`` as written by ``mwkit up`` ({} when there is none)."""
    path = Path(workdir) / "stack.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as error:
        raise WizardError(f"{path} is not valid JSON ({error}); run `mwkit up` again") from None


def read_phase(handle: Handle) -> dict:
    """What the instance's supervisor last wrote ({} before it wrote anything)."""
    try:
        return json.loads(handle.phase_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


class Wizard:
    """Launch and manage service instances of one workdir; ``with Wizard() as w:`` removes
    every instance it started when the block ends."""

    def __init__(self, workdir: Path | str | None = None, runtime: str | Runtime | None = None,
                 directory_url: str | None = None, database_url: str | None = None,
                 sources: dict | None = None, progress: Callable[[str], None] | None = None,
                 token: str | None = None, settings: Settings | None = None,
                 standby: bool = False):
        """Arguments left out come from ``settings`` (default ``Settings.from_env()``), then
        from ``<workdir>/stack.json`` (the stack ``mwkit up`` or a notebook started).

        ``standby``: keep one instance of each service and tag launched started ahead, its
        supervisor waiting before ``mw.sh init`` (phase ``standby``, left out of
        :meth:`status`). The next launch of that service and tag only tells it to go: it
        skips the runtime's start (a container's, about 0.3 s) and the supervisor's, what a
        warm pool does. It costs one waiting process or container per service and tag, is
        prepared by a background thread once the launch before it is live (so, for a
        process that lives on: a notebook, ``mwkit up``), and is removed with the others
        (:meth:`close`, :meth:`down`, scaling to 0)."""
        settings = (settings or Settings.from_env()).replace(
            workdir=workdir, directory_url=directory_url, directory_token=token)
        self.workdir = settings.workdir
        stack = read_stack(self.workdir)
        if runtime is None or isinstance(runtime, str):
            runtime = get_runtime(runtime or stack.get("runtime") or settings.runtime)
        self.runtime = runtime
        self._runtimes: dict[str, Runtime] = {self.runtime.name: self.runtime}
        self.directory_url = settings.directory_url or stack.get("directory_url")
        self.database_url = database_url or stack.get("database_url")
        self.token = settings.directory_token or stack.get("directory_token")
        if sources is None:
            from mwkit.wizard.source import default_sources

            sources = default_sources(KIT_ROOT)
        self.sources = sources
        self.progress = progress or (lambda line: None)
        self.state = State(self.workdir)
        self._started: set[str] = set()
        self._scale_lock = threading.Lock()
        self.standby = standby
        self._standby_lock = threading.Lock()  # one standby started at a time, none after close
        self._closed = False

    def add_source(self, service: str, source) -> None:
        """Tell the wizard where ``service``'s code lives (a
        :class:`~mwkit.wizard.source.ServiceSource`): your own service beside the kit's, or
        another source for one of them. Launches from now on use it."""
        self.sources[check_service_name(service)] = source

    def __enter__(self) -> Wizard:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Wizard(workdir={str(self.workdir)!r}, runtime={self.runtime.name!r})"

    # --- launching ----------------------------------------------------------------------

    def svrun(self, service: str, tag: str, ref: str = "v1", wait: bool = True,
              timeout: float = 30, env: dict[str, str] | None = None) -> Instance:
        """Launch one more instance of ``ref`` of ``service``, tagged ``tag``; with ``wait``,
        return once the Directory lists it. ``env`` adds to the instance's environment."""
        instance, handle = self._launch(service, tag, ref, env or {})
        if wait:
            self._await(instance, handle, timeout)
        return instance

    def _launch(self, service: str, tag: str, ref: str,
                env: dict[str, str] | None = None) -> tuple[Instance, Handle]:
        check_service_name(service)
        check_identifier(tag, "tag")
        check_identifier(ref, "ref")
        if service not in self.sources:
            raise WizardError(f"no source known for service {service!r}; known: "
                              f"{', '.join(sorted(self.sources)) or 'none'}")
        with_standby = self.standby and not env and ref not in (UNCOMMITTED, UNCOMMITTED_COPY)
        launched = self._take_standby(service, tag, ref) if with_standby else None
        if launched is None:
            launched = self._start(service, tag, ref, env or {})
        if with_standby:
            self._prepare_standby(service, tag, ref, after=launched[1])
        return launched

    def _start(self, service: str, tag: str, ref: str, env: dict[str, str],
               phase: Phase = Phase.STARTED) -> tuple[Instance, Handle]:
        """Reserve an id, check out, plan and start one instance; a standby quietly."""
        from mwkit.wizard.spec import load_spec

        say = self.progress if phase != Phase.STANDBY else (lambda line: None)
        directory_url = self._directory_url()
        instance = self._reserve(service, tag, ref, phase if phase == Phase.STANDBY
                                 else Phase.CHECKING_OUT)
        say(f"{instance.id}: checking out {service} {ref}")
        try:
            done = self._checkout(instance, say)
            spec = load_spec(done.folder)
            if spec.name != service:
                raise WizardError(f"{spec.folder}/microwizard/microwizard.yml names the service "
                                  f"{spec.name!r}, but it was launched as {service!r}")
            plan = self._plan(instance, done, spec, directory_url, env)
            say(f"{instance.id}: starting on the {self.runtime.name} runtime")
            handle = self.runtime.start(plan)
        except BaseException:
            self._forget(instance)
            raise
        instance.phase, instance.handle = phase, handle.to_dict()
        self.state.update(instance)
        self._started.add(instance.id)
        return instance, handle

    def _reserve(self, service: str, tag: str, ref: str,
                 phase: Phase = Phase.CHECKING_OUT) -> Instance:
        """A new instance id (``popularity-v1-3``), recorded at once as checking-out (a
        standby as such from the start: it is never a running instance before it is taken)."""
        with self.state.edit() as table:
            key = f"{service}-{tag}"
            number = table["counters"].get(key, 0) + 1
            table["counters"][key] = number
            instance_id = check_identifier(f"{key}-{number}", "instance id")
            instance_dir = self.workdir / "instances" / instance_id
            instance = Instance(id=instance_id, service=service, tag=tag, ref=ref, commit="",
                                runtime=self.runtime.name, folder="",
                                instance_dir=str(instance_dir), phase=phase)
            table["instances"][instance_id] = instance
        shutil.rmtree(instance_dir, ignore_errors=True)  # left over from before a reset
        instance_dir.mkdir(parents=True)
        return instance

    def _checkout(self, instance: Instance, say: Callable[[str], None]):
        """The instance's folder, recorded in the state table at once: a failed launch of
        the same commit removes a checkout only while no instance in the table uses it."""
        for _ in range(2):
            done = checkout(self.sources[instance.service], instance.ref,
                            service=instance.service, tag=instance.tag, workdir=self.workdir,
                            progress=say)
            instance.commit, instance.folder = done.commit, str(done.folder)
            instance.exported = done.exported
            with self.state.edit() as table:
                if done.folder.is_dir():  # not removed meanwhile by a failed launch
                    table["instances"][instance.id] = instance
                    return done
        raise WizardError(f"the checkout {done.folder} was removed by a failed launch twice "
                          "while this one used it: try again")

    # --- standbys (Wizard(standby=True)) ------------------------------------------------

    def _standbys(self, service: str, tag: str) -> list[Instance]:
        return [i for i in self.state.instances() if i.phase == Phase.STANDBY
                and (i.service, i.tag, i.runtime) == (service, tag, self.runtime.name)]

    def standby_ready(self, service: str, tag: str) -> bool:
        """Whether a standby of ``service`` ``tag`` waits, its supervisor ready to go."""
        return any(i.handle and read_phase(Handle.from_dict(i.handle)).get("phase") ==
                   Phase.STANDBY for i in self._standbys(service, tag))

    def _take_standby(self, service: str, tag: str, ref: str) -> tuple[Instance, Handle] | None:
        """The standby of ``service`` ``tag`` started from ``ref``, told to go; None when there
        is none, or it no longer fits (the ref is another commit now, or it died): then it
        is removed and the launch starts an instance as usual."""
        with self.state.edit() as table:
            standby = next((i for i in table["instances"].values() if i.phase == Phase.STANDBY
                            and i.handle and (i.service, i.tag, i.ref, i.runtime) ==
                            (service, tag, ref, self.runtime.name)), None)
            if standby is None:
                return None
            standby.phase, standby.created = Phase.STARTED, time.time()  # newest, taken
        handle = Handle.from_dict(standby.handle)
        self.progress(f"{standby.id}: checking out {service} {ref}")
        try:
            done = checkout(self.sources[service], ref, service=service, tag=tag,
                            workdir=self.workdir, progress=self.progress)
            fits = (done.commit, str(done.folder)) == (standby.commit, standby.folder) and \
                self.runtime.is_running(handle)
            if fits:
                go = Path(handle.instance_dir) / "state" / contract.GO_FILE
                go.write_text(json.dumps({"taken": time.time()}), encoding="utf-8")
        except BaseException:
            self._drop_standby(standby)
            raise
        if not fits:
            self._drop_standby(standby)
            return None
        self.progress(f"{standby.id}: starting on the {self.runtime.name} runtime "
                      "(its standby, started ahead)")
        return standby, handle

    def _prepare_standby(self, service: str, tag: str, ref: str, after: Handle) -> None:
        """Start the next instance of ``service`` ``tag`` ahead, in a background thread,
        once the one just launched is past its start (the two would compete for the CPU),
        unless a standby exists, none of that tag runs any more, or the wizard is closed."""
        def prepare() -> None:
            deadline = time.monotonic() + 30
            while read_phase(after).get("phase") not in (Phase.LIVE, Phase.FAILED,
                                                         Phase.STOPPED) \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            with self._standby_lock:
                if self._closed or self._standbys(service, tag) or \
                        not self._running(service, tag):
                    return
                try:
                    self._start(service, tag, ref, {contract.STANDBY: "1"}, Phase.STANDBY)
                except Exception as error:  # noqa: BLE001 - launches work without one
                    self.progress(f"no standby for {service} {tag}: {error}")

        threading.Thread(target=prepare, name=f"mwkit-standby-{service}-{tag}",
                         daemon=True).start()

    def _drop_standbys(self, service: str, tag: str) -> None:
        for standby in self._standbys(service, tag):
            self._drop_standby(standby)

    def _drop_standby(self, standby: Instance) -> None:
        """SIGKILL a standby and drop its row (it never registered: nothing to deregister)."""
        if standby.handle:
            self._runtime(standby.runtime).kill(Handle.from_dict(standby.handle))
        self.state.remove(standby.id)
        self._started.discard(standby.id)

    def _forget(self, instance: Instance) -> None:
        """A failed launch leaves nothing: its row, its folder, and a checkout it exported
        for itself (unless another instance runs it meanwhile)."""
        with self.state.edit() as table:
            table["instances"].pop(instance.id, None)
            key = f"{instance.service}-{instance.tag}"
            if instance.id == f"{key}-{table['counters'].get(key)}":  # the newest number
                table["counters"][key] -= 1
            if instance.exported and not any(
                    other.folder == instance.folder for other in table["instances"].values()):
                trash = Path(instance.folder).with_name(f".{instance.id}.removed")
                with contextlib.suppress(OSError):  # renamed first: no one sees half of it
                    Path(instance.folder).rename(trash)
                shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(instance.instance_dir, ignore_errors=True)
        self._started.discard(instance.id)

    def _plan(self, instance: Instance, done, spec, directory_url: str,
              extra_env: dict[str, str]) -> LaunchPlan:
        from mwkit.wizard.spec import render_datawire_conf

        for_instances = self.runtime.instance_url(directory_url)
        metadata = {"tag": instance.tag, "ref": instance.ref, "commit": instance.short_commit,
                    "runtime": self.runtime.name}
        env = {
            **spec.env,
            **extra_env,
            contract.SERVICE: instance.service,
            contract.INSTANCE_ID: instance.id,
            contract.TAG: instance.tag,
            contract.COMMIT: instance.commit,
            contract.METADATA: json.dumps(metadata),
            contract.STOP_GRACE: str(SERVICE_GRACE),
        }
        if self.token:
            env[contract.DIRECTORY_TOKEN] = self.token
        if "directory" in spec.links:
            env[contract.DIRECTORY_URL] = for_instances
        if "database" in spec.links and self.database_url:
            env[contract.DATABASE_URL] = self.runtime.instance_url(self.database_url)

        def render_conf(service_url: str, health_check_url: str) -> str:
            return render_datawire_conf(spec, directory_url=for_instances,
                                        service_url=service_url,
                                        health_check_url=health_check_url,
                                        instance_id=instance.id)

        return LaunchPlan(
            instance_id=instance.id, service=instance.service, tag=instance.tag,
            commit=instance.commit, folder=done.folder,
            instance_dir=Path(instance.instance_dir), workdir=self.workdir,
            service_port=spec.port, health_path=spec.health_check.path, env=env,
            render_conf=render_conf, limits=spec.limits, restart=spec.restart,
        )

    def _await(self, instance: Instance, handle: Handle, timeout: float) -> None:
        """Wait until the Directory lists the instance; on any failure remove it and raise."""
        runtime = self._runtime(instance.runtime)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if instance.id in self._listed(instance.service):
                self.progress(f"{instance.id}: registered at {read_phase(handle).get('address')}")
                return
            phase = read_phase(handle)
            if phase.get("phase") in (Phase.FAILED, Phase.STOPPED) or \
                    not runtime.is_running(handle):
                reason = phase.get("reason") or "its supervisor exited"
                self._fail(instance, handle, reason)
            time.sleep(0.1)
        self._fail(instance, handle, f"not registered within {timeout:.0f} s (never healthy? "
                                     f"phase: {read_phase(handle).get('phase', 'none yet')})")

    def _fail(self, instance: Instance, handle: Handle, reason: str) -> None:
        """Kill and deregister a launch that failed, remove what it made, raise."""
        runtime = self._runtime(instance.runtime)
        runtime.kill(handle)
        self._deregister(instance)
        tail = runtime.logs(handle, 20)
        self._forget(instance)
        raise WizardError(f"instance {instance.id} ({instance.service} {instance.ref}) failed: "
                          f"{reason}; nothing of it is left; the last lines of its log:\n{tail}")

    # --- removing -----------------------------------------------------------------------

    def svkill(self, tag: str, now: bool = False, service: str | None = None,
               drain: bool = True) -> Instance:
        """Remove the newest instance tagged ``tag``, in one of three ways:

        - gracefully (the default): its Watson deregisters it, waits its drain time while
          the routers' tables follow, and only then the service gets SIGTERM (SIGKILL after
          a grace). No call is sent to it once it stops;
        - ``drain=False``: the naive order of the 2015 original. The service gets SIGTERM
          first, while it is still registered; Watson deregisters it only when its health
          checks have failed ``fall`` times in a row, so for about ``fall`` x ``period``
          seconds a router without retries sends calls to a closed port;
        - ``now``: SIGKILL at once (it stays in the Directory until its lease runs out, as
          a crashed instance would).
        """
        check_identifier(tag, "tag")
        candidates = [s for s in self.status() if s.tag == tag and s.phase not in LEAVING
                      and (service is None or s.service == service)]
        if not candidates:
            raise WizardError(f"no running instance tagged {tag!r} in {self.workdir}")
        return self._remove(candidates[-1].instance, now, drain)

    def _remove(self, instance_id: str, now: bool, drain: bool = True) -> Instance:
        instance = next((i for i in self.state.instances() if i.id == instance_id), None)
        if instance is None:
            raise WizardError(f"instance {instance_id} is already gone from {self.workdir}")
        runtime = self._runtime(instance.runtime)
        if instance.handle:
            handle = Handle.from_dict(instance.handle)
            if now:
                self.progress(f"{instance.id}: SIGKILL")
                runtime.kill(handle)
            elif drain:
                self.progress(f"{instance.id}: stopping (deregister, drain, SIGTERM)")
                runtime.stop(handle, grace=self._stop_grace(instance, drain))
            else:
                self.progress(f"{instance.id}: stopping without draining (SIGTERM while "
                              "registered; deregistered when its health checks fail)")
                handle.stop_path.write_text(json.dumps({"drain": False}), encoding="utf-8")
                runtime.stop(handle, grace=self._stop_grace(instance, drain))
        self.state.remove(instance.id)
        self._started.discard(instance.id)
        self.progress(f"{instance.id}: removed")
        return instance

    def forget(self, instance_id: str) -> Instance:
        """Remove an instance that crashed (or is made to): SIGKILL whatever is left of it,
        deregister it at once instead of waiting for its lease, drop its row."""
        instance = self._remove(instance_id, now=True)
        self._deregister(instance)
        return instance

    def _stop_grace(self, instance: Instance, drain: bool) -> float:
        """How long the runtime waits for the supervisor before SIGKILL: its stop order
        (the drain time, or Watson's failed checks) and the service's grace, plus a margin."""
        from mwkit.watson import WatsonConfig
        from mwkit.wizard.supervisor import naive_stop_seconds

        try:
            config = WatsonConfig.from_file(Path(instance.instance_dir) / "datawire.conf")
        except ValueError:
            return 1.0 + SERVICE_GRACE + STOP_MARGIN
        order = config.drain if drain else naive_stop_seconds(config)
        return order + SERVICE_GRACE + STOP_MARGIN

    def scale(self, service: str, tag: str, n: int, ref: str | None = None,
              timeout: float = 30, drain: bool = True) -> list[Instance]:
        """Run exactly ``n`` instances of ``service`` tagged ``tag``: launch the missing ones
        (from ``ref``, else the ref the tag already runs, else the tag itself) in parallel,
        or remove the newest extra ones, gracefully (or with ``drain=False`` the naive way,
        see :meth:`svkill`). Returns the instances running then."""
        if n < 0:
            raise WizardError(f"cannot scale {service} {tag} to {n} instances")
        with self._scale_lock:
            running = self._running(service, tag)
            if len(running) < n:
                ref = ref or (running[-1].ref if running else tag)
                self.progress(f"scaling {service} {tag} from {len(running)} to {n} ({ref})")
                launched = [self._launch(service, tag, ref) for _ in range(n - len(running))]
                errors = self._in_parallel(lambda pair: self._await(*pair, timeout), launched)
                if errors:
                    raise WizardError("; ".join(map(str, errors)))
            elif len(running) > n:
                self.progress(f"scaling {service} {tag} from {len(running)} down to {n}")
                extra = [i.id for i in running[n:]]
                errors = self._in_parallel(lambda i: self._remove(i, False, drain), extra)
                if errors:
                    raise WizardError("; ".join(map(str, errors)))
            if n == 0:
                self._drop_standbys(service, tag)
            return self._running(service, tag)

    def _running(self, service: str, tag: str) -> list[Instance]:
        phases = {s.instance: s.phase for s in self.status()}
        return [i for i in self.state.instances() if i.service == service and i.tag == tag
                and i.id in phases and phases[i.id] not in LEAVING]

    @staticmethod
    def _in_parallel(work: Callable, items: list) -> list[Exception]:
        """Run ``work`` on every item at once (launch waits, drains); return the errors."""
        def attempt(item):
            try:
                work(item)
            except Exception as error:  # noqa: BLE001 - collected and reported together
                return error
            return None

        with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
            return [error for error in pool.map(attempt, items) if error is not None]

    def close(self) -> None:
        """Gracefully remove every instance this Wizard object started (its standbys too)."""
        with self._standby_lock:
            self._closed = True
        started = [i.id for i in self.state.instances() if i.id in self._started]
        errors = self._in_parallel(lambda i: self._remove(i, now=False), started)
        if errors:
            raise WizardError("; ".join(map(str, errors)))

    def down(self, force: bool = False, infrastructure: bool = False) -> list[str]:
        """Remove everything of this workdir: every instance in the state file, and every
        instance the runtimes still find by their labels (after a crash), then the file.
        ``force`` also works when the state file is damaged; ``infrastructure`` also removes
        the stack's Directory and database."""
        with self._standby_lock:
            self._closed = True
        try:
            instances = self.state.instances()
        except StateError:
            if not force:
                raise
            instances = []
        removed = []
        for instance in instances:
            if instance.handle:
                self._runtime(instance.runtime).kill(Handle.from_dict(instance.handle))
                self._deregister(instance)
            removed.append(instance.id)
        needed = {self.runtime.name} | {i.runtime for i in instances}
        for name in sorted(RUNTIMES):  # after a crash, anything may be anywhere
            try:
                removed += self._runtime(name).cleanup(self.workdir, infrastructure)
            except (ImportError, WizardError) as error:
                if name in needed:
                    raise
                if force:
                    self.progress(f"skipped the {name} runtime: {error}")
        self.state.reset()
        shutil.rmtree(self.workdir / "instances", ignore_errors=True)  # their fault orders too
        (self.workdir / STACK_FAULTS_FILE).unlink(missing_ok=True)  # "the Directory stopped"
        self._started.clear()
        for line in removed:
            self.progress(f"removed {line}")
        return removed

    # --- looking ------------------------------------------------------------------------

    def status(self) -> list[InstanceStatus]:
        """Every instance of this workdir, oldest first, with its current phase."""
        listed = self._listed(None)
        rows = []
        for instance in self.state.instances():
            if instance.phase == Phase.STANDBY:
                continue  # not launched yet: waits for a launch to take it
            phase, reason, address = Phase(instance.phase), instance.reason, instance.address
            if instance.handle and phase == Phase.STARTED:
                handle = Handle.from_dict(instance.handle)
                written = read_phase(handle)
                phase = Phase(written.get("phase", Phase.INITIALIZING))
                reason, address = written.get("reason", ""), written.get("address", address)
                if phase not in (Phase.FAILED, Phase.STOPPED) and not self._runtime(
                        instance.runtime).is_running(handle):
                    phase, reason = Phase.FAILED, reason or "the supervisor is gone"
                elif instance.id in listed and phase in SERVING:
                    phase = Phase.REGISTERED
            rows.append(InstanceStatus(
                instance=instance.id, service=instance.service, tag=instance.tag,
                ref=instance.ref, commit=instance.short_commit, runtime=instance.runtime,
                address=address, phase=phase, reason=reason,
                faults=tuple(instance_faults(instance.id, instance.instance_dir))))
        return rows

    def logs(self, instance_id: str | None = None, lines: int = 50) -> str:
        """The last ``lines`` lines of one instance's log, or of every instance's."""
        instances = self.state.instances()
        if instance_id is not None:
            instances = [i for i in instances if i.id == instance_id]
            if not instances:
                raise WizardError(f"no instance {instance_id!r} in {self.workdir} "
                                  "(see `mwkit status`)")
        parts = []
        for instance in instances:
            if instance.handle:
                text = self._runtime(instance.runtime).logs(Handle.from_dict(instance.handle),
                                                            lines)
            else:
                text = instance.reason
            parts.append(text if instance_id else f"==> {instance.id} <==\n{text}")
        return "\n".join(parts)

    # --- helpers ------------------------------------------------------------------------

    def _runtime(self, name: str) -> Runtime:
        if name not in self._runtimes:
            self._runtimes[name] = get_runtime(name)
        return self._runtimes[name]

    def _directory_url(self) -> str:
        if not self.directory_url:
            raise WizardError(
                "no Directory to register instances with: start the stack with `mwkit up`, "
                f"or pass directory_url= (CLI: --directory, or MWKIT_DIRECTORY_URL); looked in "
                f"{self.workdir / 'stack.json'} too"
            )
        return self.directory_url

    def _listed(self, service: str | None) -> set[str]:
        """Instance ids the Directory lists (for ``service``, or all); empty when unreachable."""
        if not self.directory_url:
            return set()
        with directory_client(self.directory_url, self.token, timeout=1.0) as client:
            try:
                services = client.services()
            except DirectoryError:
                return set()
        return {i["id"] for name, items in services.items() for i in items
                if service in (None, name)}

    def _deregister(self, instance: Instance) -> None:
        """Best effort: a failed or removed instance must not stay in the Directory."""
        if not self.directory_url:
            return
        with directory_client(self.directory_url, self.token, timeout=1.0) as client, \
                contextlib.suppress(DirectoryError):
            client.deregister(instance.service, instance.id)
