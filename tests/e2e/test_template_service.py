"""The capstone's template service (services/template) and notebook 09's solutions.

The template is incomplete on purpose: what the learner writes (microwizard.yml, mw.sh, a
/health endpoint) is missing. Filled in by notebook 09's solutions, it must meet the service
contract by hand (``mw.sh init``, ``mw.sh run``, HOST/PORT) and deploy with the wizard:
two instances called by name through Sherlock, then version 2 rolled out beside v1 and v1
scaled to 0. Real processes, a real Directory, real Git commits.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import git
import pytest
import requests

from mwkit.errors import SpecError
from mwkit.procs import free_port, group_alive, spawn, stop_group, wait_for_http
from mwkit.settings import KIT_ROOT
from mwkit.sherlock import Sherlock
from mwkit.wizard.source import ServiceSource
from mwkit.wizard.spec import load_spec
from mwkit.wizard.wizard import Wizard

TEMPLATE = KIT_ROOT / "services" / "template"
SOLUTIONS = KIT_ROOT / "notebooks" / "solutions"
WRITE_THE_CONTRACT = ("09_microwizard_yml.py", "09_mw_sh.py", "09_health_endpoint.py")
ME = git.Actor("You", "you@example.invalid")


def solve(names, **namespace) -> dict:
    """Run notebook 09's solutions with the notebook's names they use (as %load would)."""
    for name in names:
        exec(compile((SOLUTIONS / name).read_text(encoding="utf-8"), name, "exec"), namespace)
    return namespace


@pytest.fixture
def my_service(tmp_path) -> Path:
    """The template copied as notebook 09 copies it, its three pieces written."""
    folder = tmp_path / "my-service"
    shutil.copytree(TEMPLATE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    solve(WRITE_THE_CONTRACT, MY_SERVICE=folder)
    return folder


def test_the_template_lacks_exactly_what_the_learner_writes():
    with pytest.raises(SpecError, match="microwizard.yml: not found"):
        load_spec(TEMPLATE)
    assert not (TEMPLATE / "microwizard" / "mw.sh").exists()
    assert (TEMPLATE / "microwizard" / "datawire.conf").is_file()
    app = (TEMPLATE / "app.py").read_text()
    assert "# TODO(you): the /health endpoint" in app and '"/health"' not in app


def test_the_solutions_meet_the_contract_by_hand(my_service, tmp_path):
    spec = load_spec(my_service)
    assert (spec.name, spec.port, spec.links) == ("quote", 5000, ())
    assert spec.health_check.path == "/health"
    assert "TODO(you)" not in (my_service / "app.py").read_text()
    env = {"HOST": "127.0.0.1", "PORT": str(free_port()), "PYTHON": sys.executable}
    log = tmp_path / "by-hand.log"
    init = spawn(["bash", "microwizard/mw.sh", "init"], cwd=my_service, env=env, log_path=log)
    assert init.wait(timeout=120) == 0, log.read_text()
    wrong = spawn(["bash", "microwizard/mw.sh", "deploy"], cwd=my_service, env=env,
                  log_path=log)
    assert wrong.wait(timeout=10) == 2 and "usage:" in log.read_text()
    run = spawn(["bash", "microwizard/mw.sh", "run"], cwd=my_service, env=env, log_path=log)
    base = f"http://127.0.0.1:{env['PORT']}"
    try:
        wait_for_http(f"{base}/health", timeout=15, proc=run, log_path=log)
        health = requests.get(f"{base}/health", timeout=2)
        assert (health.status_code, health.text) == (200, "OK")
        answer = requests.get(f"{base}/", timeout=2).json()
        assert answer["version"] == 1 and answer["instance"] == "run by hand"
        assert answer["quote"]
    finally:
        stop_group(run)
    assert not group_alive(run.pid)  # mw.sh execs the app: SIGTERM reached it


def answers(directory: str, instances: int, calls: int = 12) -> list[dict]:
    with Sherlock(directory) as sherlock:
        sherlock.wait_for("quote", instances, timeout=10)
        session = sherlock.session()
        return [session.get("http://quote/", timeout=5).json() for _ in range(calls)]


def tally(found: list[dict]) -> tuple[set, set]:
    return {a["instance"] for a in found}, {a["version"] for a in found}


def test_deploy_route_and_roll_out_as_notebook_09_does(my_service, tmp_path, directory):
    repo = git.Repo.init(my_service, initial_branch="main")

    def commit(message: str, tag: str) -> None:  # the notebook's, which its solution uses
        repo.git.add(all=True)
        repo.index.commit(message, author=ME, committer=ME)
        repo.create_tag(tag)

    commit("v1", "v1")
    with Wizard(tmp_path / "work", runtime="process", directory_url=directory,
                sources={}) as wizard:
        wizard.add_source("quote", ServiceSource(my_service))
        wizard.scale("quote", "v1", 2, ref="v1")
        assert tally(answers(directory, 2)) == ({"quote-v1-1", "quote-v1-2"}, {1})
        solve(["09_version_2.py"], MY_SERVICE=my_service, repo=repo, commit=commit)
        assert repo.commit("v2").parents == (repo.commit("v1"),)
        wizard.svrun("quote", "v2", "v2")
        assert tally(answers(directory, 3)) == ({"quote-v1-1", "quote-v1-2", "quote-v2-1"},
                                                {1, 2})
        wizard.scale("quote", "v1", 0)
        assert tally(answers(directory, 1)) == ({"quote-v2-1"}, {2})
