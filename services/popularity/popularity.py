"""popularity: ranks the monolith's users by karma, the first microservice of the tutorial.

This is Baker Street's Microwizard demo service as an ordinary Flask app. It needs nothing
from mwkit: a Watson beside it health-checks ``/health`` and registers it, and the
monolith's Sherlock routes calls to it. Each process answers with its own ``service_id``
so the learner can see which instance served a page.

Environment (``main``): ``HOST``, ``PORT``, ``DATABASE_URL`` (``sqlite:////abs/path.db``
or ``mysql://user:password@host:port/database``).
"""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import sys
import time
import uuid
from urllib.parse import unquote, urlsplit

import pymysql
from flask import Flask, jsonify
from werkzeug.serving import make_server

# The "bad v2" canary. v1 answers at once; the wizard's v2 commit changes exactly this one
# line to `QUERY_DELAY_SECONDS = 1.5`, so that one instance becomes slow.
QUERY_DELAY_SECONDS = 0.0

RANKING_QUERY = "SELECT username, karma FROM users WHERE banned = 0 ORDER BY karma DESC, username"
HEALTH_QUERY = "SELECT 1 FROM users LIMIT 1"
DATABASE_ERRORS = (sqlite3.Error, pymysql.MySQLError, OSError, ValueError)


def connect(database_url: str):
    """Open a DB-API connection for ``database_url``.

    SQLite is opened read-only, so a wrong path is an error instead of a new empty file.
    """
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    parts = urlsplit(database_url)
    if parts.scheme != "mysql":
        raise ValueError(
            f"DATABASE_URL {database_url!r} is not sqlite:////path or mysql://user:pw@host/db"
        )
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
        user=unquote(parts.username or ""), password=unquote(parts.password or ""),
        database=parts.path.lstrip("/"), connect_timeout=2, read_timeout=5,
    )


def fetch_all(database_url: str, query: str) -> list[tuple]:
    """Run one query on a fresh connection (a connection per request keeps threads apart)."""
    connection = connect(database_url)
    try:
        cursor = connection.cursor()
        cursor.execute(query)
        return list(cursor.fetchall())
    finally:
        connection.close()


def create_app(database_url: str) -> Flask:
    """The popularity app: one ``service_id`` per app, one request counter per app."""
    app = Flask(__name__)
    service_id = str(uuid.uuid4())
    app.config["SERVICE_ID"] = service_id
    served = itertools.count(1)  # next() on a count is atomic under the GIL: thread-safe

    @app.get("/")
    def ranking():
        index = next(served)
        time.sleep(QUERY_DELAY_SECONDS)
        try:
            rows = fetch_all(database_url, RANKING_QUERY)
        except DATABASE_ERRORS as exc:
            return jsonify(service_id=service_id, index=index, error=f"database: {exc}"), 503
        users = [{"username": username, "karma": karma} for username, karma in rows]
        return jsonify(service_id=service_id, index=index, users=users)

    @app.get("/health")
    def health():
        """503 while the database cannot answer, so Watson takes this instance out."""
        try:
            fetch_all(database_url, HEALTH_QUERY)
        except DATABASE_ERRORS as exc:
            return f"database unreachable: {exc}\n", 503, {"Content-Type": "text/plain"}
        return "OK", 200, {"Content-Type": "text/plain"}

    return app


def main() -> None:
    """Serve on HOST:PORT with a threaded server (a slow request must not block /health)."""
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        sys.exit("popularity: DATABASE_URL is not set (sqlite:////abs/path.db or mysql://...)")
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app(database_url)
    server = make_server(host, port, app, threaded=True)
    print(f"popularity {app.config['SERVICE_ID']} on http://{host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
