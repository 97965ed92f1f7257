"""Watson: runs beside one instance, checks its health and keeps it in the Directory."""

from mwkit.watson.agent import Watson
from mwkit.watson.config import ConfigError, WatsonConfig

__all__ = ["ConfigError", "Watson", "WatsonConfig"]
