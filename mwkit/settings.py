"""The kit's settings: every default in one place, every ``MWKIT_*`` variable read once.

The CLI, :class:`mwkit.Stack`, :class:`mwkit.Wizard` and the notebooks all start from
``Settings.from_env()`` and override what they were given explicitly, so a value means the
same thing wherever it is set (like Flask's one ``FLASK_`` prefix)::

    MWKIT_WORKDIR          where a stack keeps its state (default: see below)
    MWKIT_RUNTIME          auto (the default), process or docker
    MWKIT_DB               sqlite (the default), mariadb, or a mysql:// URL
    MWKIT_SHERLOCK_POLICY  how the monolith's Sherlock balances (default: round_robin)
    MWKIT_SHERLOCK_RETRIES how many other instances it tries after a refusal (default: 1)
    MWKIT_SHERLOCK_EJECT   1 (the default): it leaves out an instance that refused; 0: never
    MWKIT_SHERLOCK_OUTLIER_5XX   N: it leaves out an instance after N 5xx in a row (0: off)
    MWKIT_SHERLOCK_RETRY_BUDGET  retries at most this share of the calls, 0.2 (0: no budget)
    MWKIT_SHERLOCK_HEDGE         hedge a call slower than this latency quantile, 0.95 (0: off)
    MWKIT_SHERLOCK_DEADLINE      seconds a call may take, told to the instance (0: none)
                           (all four off by default: see mwkit.sherlock.guards)
    MWKIT_REGISTRY         directory (the default: the kit's own Directory), etcd (a
                           three-member etcd cluster the stack starts), or the etcd://
                           URL of a cluster that runs already
    MWKIT_DIRECTORY_URL    a Directory to use instead of the stack's
    MWKIT_DIRECTORY_TOKEN  the token the Directory's writes need
                           (a stack makes a random one when it is unset)
    MWKIT_DEBUG            1: the CLI shows tracebacks
    MWKIT_LINKS            how printed and shown links reach the kit's pages: auto (the
                           default), direct, proxy, or Jupyter's base address (mwkit/links.py)

and one variable of JupyterHub's, ``JUPYTERHUB_SERVICE_PREFIX`` (a single-user server's
base path, such as ``/user/alice/``), which tells the links that Jupyter runs on a hub.

The default workdir is ``.mwkit`` at the root of the kit's repository when the kit runs
from a checkout (so the notebooks, ``mwkit down`` and ``make down`` agree wherever they run
inside it), else ``.mwkit`` in the current folder.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mwkit import contract
from mwkit import links as links_module
from mwkit.errors import SettingsError
from mwkit.sherlock.policies import DEFAULT_POLICY, POLICIES

KIT_ROOT = Path(__file__).resolve().parent.parent
WORKDIR_NAME = ".mwkit"
DEFAULT_DATABASE = "sqlite"
DATABASES = ("sqlite", "mariadb")
DEFAULT_RUNTIME = "auto"
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
DEFAULT_RETRIES = 1
REGISTRIES = ("directory", "etcd")


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
    retries: int = DEFAULT_RETRIES  # Sherlock's retries on another instance (0: none)
    eject: bool = True  # Sherlock leaves out an instance that refused a connection
    outlier_5xx: int = 0  # ... and one that answered that many 5xx in a row (0: off)
    retry_budget: float = 0.0  # retries at most this share of the calls (0: no budget)
    hedge: float = 0.0  # a second copy of a call slower than this quantile (0: no hedging)
    deadline: float = 0.0  # seconds a call may take, told to the instance (0: none)
    retry_5xx: bool = False  # ... and an idempotent call answered with a 5xx is retried
    registry: str = REGISTRIES[0]  # where instances register: see MWKIT_REGISTRY
    directory_url: str | None = None
    directory_token: str | None = None
    debug: bool = False
    links: str = "auto"
    hub_prefix: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "workdir", Path(self.workdir).resolve())
        if self.database not in DATABASES and "://" not in self.database:
            raise SettingsError(f"database (MWKIT_DB or --db) must be one of "
                                f"{', '.join(DATABASES)} or a mysql:// URL, not "
                                f"{self.database!r}")
        if self.policy not in POLICIES:
            raise SettingsError(f"policy (MWKIT_SHERLOCK_POLICY or --policy) must be one of "
                                f"{', '.join(sorted(POLICIES))}, not {self.policy!r}")
        links_module.check(self.links)
        if self.registry not in REGISTRIES and not self.registry.startswith("etcd://"):
            raise SettingsError(f"registry (MWKIT_REGISTRY or --registry) must be one of "
                                f"{', '.join(REGISTRIES)} or an etcd://host:port URL, not "
                                f"{self.registry!r}")
        if type(self.retries) is not int or self.retries < 0:
            raise SettingsError(f"retries ({contract.SHERLOCK_RETRIES} or --retries) must be a "
                                f"whole number, 0 or more, not {self.retries!r}")
        if not isinstance(self.eject, bool):
            raise SettingsError(f"eject ({contract.SHERLOCK_EJECT} or --no-eject) must be True "
                                f"or False, not {self.eject!r}")
        if not isinstance(self.retry_5xx, bool):
            raise SettingsError(f"retry_5xx ({contract.SHERLOCK_RETRY_5XX} or --retry-5xx) "
                                f"must be True or False, not {self.retry_5xx!r}")
        if type(self.outlier_5xx) is not int or self.outlier_5xx < 0:
            raise SettingsError(f"outlier_5xx ({contract.SHERLOCK_OUTLIER_5XX} or --outlier-5xx)"
                                f" must be a whole number, 0 or more, not {self.outlier_5xx!r}")
        for name, variable, highest, what in (
                ("retry_budget", contract.SHERLOCK_RETRY_BUDGET, 1.0, "a share, 0.2 for 20 %"),
                ("hedge", contract.SHERLOCK_HEDGE, 0.999, "a quantile, 0.95 for p95"),
                ("deadline", contract.SHERLOCK_DEADLINE, math.inf, "seconds")):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= highest:
                raise SettingsError(f"{name} ({variable} or --{name.replace('_', '-')}) is "
                                    f"{what}, 0 for off, not {value!r}")

    def sherlock_options(self) -> dict:
        """The keyword arguments of :class:`mwkit.sherlock.Sherlock` these settings give."""
        return {"policy": self.policy, "retries": self.retries, "eject": self.eject,
                "outlier_5xx": self.outlier_5xx, "retry_budget": self.retry_budget,
                "hedge": self.hedge, "deadline": self.deadline, "retry_5xx": self.retry_5xx}

    def sherlock_env(self) -> dict[str, str]:
        """The same as the variables a linked Sherlock (the monolith's) reads them from."""
        return {contract.SHERLOCK_POLICY: self.policy,
                contract.SHERLOCK_RETRIES: str(self.retries),
                contract.SHERLOCK_EJECT: "1" if self.eject else "0",
                contract.SHERLOCK_OUTLIER_5XX: str(self.outlier_5xx),
                contract.SHERLOCK_RETRY_BUDGET: str(self.retry_budget),
                contract.SHERLOCK_HEDGE: str(self.hedge),
                contract.SHERLOCK_DEADLINE: str(self.deadline),
                contract.SHERLOCK_RETRY_5XX: "1" if self.retry_5xx else "0"}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Defaults, then ``MWKIT_*`` variables, then ``overrides`` that are not None."""
        env = os.environ if env is None else env
        values = {
            "workdir": env.get("MWKIT_WORKDIR") or None,
            "runtime": env.get("MWKIT_RUNTIME") or None,
            "database": env.get("MWKIT_DB") or None,
            "policy": env.get(contract.SHERLOCK_POLICY) or None,
            "retries": _whole_number(env, contract.SHERLOCK_RETRIES),
            "eject": _switch(env, contract.SHERLOCK_EJECT),
            "outlier_5xx": _whole_number(env, contract.SHERLOCK_OUTLIER_5XX),
            "retry_budget": _number(env, contract.SHERLOCK_RETRY_BUDGET),
            "hedge": _number(env, contract.SHERLOCK_HEDGE),
            "deadline": _number(env, contract.SHERLOCK_DEADLINE),
            "retry_5xx": _switch(env, contract.SHERLOCK_RETRY_5XX),
            "registry": env.get("MWKIT_REGISTRY") or None,
            "directory_url": env.get("MWKIT_DIRECTORY_URL") or None,
            "directory_token": env.get("MWKIT_DIRECTORY_TOKEN") or None,
            "debug": env.get("MWKIT_DEBUG", "").lower() in TRUE,
            "links": env.get("MWKIT_LINKS") or None,
            "hub_prefix": env.get("JUPYTERHUB_SERVICE_PREFIX") or None,
        }
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SettingsError(f"unknown setting(s) {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: v for k, v in values.items() if v is not None})

    def replace(self, **changes) -> Settings:
        """A copy with ``changes`` (those that are None are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _whole_number(env: Mapping[str, str], name: str) -> int | None:
    """``env[name]`` as an int, None when unset; a SettingsError naming it otherwise."""
    return _number(env, name, int, "a whole number, 0 or more")


def _number(env: Mapping[str, str], name: str, kind: type = float,
            what: str = "a number (0 for off)"):
    """``env[name]`` as a ``kind``, None when unset; a SettingsError naming it otherwise."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be {what}, not {raw!r}") from None


def _switch(env: Mapping[str, str], name: str) -> bool | None:
    """``env[name]`` as a bool (1/true/yes/on or 0/false/no/off), None when unset."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return None
    if raw not in TRUE + FALSE:
        raise SettingsError(f"{name} must be one of {', '.join(TRUE + FALSE)}, not {raw!r}")
    return raw in TRUE
