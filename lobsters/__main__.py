"""``python -m lobsters``: serve the monolith; ``python -m lobsters init``: schema and data.

Environment: ``DATABASE_URL`` (required), ``HOST`` (default 127.0.0.1), ``PORT`` (default
5000), ``MWKIT_DIRECTORY_URL`` (optional: without it /popular has no Sherlock and says
NO SERVICES AVAILABLE).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from werkzeug.serving import make_server

from lobsters import create_app, db


def serve(database_url: str) -> None:
    """Serve with a threaded server: a slow /popular must not hold up other pages."""
    try:
        db.query(database_url, "SELECT COUNT(*) FROM stories")
    except Exception as exc:  # any driver's error: say what to do instead of a 500 later
        sys.exit(f"lobsters: cannot read stories at {database_url} ({exc}); "
                 "run `python -m lobsters init` first")
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app(database_url, directory_url=os.environ.get("MWKIT_DIRECTORY_URL"))
    server = make_server(host, port, app, threaded=True)
    print(f"lobsters on http://{host}:{port}", flush=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lobsters", description=__doc__)
    parser.add_argument("command", nargs="?", choices=("serve", "init"), default="serve")
    args = parser.parse_args(argv)
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        sys.exit("lobsters: DATABASE_URL is not set (sqlite:////abs/path.db or mysql://...)")
    if args.command == "init":
        users, stories = db.init(database_url)
        print(f"lobsters: database ready, {users} users and {stories} stories", flush=True)
    else:
        serve(database_url)


if __name__ == "__main__":
    main()
