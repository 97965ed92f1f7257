"""Figure 7: the notebook series under nbval, wall time, per runtime.

Runs the same command as ``make test`` does for the notebooks (``pytest --nbval-lax``
with the series' sanitizer) once per runtime: processes with SQLite, and Docker with
MariaDB as ``make test-notebooks-docker`` does. Every notebook present is run; the report
says which ones were missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import REPO, Figure, Metric, below

NOTEBOOKS = REPO / "notebooks"
SERIES = ("00", "01", "02", "03", "04", "05", "06", "07", "08")  # README's numbered series
RUNTIMES = {"process": ({"MWKIT_RUNTIME": "process", "MWKIT_DB": "sqlite"}, 180.0),
            "docker": ({"MWKIT_RUNTIME": "docker", "MWKIT_DB": "mariadb"}, 360.0)}


def nbval(notebooks: list[Path], env: dict[str, str], timeout: float,
          log: Path) -> tuple[float, int]:
    """Seconds the series took and pytest's exit code (124 when it ran out of time)."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
               "--nbval-sanitize-with", str(NOTEBOOKS / "sanitize.cfg"),
               *map(str, notebooks)]
    began = time.monotonic()
    with open(log, "wb") as output:
        try:
            code = subprocess.run(command, cwd=REPO, env={**os.environ, **env},
                                  stdout=output, stderr=subprocess.STDOUT,
                                  timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = 124
    return time.monotonic() - began, code


def run(quick: bool, scratch: Path, runtimes: tuple[str, ...] = ("process", "docker"),
        numbers: tuple[str, ...] = ()) -> Figure:
    figure = Figure(7, "the notebook series under nbval, wall time")
    present = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if numbers:  # a part of the series (the tests run one notebook)
        present = [p for p in present if p.name[:2] in numbers]
    missing = [n for n in SERIES if not any(p.name.startswith(n) for p in present)]
    if missing and not numbers:
        figure.notes.append(f"notebooks missing when measured: {', '.join(missing)}; the time "
                            f"is for the {len(present)} present")
    for runtime in runtimes:
        env, limit = RUNTIMES[runtime]
        log = scratch / f"nbval-{runtime}.log"
        seconds, code = nbval(present, env, limit * 2, log)
        figure.add(Metric(f"{runtime}: {len(present)} notebooks under nbval", "s", [seconds],
                          target=f"< {limit / 60:.0f} min", check=below(limit),
                          note="passed" if code == 0 else f"pytest exit code {code}"))
        if code != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            figure.notes.append(f"{runtime}: nbval failed ({code}): {' / '.join(tail)}")
    return figure
