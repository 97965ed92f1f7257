"""Sherlock (push): the kit's client-side router inside the caller, as the monolith has it.

The monolith embeds a :class:`mwkit.sherlock.Sherlock` and calls ``http://popularity/``
through its session (``lobsters.call_popularity``); this approach does the same in the
scenario's own process, with the kit's default settings (round robin, one retry on another
instance, ejection of an instance that refused a call). The Directory pushes every change
of the instance list down one stream, so there is nothing to poll and no hop in between;
the price is the router itself, a library every caller needs, in every language.

A call that Sherlock retried on another instance is a :class:`~mwkit.traffic.Reload` with
``attempts`` 2 (``retried`` is True): the plots mark it, as they do for the monolith's.
"""

from __future__ import annotations

import threading
import time

import requests

from mwkit.approaches import POPULARITY_PATH
from mwkit.directory import Message
from mwkit.settings import Settings
from mwkit.sherlock import Sherlock
from mwkit.sherlock.calls import failure_reason
from mwkit.traffic import REASONS, Reload


class CountingSherlock(Sherlock):
    """Sherlock that counts the messages the Directory pushed to it (the snapshot included)."""

    pushes = 0

    def _apply(self, message: Message) -> None:
        super()._apply(message)
        self.pushes += 1  # only the watch thread writes it


def what_sherlock_did(answer: object) -> dict:
    """The Reload fields of what Sherlock did for a call (``attempts``, ``hedged``,
    ``ejected``), from the ``sherlock`` a response or a failed call's exception carries."""
    done = getattr(answer, "sherlock", None) or {}
    return {key: done[key] for key in ("attempts", "hedged", "ejected") if key in done}


class SherlockApproach:
    """Calls popularity through a Sherlock of its own, fed by the Directory's push stream.

    ``settings``: whose Sherlock options to use (default: the kit's defaults, not the
    environment's, so that every run compares the same router); ``service``: the name to
    call.
    """

    name = "Sherlock (push)"

    def __init__(self, directory_url: str, service: str = "popularity",
                 settings: Settings | None = None) -> None:
        self.directory_url, self.service = directory_url, service
        self.options = (settings or Settings()).sherlock_options()
        self.router: CountingSherlock | None = None
        self._open = False
        self.retries = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []

    def __enter__(self) -> SherlockApproach:
        self.router = CountingSherlock(self.directory_url, **self.options)
        self.retries, self._open = 0, True
        return self

    def __exit__(self, *exc_info) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        if self.router is not None:
            self.router.close()  # kept: costs() still reads its count of pushes
        self._open = False

    def _session(self) -> requests.Session:
        """One Sherlock session per calling thread, as the monolith keeps one per thread.

        The caller's own ``session`` is left alone: Sherlock routes through an adapter
        mounted on a session of its own."""
        session = getattr(self._local, "session", None)
        if session is None or getattr(self._local, "router", None) is not self.router:
            session = self._local.session = self.router.session()
            self._local.router = self.router
            with self._lock:
                self._sessions.append(session)
        return session

    def call(self, session: requests.Session, timeout: float = 2.0) -> Reload:
        """One call to ``http://popularity/`` through Sherlock; never raises."""
        started, clock = time.time(), time.perf_counter()
        done: dict = {}
        try:
            if not self._open:
                raise RuntimeError("enter the approach first: `with SherlockApproach(...):`")
            response = self._session().get(f"http://{self.service}{POPULARITY_PATH}",
                                           timeout=timeout)
            done = what_sherlock_did(response)
            response.raise_for_status()
            service_id = response.json()["service_id"]
            record = Reload(started, time.perf_counter() - clock, service_id, None, "ok",
                            response.status_code, None, getattr(response, "instance", None),
                            **done)
        except (requests.RequestException, RuntimeError, ValueError, KeyError,
                TypeError) as error:
            done = done or what_sherlock_did(error)
            response = getattr(error, "response", None)
            record = Reload(started, time.perf_counter() - clock, None, None,
                            REASONS[failure_reason(error)],
                            getattr(response, "status_code", None),
                            f"{type(error).__name__}: {error}", None, **done)
        with self._lock:
            self.retries += max(0, record.attempts - 1)
        return record

    def costs(self) -> dict[str, int]:
        """Messages the Directory pushed (one per change of any service) and retries."""
        with self._lock:
            return {"pushes received": self.router.pushes if self.router else 0,
                    "retries": self.retries}
