"""The kit leaves a swarm only if it made it, and only when nobody else's service runs there
(#11). On the real engine, from a node in no swarm (skipped when it is in one already: that
swarm is someone else's and these tests must not leave it)."""

from __future__ import annotations

import contextlib
import json

import pytest

from mwkit.swarm import STATE_FILE, ensure_swarm, leave_if_made

pytestmark = pytest.mark.docker


def node_state(client) -> str:
    return client.info()["Swarm"]["LocalNodeState"]


@pytest.fixture
def client():
    from mwkit.wizard.engine import docker_client

    client = docker_client()
    if node_state(client) != "inactive":
        pytest.skip("this engine is in a swarm already (someone else's): not touching it")
    yield client
    if node_state(client) == "active":  # what a test made; no one else's service runs here
        client.swarm.leave(force=True)
    client.close()


def test_the_kit_leaves_the_swarm_it_made(client, tmp_path):
    ensure_swarm(client, tmp_path)
    assert node_state(client) == "active"
    assert json.loads((tmp_path / STATE_FILE).read_text())["initialized_by_kit"] is True
    ensure_swarm(client, tmp_path)  # in one now: nothing more to do
    assert leave_if_made(client, tmp_path) == [
        "the swarm (docker swarm leave: the kit had made it)"]
    assert node_state(client) == "inactive"
    assert not (tmp_path / STATE_FILE).exists()


def test_a_swarm_the_kit_did_not_make_is_never_left(client, tmp_path):
    client.swarm.init(advertise_addr="127.0.0.1")  # someone else's swarm
    ensure_swarm(client, tmp_path)
    assert not (tmp_path / STATE_FILE).exists()
    assert leave_if_made(client, tmp_path) == []
    assert node_state(client) == "active"


def another_service(client):
    return client.services.create("mwkit/base:latest", ["sleep", "60"],
                                  name="mwkit-test-someone-else",
                                  mode={"Replicated": {"Replicas": 0}})


def another_stacks_network(client):
    """What another stack on the swarm runtime has before it deploys anything."""
    return client.networks.create("mwkit-test-another-stack", driver="overlay",
                                  attachable=True)


@pytest.mark.parametrize(("make", "user"), [
    (another_service, "service mwkit-test-someone-else"),
    (another_stacks_network, "network mwkit-test-another-stack"),
])
def test_a_swarm_the_kit_made_stays_while_someone_else_uses_it(client, tmp_path, make, user):
    ensure_swarm(client, tmp_path)
    other = make(client)
    try:
        assert leave_if_made(client, tmp_path) == [f"the swarm (kept: in use by {user})"]
        assert node_state(client) == "active"
    finally:
        with contextlib.suppress(Exception):
            other.remove()
