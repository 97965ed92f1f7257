"""Every error the kit raises on purpose, in one tree.

Catch :class:`MwkitError` to catch them all; catch a branch to catch one kind of trouble.
Each class also keeps the built-in base a caller would have caught before it existed
(``ValueError`` for bad input, ``RuntimeError`` for something that failed to happen,
``requests.ConnectionError`` for a call that found nowhere to go), as docker-py's
``APIError`` is also a ``requests`` error::

    MwkitError
    ├── InvalidInput (ValueError)             bad input: nothing was changed
    │   ├── InvalidName                       a service name, tag or instance id
    │   ├── SpecError                         microwizard/microwizard.yml, mw.sh, ...
    │   ├── WatsonConfigError                 datawire.conf or Watson's options
    │   ├── SourceError                       a Git ref, a service folder
    │   ├── SettingsError                     an MWKIT_* variable or a settings value
    │   ├── BadRequest                        a request the Directory refuses (its 4xx)
    │   └── InvalidFault                      a fault, a fault's value, or its instance
    ├── ServiceFull (ValueError)              a service at the Directory's instance cap (its 409)
    ├── DirectoryError (RuntimeError)         the Directory answered an error or not at all
    ├── NoInstances (requests.ConnectionError)  Sherlock has no live instance to call
    ├── WizardError (RuntimeError)            a launch, a stop, a scale that failed
    │   ├── StateError                        <workdir>/state.json is damaged
    │   ├── RuntimeUnavailable                the runtime asked for cannot run here
    │   │   └── DockerUnavailable             no Docker engine answers
    │   └── ImageBuildError                   building the kit's images failed
    ├── StartFailed (RuntimeError)            a process the kit started exited early
    │   ├── StartTimeout (TimeoutError)       ... or did not answer in time
    │   └── ProgramMissing                    ... or is not installed (dnsmasq, HAProxy)
    ├── DatabaseError (RuntimeError)          the monolith's database did not start
    └── StackError (RuntimeError)             the demo stack cannot start or stop

The CLI prints an ``MwkitError`` as one line (``mwkit svrun: error: ...``) and anything
else, a bug, with its traceback; ``--debug`` or ``MWKIT_DEBUG=1`` shows every traceback.
"""

from __future__ import annotations

import requests


def brief(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for an error message: it names the
    wrong value, it does not echo a whole file or request back."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class MwkitError(Exception):
    """The base of every error the kit raises on purpose; the message says what to do."""


class InvalidInput(MwkitError, ValueError):
    """Bad input (a name, a file, a value): nothing was started or changed."""


class InvalidName(InvalidInput):
    """A name that would be unsafe or that the Directory would refuse."""


class SpecError(InvalidInput):
    """A service's ``microwizard/`` folder is missing something or holds a wrong value."""


class WatsonConfigError(InvalidInput):
    """Watson's configuration (``datawire.conf`` or its options) is wrong."""


class SourceError(InvalidInput):
    """A service's source (a Git repository, a ref, a folder) cannot give what was asked."""


class SettingsError(InvalidInput):
    """A setting (an ``MWKIT_*`` variable, or a value given to :class:`mwkit.Settings`)."""


class BadRequest(InvalidInput):
    """A request the Directory refuses; ``status`` is the HTTP status it answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class InvalidFault(InvalidInput):
    """A fault that cannot be injected as asked (see :mod:`mwkit.faults`): an unknown kind,
    a value out of range, an instance that is not running; nothing was injected."""


class ServiceFull(MwkitError, ValueError):
    """A new instance would pass the Directory's per-service cap; nothing was changed."""


class DirectoryError(MwkitError, RuntimeError):
    """The Directory answered with an error, or could not be reached."""


class NoInstances(MwkitError, requests.ConnectionError):
    """There is no live instance of the service to send the call to."""


class WizardError(MwkitError, RuntimeError):
    """Something the wizard was asked to do failed; the message says what and where."""


class StateError(WizardError):
    """The workdir's state file cannot be read or written."""


class RuntimeUnavailable(WizardError):
    """The runtime asked for cannot run here; the message says how to get it, or do without."""


class DockerUnavailable(RuntimeUnavailable):
    """No Docker engine answers; the message says how to get one, or how to do without."""


class ImageBuildError(WizardError):
    """Building one of the kit's images failed; the message says which step and why."""


class StartFailed(MwkitError, RuntimeError):
    """A process the kit started exited before it answered; the message has its log's tail."""


class StartTimeout(StartFailed, TimeoutError):
    """A process the kit started did not answer within its time; the message has its log."""


class ProgramMissing(StartFailed):
    """A program the kit runs (dnsmasq, HAProxy, etcd) is not installed; the message says
    what to install."""


class DatabaseError(MwkitError, RuntimeError):
    """The monolith's database could not be started or reached."""


class StackError(MwkitError, RuntimeError):
    """The demo stack could not be started, found or stopped."""
