"""The demo's database servers, each a context manager that yields a URL and cleans up.

The monolith and popularity find their database through one ``DATABASE_URL``:
``mysql://user:password@host:port/database`` (MariaDB) or ``sqlite:////path/file.db``.

- :func:`local_mariadb` runs a private MariaDB server as a local process, in a folder
  of its own, on 127.0.0.1 and a free port: no system service is touched.
- :func:`mariadb_container` runs one in a container from the ``mwkit/mariadb`` image on
  a Docker network, so instances in containers reach it by name.

Both create the database and a user with a password through an ``--init-file`` that the
server runs at start (real grants, not ``--skip-grant-tables``), and both wait until a
PyMySQL connection succeeds, within a bounded time.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote, unquote, urlsplit

import pymysql

from mwkit.errors import DatabaseError
from mwkit.procs import free_port, log_tail_text, spawn, stop_group
from mwkit.wizard.images import CONTAINER_INIT_SQL_ENV
from mwkit.wizard.state import write_private

MARIADB_IMAGE = "mwkit/mariadb:latest"
#: What the MariaDB container may do. Its entrypoint prepares the server's folders as root
#: (chown, chmod, writes into the mysql user's data folder, which needs DAC_OVERRIDE and
#: FOWNER), then mariadbd drops to the mysql user (SETUID, SETGID); every other capability
#: goes, nothing gains privileges through setuid files, memory and processes are bounded.
#: Its root file system stays writable: the data lives there (a tmpfs would count it
#: against the memory limit).
MARIADB_LOCKDOWN = {
    "cap_drop": ["ALL"], "cap_add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"],
    "security_opt": ["no-new-privileges"], "mem_limit": 512 * 2**20,
    "memswap_limit": 512 * 2**20, "pids_limit": 256,
}
MYSQL_SCHEMES = ("mysql", "mariadb", "mysql+pymysql")
SQL_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
PASSWORD = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
# A unix socket path must fit in sockaddr_un (108 bytes on Linux).
MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class DatabaseURL:
    """The parts of a database URL; ``path`` is only set for SQLite."""

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    path: str | None = None

    def pymysql_args(self) -> dict:
        """Keyword arguments for ``pymysql.connect``."""
        return {"host": self.host, "port": self.port, "user": self.user,
                "password": self.password or "", "database": self.database}


class MariaDBURLs(NamedTuple):
    """The two addresses of a MariaDB container."""

    host: str      # from this machine: 127.0.0.1 and the published port
    network: str   # from containers on the same Docker network: name:3306


def sqlite_url(path: str | os.PathLike) -> str:
    """``sqlite:////absolute/path`` for a database file."""
    return f"sqlite:///{Path(path).resolve()}"


def mysql_url(user: str, password: str, host: str, port: int, database: str) -> str:
    return f"mysql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{database}"


def parse_database_url(url: str) -> DatabaseURL:
    """Split a database URL into its parts, or say what is wrong with it."""
    parts = urlsplit(url)
    shown = _without_password(url)
    if parts.scheme == "sqlite":
        path = unquote(url.removeprefix("sqlite:///"))
        if not url.startswith("sqlite:////") or path == "/":
            raise DatabaseError(
                f"bad SQLite URL {shown!r}: use sqlite:////absolute/path/to/file.db "
                "(three slashes, then the absolute path)"
            )
        return DatabaseURL(scheme="sqlite", path=path)
    if parts.scheme in MYSQL_SCHEMES:
        database = parts.path.lstrip("/")
        try:
            port = parts.port or 3306
        except ValueError as error:
            raise DatabaseError(f"bad port in database URL {shown!r}: {error}") from error
        if not parts.hostname or not database or not parts.username:
            raise DatabaseError(
                f"incomplete MySQL URL {shown!r}: use mysql://user:password@host:port/database"
            )
        return DatabaseURL(
            scheme="mysql", user=unquote(parts.username),
            password=unquote(parts.password) if parts.password is not None else None,
            host=parts.hostname, port=port, database=database,
        )
    raise DatabaseError(
        f"unsupported database URL scheme {parts.scheme!r} in {shown!r}: use "
        "mysql://user:password@host:port/database or sqlite:////path/to/file.db"
    )


