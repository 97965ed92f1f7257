"""Many learners on one machine: two stacks at once, each routing only to its own instances.

On a shared workshop server every learner runs the same series on one machine and one
Docker engine. Each stack's names carry its workdir's id, its ports are chosen free, and
``down`` touches only what its own workdir started.
"""

from __future__ import annotations

import pytest
import requests

from mwkit.directory import DirectoryClient
from mwkit.stack import Stack, teardown
from mwkit.wizard.runtimes.process import groups_of

RUNTIMES = [
    pytest.param("process", id="process"),
    pytest.param("docker", id="docker", marks=pytest.mark.docker),
]


def answered_by(stack: Stack, reloads: int = 12) -> set[str]:
    """The popularity processes (their service_id) that answered this stack's reloads."""
    ids = set()
    for _ in range(reloads):
        body = requests.get(f"{stack.monolith_url}/popular.json", timeout=5).json()
        assert body["error"] is None, body
        ids.add(body["service_id"])
    return ids


def registered(stack: Stack) -> set[str]:
    with DirectoryClient(stack.directory_url) as client:
        return {i["address"] for i in client.services().get("popularity", [])}


def remains(stack: Stack) -> list:
    """What of this stack still runs: its process groups, or its containers."""
    if stack.runtime.name == "process":
        return list(groups_of(stack.workdir))
    return stack.runtime.client.containers.list(ignore_removed=True,
        all=True, filters={"label": f"mwkit.workdir={stack.workdir}"})


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_two_stacks_at_once_route_only_to_their_own_instances(tmp_path, runtime):
    with Stack(tmp_path / "alice", runtime=runtime, database="sqlite") as alice, \
            Stack(tmp_path / "bob", runtime=runtime, database="sqlite") as bob:
        alice.scale(2)
        bob.scale(2)
        assert len(registered(alice)) == len(registered(bob)) == 2
        assert registered(alice).isdisjoint(registered(bob))
        alices, bobs = answered_by(alice), answered_by(bob)
        assert len(alices) == len(bobs) == 2  # both of one's own instances, none of the other's
        assert alices.isdisjoint(bobs)

        removed = teardown(alice.workdir, progress=lambda line: None)
        assert removed and remains(alice) == []
        assert answered_by(bob) == bobs  # bob's stack did not notice
        assert remains(bob)
    assert remains(alice) == remains(bob) == []
