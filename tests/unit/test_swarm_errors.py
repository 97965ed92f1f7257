"""An engine error while the kit looks for a workdir's Swarm services is the kit's
WizardError, so that ``mwkit down`` of a stack that does not use Swarm skips it (the real
error, "transport is closing", comes only while a swarm is being made or left)."""

from __future__ import annotations

from pathlib import Path

import docker.errors
import pytest

from mwkit.errors import WizardError
from mwkit.swarm import _services


class EngineMidSwarmChange:
    """Answers that it is in a swarm, then fails to list services, as a changing one does."""

    def info(self):
        return {"Swarm": {"LocalNodeState": "active"}}

    class services:  # noqa: N801 - docker-py's attribute name
        @staticmethod
        def list(filters):
            raise docker.errors.APIError("503 Server Error", explanation="transport is closing")


def test_an_engine_error_becomes_a_wizard_error():
    with pytest.raises(WizardError, match="swarm did not answer: transport is closing"):
        _services(EngineMidSwarmChange(), Path("/tmp/some-workdir"))
