"""A service's ``microwizard/`` folder, read and checked before anything is launched.

``microwizard.yml`` is written by hand by learners, so every mistake is reported with the
file, the dotted key and what was expected (and, for a typo, the key that was probably
meant), instead of surfacing later as a crashed instance.
"""

from __future__ import annotations

import difflib
import math
import re
import string
from dataclasses import dataclass
from pathlib import Path

import yaml

from mwkit import contract
from mwkit.errors import SpecError, WatsonConfigError, brief
from mwkit.names import InvalidName, check_service_name
from mwkit.watson.config import (
    DEFAULT_FALL,
    DEFAULT_PERIOD,
    DEFAULT_RISE,
    DEFAULT_TIMEOUT,
    WatsonConfig,
)

KNOWN_LINKS = ("directory", "database")
#: Variables a spec's ``env:`` may not set: where programs are found, and what the kit gives
#: every instance (the contract's ``HOST``, ``PORT``, ``DATABASE_URL``, ``PYTHON`` and every
#: ``MWKIT_*``). A service that set them would listen elsewhere than Watson checks, or run
#: another program than the one its log names.
RESERVED_ENV = frozenset({"PATH", "PYTHONPATH", contract.HOST, contract.PORT, contract.PYTHON,
                          contract.DATABASE_URL})
RESERVED_ENV_PREFIX = "MWKIT_"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: A container's limits unless ``limits:`` says otherwise, and the least it may ask for
#: (below them the supervisor, Watson and the service do not fit).
DEFAULT_MEMORY, MIN_MEMORY, MAX_MEMORY = 256 * 2**20, 32 * 2**20, 2**40
DEFAULT_PIDS, MIN_PIDS, MAX_PIDS = 256, 32, 65536
MEMORY = re.compile(r"([0-9]{1,13})([kmg]?)", re.IGNORECASE)  # ASCII digits only
UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}
TOP_KEYS = ("service_name", "service_port", "service_links", "health_check", "env", "limits",
            "restart")
#: ``restart:``: "no" (the default: a stopped instance stays stopped, the wizard decides),
#: or "unless-stopped" (as Docker Compose says it: the engine starts the instance again
#: after the engine itself restarted, unless the kit stopped it; for a stack's own parts,
#: such as the monolith). Processes do not outlive their machine's restart either way.
RESTART_POLICIES = ("no", "unless-stopped")
REQUIRED_KEYS = ("service_name", "service_port")


@dataclass(frozen=True)
class HealthCheck:
    """How Watson checks an instance (seconds; rise/fall in consecutive checks)."""

    path: str = "/health"
    period: float = DEFAULT_PERIOD
    timeout: float = DEFAULT_TIMEOUT
    rise: int = DEFAULT_RISE
    fall: int = DEFAULT_FALL


@dataclass(frozen=True)
class Limits:
    """What each of the service's containers may use (the Docker runtime applies them;
    processes run unlimited). ``read_only_root``: the container writes only to its state
    folder and a small ``/tmp``, never to its own file system."""

    memory: int = DEFAULT_MEMORY  # bytes
    pids: int = DEFAULT_PIDS  # processes and threads together
    read_only_root: bool = True


@dataclass(frozen=True)
class ServiceSpec:
    """What ``microwizard/microwizard.yml`` says, plus where the service folder is."""

    name: str
    port: int
    links: tuple[str, ...]
    health_check: HealthCheck
    env: dict[str, str]
    folder: Path
    limits: Limits = Limits()
    restart: str = RESTART_POLICIES[0]

    @property
    def mw_sh(self) -> Path:
        return self.folder / "microwizard" / "mw.sh"

    @property
    def datawire_template(self) -> Path:
        return self.folder / "microwizard" / "datawire.conf"


def _unknown_key(where: Path, prefix: str, key: object, known: tuple[str, ...]) -> SpecError:
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return SpecError(
        f"{where}: unknown key {brief(prefix + str(key))}{hint}; known keys: "
        f"{', '.join(known)}"
    )


def _wrong(where: Path, key: str, expected: str, value: object) -> SpecError:
    return SpecError(f"{where}: key {brief(key)} must be {expected}, got {brief(value)}")


def _positive(where: Path, key: str, value: object, *, integer: bool) -> float:
    """A YAML number above zero (never a bool, which YAML makes of ``yes``)."""
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not (
            0 < value < math.inf):  # also refuses YAML's .nan and .inf
        raise _wrong(where, key, "a whole number >= 1" if integer else "a number > 0", value)
    return value


