"""Docker Swarm runs popularity (#11): a real one-node swarm, real tasks, real page reloads.

The stack (Directory, SQLite, the monolith) runs on the swarm runtime: containers on the
workdir's attachable overlay network. popularity runs as one Swarm service whose tasks
register their own overlay addresses; the monolith's Sherlock balances over them. Scale,
a start-first rolling update to v2 and the rollback to v1 each happen under steady page
reloads, and none may fail. At the end nothing of the workdir is left, and the engine is
in the swarm state it was in before (the kit leaves a swarm only if it made it).

The tests run in order on one stack (about a minute and a half here).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from mwkit.errors import WizardError
from mwkit.settings import KIT_ROOT
from mwkit.stack import Stack, teardown
from mwkit.swarm import STATE_FILE, SwarmServices, service_name
from mwkit.traffic import PageReloads
from mwkit.wizard.runtimes.docker import container_user, network_name
from mwkit.wizard.source import ServiceSource
from mwkit.wizard.spec import load_spec
from mwkit.wizard.wizard import SERVICE_GRACE, STOP_MARGIN
from tests.helpers.wizard import make_repo

pytestmark = pytest.mark.docker

RATE = 5  # page reloads a second while Swarm changes the service


def swarm_state(client) -> str:
    return client.info()["Swarm"]["LocalNodeState"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The stack on the swarm runtime; after it, the swarm state it found."""
    from mwkit.wizard import image

    # The kit's default Sherlock (one retry of a GET, ejection). Without the retry, calls
    # in flight on a stopping task were cut now and then: v2's 1.5 s calls outlive Watson's
    # 1 s drain, and on two busy CPUs a v1 call may too (see docs/architecture.md).
    stack = Stack(workdir=tmp_path_factory.mktemp("swarm") / "work", runtime="swarm")
    image.build("base", progress=lambda line: None, client=stack.runtime.client)
    before = swarm_state(stack.runtime.client)
    with stack:
        stack.swarm_state_before = before
        yield stack
    assert swarm_state(stack.runtime.client) == before


@pytest.fixture(scope="module")
def swarm(stack):
    return stack.runtime.services(stack.workdir)  # a SwarmServices


def reloads_during(stack, action) -> dict:
    """Run ``action`` under steady page reloads: their summary, what went wrong, and what
    ``action`` returned."""
    # A visitor who waits 6 s: v2 answers in 1.5 s, and a call retried after one cut on a
    # stopping v2 task takes twice that, beyond the kit's default 3 s on two busy CPUs.
    with PageReloads(f"{stack.monolith_url}/popular.json", rate=RATE, duration=240,
                     timeout=6.0) as reloads:
        result = action()
    errors = [f"{r.outcome}: {r.error}" for r in reloads.records() if not r.ok]
    return {**reloads.summary(), "result": result, "errors": errors}


def failed(summary: dict) -> int:
    return summary["reloads"] - summary["ok"]


def test_deploy_two_replicas_sherlock_routes_to_both_overlay_addresses(stack, swarm):
    tasks = swarm.set_replicas("popularity", "v1", 2)  # the slider: deploys v1 first
    assert len(tasks) == 2 and all(t.state == "running" for t in tasks)
    listed = swarm.registered("popularity", "v1")
    # Watson registered each task's own overlay address: Swarm's and the Directory's agree
    assert sorted(i["address"] for i in listed) == sorted(t.address for t in tasks)
    network = stack.runtime.client.networks.get(network_name(stack.workdir))
    assert network.attrs["Driver"] == "overlay"
    service = stack.runtime.client.services.get(service_name(stack.workdir, "popularity",
                                                              "v1"))
    assert service.attrs["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"  # no virtual IP
    # the Directory's token reaches the tasks as a secret, never in the service's spec
    container_spec = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert stack.directory_token not in json.dumps(container_spec)
    assert [s["File"]["Name"] for s in container_spec["Secrets"]] == ["mwkit-directory-token"]
    # SIGKILL only after Watson's drain (popularity's: the default 1 s) and the grace
    grace = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"]
    assert grace == (1 + SERVICE_GRACE + STOP_MARGIN) * 10**9
    # each task's container is locked down as far as Swarm allows (not no-new-privileges)
    limits = load_spec(KIT_ROOT / "services" / "popularity").limits
    for container in stack.runtime.client.containers.list(
            filters={"label": f"com.docker.swarm.service.name={service.name}"}):
        host = container.attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] is True
        assert (host["Memory"], host["PidsLimit"]) == (limits.memory, limits.pids)
        assert container.attrs["Config"]["User"] == "{}:{}".format(*container_user())
    records = stack.reloads(rate=RATE, count=30).run()
    assert all(r.ok for r in records), records
    # client-side balancing: the monolith's Sherlock called both tasks itself
    assert {r.instance for r in records} == {i["id"] for i in listed}


