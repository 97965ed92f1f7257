"""Watson: runs beside one instance, checks its health and keeps it in the Directory.

``Watson`` (the agent, with its HTTP client) is imported on first use: an instance's
supervisor reads its configuration first and readies the agent while ``mw.sh init`` runs.
"""

from mwkit.watson.config import ConfigError, WatsonConfig

__all__ = ["ConfigError", "Watson", "WatsonConfig"]


def __getattr__(name: str):
    if name == "Watson":
        from mwkit.watson.agent import Watson

        return Watson
    raise AttributeError(f"module 'mwkit.watson' has no attribute {name!r}")
