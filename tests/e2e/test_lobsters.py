"""The Lobsters stand-in: its data, its ranking, its /popular page, its mw.sh."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

import lobsters
from lobsters import create_app, db, front_page
from lobsters.ranking import HOTNESS_WINDOW, hotness
from mwkit.directory import DirectoryClient
from mwkit.errors import NoInstances
from mwkit.procs import free_port, running
from mwkit.sherlock import Sherlock
from tests.helpers.services import (
    LOBSTERS_DIR,
    POPULARITY_DIR,
    load_popularity,
    seeded_sqlite,
    serving,
)

EPOCH = datetime(1970, 1, 1)


class RoutedSession(requests.Session):
    """A session that sends ``http://popularity/...`` to one real address, or raises
    NoInstances as Sherlock does when there is none."""

    def __init__(self, address: str | None):
        super().__init__()
        self.address = address

    def request(self, method, url, *args, **kwargs):
        if self.address is None:
            raise NoInstances("no live instance of popularity")
        return super().request(
            method, url.replace("http://popularity", f"http://{self.address}", 1),
            *args, **kwargs,
        )


class StandInSherlock:
    """Stands in for mwkit's Sherlock: only its ``session()`` method, routing to one place."""

    def __init__(self, address: str | None = None):
        self.address = address

    def session(self) -> requests.Session:
        return RoutedSession(self.address)


@pytest.fixture
def database_url(tmp_path):
    return seeded_sqlite(tmp_path)


def all_rows(database_url: str) -> tuple[list, list]:
    return (db.query(database_url, "SELECT * FROM users ORDER BY id"),
            db.query(database_url, "SELECT * FROM stories ORDER BY id"))


def test_seeding_is_idempotent_and_deterministic(tmp_path, database_url):
    users, stories = all_rows(database_url)
    assert db.init(database_url) == (len(users), len(stories)) == (12, 1000)
    assert all_rows(database_url) == (users, stories)
    (tmp_path / "other").mkdir()
    assert all_rows(seeded_sqlite(tmp_path / "other")) == (users, stories)
    assert all(150 <= karma <= 999 for _, _, karma, _, _ in users)
    assert len({username for _, username, *_ in users}) == 12
    assert sum(banned for *_, banned, _ in users) == 1


def test_hotness_matches_the_lobsters_formula_on_known_stories():
    # 10 points, 4 comments (2.0 points, under the cap of 10), 1000 windows after the epoch:
    # -(log10(|10 + 1| + 2) + 1000) = -(1.1139433523 + 1000)
    assert hotness(10, 4, EPOCH + timedelta(seconds=1000 * HOTNESS_WINDOW)) == -1001.1139434
    # 300 comments would be 150 points, capped at the score: -log10(101 + 100)
    assert hotness(100, 300, EPOCH) == -2.3031961
    # score 0: sign 0, only the age counts (two windows)
    assert hotness(0, 7, EPOCH + timedelta(hours=44)) == -2.0
    # a negative score ranks by age alone too: the comment points are capped at the score
    assert hotness(-5, 0, EPOCH + timedelta(hours=22)) == -1.0
    # 2015-10-01 12:00 UTC is 1443700800 s: -(log10(2) + 1443700800 / 79200)
    assert hotness(1, 0, datetime(2015, 10, 1, 12, tzinfo=UTC)) == -18228.8464845
    assert hotness(1, 0, datetime(2015, 10, 1, 12)) == -18228.8464845  # naive means UTC
    # ten times the points is worth exactly one window (22 hours) of age
    when = datetime(2015, 10, 1)
    assert hotness(9, 0, when) == hotness(0, 0, when + timedelta(hours=22))


def story_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'data-story-id="(\d+)"', html)]


def test_front_page_shows_the_25_hottest_stories_in_order(database_url):
    response = create_app(database_url).test_client().get("/")
    assert response.status_code == 200
    rows = db.query(database_url, "SELECT id, score, comment_count, created_at FROM stories")
    ranked = sorted(rows, key=lambda r: (hotness(r[1], r[2], db.as_datetime(r[3])), r[0]))
    assert story_ids(response.text) == [row[0] for row in ranked[:25]]
    assert [story["id"] for story in front_page(database_url)] == [row[0] for row in ranked[:25]]


