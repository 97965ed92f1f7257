"""What every benchmark shares: figures and their metrics, time bounds, the machine.

A benchmark module exposes ``run(quick: bool, scratch: Path) -> Figure``. A
:class:`Figure` holds :class:`Metric` rows; each metric keeps its raw samples (one per
repeated run, call or window, as its ``per`` says) and is summarised by its median and
p99 (nearest rank, as :func:`mwkit.traffic.percentile`). A metric may carry a target
and a ``check`` on its summary; the report then says whether the target was met.
``Metric.summary_json()`` is a metric as ``summary.json`` and ``REPORT.md`` show it;
``to_json()`` adds the raw samples, for ``raw/report.json``.
Timings are printed and reported, never asserted.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mwkit.traffic import percentile

REPO = Path(__file__).resolve().parent.parent


class Deadline:
    """A time budget: loops ask ``left()`` or ``expired`` and stop by themselves."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end


@dataclass
class Metric:
    """One measured quantity: its samples, unit, and (optionally) a target to check."""

    name: str
    unit: str
    samples: list[float]
    per: str = "run"  # what one sample is: a run, a call, a window, a subscriber ...
    target: str = ""  # the target, in words
    check: Callable[[dict], bool] | None = field(default=None, repr=False)
    note: str = ""

    def summary(self) -> dict:
        values = [float(v) for v in self.samples]
        if not values:
            return {"n": 0, "median": None, "p99": None, "min": None, "max": None}
        return {"n": len(values), "median": statistics.median(values),
                "p99": percentile(values, 99), "min": min(values), "max": max(values)}

    @property
    def met(self) -> bool | None:
        """True/False against the target; None when there is no target or no sample."""
        summary = self.summary()
        if self.check is None or not summary["n"]:
            return None
        return bool(self.check(summary))

    def summary_json(self) -> dict:
        """The metric without its samples: its summary, target and verdict."""
        return {"name": self.name, "unit": self.unit, "per": self.per, **self.summary(),
                "target": self.target, "met": self.met, "note": self.note}

    def to_json(self) -> dict:
        """The metric with every sample (rounded to 6 decimals)."""
        return {**self.summary_json(), "samples": [round(float(v), 6) for v in self.samples]}


@dataclass
class Figure:
    """One figure of the issue: its metrics, notes, and how long measuring it took."""

    number: int
    title: str
    metrics: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None  # the benchmark could not finish: why

    def add(self, *metrics: Metric) -> None:
        self.metrics.extend(metrics)

    def to_json(self) -> dict:
        return {"number": self.number, "title": self.title, "seconds": round(self.seconds, 1),
                "error": self.error, "notes": self.notes,
                "metrics": [m.to_json() for m in self.metrics]}


def command_version(command: list[str]) -> str:
    """The first line a ``--version`` style command prints ('' when it is missing)."""
    if not shutil.which(command[0]):
        return ""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else ""


def machine() -> dict:
    """The machine the figures were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory_gib = round(kib / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory_gib,
        "kernel": platform.release(), "python": platform.python_version(),
        "etcd": command_version(["etcd", "--version"]),
        "haproxy": command_version(["haproxy", "-v"]),
        "docker": command_version(["docker", "version", "--format",
                                   "{{.Server.Version}}"]),
    }


def ms(seconds: float) -> float:
    return seconds * 1000.0


def below(limit: float, key: str = "p99") -> Callable[[dict], bool]:
    """A check: the summary's ``key`` is below ``limit``."""
    return lambda summary: summary[key] is not None and summary[key] < limit


def at_least(limit: float, key: str = "median") -> Callable[[dict], bool]:
    return lambda summary: summary[key] is not None and summary[key] >= limit
