"""Helpers shared by the tests of the two Flask services (popularity and lobsters)."""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from werkzeug.serving import make_server

from lobsters import db

REPO = Path(__file__).resolve().parents[2]
POPULARITY_DIR = REPO / "services" / "popularity"
LOBSTERS_DIR = REPO / "lobsters"


def seeded_sqlite(folder: Path) -> str:
    """A fresh SQLite database in ``folder`` seeded by ``lobsters`` init; its URL."""
    url = f"sqlite:///{folder / 'lobsters.db'}"
    db.init(url)
    return url


def load_popularity(path: Path = POPULARITY_DIR / "popularity.py") -> ModuleType:
    """Import popularity.py from ``path`` (a service folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"popularity_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """Serve a WSGI app over real HTTP on a free loopback port; yield its ``host:port``."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