def get_popular(sherlock, database_url):
    client = create_app(database_url, sherlock=sherlock).test_client()
    started = time.monotonic()
    page, as_json = client.get("/popular"), client.get("/popular.json")
    return page, as_json, time.monotonic() - started


@pytest.mark.parametrize("sherlock", [None, StandInSherlock(address=None)],
                         ids=["no-sherlock", "no-instances"])
def test_popular_says_no_services_available_at_once(database_url, sherlock):
    page, as_json, elapsed = get_popular(sherlock, database_url)
    assert page.status_code == as_json.status_code == 200
    assert "NO SERVICES AVAILABLE" in page.text
    body = as_json.get_json()
    assert body["service_id"] is None and body["users"] == [] and body["error"]
    assert body["reason"] == "no_instances"
    assert elapsed < 0.5


def test_popular_gives_up_on_a_silent_instance_within_the_timeout(database_url):
    with socket.socket() as silent:  # accepts connections (kernel backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        client = create_app(database_url, sherlock=StandInSherlock(address)).test_client()
        started = time.monotonic()
        page = client.get("/popular")
        elapsed = time.monotonic() - started
    assert "NO SERVICES AVAILABLE" in page.text and "Timeout" in page.text
    assert 1.5 < elapsed < 2.5


def test_popular_shows_the_users_and_the_instance_that_answered(database_url):
    popularity_app = load_popularity().create_app(database_url)
    with serving(popularity_app) as address:
        page, as_json, _ = get_popular(StandInSherlock(address), database_url)
    service_id = popularity_app.config["SERVICE_ID"]
    assert "The Most Popular Users" in page.text and service_id in page.text
    assert "NO SERVICES AVAILABLE" not in page.text
    body = as_json.get_json()
    assert body["service_id"] == service_id and body["error"] is body["reason"] is None
    assert body["call_ms"] > 0
    top = max(body["users"], key=lambda user: user["karma"])
    assert body["users"][0] == top and top["username"] in page.text


META_REFRESH = re.compile(r'<meta http-equiv="refresh" content="(\d+); url=([^"]+)">')


def follow_the_refresh(client, url: str, most: int) -> list[str]:
    """The URLs a browser would load, starting at ``url``, following the page's meta
    refresh (a query-only relative URL) at most ``most`` times."""
    loaded = [url]
    while len(loaded) <= most and (match := META_REFRESH.search(client.get(loaded[-1]).text)):
        assert match[1] == "1" and match[2].startswith("?")
        loaded.append("/popular" + match[2].replace("&amp;", "&"))
    return loaded


def test_popular_refreshes_itself_counting_its_loads_and_stops_at_the_limit(database_url):
    client = create_app(database_url).test_client()
    assert not META_REFRESH.search(client.get("/popular").text)
    first = client.get("/popular?refresh=1").text
    assert META_REFRESH.search(first)[2] == "?refresh=1&amp;reload=2"
    assert f"Load 1 of {lobsters.REFRESH_LIMIT}" in first

    start = lobsters.REFRESH_LIMIT - 4
    loaded = follow_the_refresh(client, f"/popular?refresh=1&reload={start}", most=10)
    assert loaded[-1] == f"/popular?refresh=1&reload={lobsters.REFRESH_LIMIT}"
    assert len(loaded) == 5
    last = client.get(loaded[-1]).text
    assert f"Stopped refreshing after {lobsters.REFRESH_LIMIT} loads" in last
    assert '<a href="?refresh=1">refresh again</a>' in last


@pytest.mark.parametrize("query", ["refresh=0", "refresh=abc", "refresh=61", "refresh=",
                                   "reload=3"])
def test_popular_refreshes_only_when_asked_within_bounds(database_url, query):
    page = create_app(database_url).test_client().get(f"/popular?{query}").text
    assert not META_REFRESH.search(page) and 'id="refresh"' not in page


