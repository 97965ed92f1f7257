"""The demo stack: the Directory, the database and the monolith, with popularity beside.

``Stack`` brings up, in order, what the Lobsters monolith needs before anyone reloads
``/popular``: a Directory (where instances register), a database (SQLite by default, or
MariaDB), and the monolith itself, deployed by the wizard like any other service. Then
popularity instances come and go through :meth:`Stack.scale`, and :meth:`Stack.reloads`
sends page reloads at the monolith while they do.

    with Stack() as stack:              # the embedded default: processes and SQLite
        stack.scale(3)
        with stack.reloads(rate=10, duration=5) as reloads:
            ...

Everything started is removed on exit, on error, and by ``mwkit down`` after a crash.
And when the program that made the stack dies without a word (a notebook kernel killed,
JupyterLab closed), the stack's watchdog (:mod:`mwkit.watchdog`) removes it within a
second or so; ``detach=True`` (``mwkit up --detach``) keeps a stack until ``mwkit down``,
and ``owner=PID`` (``mwkit up --detach --owner PID``) until then or until that process ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mwkit import watchdog
from mwkit.errors import StackError
from mwkit.links import browser_link
from mwkit.procs import create_time, process_alive
from mwkit.settings import Settings
from mwkit.wizard.runtimes import choose_runtime
from mwkit.wizard.source import UNCOMMITTED
from mwkit.wizard.wizard import Wizard

STACK_FILE = "stack.json"
MONOLITH = "lobsters"
SERVICE = "popularity"


def describe_database(url: str) -> str:
    """A database URL without its password, for people."""
    head, at, tail = url.rpartition("@")
    return f"{head.rpartition(':')[0]}:***@{tail}" if at else url


class Stack:
    """Directory + database + monolith on one runtime, and popularity scaled beside them.

    Every argument left out comes from ``settings`` (default: ``Settings.from_env()``, the
    ``MWKIT_*`` variables and the kit's defaults).
    """

    def __init__(
        self,
        workdir: Path | str | None = None,
        runtime: str | None = None,
        database: str | None = None,
        policy: str | None = None,
        progress: Callable[[str], None] | None = None,
        foreground: bool = False,
        settings: Settings | None = None,
        detach: bool = False,
        owner: int | None = None,
        retries: int | None = None,
        eject: bool | None = None,
        registry: str | None = None,
        outlier_5xx: int | None = None,
        retry_budget: float | None = None,
        hedge: float | None = None,
        deadline: float | None = None,
        retry_5xx: bool | None = None,
        standby: bool = False,
    ) -> None:
        """``foreground``: this process only serves the stack and stops it on SIGTERM (as
        ``mwkit up`` does), so ``mwkit down`` may ask it to. A notebook kernel may not be
        signalled: ``down`` then removes the stack's parts itself.

        ``detach``: the stack outlives this process (no watchdog); only ``down()`` or
        ``mwkit down`` removes it. ``owner``: a pid; the stack outlives this process, as
        with ``detach``, but its watchdog removes it once process ``owner`` is gone (a
        notebook kernel that ran ``!mwkit up --detach --owner {os.getpid()}``).

        ``policy``, ``retries``, ``eject``, ``outlier_5xx``, ``retry_budget``, ``hedge``,
        ``deadline`` and ``retry_5xx`` are the monolith's Sherlock's settings (see
        :class:`mwkit.sherlock.Sherlock`; the last five are off unless given or set in
        the environment); :meth:`use_sherlock` changes them later.

        ``registry``: where instances register, the kit's Directory (``"directory"``), a
        three-member etcd cluster this stack starts (``"etcd"``), or a running etcd
        cluster's ``etcd://`` URL (see :mod:`mwkit.directory.etcd`).

        ``standby``: the wizard keeps one instance per tag started ahead, so that scaling up
        only tells it to go (see :class:`mwkit.wizard.Wizard`)."""
        self.settings = (settings or Settings.from_env()).replace(
            workdir=workdir, runtime=runtime, database=database, policy=policy,
            retries=retries, eject=eject, registry=registry, outlier_5xx=outlier_5xx,
            retry_budget=retry_budget, hedge=hedge, deadline=deadline, retry_5xx=retry_5xx)
        self.workdir = self.settings.workdir
        self.runtime, self.runtime_reason = choose_runtime(self.settings.runtime)
        self.database = self.settings.database
        self.progress = progress or (lambda line: None)
        self.foreground = foreground
        self.detach = detach or owner is not None
        self.owner = owner
        self.standby = standby
        #: What the Directory's writes need (register, renew, deregister): the one given in
        #: settings (MWKIT_DIRECTORY_TOKEN), else a random one. Reads stay open.
        self.directory_token = self.settings.directory_token or secrets.token_urlsafe(24)
        self.directory_url: str | None = None
        self.etcd = None  # the EtcdCluster, when this stack started one (registry="etcd")
        self.database_url: str | None = None
        self.monolith_url: str | None = None
        self.wizard: Wizard | None = None
        self._resources = contextlib.ExitStack()
        self._watchdog = None  # the watchdog process (a Popen), while the stack is up
        self._released = threading.Event()  # set by down(): see _outlive_this_process

    @property
    def policy(self) -> str:
        """How the monolith's Sherlock balances."""
        return self.settings.policy

    @property
    def retries(self) -> int:
        """How many other instances the monolith's Sherlock tries after a refusal."""
        return self.settings.retries

    @property
    def eject(self) -> bool:
        """Whether the monolith's Sherlock leaves out an instance that refused a call."""
        return self.settings.eject

    def __repr__(self) -> str:
        return f"Stack(workdir={str(self.workdir)!r}, runtime={self.runtime.name!r})"

    # --- bringing it up ---------------------------------------------------------------

    def up(self) -> Stack:
        """Start the Directory, the database and the monolith; on any failure, undo it all.

        The watchdog comes first: if this process dies at any moment from now on, what it
        started so far is removed.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.progress(f"runtime: {self.runtime_reason}")
        try:
            if self.detach:
                self._outlive_this_process()
            if self.owner is not None or not self.detach:
                self._watchdog = watchdog.start(self.workdir, self.owner or os.getpid())
            self._start_directory()
            self._start_database()
            self.wizard = Wizard(self.workdir, runtime=self.runtime,
                                 directory_url=self.directory_url, token=self.directory_token,
                                 database_url=self.database_url, progress=self.progress,
                                 standby=self.standby)
            self._write_stack_file()
            self._start_monolith()
        except BaseException:
            self.down()
            raise
        return self

    def _outlive_this_process(self) -> None:
        """Keep a detached stack's database running after this process has let go of it.

        The database is a context manager: Python would stop the server when it frees the
        context (the Stack forgotten, or Python exiting). A daemon thread that holds it is
        never freed: at exit, Python abandons such threads as they are.
        """
        self._released.clear()
        threading.Thread(target=lambda held: self._released.wait(), args=(self._resources,),
                         name="mwkit-detached-stack", daemon=True).start()

    def _start_monolith(self) -> None:
        self.progress(f"starting the monolith ({MONOLITH}, Sherlock policy {self.policy}, "
                      f"retries {self.retries}, {'' if self.eject else 'no '}ejection)")
        monolith = self.wizard.svrun(MONOLITH, "monolith", UNCOMMITTED, timeout=60,
                                     env=self.settings.sherlock_env())
        self.monolith_url = monolith.url
        self._write_stack_file()
        self.progress(f"the monolith answers at "
                      f"{browser_link(f'{self.monolith_url}/popular', self.settings)}")

    def use_sherlock(self, policy: str | None = None, retries: int | None = None,
                     eject: bool | None = None, *, outlier_5xx: int | None = None,
                     retry_budget: float | None = None, hedge: float | None = None,
                     deadline: float | None = None, retry_5xx: bool | None = None) -> None:
        """Restart the monolith with its Sherlock's ``policy``, ``retries``, ``eject``,
        ``outlier_5xx``, ``retry_budget``, ``hedge``, ``deadline`` or ``retry_5xx`` changed
        (those left out, None, stay as they are; 0 or False turns one of the last five off).

        These are the client's own settings, as a library's would be: changing them means
        restarting the process that uses them. A wrong value fails here, with nothing
        restarted. ``use_sherlock(retries=0, eject=False)`` shows what a router that only
        follows the Directory does when an instance goes away.
        """
        self.settings = self.settings.replace(
            policy=policy, retries=retries, eject=eject, outlier_5xx=outlier_5xx,
            retry_budget=retry_budget, hedge=hedge, deadline=deadline, retry_5xx=retry_5xx)
        self.wizard.scale(MONOLITH, "monolith", 0)
        self._start_monolith()

    def _start_directory(self) -> None:
        registry = self.settings.registry
        if registry != "directory" and not hasattr(self.runtime, "start_etcd"):
            raise StackError(f"registry {registry!r} needs a runtime that runs etcd, and the "
                             f"{self.runtime.name} runtime does not yet (etcd would listen on "
                             f"this machine's loopback, which its instances cannot reach): use "
                             f"--runtime process, or the kit's Directory")
        if registry.startswith("etcd://"):
            self.directory_url = registry
            self.progress(f"instances register in the etcd cluster {registry}")
        elif registry == "etcd":
            self._start_etcd()
        else:
            self._start_kit_directory()

    def _start_etcd(self) -> None:
        self.progress(f"starting a three-member etcd cluster as the Directory, on the "
                      f"{self.runtime.name} runtime")
        cluster = self._resources.enter_context(self.runtime.start_etcd(self.workdir))
        self.etcd = cluster
        self.directory_url = cluster.url
        self.progress(f"etcd answers at {cluster.url} (reads and writes are open on "
                      f"this machine: this etcd runs without authentication)")

    def _start_kit_directory(self) -> None:
        self.progress(f"starting the Directory on the {self.runtime.name} runtime")
        directory = self.runtime.start_directory(self.workdir, self.directory_token)
        self._resources.callback(self.runtime.kill, directory.handle)
        self.directory_url = directory.url
        self.progress(f"the Directory answers at {directory.url} (reads are open; writes "
                      f"need its token, kept in {self.workdir / STACK_FILE}, yours only)")

    def _start_database(self) -> None:
        if "://" in self.database:
            self.database_url = self.database
        elif self.database == "sqlite":
            from mwkit.wizard.database import sqlite_url

            path = self.workdir / "data" / "lobsters.db"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.database_url = sqlite_url(path)
        else:
            self.progress(f"starting a private MariaDB server on the {self.runtime.name} "
                          "runtime")
            self.database_url = self._resources.enter_context(
                self.runtime.database(self.workdir))
        self.progress(f"database: {describe_database(self.database_url)}")

    def _write_stack_file(self) -> None:
        """What ``mwkit svrun`` and friends read to find this stack from another process;
        readable by its owner only, since it holds the Directory's token and the database
        URL MariaDB's password."""
        from mwkit.wizard.state import write_private

        owner = os.getpid() if self.foreground else None
        guard = self._watchdog.pid if self._watchdog else None
        info = {"runtime": self.runtime.name, "registry": self.settings.registry,
                "directory_url": self.directory_url,
                "directory_token": self.directory_token,
                "database_url": self.database_url, "monolith_url": self.monolith_url,
                **self.settings.sherlock_options(), "up_pid": owner,
                "up_created": create_time(owner) if owner else None,
                "watchdog_pid": guard, "watchdog_created": create_time(guard) if guard else None}
        write_private(self.workdir / STACK_FILE, json.dumps(info, indent=2))

    # --- using it ---------------------------------------------------------------------

    def scale(self, n: int, tag: str = "v1", ref: str | None = None,
              drain: bool = True) -> list:
        """Run exactly ``n`` popularity instances tagged ``tag`` (from ``ref``, default the
        tag); extra ones are removed gracefully, or with ``drain=False`` the naive way (see
        :meth:`mwkit.wizard.Wizard.svkill`). On a runtime that keeps replicas itself (Docker
        Swarm: :mod:`mwkit.swarm`), this sets the replicas and returns the tasks."""
        if hasattr(self.runtime, "services"):  # the orchestrator scales, not the wizard
            return self.runtime.services(self.workdir, sources=self.wizard.sources,
                                         progress=self.progress).set_replicas(SERVICE, tag, n, ref)
        return self.wizard.scale(SERVICE, tag, n, ref=ref, drain=drain)

    def reloads(self, rate: float = 10.0, duration: float | None = None,
                count: int | None = None):
        """Page reloads of the monolith's ``/popular`` (see :class:`mwkit.traffic.PageReloads`)."""
        from mwkit.traffic import PageReloads

        return PageReloads(f"{self.monolith_url}/popular.json", rate=rate, duration=duration,
                           count=count)

    def directory(self):
        """A client of this stack's Directory (the kit's or etcd) that may write: it holds
        the token."""
        from mwkit.directory import directory_client

        return directory_client(self.directory_url, self.directory_token)

    def events(self):
        """The Directory's events on the traffic's clock (see :class:`mwkit.traffic.EventLog`)."""
        from mwkit.traffic import EventLog

        return EventLog(self.directory_url)

    def status(self) -> list:
        return self.wizard.status() if self.wizard else []

    # --- faults on purpose (see mwkit.faults) -----------------------------------------

    def inject(self, instance_id: str | None, fault: str, **params):
        """Inject ``fault`` into one instance (``None`` for the stack's ``"directory"``):
        ``latency`` (``seconds``, ``fraction``), ``errors`` (``fraction``, ``status``),
        ``fast-fail``, ``hang``, ``lease``, ``crash``, ``directory``. Returns the
        :class:`mwkit.faults.Fault` once it acts; a wrong fault, value or instance raises
        :class:`mwkit.errors.InvalidFault` and changes nothing."""
        return self._faults().inject(instance_id, fault, **params)

    def faults(self) -> list:
        """Every active fault, each with its one-sentence ``sentence``."""
        return self._faults().faults() if self.wizard else []

    def clear(self, instance_id: str | None = None, fault: str | None = None) -> list:
        """Remove the faults of ``instance_id`` (None: all of them), of kind ``fault`` only
        when given; returns the faults removed. ``down()`` removes them all too."""
        return self._faults().clear(instance_id, fault) if self.wizard else []

    def _faults(self):
        from mwkit.faults import FaultInjector

        if self.wizard is None:
            raise StackError("the stack is not up: no instance to inject a fault into")
        return FaultInjector(self.wizard)

    # --- taking it down ---------------------------------------------------------------

    def down(self) -> None:
        """Remove every instance, the monolith, the database and the Directory, and then
        stop the watchdog (last: should this process die meanwhile, it finishes the job)."""
        try:
            if self.wizard is not None:
                self.wizard.down()
        finally:
            self._resources.close()
            self._released.set()
            watchdog.stop(self._watchdog)
            self._watchdog = None
            self.runtime.cleanup(self.workdir, infrastructure=True)  # and the network
            (self.workdir / STACK_FILE).unlink(missing_ok=True)

    def __enter__(self) -> Stack:
        return self.up()

    def __exit__(self, *exc_info) -> None:
        self.down()


def teardown(workdir: Path | str | None = None, force: bool = False,
             progress: Callable[[str], None] = print) -> list[str]:
    """Remove whatever a stack of ``workdir`` left running, also after a crash.

    The stack's watchdog is stopped first (unless this is the watchdog), so that it does
    not race us. A running ``mwkit up`` is asked to stop (it cleans up after itself): only
    when the recorded pid is still the process that wrote the file (same create time),
    never a program that got its pid later. Then every instance, Directory and database the
    runtimes still find by their marks and labels is removed, and the stack's files with
    them.
    """
    workdir = Settings.from_env(workdir=workdir).workdir
    path = workdir / STACK_FILE
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        info = {}
    except ValueError:
        if not force:
            raise StackError(f"{path} is damaged: run `mwkit down --force`") from None
        info = {}
    watchdog.stop(info.get("watchdog_pid"), info.get("watchdog_created"))
    owner, created = info.get("up_pid"), info.get("up_created")
    if owner and created and owner != os.getpid() and process_alive(owner, created):
        progress(f"asking the running `mwkit up` (pid {owner}) to stop")
        with contextlib.suppress(ProcessLookupError):
            os.kill(owner, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process_alive(owner, created):
            time.sleep(0.1)
    wizard = Wizard(workdir, runtime=info.get("runtime"), progress=progress)
    removed = wizard.down(force=force, infrastructure=True)
    for leftover in workdir.glob("mariadb-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    path.unlink(missing_ok=True)
    return removed
