"""Sherlock: the client-side router, fed live by the Directory.

Use it as a library (``Sherlock(url).session().get("http://popularity/")``) or as a local
proxy (``mwkit sherlock --listen 127.0.0.1:8000``).
"""

from mwkit.sherlock.calls import CallLog, CallRecord
from mwkit.sherlock.endpoint import Endpoint
from mwkit.sherlock.policies import POLICIES
from mwkit.sherlock.router import NoInstances, Sherlock

__all__ = ["POLICIES", "CallLog", "CallRecord", "Endpoint", "NoInstances", "Sherlock"]
