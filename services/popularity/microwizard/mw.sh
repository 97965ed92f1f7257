#!/usr/bin/env bash
# The Microwizard's entry points for popularity: `mw.sh init` once, then `mw.sh run`.
# Runs in the service folder with HOST, PORT, DATABASE_URL and PYTHON set (see
# docs/architecture.md); works by hand too: PYTHON defaults to python3.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

init() {
    # Machines may be offline: install only what the interpreter cannot import yet.
    # find_spec looks the modules up without importing them: a fast check at every start.
    if "$PYTHON" -c 'import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ("flask", "pymysql")))' 2>/dev/null; then
        echo "popularity: requirements already importable with $PYTHON"
    else
        "$PYTHON" -m pip install -r requirements.txt
    fi
}

run() {
    exec "$PYTHON" popularity.py
}

case "${1:-}" in
    init) init ;;
    run) run ;;
    *)
        echo "usage: $0 {init|run}   (got: '${1:-}')" >&2
        exit 2
        ;;
esac
