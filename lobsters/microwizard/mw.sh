#!/usr/bin/env bash
# The Microwizard's entry points for the monolith: `mw.sh init` (requirements, schema and
# fake data, idempotent), then `mw.sh run`. Runs in the service folder (this package's
# folder) with HOST, PORT, DATABASE_URL, MWKIT_DIRECTORY_URL, MWKIT_STATE_DIR and PYTHON
# set (see docs/architecture.md). mwkit puts itself on PYTHONPATH, since the monolith
# uses Sherlock as a client library; we only add this package to it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

# `python -m lobsters` needs a folder named "lobsters" on the path, wherever this folder is
# mounted (a container may mount it as /service): link it from our own writable state dir.
package_root="${MWKIT_STATE_DIR:?MWKIT_STATE_DIR must name a writable folder}/python"
mkdir -p "$package_root"
ln -sfn "$PWD" "$package_root/lobsters"
export PYTHONPATH="$package_root${PYTHONPATH:+:$PYTHONPATH}"

init() {
    # Machines may be offline: install only what the interpreter cannot import yet.
    # find_spec looks the modules up without importing them: a fast check at every start.
    if "$PYTHON" -c 'import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ("flask", "pymysql", "requests")))' 2>/dev/null; then
        echo "lobsters: requirements already importable with $PYTHON"
    else
        "$PYTHON" -m pip install -r requirements.txt
    fi
    "$PYTHON" -m lobsters init
}

run() {
    exec "$PYTHON" -m lobsters serve
}

case "${1:-}" in
    init) init ;;
    run) run ;;
    *)
        echo "usage: $0 {init|run}   (got: '${1:-}')" >&2
        exit 2
        ;;
esac
