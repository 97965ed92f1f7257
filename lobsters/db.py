"""The monolith's database: one URL (SQLite or MariaDB), the schema and the fake data.

The same SQL runs on both engines. Rows carry fixed ids and are inserted with "insert,
ignoring rows that exist", so ``init`` is idempotent and safe when several instances run
it at once. The data is generated from a fixed random seed and a fixed base time: every
machine in a workshop sees the same users and the same front page.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import datetime, timedelta
from urllib.parse import unquote, urlsplit

import pymysql

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS users (
        id INTEGER NOT NULL PRIMARY KEY,
        username VARCHAR(50) NOT NULL UNIQUE,
        karma INTEGER NOT NULL DEFAULT 0,
        banned INTEGER NOT NULL DEFAULT 0,
        created_at DATETIME NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS stories (
        id INTEGER NOT NULL PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (id),
        title VARCHAR(200) NOT NULL,
        url VARCHAR(250) NOT NULL,
        score INTEGER NOT NULL,
        comment_count INTEGER NOT NULL,
        created_at DATETIME NOT NULL
    )""",
)

SEED = 1015
BASE_TIME = datetime(2015, 10, 1, 12, 0, 0)  # UTC; the newest story is a little older
STORY_COUNT = 1000
USERNAMES = (
    "tidepool", "clawhammer", "saltmarsh", "kelpforest", "reefwalker", "moltingseason",
    "harborlight", "brinewater", "shellback", "carapace", "bisque", "trapline",
)
BANNED = {"trapline"}
ADJECTIVES = ("Practical", "Fearless", "Tiny", "Distributed", "Boring", "Fast", "Honest")
TOPICS = (
    "service discovery", "health checks", "load balancing", "Rust macros", "SQLite internals",
    "TCP keepalives", "Git plumbing", "Bash pitfalls", "Python packaging", "DNS caching",
)
FORMS = ("{a} {t}", "{t} considered harmful", "Notes on {t}", "{t} in 100 lines", "Why {t}?")
DOMAINS = ("example.com", "example.org", "example.net", "blog.example.com", "docs.example.org")

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def dialect(database_url: str) -> str:
    """``sqlite`` or ``mysql``; anything else is an error that shows the expected forms."""
    if database_url.startswith("sqlite:///"):
        return "sqlite"
    if urlsplit(database_url).scheme == "mysql":
        return "mysql"
    raise ValueError(
        f"database URL {database_url!r} is neither sqlite:////abs/path.db nor "
        "mysql://user:password@host:port/database"
    )


def connect(database_url: str):
    """Open a DB-API connection for ``database_url``."""
    if dialect(database_url) == "sqlite":
        return sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=10.0)
    parts = urlsplit(database_url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
        user=unquote(parts.username or ""), password=unquote(parts.password or ""),
        database=parts.path.lstrip("/"), connect_timeout=5, charset="utf8mb4",
    )


def query(database_url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Run one ``?``-style query on a fresh connection and return every row."""
    connection = connect(database_url)
    try:
        cursor = connection.cursor()
        cursor.execute(placeholders(database_url, sql), params)
        return list(cursor.fetchall())
    finally:
        connection.close()


def placeholders(database_url: str, sql: str) -> str:
    """SQLite takes ``?`` placeholders, PyMySQL ``%s``: the SQL here is written with ``?``."""
    return sql.replace("?", "%s") if dialect(database_url) == "mysql" else sql


def as_datetime(value: datetime | str) -> datetime:
    """A DATETIME column's value: MariaDB returns a datetime, SQLite the text we stored."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def fake_users(rng: random.Random) -> list[tuple]:
    """About a dozen users, karma 150..999, one of them banned."""
    return [
        (
            user_id, name, rng.randint(150, 999), int(name in BANNED),
            (BASE_TIME - timedelta(days=rng.randint(40, 900))).strftime(DATETIME_FORMAT),
        )
        for user_id, name in enumerate(USERNAMES, start=1)
    ]


def fake_stories(rng: random.Random) -> list[tuple]:
    """1,000 stories over the 30 days before BASE_TIME, with a few hits and a few flops."""
    stories = []
    for story_id in range(1, STORY_COUNT + 1):
        topic = rng.choice(TOPICS)
        title = rng.choice(FORMS).format(a=rng.choice(ADJECTIVES), t=topic)
        title = title[0].upper() + title[1:]
        url = f"https://{rng.choice(DOMAINS)}/{topic.replace(' ', '-').lower()}/{story_id}"
        score = rng.randint(-2, 5) + int(rng.expovariate(1 / 8))
        comment_count = int(rng.expovariate(1 / 6))
        created_at = BASE_TIME - timedelta(seconds=rng.randint(60, 30 * 24 * 3600))
        stories.append((
            story_id, rng.randint(1, len(USERNAMES)), title, url, score, comment_count,
            created_at.strftime(DATETIME_FORMAT),
        ))
    return stories


def init(database_url: str) -> tuple[int, int]:
    """Create the schema and insert the fake data; return (users, stories) counted after."""
    insert = "INSERT OR IGNORE" if dialect(database_url) == "sqlite" else "INSERT IGNORE"
    rng = random.Random(SEED)
    users, stories = fake_users(rng), fake_stories(rng)
    connection = connect(database_url)
    try:
        cursor = connection.cursor()
        for statement in SCHEMA:
            cursor.execute(statement)
        # executemany: PyMySQL turns it into multi-row INSERTs, so MariaDB seeds in a blink
        cursor.executemany(placeholders(database_url, (
            f"{insert} INTO users (id, username, karma, banned, created_at) "
            "VALUES (?, ?, ?, ?, ?)")), users)
        cursor.executemany(placeholders(database_url, (
            f"{insert} INTO stories (id, user_id, title, url, score, comment_count, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)")), stories)
        connection.commit()
        cursor.execute("SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM stories)")
        user_count, story_count = cursor.fetchone()
    finally:
        connection.close()
    return int(user_count), int(story_count)
