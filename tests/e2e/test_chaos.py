"""The chaos suite (mwkit/chaos.py) on real stacks, and the kit fixes it led to."""

from __future__ import annotations

import os
import signal

from mwkit import procs
from tests.e2e.test_supervisor import phase, start
from tests.helpers.wizard import wait_until


def test_a_killed_supervisor_takes_its_service_with_it(tmp_path, directory):
    """kill -9 of an instance's supervisor (and so of its Watson, a thread in it) must not
    leave the service running unseen: nobody would renew its lease or ever stop it."""
    proc, state_dir, _ = start(tmp_path, directory)
    try:
        wait_until(lambda: phase(state_dir).get("phase") == "live", 15, "phase live")
        service = phase(state_dir)["service_pid"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
        wait_until(lambda: not procs.process_alive(service), 3, "the service gone")
    finally:
        procs.stop_group(proc, grace=1)
