#!/usr/bin/env bash
# Start the Docker engine when it is not answering, and check that containers can run.
#
# There is no systemd on these machines, so dockerd runs in the background of this
# script's caller: its log goes to /var/log/mwkit-dockerd.log, its pid to
# /var/run/mwkit-dockerd.pid (stop it with: kill "$(cat /var/run/mwkit-dockerd.pid)").
#
# Flags: none are needed here. On this machine's kernel dockerd 20.10 picks the overlay2
# storage driver and sets up iptables NAT for the docker0 bridge on its own, and a
# container publishing a port on 127.0.0.1 answers from the host. MWKIT_DOCKERD_FLAGS
# passes extra flags for machines where that is not so, e.g. "--storage-driver=vfs"
# (a kernel without overlayfs) or "--iptables=false --bridge=none" (no iptables).
set -euo pipefail

LOG=${MWKIT_DOCKERD_LOG:-/var/log/mwkit-dockerd.log}
PIDFILE=${MWKIT_DOCKERD_PIDFILE:-/var/run/mwkit-dockerd.pid}
WAIT_SECONDS=60

answers() { docker info >/dev/null 2>&1; }
# A dockerd that was stopped but not yet reaped (a zombie: this machine's init may never
# reap it) still answers kill -0: it counts as gone.
alive() { kill -0 "$1" 2>/dev/null && [[ "$(ps -o stat= -p "$1" 2>/dev/null)" != Z* ]]; }

if answers; then
    echo "start-docker: the Docker engine already answers"
else
    command -v dockerd >/dev/null || {
        echo "start-docker: dockerd not found; run .ci/install-system.sh first" >&2
        exit 1
    }
    if [[ -s $PIDFILE ]] && alive "$(cat "$PIDFILE")"; then
        echo "start-docker: dockerd (pid $(cat "$PIDFILE")) is still starting; waiting for it"
    else
        echo "start-docker: starting dockerd (log: $LOG)"
        # A session of its own: the engine must outlive this script's caller, and a
        # signal to the caller's process group (a terminal closed, a job stopped) must
        # not take every container down with it.
        # shellcheck disable=SC2086  # MWKIT_DOCKERD_FLAGS is a list of flags
        setsid nohup dockerd ${MWKIT_DOCKERD_FLAGS:-} >>"$LOG" 2>&1 </dev/null &
        echo $! > "$PIDFILE"
    fi
    started=$SECONDS
    until answers; do
        if ! alive "$(cat "$PIDFILE")"; then
            echo "start-docker: dockerd exited; last lines of $LOG:" >&2
            tail -n 30 "$LOG" >&2
            exit 1
        fi
        if (( SECONDS - started >= WAIT_SECONDS )); then
            echo "start-docker: 'docker info' did not answer within ${WAIT_SECONDS} s;" \
                 "last lines of $LOG:" >&2
            tail -n 30 "$LOG" >&2
            exit 1
        fi
        sleep 0.5
    done
    echo "start-docker: dockerd answers after $(( SECONDS - started )) s (pid $(cat "$PIDFILE"))"
fi

docker info --format 'start-docker: engine {{.ServerVersion}}, storage {{.Driver}}, cgroup {{.CgroupDriver}}'

# Smoke test: no image can be pulled here, so make an empty one whose /usr is the host's
# (bind-mounted read-only) and serve HTTP from it with the host's python3 through a port
# published on 127.0.0.1: this proves the bridge, NAT and port publishing work.
if ! docker image inspect mwkit/smoke >/dev/null 2>&1; then
    skeleton=$(mktemp -d)
    mkdir "$skeleton/usr" "$skeleton/tmp" "$skeleton/etc"
    for dir in bin sbin lib lib64; do ln -s "usr/$dir" "$skeleton/$dir"; done
    tar -C "$skeleton" -c . | docker import - mwkit/smoke >/dev/null
    rm -rf "$skeleton"
fi
smoke=$(docker run -d --rm -v /usr:/usr:ro -p 127.0.0.1::8000 mwkit/smoke \
        python3 -m http.server --directory /tmp 8000)
trap 'docker rm -f "$smoke" >/dev/null 2>&1 || true' EXIT
address=$(docker port "$smoke" 8000/tcp | head -n 1)
if python3 - "http://$address/" <<'PY'
import sys, time, urllib.request
for _ in range(50):  # at most about 10 s
    try:
        sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=0.5).status == 200 else 1)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
PY
then
    echo "start-docker: a container answered on $address: containers and published ports work"
else
    echo "start-docker: a test container did not answer on $address; its log:" >&2
    docker logs "$smoke" 2>&1 | tail -n 20 >&2
    exit 1
fi
