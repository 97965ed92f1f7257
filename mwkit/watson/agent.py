"""Watson: the agent beside one instance that keeps its Directory entry true.

The loop is the original's, made sturdier: check the health URL every ``period``; after
``rise`` successes in a row register (``DEAD -> LIVE``), after ``fall`` failures in a row
deregister (``LIVE -> DEAD``). While live, each successful check also renews the lease, so
an instance whose Watson dies is forgotten when its lease runs out. Before the first
success it checks every 0.02 s instead of every period: a new instance gets traffic as soon
as it can answer. On stop it deregisters *first* and then waits ``drain`` seconds, so that
routers stop sending calls before the instance goes away.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

import requests

from mwkit.directory import DirectoryError, directory_client
from mwkit.watson.config import WatsonConfig

log = logging.getLogger("mwkit.watson")

STARTUP_INTERVAL = 0.02  # cheap, and only until the first success


class Watson:
    """Health-check one instance and keep its registration in the Directory."""

    def __init__(self, config: WatsonConfig) -> None:
        self.config = config
        self.instance_id = config.resolved_instance_id
        self.address = urlsplit(config.service_url).netloc or config.service_url
        self.state = "DEAD"
        self.registered = False
        self.transitions: list[tuple[float, str]] = []
        self._successes = self._failures = 0
        self._ever_live = False
        self._directory = directory_client(config.directory_url, config.token,
                                          timeout=max(config.timeout, 1.0))
        self._health = requests.Session()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> Watson:
        self._thread = threading.Thread(target=self.run, name=f"watson-{self.instance_id}",
                                        daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        """The check loop, in the calling thread, until :meth:`stop`."""
        while not self._stop.is_set():
            self.check_once()
            self._stop.wait(self.config.period if self._ever_live else STARTUP_INTERVAL)

    def stop(self, drain: bool = True) -> None:
        """Deregister first, wait the drain time, then stop checking."""
        self._stop.set()
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.config.timeout + 5)
        was_registered = self.registered
        self._deregister()
        if was_registered and drain and self.config.drain:
            log.info("%s: draining for %.1f s", self.instance_id, self.config.drain)
            time.sleep(self.config.drain)
        self._directory.close()
        self._health.close()

    def __enter__(self) -> Watson:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- one round --------------------------------------------------------------------

    def healthy(self) -> bool:
        try:
            response = self._health.get(self.config.health_check_url,
                                        timeout=self.config.timeout)
        except requests.RequestException:
            return False
        return 200 <= response.status_code < 300

    def check_once(self) -> None:
        """One health check and whatever it implies for the Directory."""
        if self.healthy():
            self._successes, self._failures = self._successes + 1, 0
            if self.state == "DEAD" and self._successes >= self.config.rise:
                self._become("LIVE")
            if self.state == "LIVE":
                self._renew()
        else:
            self._failures, self._successes = self._failures + 1, 0
            if self.state == "LIVE" and self._failures >= self.config.fall:
                self._become("DEAD")
                self._deregister()

    def _become(self, state: str) -> None:
        log.info("%s: %s -> %s", self.instance_id, self.state, state)
        self.transitions.append((time.time(), f"{self.state} -> {state}"))
        self.state = state
        self._ever_live = self._ever_live or state == "LIVE"

    def _renew(self) -> None:
        """Register when not registered (or forgotten); otherwise renew the lease."""
        try:
            if self.registered and self._directory.heartbeat(self.config.service_name,
                                                             self.instance_id):
                return
            if self.registered:
                log.warning("%s: the Directory forgot this instance; registering again",
                            self.instance_id)
            self._directory.register(self.config.service_name, self.instance_id,
                                     self.address, self.config.metadata,
                                     self.config.lease_ttl)
            self.registered = True
            log.info("%s: registered %s at %s", self.instance_id, self.config.service_name,
                     self.address)
        except DirectoryError as error:
            log.warning("%s: %s (will retry)", self.instance_id, error)

    def _deregister(self) -> None:
        if not self.registered:
            return
        try:
            self._directory.deregister(self.config.service_name, self.instance_id)
            log.info("%s: deregistered", self.instance_id)
        except DirectoryError as error:
            log.warning("%s: could not deregister (%s); the lease will expire", self.instance_id,
                        error)
        self.registered = False
