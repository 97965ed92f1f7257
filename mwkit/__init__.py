"""mwkit: service discovery and client-side routing, taught by doing it for real.

The parts, each in its own place (see docs/architecture.md):

- :mod:`mwkit.directory`: the Directory, where instances register (leases, push).
- :mod:`mwkit.watson`: Watson, the agent beside each instance.
- :mod:`mwkit.sherlock`: Sherlock, the client-side router.
- :mod:`mwkit.wizard`: the Microwizard, from a Git commit to running instances.
- :mod:`mwkit.stack`, :mod:`mwkit.traffic`, :mod:`mwkit.plots`: the demo and its pictures.

The names below are imported on first use, so that ``import mwkit`` stays cheap (it also
runs inside containers that have neither the Docker SDK nor GitPython).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "DirectoryClient": "mwkit.directory",
    "run_directory": "mwkit.directory",
    "Watson": "mwkit.watson",
    "WatsonConfig": "mwkit.watson",
    "Sherlock": "mwkit.sherlock",
    "NoInstances": "mwkit.sherlock",
    "Wizard": "mwkit.wizard.wizard",
    "Stack": "mwkit.stack",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'mwkit' has no attribute {name!r}")
