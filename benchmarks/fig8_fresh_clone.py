"""Figure 8: README command 1 (``make demo``) from a fresh clone: setup time, demo time.

The repository is cloned (committed files only) into a scratch folder; ``make venv`` there
is the setup (a new virtual environment, mwkit and its dependencies; pip may use this
machine's cache), then ``make demo`` is the demo itself, on local processes.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from benchmarks.common import REPO, Figure, Metric, below


def timed(command: list[str], cwd: Path, log: Path, timeout: float) -> tuple[float, int]:
    began = time.monotonic()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH",
                                                            "MWKIT_RUNTIME", "MWKIT_DB")}
    with open(log, "ab") as output:
        try:
            code = subprocess.run(command, cwd=cwd, env=env, stdout=output,
                                  stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = 124
    return time.monotonic() - began, code


def run(quick: bool, scratch: Path) -> Figure:
    figure = Figure(8, "README command 1 (make demo) from a fresh clone")
    clone = scratch / "clone"
    log = scratch / "fresh-clone.log"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True,
                   timeout=120)
    try:
        setup, code = timed(["make", "venv"], clone, log, 900)
        if code != 0:
            raise RuntimeError(f"make venv failed ({code}) in the fresh clone; see {log}")
        demo, code = timed(["make", "demo"], clone, log, 300)
        if code != 0:
            raise RuntimeError(f"make demo failed ({code}) in the fresh clone; see {log}")
    finally:
        subprocess.run(["make", "down"], cwd=clone, capture_output=True, timeout=120)
    figure.add(Metric("setup (make venv: venv + pip install -e .[dev])", "s", [setup]),
               Metric("demo (make demo after setup)", "s", [demo], target="< 60 s",
                      check=below(60)))
    figure.notes.append("clone of the committed tree; pip used this machine's cache, so the "
                        "setup time is a warm-cache time")
    return figure
