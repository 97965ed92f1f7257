"""How Sherlock picks an instance for each call.

- ``round_robin``: each instance in turn (the original Sherlock, through HAProxy).
- ``random``: uniformly at random.
- ``least_request``: power of two choices: pick two at random, take the one with fewer
  calls in flight. Cheap, and it already steers away from a slow instance.
- ``p2c_least_request``: the same, named after Envoy's least-request balancer as it is by
  default (``LEAST_REQUEST``, ``choice_count`` 2). Two random choices are nearly as good as
  asking every instance, and do not send every caller to the same least-loaded one at
  once (Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing", 2001).
- ``peak_ewma``: power of two choices on latency: cost = (moving average of latency,
  jumping up at once on a slow answer and decaying slowly) x (calls in flight + 1). This is
  what Linkerd and Finagle use to route around one slow instance.
"""

from __future__ import annotations

import itertools
import random as _random
from collections.abc import Callable, Sequence

from mwkit.sherlock.endpoint import Endpoint

Policy = Callable[[Sequence[Endpoint]], Endpoint]

#: What Sherlock balances with unless told otherwise: the original's round robin.
DEFAULT_POLICY = "round_robin"


def round_robin() -> Policy:
    counter = itertools.count()

    def pick(endpoints: Sequence[Endpoint]) -> Endpoint:
        return endpoints[next(counter) % len(endpoints)]

    return pick


def random(rng: _random.Random | None = None) -> Policy:
    rng = rng or _random.Random()

    def pick(endpoints: Sequence[Endpoint]) -> Endpoint:
        return rng.choice(endpoints)

    return pick


def two_choices(cost: Callable[[Endpoint], float],
                rng: _random.Random | None = None) -> Policy:
    """Power of two choices over any cost function: the cheaper of two random picks."""
    rng = rng or _random.Random()

    def pick(endpoints: Sequence[Endpoint]) -> Endpoint:
        if len(endpoints) == 1:
            return endpoints[0]
        first, second = rng.sample(list(endpoints), 2)
        return first if cost(first) <= cost(second) else second

    return pick


def least_request(rng: _random.Random | None = None) -> Policy:
    return two_choices(lambda endpoint: endpoint.outstanding, rng)


def peak_ewma(rng: _random.Random | None = None) -> Policy:
    return two_choices(lambda endpoint: endpoint.latency_ewma * (endpoint.outstanding + 1), rng)


POLICIES: dict[str, Callable[[], Policy]] = {
    "round_robin": round_robin,
    "random": random,
    "least_request": least_request,
    "p2c_least_request": least_request,
    "peak_ewma": peak_ewma,
}


def make_policy(name: str) -> Policy:
    try:
        return POLICIES[name]()
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}") from None
