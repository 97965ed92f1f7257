"""lobsters: a small Flask stand-in for the Lobsters monolith (Rails + MariaDB).

It has what the tutorial needs: users with karma, a front page of stories ranked by the
Lobsters hotness formula, and the new page ``/popular``, which calls the popularity
microservice on every load through Sherlock, the client-side router, used here as a
real monolith would use a client library. ``/popular?refresh=1`` reloads itself every
second (at most :data:`REFRESH_LIMIT` times), so a notebook can show it changing.

Its links are relative, so the pages also work behind a path prefix such as
jupyter-server-proxy's ``/proxy/<port>/`` (see ``mwkit/links.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time

import requests
from flask import Flask, jsonify, render_template, request

from lobsters import db
from lobsters.ranking import hotness
from mwkit.sherlock.calls import failure_reason

FRONT_PAGE_SIZE = 25
POPULARITY_URL = "http://popularity/"  # a bare service name: Sherlock routes it
POPULARITY_TIMEOUT = 2.0  # seconds; a page must never hang on a slow or silent instance
#: The values of ``reason`` in ``/popular.json`` when no instance answered (None when one did).
REASONS = ("no_instances", "timeout", "error")
#: A self-refreshing /popular stops after this many reloads: a tab left open is no load test.
REFRESH_LIMIT = 300
MAX_REFRESH_SECONDS = 60
SLOW_MS = 1000  # the page marks a call slower than this

STORIES_QUERY = """
    SELECT s.id, s.title, s.url, s.score, s.comment_count, s.created_at, u.username
    FROM stories s JOIN users u ON u.id = s.user_id
"""


def front_page(database_url: str, limit: int = FRONT_PAGE_SIZE) -> list[dict]:
    """The ``limit`` hottest stories, hottest first (ranked in Python, see ranking.py)."""
    stories = []
    for story_id, title, url, score, comments, created_at, username in db.query(
        database_url, STORIES_QUERY
    ):
        created_at = db.as_datetime(created_at)
        stories.append({
            "id": story_id, "title": title, "url": url, "score": score,
            "comment_count": comments, "created_at": created_at, "username": username,
            "domain": url.split("/")[2], "hotness": hotness(score, comments, created_at),
        })
    stories.sort(key=lambda story: (story["hotness"], story["id"]))
    return stories[:limit]


def whole_number(text: str | None) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def refresh_of(args) -> dict:
    """The self-refresh asked for by ``/popular``'s query string.

    ``refresh``: whole seconds between reloads (1 to MAX_REFRESH_SECONDS; anything else, or
    none, means no refresh); ``reload``: how many loads so far, counted in the URL the
    page reloads to; ``stopped``: True once ``reload`` has reached :data:`REFRESH_LIMIT`
    (the page then says how to go on instead of reloading).
    """
    seconds = whole_number(args.get("refresh"))
    if seconds is not None and not 1 <= seconds <= MAX_REFRESH_SECONDS:
        seconds = None
    reload = max(1, whole_number(args.get("reload")) or 1)
    stopped = seconds is not None and reload >= REFRESH_LIMIT
    return {"refresh": seconds, "reload": reload, "stopped": stopped, "limit": REFRESH_LIMIT}


def call_popularity(sherlock) -> dict:
    """One call to popularity, never raises: a dict with ``service_id``, ``instance``,
    ``call_ms``, ``users``, ``error``, ``reason`` and ``sherlock`` (what Sherlock did:
    ``{"attempts", "hedged", "ejected"}``, see :meth:`mwkit.sherlock.attempts.Call.summary`).

    On success ``error`` and ``reason`` are None. Any failure leaves ``service_id`` None
    (the page shows NO SERVICES AVAILABLE), puts the human text in ``error`` and says why in
    ``reason`` (see :data:`REASONS`): ``"no_instances"`` when Sherlock knows no live
    instance (or there is no Sherlock), ``"timeout"`` when the call timed out, ``"error"``
    for anything else (an error status, a bad answer, a connection failed on every try).
    """
    started = time.perf_counter()
    result = {"service_id": None, "instance": None, "call_ms": None, "users": [],
              "error": None, "reason": None, "sherlock": None}
    if sherlock is None:
        result.update(error="no Sherlock: MWKIT_DIRECTORY_URL is not set",
                      reason="no_instances")
    else:
        try:
            response = session_of(sherlock).get(POPULARITY_URL, timeout=POPULARITY_TIMEOUT)
            response.raise_for_status()
            body = response.json()
            result.update(service_id=body["service_id"], users=body["users"],
                          instance=getattr(response, "instance", None),
                          sherlock=getattr(response, "sherlock", None))
        except (requests.RequestException, RuntimeError, ValueError, KeyError,
                TypeError) as exc:
            result.update(error=f"{type(exc).__name__}: {exc}", reason=failure_reason(exc),
                          sherlock=getattr(exc, "sherlock", None) or
                          getattr(getattr(exc, "response", None), "sherlock", None))
    result["call_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


_sessions = threading.local()


def session_of(sherlock):
    """One keep-alive session per server thread (a session is not meant to be shared)."""
    if getattr(_sessions, "owner", None) is not sherlock:
        _sessions.owner, _sessions.session = sherlock, sherlock.session()
    return _sessions.session


def start_sherlock(directory_url: str):
    """One Sherlock for the whole process, closed when the process exits.

    Its settings come from the kit's settings, that is from the variables the stack gives
    the monolith (see :mod:`mwkit.contract`): ``MWKIT_SHERLOCK_POLICY`` (how it balances,
    default ``round_robin``), ``MWKIT_SHERLOCK_RETRIES`` (default 1),
    ``MWKIT_SHERLOCK_EJECT`` (default 1) and the four off by default (outlier ejection,
    retry budget, hedging, deadline: see :mod:`mwkit.settings`). A wrong value stops the
    monolith at its start.
    """
    from mwkit.settings import Settings
    from mwkit.sherlock import Sherlock  # imported only when there is a Directory to use

    settings = Settings.from_env()
    stack = contextlib.ExitStack()
    sherlock = stack.enter_context(Sherlock(directory_url, **settings.sherlock_options()))
    atexit.register(stack.close)
    return sherlock


def create_app(database_url: str, directory_url: str | None = None, sherlock=None) -> Flask:
    """The monolith. Pass a ``sherlock`` (tests), or a ``directory_url`` to start one."""
    db.dialect(database_url)  # a malformed URL fails here, not on the first page load
    if sherlock is None and directory_url:
        sherlock = start_sherlock(directory_url)
    app = Flask(__name__)

    @app.get("/")
    def index():
        return render_template("index.html", stories=front_page(database_url))

    @app.get("/popular")
    def popular():
        return render_template("popular.html", **call_popularity(sherlock),
                               **refresh_of(request.args), slow_ms=SLOW_MS)

    @app.get("/popular.json")
    def popular_json():
        return jsonify(call_popularity(sherlock))

    @app.get("/health")
    def health():
        return "OK", 200, {"Content-Type": "text/plain"}

    return app
