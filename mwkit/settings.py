"""The kit's settings: every default in one place, every ``MWKIT_*`` variable read once.

The CLI, :class:`mwkit.Stack`, :class:`mwkit.Wizard` and the notebooks all start from
``Settings.from_env()`` and override what they were given explicitly, so a value means the
same thing wherever it is set (like Flask's one ``FLASK_`` prefix)::

    MWKIT_WORKDIR          where a stack keeps its state (default: see below)
    MWKIT_RUNTIME          auto (the default), process or docker
    MWKIT_DB               sqlite (the default), mariadb, or a mysql:// URL
    MWKIT_SHERLOCK_POLICY  how the monolith's Sherlock balances (default: round_robin)
    MWKIT_DIRECTORY_URL    a Directory to use instead of the stack's
    MWKIT_DIRECTORY_TOKEN  the token the Directory's writes need
    MWKIT_DEBUG            1: the CLI shows tracebacks

The default workdir is ``.mwkit`` at the root of the kit's repository when the kit runs
from a checkout (so the notebooks, ``mwkit down`` and ``make down`` agree wherever they run
inside it), else ``.mwkit`` in the current folder.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mwkit.errors import SettingsError
from mwkit.sherlock.policies import DEFAULT_POLICY, POLICIES

KIT_ROOT = Path(__file__).resolve().parent.parent
WORKDIR_NAME = ".mwkit"
DEFAULT_DATABASE = "sqlite"
DATABASES = ("sqlite", "mariadb")
DEFAULT_RUNTIME = "auto"
TRUE = ("1", "true", "yes", "on")


def default_workdir(cwd: Path | None = None) -> Path:
    """``<kit checkout>/.mwkit`` when ``cwd`` is inside the kit's checkout, else ``./.mwkit``."""
    cwd = (cwd or Path.cwd()).resolve()
    if (KIT_ROOT / "pyproject.toml").exists() and cwd.is_relative_to(KIT_ROOT):
        return KIT_ROOT / WORKDIR_NAME
    return cwd / WORKDIR_NAME


@dataclass(frozen=True)
class Settings:
    """What a stack and its wizard run with; ``replace()`` gives a changed copy."""

    workdir: Path = dataclasses.field(default_factory=default_workdir)
    runtime: str = DEFAULT_RUNTIME
    database: str = DEFAULT_DATABASE
    policy: str = DEFAULT_POLICY
    directory_url: str | None = None
    directory_token: str | None = None
    debug: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "workdir", Path(self.workdir).resolve())
        if self.database not in DATABASES and "://" not in self.database:
            raise SettingsError(f"database (MWKIT_DB or --db) must be one of "
                                f"{', '.join(DATABASES)} or a mysql:// URL, not "
                                f"{self.database!r}")
        if self.policy not in POLICIES:
            raise SettingsError(f"policy (MWKIT_SHERLOCK_POLICY or --policy) must be one of "
                                f"{', '.join(sorted(POLICIES))}, not {self.policy!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Defaults, then ``MWKIT_*`` variables, then ``overrides`` that are not None."""
        env = os.environ if env is None else env
        values = {
            "workdir": env.get("MWKIT_WORKDIR") or None,
            "runtime": env.get("MWKIT_RUNTIME") or None,
            "database": env.get("MWKIT_DB") or None,
            "policy": env.get("MWKIT_SHERLOCK_POLICY") or None,
            "directory_url": env.get("MWKIT_DIRECTORY_URL") or None,
            "directory_token": env.get("MWKIT_DIRECTORY_TOKEN") or None,
            "debug": env.get("MWKIT_DEBUG", "").lower() in TRUE,
        }
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SettingsError(f"unknown setting(s) {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: v for k, v in values.items() if v is not None})

    def replace(self, **changes) -> Settings:
        """A copy with ``changes`` (those that are None are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
