"""A stack's watchdog: when the program that made a stack dies, the stack goes with it.

Why: a notebook kernel that dies (JupyterLab closed, a crash, ``kill -9``) runs no clean-up
code. The Directory, the database, the monolith and the instances it started run in
sessions of their own (so that Ctrl-C in one cell does not kill them), and they would keep
running until someone types ``mwkit down``; on a shared server, every abandoned kernel
would leave half a dozen processes or containers behind.

So :meth:`mwkit.Stack.up` first starts this small process, in a session of its own too,
and tells it who its owner is (a pid and that process's create time, so that a pid reused
by another program is not taken for the owner). The owner is the process that made the
stack, or the one it names: ``mwkit up --detach --owner PID`` (``Stack(owner=PID)``) lets a
notebook start its stack from a terminal command (``!mwkit up ...``, a child process that
ends at once) and still have it go with the notebook's kernel. Twice a second it checks
that the owner still runs. Once the owner is gone, it removes the stack
(:func:`mwkit.stack.teardown`, for both runtimes and every part) and exits. A normal
``Stack.down()`` or ``mwkit down`` stops the watchdog first, and it then exits doing
nothing. A stack started with ``detach=True`` (``mwkit up --detach``) and no owner has no
watchdog: it runs until ``mwkit down``.

    python -m mwkit.watchdog WORKDIR OWNER_PID OWNER_CREATED

Its log is ``<workdir>/watchdog.log``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mwkit import procs
from mwkit.errors import StackError
from mwkit.settings import KIT_ROOT
from mwkit.wizard.runtimes import process

LOG = "watchdog.log"
INTERVAL = 0.5  # seconds between two looks at the owner


def start(workdir: Path, owner: int) -> subprocess.Popen:
    """Start the watchdog of ``workdir``'s stack, made by process ``owner``.

    It carries the process runtime's marks (role ``watchdog``), so ``mwkit down`` finds it
    even when ``stack.json`` is lost. An ``owner`` that does not run is refused: nothing
    would ever take the stack down.
    """
    created = procs.create_time(owner)
    if created is None:
        raise StackError(f"process {owner} does not run: it cannot own a stack")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(KIT_ROOT),
                                                      os.environ.get("PYTHONPATH")])),
           **process.marks(workdir, "watchdog")}
    return procs.spawn(
        procs.python_command("-m", "mwkit.watchdog", str(Path(workdir).resolve()), str(owner),
                             repr(created)),
        log_path=Path(workdir) / LOG, env=env)


def stop(watchdog: subprocess.Popen | int | None, created: float | None = None) -> None:
    """Stop a watchdog (our child, or a pid with its create time), never this process,
    and never a pid whose create time is unknown or different (another program by now)."""
    if isinstance(watchdog, int):
        if watchdog == os.getpid() or created is None or \
                not procs.process_alive(watchdog, created):
            return
    elif watchdog is None:
        return
    procs.stop_group(watchdog, grace=5)


def watch(workdir: Path, owner: int, created: float, log=print) -> None:
    """Wait while ``owner`` runs; then remove ``workdir``'s stack."""
    from mwkit.stack import teardown

    log(f"watching pid {owner}: when it is gone, the stack of {workdir} goes too")
    while procs.process_alive(owner, created):
        time.sleep(INTERVAL)
    log(f"pid {owner} is gone: taking its stack down")
    teardown(workdir, force=True, progress=log)
    log("done")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mwkit.watchdog", description=__doc__)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("owner", type=int, help="the pid of the process that made the stack")
    parser.add_argument("created", type=float, help="its create time (psutil)")
    args = parser.parse_args(argv)
    # Whatever this process starts is not part of the stack: teardown must not take it
    # (and with it this process's group) for a leftover.
    os.environ.pop(process.MARK, None)

    def log(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} watchdog {os.getpid()}: {line}", flush=True)

    def stopped(*_) -> None:
        log("stopped: the stack was taken down by its owner or by `mwkit down`")
        sys.exit(0)

    signal.signal(signal.SIGTERM, stopped)
    watch(args.workdir, args.owner, args.created, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