def test_pages_link_relatively_so_they_work_behind_a_proxy_prefix(database_url):
    client = create_app(database_url).test_client()
    for path in ("/", "/popular", "/popular?refresh=1"):
        hrefs = re.findall(r'(?:href|url)=["?]?([^"\s>]*)', client.get(path).text)
        assert hrefs and not [href for href in hrefs if href.startswith("/")], (path, hrefs)


def test_popular_marks_a_slow_call(database_url):
    popularity = load_popularity()
    popularity.QUERY_DELAY_SECONDS = 1.1  # the canary's way, a little faster
    slow_app, fast_app = popularity.create_app(database_url), \
        load_popularity().create_app(database_url)
    with serving(slow_app) as slow, serving(fast_app) as fast:
        slow_page, *_ = get_popular(StandInSherlock(slow), database_url)
        fast_page, *_ = get_popular(StandInSherlock(fast), database_url)
    assert '<span id="call-ms" class="slow">' in slow_page.text
    assert '<span id="call-ms">' in fast_page.text


def test_health():
    response = create_app("sqlite:////nonexistent/lobsters.db").test_client().get("/health")
    assert (response.status_code, response.text) == (200, "OK")


def test_a_malformed_database_url_is_refused_with_the_expected_forms():
    with pytest.raises(ValueError, match="mysql://user:password@host"):
        create_app("postgres://db/lobsters")


def mw_sh_env(tmp_path, database_url: str, port: int) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "MWKIT_DIRECTORY_URL"}
    (tmp_path / "state").mkdir(exist_ok=True)
    return {**env, "HOST": "127.0.0.1", "PORT": str(port), "DATABASE_URL": database_url,
            "PYTHON": sys.executable, "MWKIT_STATE_DIR": str(tmp_path / "state")}