def test_scale_to_three_with_the_cli_under_reloads_fails_none(stack, swarm, monkeypatch,
                                                              capsys):
    from mwkit import cli

    if "mwkit.swarm_commands" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", [*cli.COMMAND_MODULES,
                                                     "mwkit.swarm_commands"])
    summary = reloads_during(stack, lambda: cli.main(
        ["swarm", "scale", "popularity", "v1", "3", "--workdir", str(stack.workdir)]))
    assert summary["result"] == 0, capsys.readouterr().err
    assert len(swarm.status("popularity", "v1")) == 3
    assert summary["reloads"] > 0 and failed(summary) == 0, (summary["errors"], summary)
    with capsys.disabled():
        print(f"scale 2 -> 3: {summary}")
    assert cli.main(["swarm", "status", "popularity", "v1", "--workdir",
                     str(stack.workdir)]) == 0
    assert capsys.readouterr().out.count("registered popularity-") == 3


def test_rolling_update_to_v2_start_first_fails_none(stack, swarm):
    summary = reloads_during(stack, lambda: swarm.rollout("popularity", "v1", "v2"))
    assert summary["reloads"] > 20 and failed(summary) == 0, (summary["errors"], summary)
    print(f"rollout v1 -> v2: {summary}")
    v2 = {t.commit for t in summary["result"]}
    assert len(v2) == 1 and len(summary["result"]) == 3
    after = stack.reloads(rate=RATE, count=15).run()
    assert after and all(r.ok for r in after), after
    # every answer now comes from a v2 task (their ids carry the commit)
    assert all(r.instance.split("-")[1] == next(iter(v2))[:7] for r in after)


def labels_of(stack) -> dict:
    return stack.runtime.client.services.get(
        service_name(stack.workdir, "popularity", "v1")).attrs["Spec"]["Labels"]


def test_rollback_to_v1_fails_none(stack, swarm):
    before = labels_of(stack)
    assert before["mwkit.previous-ref"] == "v1"
    summary = reloads_during(stack, lambda: swarm.rollback("popularity", "v1"))
    assert summary["reloads"] > 20 and failed(summary) == 0, (summary["errors"], summary)
    print(f"rollback v2 -> v1: {summary}")
    v1 = before["mwkit.previous-commit"]  # the old image tag
    assert labels_of(stack)["mwkit.commit"] == v1
    assert {t.commit for t in summary["result"]} == {v1[:12]}


def test_a_deploy_whose_tasks_fail_says_why_and_leaves_no_service(stack, tmp_path):
    folder = make_repo(tmp_path / "tiny")
    spec = folder / "microwizard" / "microwizard.yml"
    spec.write_text(spec.read_text().replace("TINY_MODE: ok", "TINY_MODE: exits"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "commit", "-qam", "broken"], cwd=folder, check=True)
    swarm = SwarmServices(stack.workdir, sources={"tiny": ServiceSource(folder)})
    with pytest.raises(WizardError, match=r"(?s)tasks of \w+ failed.*tiny: giving up"):
        swarm.deploy("tiny", "broken", "main", replicas=1, timeout=60)
    assert stack.runtime.client.services.list(
        filters={"name": service_name(stack.workdir, "tiny", "broken")}) == []


def test_mwkit_down_leaves_nothing_and_the_swarm_as_it_was(stack, swarm):
    client = stack.runtime.client
    made_swarm = (stack.workdir / STATE_FILE).is_file()
    assert made_swarm == (stack.swarm_state_before != "active")
    removed = teardown(stack.workdir, progress=lambda line: None)  # what `mwkit down` does
    assert any("Swarm service" in line for line in removed), removed
    labelled = {"label": f"mwkit.workdir={stack.workdir.resolve()}"}
    assert client.containers.list(all=True, filters=labelled) == []
    assert [n.name for n in client.networks.list(names=[network_name(stack.workdir)])
            if n.name == network_name(stack.workdir)] == []
    assert swarm_state(client) == stack.swarm_state_before
    if swarm_state(client) == "active":
        assert client.services.list(filters=labelled) == []
        assert client.secrets.list(filters=labelled) == []
    assert not (stack.workdir / STATE_FILE).exists()
