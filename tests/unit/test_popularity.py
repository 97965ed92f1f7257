"""The popularity service: its ranking, its identity, its health, and its mw.sh."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
import requests

from lobsters import db
from mwkit.procs import free_port, running
from tests.helpers.services import POPULARITY_DIR, load_popularity, seeded_sqlite

popularity = load_popularity()
CANARY_LINE = "QUERY_DELAY_SECONDS = 0.0"


@pytest.fixture
def database_url(tmp_path):
    return seeded_sqlite(tmp_path)


def test_ranks_users_not_banned_by_karma(database_url):
    body = popularity.create_app(database_url).test_client().get("/").get_json()
    everyone = db.query(database_url, "SELECT username, karma, banned FROM users")
    expected = sorted(
        ({"username": name, "karma": karma} for name, karma, banned in everyone if not banned),
        key=lambda user: (-user["karma"], user["username"]),
    )
    assert body["users"] == expected
    assert len(expected) == len(everyone) - 1  # the seed bans exactly one user
    assert [u["karma"] for u in body["users"]] == sorted((u["karma"] for u in expected),
                                                         reverse=True)


def test_service_id_is_one_uuid4_per_app_and_index_counts_requests(database_url):
    client = popularity.create_app(database_url).test_client()
    bodies = [client.get("/").get_json() for _ in range(3)]
    assert [body["index"] for body in bodies] == [1, 2, 3]
    assert len({body["service_id"] for body in bodies}) == 1
    assert uuid.UUID(bodies[0]["service_id"]).version == 4
    other = popularity.create_app(database_url).test_client().get("/").get_json()
    assert other["service_id"] != bodies[0]["service_id"] and other["index"] == 1


def test_health_is_ok_and_503_without_a_database(database_url, tmp_path):
    response = popularity.create_app(database_url).test_client().get("/health")
    assert (response.status_code, response.text) == (200, "OK")
    missing = popularity.create_app(f"sqlite:///{tmp_path / 'missing.db'}").test_client()
    health, ranking = missing.get("/health"), missing.get("/")
    assert health.status_code == 503 and "database unreachable" in health.text
    assert ranking.status_code == 503 and "database" in ranking.get_json()["error"]
    assert not (tmp_path / "missing.db").exists()  # read-only: no empty file made


def test_the_canary_line_is_there_once_and_makes_v2_slow(database_url, tmp_path):
    source = (POPULARITY_DIR / "popularity.py").read_text()
    assert source.splitlines().count(CANARY_LINE) == 1
    v2 = tmp_path / "popularity.py"
    v2.write_text(source.replace(CANARY_LINE, "QUERY_DELAY_SECONDS = 1.5"))
    client = load_popularity(v2).create_app(database_url).test_client()
    started = time.monotonic()
    assert client.get("/").status_code == 200
    assert time.monotonic() - started >= 1.5


def mw_sh(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(POPULARITY_DIR / "microwizard" / "mw.sh"), *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )


def test_mw_sh_run_serves_over_http(database_url, tmp_path):
    port = free_port()
    env = {"HOST": "127.0.0.1", "PORT": str(port), "DATABASE_URL": database_url,
           "PYTHON": sys.executable}
    command = ["bash", str(POPULARITY_DIR / "microwizard" / "mw.sh"), "run"]
    with running(command, ready_url=f"http://127.0.0.1:{port}/health", env=env,
                 cwd=POPULARITY_DIR, log_path=tmp_path / "popularity.log"):
        first = requests.get(f"http://127.0.0.1:{port}/", timeout=5).json()
        second = requests.get(f"http://127.0.0.1:{port}/", timeout=5).json()
    assert first["service_id"] == second["service_id"]
    assert (first["index"], second["index"]) == (1, 2)
    assert first["users"][0]["karma"] == max(u["karma"] for u in first["users"])


def test_mw_sh_init_installs_nothing_when_requirements_are_importable():
    result = mw_sh("init", env={"PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr
    assert "already importable" in result.stdout


@pytest.mark.parametrize("args", [("bogus",), ()])
def test_mw_sh_rejects_an_unknown_command_with_usage(args):
    result = mw_sh(*args)
    assert result.returncode != 0
    assert "usage:" in result.stderr and "init|run" in result.stderr
