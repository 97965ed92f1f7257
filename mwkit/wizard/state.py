"""The workdir's instance table: ``<workdir>/state.json``.

Every ``mwkit svrun`` is a separate Python process, and a notebook may scale from a
background thread while the main thread does too, so the table is read and written under
an exclusive ``fcntl`` lock (``state.lock``) and replaced atomically (write a temporary
file, then rename): a crash never leaves half a table. ``mwkit down`` works without it.
The table, like ``stack.json``, is readable by its owner only (:func:`write_private`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from mwkit.contract import Phase
from mwkit.errors import StateError

FORMAT = 1


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically by a file with ``text`` that only its owner can read.

    The temporary file is created with mode 0600 (never chmod-ed after writing: until then
    anyone could open it and keep reading), then renamed over ``path``.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.unlink(missing_ok=True)  # left by a crash; O_EXCL also refuses a symlink
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@dataclass
class Instance:
    """One instance the wizard started: who it is, where it runs, how to find it again."""

    id: str
    service: str
    tag: str
    ref: str
    commit: str  # full sha, or UNCOMMITTED / UNCOMMITTED_COPY
    runtime: str
    folder: str  # the checkout it runs
    instance_dir: str  # log, datawire.conf, state/phase.json
    created: float = field(default_factory=time.time)
    phase: str = Phase.CHECKING_OUT  # the wizard's view until the supervisor writes one
    reason: str = ""
    handle: dict | None = None  # the runtime's Handle (pid or container id, address)
    exported: bool = False  # its launch exported the checkout (a failed launch removes it)

    @property
    def address(self) -> str | None:
        return (self.handle or {}).get("address")

    @property
    def url(self) -> str | None:
        """Where this machine reaches the instance (a container's published port, if any)."""
        handle = self.handle or {}
        address = handle.get("published") or handle.get("address")
        return f"http://{address}" if address else None

    @property
    def short_commit(self) -> str:
        return self.commit[:10] if len(self.commit) == 40 else self.commit

    @property
    def log_path(self) -> Path:
        return Path(self.instance_dir) / "instance.log"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Instance:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class State:
    """``with state.edit() as table:`` reads, locks, and writes back the instance table."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.path = self.workdir / "state.json"
        self.lock_path = self.workdir / "state.lock"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"format": FORMAT, "counters": {}, "instances": {}}
        try:
            data = json.loads(text)
            data["instances"] = {
                key: Instance.from_dict(value) for key, value in data["instances"].items()
            }
            data.setdefault("counters", {})
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise StateError(
                f"the wizard's state file {self.path} is damaged ({type(error).__name__}: "
                f"{error}); reset it with `mwkit down --force` (stops every instance of this "
                "workdir and removes the file)"
            ) from None
        return data

    def _write(self, data: dict) -> None:
        out = dict(data, instances={k: v.to_dict() for k, v in data["instances"].items()})
        write_private(self.path, json.dumps(out, indent=1))

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict]:
        """The table (``instances``: id -> Instance, ``counters``), saved when the block ends."""
        with self._locked():
            data = self._read()
            yield data
            self._write(data)

    def instances(self) -> list[Instance]:
        """Every instance in the table, oldest first."""
        with self._locked():
            data = self._read()
        return sorted(data["instances"].values(), key=lambda i: (i.created, i.id))

    def update(self, instance: Instance) -> None:
        """Store ``instance`` (insert or replace)."""
        with self.edit() as table:
            table["instances"][instance.id] = instance

    def remove(self, instance_id: str) -> None:
        with self.edit() as table:
            table["instances"].pop(instance_id, None)

    def reset(self) -> None:
        """Forget everything (``down``): the table goes, damaged or not."""
        with self._locked():
            self.path.unlink(missing_ok=True)
