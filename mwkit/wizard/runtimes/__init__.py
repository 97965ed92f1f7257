"""Runtimes: where an instance runs. ``process`` (the default) or ``docker``.

Choose one with ``get_runtime(name)``, else the environment variable ``MWKIT_RUNTIME``.
The Docker runtime's module imports the Docker SDK only when it is chosen.
"""

from __future__ import annotations

import importlib
import os

from mwkit.wizard.runtimes.base import Handle, LaunchPlan, Runtime, WizardError

RUNTIMES = {
    "process": "mwkit.wizard.runtimes.process:ProcessRuntime",
    "docker": "mwkit.wizard.runtimes.docker:DockerRuntime",
}

__all__ = ["RUNTIMES", "Handle", "LaunchPlan", "Runtime", "WizardError", "get_runtime"]


def get_runtime(name: str | None = None) -> Runtime:
    """The runtime called ``name`` (else ``$MWKIT_RUNTIME``, else ``process``)."""
    name = name or os.environ.get("MWKIT_RUNTIME") or "process"
    if name not in RUNTIMES:
        raise WizardError(
            f"unknown runtime {name!r} (from the argument or MWKIT_RUNTIME); "
            f"known runtimes: {', '.join(sorted(RUNTIMES))}"
        )
    module_name, class_name = RUNTIMES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)()