def _health_check(where: Path, raw: object) -> HealthCheck:
    if not isinstance(raw, dict):
        raise _wrong(where, "health_check", "a mapping (path, period, timeout, rise, fall)", raw)
    known = ("path", "period", "timeout", "rise", "fall")
    for key in raw:
        if key not in known:
            raise _unknown_key(where, "health_check.", key, known)
    path = raw.get("path", HealthCheck.path)
    if not isinstance(path, str) or not path.startswith("/"):
        raise _wrong(where, "health_check.path", "a URL path starting with '/'", path)
    values = {
        key: _positive(where, f"health_check.{key}", raw.get(key, getattr(HealthCheck, key)),
                       integer=key in ("rise", "fall"))
        for key in ("period", "timeout", "rise", "fall")
    }
    return HealthCheck(path=path, **values)


def _env(where: Path, raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise _wrong(where, "env", "a mapping of variable names to strings", raw)
    env = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise _wrong(where, f"env.{name}", "named like a shell variable "
                         f"({ENV_NAME.pattern})", name)
        if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIX):
            raise SpecError(f"{where}: key {brief('env.' + name)} is set by the kit for every "
                            f"instance and cannot be overridden (reserved: "
                            f"{', '.join(sorted(RESERVED_ENV))}, {RESERVED_ENV_PREFIX}*)")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise _wrong(where, f"env.{name}", "a string or a number (quote it: \"...\")", value)
        env[name] = str(value)
    return env


def _memory(where: Path, raw: object) -> int:
    """``256m``, ``1g``, ``65536k`` or a number of bytes, within MIN_MEMORY and MAX_MEMORY."""
    expected = "a size such as 256m or 1g (k, m or g; from 32m to 1024g)"
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise _wrong(where, "limits.memory", expected, raw)
    match = MEMORY.fullmatch(str(raw).strip())
    size = int(match[1]) * UNITS[match[2].lower()] if match else 0
    if not MIN_MEMORY <= size <= MAX_MEMORY:
        raise _wrong(where, "limits.memory", expected, raw)
    return size


def _limits(where: Path, raw: object) -> Limits:
    if not isinstance(raw, dict):
        raise _wrong(where, "limits", "a mapping (memory, pids, read_only_root)", raw)
    known = ("memory", "pids", "read_only_root")
    for key in raw:
        if key not in known:
            raise _unknown_key(where, "limits.", key, known)
    pids = raw.get("pids", DEFAULT_PIDS)
    if isinstance(pids, bool) or not isinstance(pids, int) or not MIN_PIDS <= pids <= MAX_PIDS:
        raise _wrong(where, "limits.pids", f"a whole number from {MIN_PIDS} to {MAX_PIDS}", pids)
    read_only_root = raw.get("read_only_root", True)
    if not isinstance(read_only_root, bool):
        raise _wrong(where, "limits.read_only_root", "true or false", read_only_root)
    return Limits(memory=_memory(where, raw.get("memory", DEFAULT_MEMORY)), pids=pids,
                  read_only_root=read_only_root)


def _restart(where: Path, raw: object) -> str:
    if raw not in RESTART_POLICIES or isinstance(raw, bool):  # YAML reads a bare no as False
        raise _wrong(where, "restart", f"one of {', '.join(map(repr, RESTART_POLICIES))} "
                     f"(quote 'no')", raw)
    return raw


def _links(where: Path, raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise _wrong(where, "service_links", f"a list of {' and '.join(KNOWN_LINKS)}", raw)
    for link in raw:
        if link not in KNOWN_LINKS:
            raise _wrong(where, "service_links", f"a list of known links "
                         f"({', '.join(KNOWN_LINKS)})", link)
    return tuple(dict.fromkeys(raw))


class NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases: a microwizard.yml never needs ``*name``, and a
    few nested aliases expand into gigabytes (the "billion laughs")."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed here", self.peek_event().start_mark)
        return super().compose_node(parent, index)