def _without_password(url: str) -> str:
    """The URL with its password replaced by ***, for error messages."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def bootstrap_sql(database: str, user: str, password: str) -> str:
    """SQL that creates the database and its user, and is harmless to run again."""
    for value, what, pattern in ((database, "database name", SQL_NAME),
                                 (user, "user name", SQL_NAME),
                                 (password, "password", PASSWORD)):
        if not pattern.fullmatch(value):
            raise DatabaseError(f"{what} {value!r} must match {pattern.pattern}")
    return (
        f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4;\n"
        f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}';\n"
        f"ALTER USER '{user}'@'%' IDENTIFIED BY '{password}';\n"
        f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'%';\n"
    )


def wait_for_mysql(url: str, timeout: float, failed=lambda: None) -> None:
    """Connect with PyMySQL until it works or ``timeout`` passes.

    ``failed()`` is asked between attempts; it returns an error text when the server is
    known to have died (then waiting longer is pointless) and None otherwise.
    """
    args = parse_database_url(url).pymysql_args()
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        problem = failed()
        if problem:
            raise DatabaseError(problem)
        try:
            pymysql.connect(connect_timeout=1, **args).close()
            return
        except pymysql.err.MySQLError as error:
            last = error
        time.sleep(0.1)
    raise DatabaseError(
        f"MariaDB at {_without_password(url)} did not accept a connection within "
        f"{timeout:.0f} s (last error: {last})"
    )


@contextlib.contextmanager
def local_mariadb(
    workdir: str | os.PathLike,
    *,
    database: str = "lobsters",
    user: str = "lobsters",
    password: str | None = None,
    ready_timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """A private MariaDB server as a local process; yields its ``mysql://`` URL.

    Its data, socket, log and pid file live in a new folder under ``workdir``; the
    server and the folder are gone when the block ends. ``env`` is added to the server's
    environment (the process runtime marks what it must find again after a crash).
    """
    install_db, mariadbd = _program("mariadb-install-db"), _program("mariadbd")
    password = password or secrets.token_hex(12)
    folder = Path(workdir) / f"mariadb-{uuid.uuid4().hex[:8]}"
    data, log_path = folder / "data", folder / "mariadbd.log"
    init_file = folder / "init.sql"
    as_root = ["--user=root"] if os.geteuid() == 0 else []  # mariadbd refuses root otherwise
    proc = None
    try:
        data.mkdir(parents=True)
        write_private(init_file, bootstrap_sql(database, user, password))  # 0600 from birth
        _run_checked(
            [install_db, "--no-defaults", f"--datadir={data}", *as_root,
             "--skip-test-db", "--skip-name-resolve"],
            log_path,
        )
        with _socket_path(folder) as socket_path:
            port = free_port()
            proc = spawn(
                [mariadbd, "--no-defaults", f"--datadir={data}", f"--socket={socket_path}",
                 f"--pid-file={folder / 'mariadbd.pid'}", f"--port={port}",
                 "--bind-address=127.0.0.1", "--skip-name-resolve", "--skip-log-bin",
                 f"--init-file={init_file}", *as_root],
                log_path=log_path, env=env,
            )
            url = mysql_url(user, password, "127.0.0.1", port, database)

            def failed() -> str | None:
                if proc.poll() is None:
                    return None
                return (f"mariadbd exited with code {proc.returncode} before accepting "
                        f"connections{log_tail_text(log_path)}")

            wait_for_mysql(url, ready_timeout, failed)
            yield url
    finally:
        if proc is not None:
            stop_group(proc, grace=15)
        shutil.rmtree(folder, ignore_errors=True)


def _program(name: str) -> str:
    """The full path of a MariaDB program (mariadbd lives in /usr/sbin, often not on PATH)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        raise DatabaseError(
            f"{name} not found: install MariaDB (Debian: apt-get install mariadb-server)"
        )
    return path


@contextlib.contextmanager
def _socket_path(folder: Path) -> Iterator[Path]:
    """The server's unix socket: in ``folder`` when that path is short enough, else in /tmp."""
    if len(str(folder / "mysqld.sock")) <= MAX_SOCKET_PATH:
        yield folder / "mysqld.sock"
        return
    short = Path(tempfile.mkdtemp(prefix="mwkit-my-"))
    try:
        yield short / "mysqld.sock"
    finally:
        shutil.rmtree(short, ignore_errors=True)


def _run_checked(command: list[str], log_path: Path) -> None:
    """Run a setup command, its output in ``log_path``; raise with the log tail on failure."""
    with open(log_path, "ab") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, timeout=120, check=False)
    if result.returncode != 0:
        raise DatabaseError(
            f"{Path(command[0]).name} failed with exit code {result.returncode}"
            f"{log_tail_text(log_path)}"
        )


@contextlib.contextmanager
def mariadb_container(
    client,
    network: str,
    name: str,
    *,
    database: str = "lobsters",
    user: str = "lobsters",
    password: str | None = None,
    image: str = MARIADB_IMAGE,
    labels: dict[str, str] | None = None,
    ready_timeout: float = 60.0,
) -> Iterator[MariaDBURLs]:
    """A MariaDB container on the Docker network ``network``; yields its two URLs.

    Its port 3306 is published on 127.0.0.1 only (a free port the engine picks), so the
    database is reachable from this machine and from the network's containers, and from
    nowhere else; it runs with only :data:`MARIADB_LOCKDOWN`'s capabilities and limits.
    The container is removed when the block ends.
    """
    import docker.errors

    from mwkit.names import check_identifier

    check_identifier(name, "container name")
    password = password or secrets.token_hex(12)
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound as error:
        raise DatabaseError(
            f"image {image} not found: build it with 'mwkit image build --only mariadb'"
        ) from error
    container = client.containers.run(
        image, detach=True, name=name, network=network,
        ports={"3306/tcp": ("127.0.0.1", None)},
        labels={"mwkit.service": "mariadb", "mwkit.stack": "1", **(labels or {})},
        environment={CONTAINER_INIT_SQL_ENV: bootstrap_sql(database, user, password)},
        restart_policy={"Name": "unless-stopped"},  # back after the engine restarts
        **MARIADB_LOCKDOWN,
    )
    try:
        container.reload()
        host_port = int(container.ports["3306/tcp"][0]["HostPort"])
        urls = MariaDBURLs(
            host=mysql_url(user, password, "127.0.0.1", host_port, database),
            network=mysql_url(user, password, name, 3306, database),
        )

        def failed() -> str | None:
            container.reload()
            if container.status in ("created", "running"):
                return None
            logs = container.logs(tail=20).decode(errors="replace")
            return f"container {name} stopped ({container.status}); its last lines:\n{logs}"

        wait_for_mysql(urls.host, ready_timeout, failed)
        yield urls
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
