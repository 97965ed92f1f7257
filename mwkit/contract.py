"""The instance contract: what every runtime gives an instance, and the phases it goes through.

A runtime starts ``python -m mwkit.wizard.supervisor`` in the service's folder with these
environment variables; the supervisor runs ``mw.sh init`` and ``mw.sh run`` with them (so a
service reads ``HOST``, ``PORT`` and ``DATABASE_URL`` as any twelve-factor app would) and
writes the instance's :class:`Phase` to ``$MWKIT_STATE_DIR/phase.json``. The names live
here, once, because three parties use them: the wizard (which prepares them), the runtimes
(which add where things are) and the supervisor (which reads them inside the instance).
"""

from __future__ import annotations

from enum import StrEnum

# --- what the service itself reads ---------------------------------------------------
HOST = "HOST"  # the interface to listen on
PORT = "PORT"  # the port to listen on
PYTHON = "PYTHON"  # the interpreter mw.sh should use
DATABASE_URL = "DATABASE_URL"  # when microwizard.yml links "database"
DIRECTORY_URL = "MWKIT_DIRECTORY_URL"  # when it links "directory" (the monolith's Sherlock)
SHERLOCK_POLICY = "MWKIT_SHERLOCK_POLICY"  # how a linked Sherlock balances
SHERLOCK_RETRIES = "MWKIT_SHERLOCK_RETRIES"  # how many other instances it tries (0: none)
SHERLOCK_EJECT = "MWKIT_SHERLOCK_EJECT"  # 1: leave out an instance that refused; 0: never
SHERLOCK_OUTLIER_5XX = "MWKIT_SHERLOCK_OUTLIER_5XX"  # leave out after N 5xx in a row (0: off)
SHERLOCK_RETRY_BUDGET = "MWKIT_SHERLOCK_RETRY_BUDGET"  # retries at most this share (0: off)
SHERLOCK_HEDGE = "MWKIT_SHERLOCK_HEDGE"  # hedge after this latency quantile (0: off)
SHERLOCK_DEADLINE = "MWKIT_SHERLOCK_DEADLINE"  # seconds a call may take (0: none)
SHERLOCK_RETRY_5XX = "MWKIT_SHERLOCK_RETRY_5XX"  # 1: retry an idempotent call answered 5xx

# --- who the instance is ---------------------------------------------------------------
SERVICE = "MWKIT_SERVICE"
INSTANCE_ID = "MWKIT_INSTANCE_ID"
TAG = "MWKIT_TAG"
COMMIT = "MWKIT_COMMIT"
METADATA = "MWKIT_METADATA"  # JSON object registered beside the address (tag, commit, ...)

# --- what the supervisor needs -----------------------------------------------------------
STATE_DIR = "MWKIT_STATE_DIR"  # where phase.json goes
WATSON_CONFIG = "MWKIT_WATSON_CONFIG"  # the rendered datawire.conf
DIRECTORY_TOKEN = "MWKIT_DIRECTORY_TOKEN"  # what the Directory's writes need
STOP_GRACE = "MWKIT_STOP_GRACE"  # seconds between the service's SIGTERM and SIGKILL
ADVERTISE_HOST = "MWKIT_ADVERTISE_HOST"  # register this host ("container-ip": our own IP)
STANDBY = "MWKIT_STANDBY"  # "1": start, then wait for GO_FILE before mw.sh init (a standby)

PHASE_FILE = "phase.json"
#: Written by the wizard into the state dir before it stops an instance: ``{"drain": false}``
#: asks the supervisor for the naive stop order (see :mod:`mwkit.wizard.supervisor`). A
#: file, not another signal, so that it reaches the supervisor the same way on every runtime.
STOP_FILE = "stop.json"
#: Written by the wizard into the state dir to inject or clear faults (see
#: :mod:`mwkit.faults`): ``{"serial": n, "faults": {kind: params}}``, the whole set each time.
#: The supervisor applies it within 0.05 s and writes ``faults_applied: n`` to phase.json.
FAULTS_FILE = "faults.json"
#: Written by the wizard into a standby instance's state dir when a launch takes it (see
#: ``Wizard(standby=True)``): the supervisor, started ahead and waiting, goes on to init.
GO_FILE = "go.json"


class Phase(StrEnum):
    """An instance's lifecycle, as ``mwkit status`` shows it.

    The wizard writes the first one; the supervisor inside the instance writes the others
    (``registered`` is added by the wizard when the Directory lists a live instance).
    """

    CHECKING_OUT = "checking-out"  # the wizard exports the commit
    STANDBY = "standby"  # started ahead, waiting for a launch to take it (not yet init)
    STARTED = "started"  # the runtime started the supervisor; it has not written yet
    INITIALIZING = "initializing"  # mw.sh init
    STARTING = "starting"  # mw.sh run; Watson has not seen it healthy yet
    LIVE = "live"  # healthy: Watson registered it
    REGISTERED = "registered"  # live, and the Directory lists it
    UNHEALTHY = "unhealthy"  # was live, now fails its checks: deregistered
    DRAINING = "draining"  # asked to stop: deregistered, finishing its calls
    STOPPING = "stopping"  # asked to stop without draining: still registered, service stopped
    STOPPED = "stopped"  # ended on request, or its service exited with 0
    FAILED = "failed"  # init or run failed, or it never became healthy


#: Phases of an instance that is on its way out: it no longer counts as running.
LEAVING = frozenset({Phase.FAILED, Phase.STOPPED, Phase.DRAINING, Phase.STOPPING})
#: Phases in which the instance may still be listed in the Directory.
SERVING = frozenset({Phase.LIVE, Phase.STARTING, Phase.UNHEALTHY})