def load_spec(service_folder: Path) -> ServiceSpec:
    """Read and check ``<service_folder>/microwizard/``; raise :class:`SpecError` if unusable."""
    folder = Path(service_folder)
    where = folder / "microwizard" / "microwizard.yml"
    try:
        raw = yaml.load(where.read_text(encoding="utf-8"), Loader=NoAliasLoader)  # noqa: S506
    except FileNotFoundError:
        raise SpecError(f"{where}: not found; a service folder needs microwizard/microwizard.yml "
                        "(see docs/architecture.md, 'The service contract')") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise SpecError(f"{where}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: must be a YAML mapping (service_name: ..., service_port: ...), "
                        f"got {type(raw).__name__}")
    for key in raw:
        if key not in TOP_KEYS:
            raise _unknown_key(where, "", key, TOP_KEYS)
    for key in REQUIRED_KEYS:
        if key not in raw:
            raise SpecError(f"{where}: missing required key {key!r}")
    try:
        name = check_service_name(raw["service_name"])
    except InvalidName as error:
        if len(str(error)) > 200:  # it quotes a long value: name the key and the value briefly
            raise _wrong(where, "service_name", "a short service name", raw["service_name"]
                         ) from None
        raise SpecError(f"{where}: key 'service_name': {error}") from None
    port = raw["service_port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _wrong(where, "service_port", "a port number from 1 to 65535", port)
    spec = ServiceSpec(
        name=name,
        port=port,
        links=_links(where, raw.get("service_links", [])),
        health_check=_health_check(where, raw.get("health_check", {})),
        env=_env(where, raw.get("env", {})),
        folder=folder,
        limits=_limits(where, raw.get("limits", {})),
        restart=_restart(where, raw.get("restart", RESTART_POLICIES[0])),
    )
    for needed in (spec.mw_sh, spec.datawire_template):
        if not needed.is_file():
            raise SpecError(f"{needed}: not found; every microwizard/ folder needs mw.sh and "
                            "datawire.conf beside microwizard.yml")
    return spec


class _Placeholders(string.Template):
    """Only ``${NAME}`` is a placeholder (and ``$$`` a literal ``$``).

    Any other ``$``, such as a comment that mentions ``${...}``, is left as it is, so that
    only a misspelt placeholder name is an error.
    """

    pattern = r"""\$(?:
        (?P<escaped>\$) |
        \{(?P<braced>[_a-z][_a-z0-9]*)\} |
        (?P<named>(?!)) |
        (?P<invalid>(?!))
    )"""


def _plain(number: float) -> str:
    """``1.0`` as ``1``, ``0.5`` as ``0.5``: what a person would write in the INI file."""
    return str(int(number)) if float(number).is_integer() else str(number)


def render_datawire_conf(spec: ServiceSpec, *, directory_url: str, service_url: str,
                         health_check_url: str, instance_id: str) -> str:
    """Watson's ``datawire.conf`` for one instance, from the service's template."""
    template = spec.datawire_template
    values = {
        "DIRECTORY_URL": directory_url,
        "SERVICE_NAME": spec.name,
        "SERVICE_URL": service_url,
        "HEALTH_CHECK_URL": health_check_url,
        "INSTANCE_ID": instance_id,
        "PERIOD": _plain(spec.health_check.period),
        "TIMEOUT": _plain(spec.health_check.timeout),
        "RISE": str(spec.health_check.rise),
        "FALL": str(spec.health_check.fall),
    }
    try:
        text = _Placeholders(template.read_text(encoding="utf-8")).substitute(values)
    except FileNotFoundError:
        raise SpecError(f"{template}: not found") from None
    except KeyError as error:
        raise SpecError(f"{template}: unknown placeholder ${{{error.args[0]}}}; known: "
                        f"{', '.join('${' + key + '}' for key in values)}") from None
    _check_conf(template, text, spec.name, directory_url, instance_id)
    return text


def _check_conf(template: Path, text: str, service: str, directory_url: str,
                instance_id: str) -> None:
    """Refuse a ``datawire.conf`` under which the wizard would wait in vain: Watson would
    register another name, another instance id or with another Directory, the wizard would
    report "never healthy" and deregister a name that was never registered."""
    try:
        config = WatsonConfig.from_text(text, template)
    except WatsonConfigError as error:
        raise SpecError(str(error)) from None
    for key, got, wanted, placeholder in (
            ("[Watson] service_name", config.service_name, service, "SERVICE_NAME"),
            ("[Datawire] directory_host", config.directory_url, directory_url, "DIRECTORY_URL"),
            ("[Watson] instance_id", config.instance_id or instance_id, instance_id,
             "INSTANCE_ID")):
        if got != wanted:
            raise SpecError(f"{template}: {key} is {brief(got)}, but the wizard launches and "
                            f"waits for {wanted!r}: write ${{{placeholder}}} there")
