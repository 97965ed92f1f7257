"""The Directory's state: services, their instances, leases and a version counter.

This module is pure logic, with no I/O, so that it can be read (and tested) on its own.
Every change bumps the global ``version`` by one and produces a :class:`Change` that
carries only what changed: one instance put (registered or updated) or deleted (gone,
expired). That is what the server pushes to every subscriber, so the work and the bytes of
a change do not grow with the service's size: a subscriber keeps its own table and applies
each change to it (:class:`mwkit.directory.client.ServiceTable`), as etcd's and Kubernetes'
watchers do. A subscriber that reconnects gets the changes it missed from a bounded
history of the last ``history`` changes, or, when it is further behind (or the Directory
restarted), a snapshot of everything. A service holds at most ``MAX_INSTANCES_PER_SERVICE``
instances, so one careless or hostile client cannot make a snapshot arbitrarily large.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice

from mwkit.errors import ServiceFull

MAX_INSTANCES_PER_SERVICE = 10_000  # far beyond a workshop; a snapshot lists them all


@dataclass
class Registration:
    """One registered instance of a service, holding a lease that must be renewed."""

    service: str
    id: str
    address: str
    metadata: dict
    ttl: float
    registered_at: float  # wall-clock time, for people
    expires_at: float = field(repr=False)  # monotonic time, for the lease

    def __post_init__(self) -> None:
        # Built once, and shared by the snapshots, the pushed change and the history:
        # nothing is copied per subscriber or per snapshot.
        self._json = {
            "service": self.service,
            "id": self.id,
            "address": self.address,
            "url": f"http://{self.address}",
            "metadata": self.metadata,
            "ttl": self.ttl,
            "registered_at": self.registered_at,
        }

    def to_json(self) -> dict:
        """The instance as the API shows it (shared: read it, do not change it)."""
        return self._json


@dataclass(frozen=True)
class Change:
    """One change of one service: an instance put (``instance`` is its JSON) or deleted
    (``instance`` is None: only its ``instance_id`` is left to say)."""

    version: int
    service: str
    instance_id: str
    instance: dict | None = None

    @property
    def kind(self) -> str:
        """The push stream's event name: ``put`` or ``delete``."""
        return "delete" if self.instance is None else "put"

    def to_json(self) -> dict:
        if self.instance is None:
            return {"version": self.version, "service": self.service, "id": self.instance_id}
        return {"version": self.version, "service": self.service, "instance": self.instance}


@dataclass(frozen=True)
class Event:
    """A line of the event log: who registered, was updated, expired or deregistered."""

    version: int
    time: float
    kind: str
    service: str
    instance: str
    address: str

    def to_json(self) -> dict:
        return dict(self.__dict__)


class Registry:
    """Services and instances with leases; every change gets the next version number.

    ``epoch`` names this registry's lifetime: versions restart at 0 when the Directory
    restarts, so a version is only meaningful together with its epoch.
    """

    def __init__(
        self,
        *,
        history: int = 10_000,
        event_log: int = 10_000,
        max_instances: int = MAX_INSTANCES_PER_SERVICE,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.epoch = uuid.uuid4().hex[:12]
        self.version = 0
        self._services: dict[str, dict[str, Registration]] = {}
        # The last ``history`` changes, oldest first, with no gap in their versions: what a
        # subscriber that reconnects may have missed (an instance's JSON is shared with
        # its registration, so a change costs a few references, not a copy).
        self._history: deque[Change] = deque(maxlen=history)
        self.max_instances = max_instances
        self.events: deque[Event] = deque(maxlen=event_log)
        self._clock = clock
        self._wall_clock = wall_clock

    # --- writes -----------------------------------------------------------------------

    def register(
        self, service: str, instance_id: str, address: str, metadata: dict, ttl: float
    ) -> Change | None:
        """Register or update an instance. Returns the change, or None for a plain renewal.

        Raises :class:`ServiceFull`, changing nothing, for a new instance of a service that
        already has ``max_instances``."""
        instances = self._services.get(service, {})
        existing = instances.get(instance_id)
        if existing is None and len(instances) >= self.max_instances:
            raise ServiceFull(f"service {service!r} already has {len(instances)} instances, "
                              f"the most one service may have: deregister some first")
        instances = self._services.setdefault(service, instances)
        expires_at = self._clock() + ttl
        if existing and (existing.address, existing.metadata, existing.ttl) == (
                address, metadata, ttl):
            existing.expires_at = expires_at
            return None
        kind = "updated" if existing else "registered"
        instances[instance_id] = Registration(
            service=service, id=instance_id, address=address, metadata=metadata, ttl=ttl,
            registered_at=self._wall_clock(), expires_at=expires_at,
        )
        return self._changed(service, kind, instance_id, address,
                             instances[instance_id].to_json())

    def heartbeat(self, service: str, instance_id: str) -> bool:
        """Renew a lease. False when the instance is unknown (it must register again)."""
        instance = self._services.get(service, {}).get(instance_id)
        if instance is None:
            return False
        instance.expires_at = self._clock() + instance.ttl
        return True

    def deregister(self, service: str, instance_id: str) -> Change | None:
        """Remove an instance at once. None when it was not registered."""
        instance = self._services.get(service, {}).pop(instance_id, None)
        if instance is None:
            return None
        return self._changed(service, "deregistered", instance_id, instance.address)

    def expire(self) -> list[Change]:
        """Remove every instance whose lease has run out; one change per removal."""
        now = self._clock()
        expired = [
            instance
            for instances in self._services.values()
            for instance in instances.values()
            if instance.expires_at <= now
        ]
        changes = []
        for instance in expired:
            del self._services[instance.service][instance.id]
            changes.append(self._changed(instance.service, "expired", instance.id,
                                         instance.address))
        return changes

    def _changed(self, service: str, kind: str, instance_id: str, address: str,
                 instance: dict | None = None) -> Change:
        """Record one change (``instance`` None: a deletion); nothing here grows with the
        service's size."""
        self.version += 1
        if not self._services.get(service):
            self._services.pop(service, None)
        change = Change(self.version, service, instance_id, instance)
        self._history.append(change)
        self.events.append(Event(self.version, self._wall_clock(), kind, service,
                                 instance_id, address))
        return change

    # --- reads ------------------------------------------------------------------------

    def instances(self, service: str) -> list[dict]:
        return [i.to_json() for i in self._services.get(service, {}).values()]

    def snapshot(self) -> dict:
        """Every service with its instances, and the version this state corresponds to."""
        return {
            "epoch": self.epoch,
            "version": self.version,
            "services": {name: self.instances(name) for name in sorted(self._services)},
        }

    def service_count(self) -> int:
        return len(self._services)

    def changes_since(self, epoch: str | None, version: int) -> list[Change] | None:
        """What a subscriber that saw ``version`` missed: every change since, oldest first.
        None when the history no longer reaches back (or the version belongs to another
        epoch): the subscriber needs a snapshot."""
        if epoch != self.epoch or version > self.version or version < 0:
            return None
        missed = self.version - version
        if missed > len(self._history):
            return None
        return list(islice(self._history, len(self._history) - missed, None))

    def events_since(self, version: int = 0) -> list[dict]:
        return [event.to_json() for event in self.events if event.version > version]
