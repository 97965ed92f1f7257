"""Four ways for a caller to find popularity, run side by side on the same instances.

The lesson of notebook 07c: *how* a caller finds a service decides what it sees when
instances come, go and slow down. Every approach here is a real part fed from the same
Directory (or, for pure DNS, from what the operator deployed), and every one answers the
same question the same way: :meth:`Approach.call` makes one call to popularity the way
that approach's caller would, and returns it as a :class:`~mwkit.traffic.Reload`, so the
kit's tables and plots read all four alike.

=====================  ==================================================================
approach               how the caller finds an instance
=====================  ==================================================================
pure DNS               resolves a name with a caching resolver (the TTL decides how
                       stale), records for every deployed instance, no health
DNS with health        the same DNS server fed only with instances that pass their checks
                       (the Directory's), SRV records carry the ports (SkyDNS, Consul)
HAProxy                a server-side balancer: one more hop; its configuration rendered
                       from the Directory and reloaded (2015), or kept live through its
                       runtime API
Sherlock               client-side with push: the Directory streams every change to a
                       router inside the caller (the kit's own)
=====================  ==================================================================
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import requests

from mwkit.traffic import Reload

#: The path every approach calls on popularity (its page-reload endpoint).
POPULARITY_PATH = "/"


@runtime_checkable
class Approach(Protocol):
    """What the scenario needs of a way to find popularity.

    An approach is a context manager: entering it starts its parts (a DNS server, an
    HAProxy, a router) on loopback, leaving it stops every one of them.
    """

    name: str  # how tables and plots call it: "pure DNS", "HAProxy (reload)", ...

    def __enter__(self) -> Approach: ...

    def __exit__(self, *exc_info) -> None: ...

    def call(self, session: requests.Session, timeout: float = 2.0) -> Reload:
        """Find an instance and call popularity once, as this approach's caller would.

        Never raises: a call that found nowhere to go or failed is a Reload whose outcome
        says so ("no_service", "error", "timeout").
        """
        ...

    def costs(self) -> dict[str, int]:
        """What this approach spent so far, by kind: {"DNS queries": 41, "reloads": 3, ...}.

        Counted, not estimated; the keys are the approach's own (the scenario shows them).
        """
        ...
