# Exercise: mw.sh. `init` installs only what $PYTHON cannot import yet (machines may be
# offline); `run` starts the app with exec, so that the stop signal reaches it.
mw_sh = MY_SERVICE / "microwizard" / "mw.sh"
mw_sh.write_text("""\
#!/usr/bin/env bash
# The Microwizard's entry points for quote: `mw.sh init` once, then `mw.sh run`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

case "${1:-}" in
    init)
        "$PYTHON" -c 'import flask' 2>/dev/null || "$PYTHON" -m pip install -r requirements.txt
        ;;
    run)
        exec "$PYTHON" app.py
        ;;
    *)
        echo "usage: $0 {init|run}   (got: '${1:-}')" >&2
        exit 2
        ;;
esac
""")
mw_sh.chmod(0o755)
print(mw_sh.read_text())
