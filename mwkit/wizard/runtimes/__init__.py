"""Runtimes: where an instance runs. ``process``, ``docker``, or ``auto`` to let the kit pick.

``get_runtime(name)`` makes one (``name`` else ``$MWKIT_RUNTIME`` else ``auto``);
``choose_runtime(name)`` also says, in one line, which one it picked and why. A new
runtime is one new module with a class that implements :class:`Runtime`, and one line in
``RUNTIMES``: nothing else in the kit names a runtime. The Docker runtime's module imports
the Docker SDK only when it is chosen.
"""

from __future__ import annotations

import importlib
import os

from mwkit.errors import RuntimeUnavailable, WizardError
from mwkit.wizard.runtimes.base import Handle, LaunchPlan, Runtime

RUNTIMES = {
    "process": "mwkit.wizard.runtimes.process:ProcessRuntime",
    "docker": "mwkit.wizard.runtimes.docker:DockerRuntime",
    "swarm": "mwkit.wizard.runtimes.swarm:SwarmRuntime",
}
#: What ``auto`` tries, best first; the last one must always be available.
AUTO_ORDER = ("docker", "process")

__all__ = ["RUNTIMES", "Handle", "LaunchPlan", "Runtime", "WizardError", "choose_runtime",
           "get_runtime", "runtime_class"]


def runtime_class(name: str) -> type:
    """The class of the runtime called ``name``."""
    if name not in RUNTIMES:
        raise WizardError(
            f"unknown runtime {name!r} (from --runtime or MWKIT_RUNTIME); known runtimes: "
            f"auto, {', '.join(sorted(RUNTIMES))}"
        )
    module_name, class_name = RUNTIMES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def choose_runtime(name: str | None = None) -> tuple[Runtime, str]:
    """The runtime called ``name`` (else ``$MWKIT_RUNTIME``, else ``auto``) and why it runs.

    ``auto`` takes the first runtime of ``AUTO_ORDER`` that is ready here (for Docker: an
    engine answers and the kit's images are built); the reason says what the others lack.
    """
    name = name or os.environ.get("MWKIT_RUNTIME") or "auto"
    if name != "auto":
        return runtime_class(name)(), f"{name}: asked for (--runtime or MWKIT_RUNTIME)"
    not_ready = []
    for candidate in AUTO_ORDER:
        cls = runtime_class(candidate)
        why_not = cls.not_ready()
        if why_not is None:
            skipped = f"; {'; '.join(not_ready)}" if not_ready else ""
            return cls(), f"{candidate}: chosen automatically{skipped}"
        not_ready.append(f"not {candidate}: {why_not}")
    raise RuntimeUnavailable("no runtime can run here: " + "; ".join(not_ready))


def get_runtime(name: str | None = None) -> Runtime:
    """The runtime called ``name`` (else ``$MWKIT_RUNTIME``, else ``auto``)."""
    return choose_runtime(name)[0]