def test_mw_sh_init_seeds_and_run_serves_over_http(tmp_path):
    database_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    port = free_port()
    env = mw_sh_env(tmp_path, database_url, port)
    mw_sh = ["bash", str(LOBSTERS_DIR / "microwizard" / "mw.sh")]
    init = subprocess.run([*mw_sh, "init"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert "12 users and 1000 stories" in init.stdout
    with running([*mw_sh, "run"], ready_url=f"http://127.0.0.1:{port}/health", env=env,
                 log_path=tmp_path / "lobsters.log"):
        front = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
        popular = requests.get(f"http://127.0.0.1:{port}/popular.json", timeout=5).json()
    assert story_ids(front.text) == [story["id"] for story in front_page(database_url)]
    assert popular["service_id"] is None and "MWKIT_DIRECTORY_URL" in popular["error"]
    assert popular["reason"] == "no_instances"


def test_mw_sh_rejects_an_unknown_command_with_usage(tmp_path):
    env = mw_sh_env(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", free_port())
    result = subprocess.run(["bash", str(LOBSTERS_DIR / "microwizard" / "mw.sh"), "bogus"],
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "usage:" in result.stderr


def test_serving_an_uninitialised_database_says_to_run_init(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lobsters"], capture_output=True, text=True, timeout=30,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"},
    )
    assert result.returncode != 0 and "python -m lobsters init" in result.stderr


@pytest.mark.mariadb
def test_seeds_and_ranks_on_real_mariadb(tmp_path):
    from mwkit.wizard.database import local_mariadb

    with local_mariadb(tmp_path / "mariadb") as database_url:
        assert db.init(database_url) == (12, 1000)
        assert db.init(database_url) == (12, 1000)
        sqlite_url = seeded_sqlite(tmp_path)
        assert front_page(database_url) == front_page(sqlite_url)
        ranking = load_popularity().create_app(database_url).test_client().get("/").get_json()
        expected = load_popularity().create_app(sqlite_url).test_client().get("/").get_json()
        assert ranking["users"] == expected["users"] and len(ranking["users"]) == 11


def reload_popular(url: str, count: int) -> list[dict]:
    return [requests.get(url, timeout=5).json() for _ in range(count)]


def test_popular_through_a_real_directory_and_sherlock(tmp_path, database_url, directory):
    """Two popularity processes registered in a real Directory; lobsters' own Sherlock
    spreads /popular over both, and says NO SERVICES AVAILABLE once they are gone."""
    lobsters_port = free_port()
    popularity_ports = [free_port(), free_port()]
    env = {**mw_sh_env(tmp_path, database_url, lobsters_port),
           "MWKIT_DIRECTORY_URL": directory, "PYTHONPATH": str(LOBSTERS_DIR.parent)}
    with contextlib.ExitStack() as stack:
        for port in popularity_ports:
            stack.enter_context(running(
                ["bash", str(POPULARITY_DIR / "microwizard" / "mw.sh"), "run"],
                ready_url=f"http://127.0.0.1:{port}/health",
                env={**env, "PORT": str(port)}, log_path=tmp_path / f"popularity-{port}.log"))
        service_ids = {requests.get(f"http://127.0.0.1:{port}/", timeout=5).json()["service_id"]
                       for port in popularity_ports}
        for port in popularity_ports:
            requests.put(f"{directory}/v1/services/popularity/instances/p{port}",
                         json={"address": f"127.0.0.1:{port}", "ttl": 60},
                         timeout=5).raise_for_status()
        stack.enter_context(running(
            ["bash", str(LOBSTERS_DIR / "microwizard" / "mw.sh"), "run"],
            ready_url=f"http://127.0.0.1:{lobsters_port}/health", env=env,
            log_path=tmp_path / "lobsters.log"))
        popular = f"http://127.0.0.1:{lobsters_port}/popular.json"
        deadline = time.monotonic() + 10  # until Sherlock has the Directory's snapshot
        while reload_popular(popular, 1)[0]["service_id"] is None:
            assert time.monotonic() < deadline, "Sherlock never routed to popularity"
            time.sleep(0.1)
        assert {body["service_id"] for body in reload_popular(popular, 6)} == service_ids
        for port in popularity_ports:
            requests.delete(f"{directory}/v1/services/popularity/instances/p{port}",
                            timeout=5).raise_for_status()
        deadline = time.monotonic() + 10
        while (body := reload_popular(popular, 1)[0])["service_id"] is not None:
            assert time.monotonic() < deadline, "Sherlock kept routing to removed instances"
            time.sleep(0.1)
        assert "NoInstances" in body["error"] and body["call_ms"] < 500
        assert body["reason"] == "no_instances"
        page = requests.get(f"http://127.0.0.1:{lobsters_port}/popular", timeout=5)
        assert "NO SERVICES AVAILABLE" in page.text


def answers_500(environ, start_response):
    """A popularity instance that is up but broken: every call fails with a 500."""
    start_response("500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")])
    return [b"broken"]


@pytest.mark.parametrize("reason", ["no_instances", "timeout", "error"])
def test_popular_json_says_why_no_service_answered(database_url, directory, sherlock,
                                                   monkeypatch, reason):
    """The monolith decides ``reason`` from the exception it caught, through a real
    Directory and Sherlock: no instance registered, a silent one, a broken one."""
    monkeypatch.setattr(lobsters, "POPULARITY_TIMEOUT", 0.3)  # the silent case, quickly
    with contextlib.ExitStack() as stack:
        if reason == "timeout":
            silent = stack.enter_context(socket.socket())  # accepts (backlog), never answers
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)
            address = f"127.0.0.1:{silent.getsockname()[1]}"
            # One that ejects nothing: an instance that timed out is ejected, and the
            # JSON load after the page would find no instance at all.
            sherlock = stack.enter_context(Sherlock(directory, eject=False))
        elif reason == "error":
            address = stack.enter_context(serving(answers_500))
        if reason != "no_instances":
            with DirectoryClient(directory) as client:
                client.register("popularity", "popularity-1", address)
            sherlock.wait_for("popularity", 1)
        page, as_json, _ = get_popular(sherlock, database_url)
    body = as_json.get_json()
    assert body["service_id"] is None and body["reason"] == reason and body["error"]
    assert "NO SERVICES AVAILABLE" in page.text
    if reason != "no_instances":  # what Sherlock did, for the reload's plot
        assert body["sherlock"] == {"attempts": 1, "hedged": False, "ejected": False}
