"""Shared fixtures: real Directory processes and real small instances with their Watsons."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from mwkit.directory import run_directory
from mwkit.procs import free_port, python_command, spawn, stop_group, wait_for_http

TESTS = Path(__file__).parent


@functools.cache
def missing(requirement: str) -> str | None:
    """Why a marked test cannot run here, or None when it can."""
    if requirement == "docker":
        from mwkit.wizard.engine import docker_available

        return None if docker_available() else "no Docker engine answers"
    if requirement == "mariadb":
        return None if shutil.which("mariadbd") or shutil.which("mysqld") else \
            "no MariaDB server binary (apt-get install mariadb-server)"
    if requirement == "browser":
        try:
            import playwright  # noqa: F401
        except ImportError:
            return "Playwright is not installed"
        return None if Path("/usr/bin/chromium").exists() else "no /usr/bin/chromium"
    if requirement in ("etcd", "haproxy", "dnsmasq"):  # yardsticks and the approaches lesson
        found = shutil.which(requirement) or shutil.which(requirement, path="/usr/sbin")
        return None if found else f"{requirement} is not installed (bash .ci/install-system.sh)"
    return None


KIT_PROCESS = re.compile(r"mwkit|echo_service|popularity\.py|lobsters|mariadbd|jupyter")
#: Set in this test session's environment and so inherited by every process it starts:
#: the leak check looks only at those, never at another user's or another run's processes.
SESSION_MARK = "MWKIT_TEST_SESSION"
os.environ.setdefault(SESSION_MARK, uuid.uuid4().hex)
#: Tests (and the notebooks that `make test` runs with them) use processes unless they ask
#: for Docker: which runtime ``auto`` picks depends on the machine, and is tested on its own.
os.environ.setdefault("MWKIT_RUNTIME", "process")
#: ... and a workdir of this session's own: the notebooks that nbval runs use the default
#: workdir, and a learner's stack may be running in ``<repository>/.mwkit`` meanwhile (the
#: notebooks' first cell tears down whatever runs in their workdir).
SESSION_WORKDIR = Path(tempfile.mkdtemp(prefix="mwkit-tests-")) / ".mwkit"
os.environ.setdefault("MWKIT_WORKDIR", str(SESSION_WORKDIR))


def kit_processes() -> dict[int, str]:
    """Live processes this test session started that look like the kit's: pid -> command."""
    session = os.environ[SESSION_MARK]
    found = {}
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            command = " ".join(proc.info["cmdline"] or [])
            if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE or \
                    not KIT_PROCESS.search(command) or "pytest" in command:
                continue
            if proc.environ().get(SESSION_MARK) == session:
                found[proc.pid] = command
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def kit_containers(workdirs_under: list[str]) -> list[str]:
    """Names of the kit's containers made for a workdir under one of ``workdirs_under``
    (this session's temporary folders, the repository's own): never another run's."""
    if missing("docker"):
        return []
    from mwkit.wizard.engine import docker_client

    return [c.name for c in docker_client().containers.list(ignore_removed=True,
        all=True, filters={"label": "mwkit.managed=1"})
        if c.labels.get("mwkit.workdir", "").startswith(tuple(workdirs_under))]


@pytest.fixture(scope="session", autouse=True)
def nothing_left_running(tmp_path_factory):
    """After the whole run, no process or container this session started may be left."""
    ours = [str(tmp_path_factory.getbasetemp()), str(TESTS.parent), str(SESSION_WORKDIR)]
    before, containers_before = kit_processes(), kit_containers(ours)
    yield
    shutil.rmtree(SESSION_WORKDIR.parent, ignore_errors=True)
    deadline = time.monotonic() + 10
    while (left := {p: c for p, c in kit_processes().items() if p not in before}) and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"the tests left processes running: {left}"
    left_containers = set(kit_containers(ours)) - set(containers_before)
    assert not left_containers, f"the tests left containers: {left_containers}"


def pytest_runtest_setup(item):
    """Skip tests whose marked requirement is missing; in CI they must run, so fail."""
    for requirement in ("docker", "mariadb", "browser", "etcd", "haproxy", "dnsmasq"):
        if item.get_closest_marker(requirement) and (reason := missing(requirement)):
            if os.environ.get("CI"):
                pytest.fail(f"{reason}: CI must run the {requirement} tests")
            pytest.skip(reason)


@pytest.fixture(scope="module")
def process_stack(tmp_path_factory):
    """A demo stack on processes that one test module's tests share (it takes seconds to
    start); each test leaves it as the next one expects."""
    from mwkit.stack import Stack

    with Stack(tmp_path_factory.mktemp("stack") / "work", runtime="process",
               progress=lambda line: None) as stack:
        yield stack


@pytest.fixture
def directory(tmp_path):
    """A real Directory process on a free loopback port; yields its URL."""
    with run_directory(log_path=tmp_path / "directory.log") as url:
        yield url


@dataclass
class EchoInstance:
    name: str
    port: int
    service: subprocess.Popen
    watson: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class EchoFleet:
    """Start echo instances (each with a Watson process beside it), stop them all after."""

    def __init__(self, directory_url: str, logs: Path) -> None:
        self.directory_url, self.logs = directory_url, logs
        self.instances: list[EchoInstance] = []

    def start(self, name: str, service: str = "echo", watson: bool = True,
              **watson_options) -> EchoInstance:
        port = free_port()
        proc = spawn([sys.executable, str(TESTS / "helpers" / "echo_service.py"), str(port), name],
                     log_path=self.logs / f"{name}.log")
        instance = EchoInstance(name, port, proc)
        self.instances.append(instance)
        wait_for_http(f"{instance.url}/health", proc=proc)
        if watson:
            options = {"period": 0.2, "timeout": 0.5, "drain": 0.5, **watson_options}
            args = ["-m", "mwkit", "watson", "--directory-url", self.directory_url,
                    "--service-name", service, "--service-url", instance.url,
                    "--health-check-url", f"{instance.url}/health", "--instance-id", name]
            for key, value in options.items():
                args += [f"--{key.replace('_', '-')}", str(value)]
            instance.watson = spawn(python_command(*args),
                                    log_path=self.logs / f"{name}.watson.log")
        return instance

    def stop_all(self) -> None:
        for instance in self.instances:
            for proc in (instance.watson, instance.service):
                if proc is not None:
                    stop_group(proc, grace=3)


@pytest.fixture
def make_fleet(tmp_path):
    """Make fleets of echo instances for any Directory URL; all stopped after the test."""
    fleets = []

    def make(directory_url: str) -> EchoFleet:
        fleets.append(EchoFleet(directory_url, tmp_path))
        return fleets[-1]

    yield make
    for fleet in fleets:
        fleet.stop_all()


@pytest.fixture
def fleet(directory, make_fleet):
    return make_fleet(directory)


@pytest.fixture
def sherlock(directory):
    from mwkit.sherlock import Sherlock

    with Sherlock(directory) as router:
        yield router

