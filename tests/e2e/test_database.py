"""The database servers and URLs: a real private MariaDB process, and URL parsing."""

from __future__ import annotations

import os
import stat

import pymysql
import pytest

from mwkit.wizard.database import (
    DatabaseError,
    bootstrap_sql,
    local_mariadb,
    parse_database_url,
    sqlite_url,
)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.mariadb
def test_local_mariadb_round_trips_a_row_and_leaves_nothing(tmp_path):
    with local_mariadb(tmp_path, database="lobsters", user="lobsters") as url:
        parts = parse_database_url(url)
        assert (parts.host, parts.database, parts.user) == ("127.0.0.1", "lobsters", "lobsters")
        (folder,) = tmp_path.iterdir()
        pid = int((folder / "mariadbd.pid").read_text())
        assert pid_alive(pid)
        assert stat.S_IMODE((folder / "init.sql").stat().st_mode) == 0o600  # the password

        connection = pymysql.connect(**parts.pymysql_args())
        with connection, connection.cursor() as cursor:
            cursor.execute("CREATE TABLE users (username VARCHAR(50), karma INT)")
            cursor.execute("INSERT INTO users VALUES (%s, %s)", ("alice", 512))
            connection.commit()
            cursor.execute("SELECT username, karma FROM users")
            assert cursor.fetchall() == (("alice", 512),)

        # real grants: a wrong password is refused
        with pytest.raises(pymysql.err.OperationalError) as refused:
            pymysql.connect(**{**parts.pymysql_args(), "password": "wrong"})
        assert refused.value.args[0] == 1045

    assert not pid_alive(pid)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.mariadb
def test_local_mariadb_refuses_unsafe_names_and_leaves_nothing(tmp_path):
    with pytest.raises(DatabaseError, match="database name"):
        with local_mariadb(tmp_path, database="lobsters; DROP"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_parse_mysql_url():
    parts = parse_database_url("mysql://lobsters:p%40ss@db.local:3307/lobsters")
    assert parts.scheme == "mysql"
    assert parts.pymysql_args() == {
        "host": "db.local", "port": 3307, "user": "lobsters", "password": "p@ss",
        "database": "lobsters",
    }
    assert parse_database_url("mysql://u:p@localhost/db").port == 3306


def test_sqlite_url_round_trips_an_absolute_path(tmp_path):
    url = sqlite_url(tmp_path / "lobsters.db")
    assert url == f"sqlite:///{tmp_path}/lobsters.db"
    assert url.startswith("sqlite:////")
    assert parse_database_url(url).path == str(tmp_path / "lobsters.db")


@pytest.mark.parametrize("url, message", [
    ("postgres://u:secret@host/db", "unsupported database URL scheme 'postgres'"),
    ("mysql://u:secret@host", "incomplete MySQL URL"),
    ("mysql://host:3306/db", "incomplete MySQL URL"),
    ("mysql://u:secret@host:99999/db", "bad port"),
    ("sqlite://relative.db", "bad SQLite URL"),
    ("lobsters.db", "unsupported database URL scheme ''"),
])
def test_bad_urls_say_what_is_wrong_without_the_password(url, message):
    with pytest.raises(DatabaseError, match=message) as error:
        parse_database_url(url)
    assert "secret" not in str(error.value)


def test_bootstrap_sql_creates_database_and_user_and_rejects_quotes():
    sql = bootstrap_sql("lobsters", "lobsters", "s3cret")
    assert "CREATE DATABASE IF NOT EXISTS `lobsters`" in sql
    assert "IDENTIFIED BY 's3cret'" in sql
    with pytest.raises(DatabaseError, match="password"):
        bootstrap_sql("lobsters", "lobsters", "it's")
