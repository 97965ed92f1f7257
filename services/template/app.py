"""quote: a tiny service of your own, to deploy with the Microwizard (notebook 09).

``GET /`` answers ``{"quote": "...", "version": 1, "instance": "quote-v1-1"}``: a quote,
the version of this code, and which instance answered (the Microwizard tells each instance
its id in ``MWKIT_INSTANCE_ID``). The app is complete but for one endpoint, marked below.

It reads where to listen from ``HOST`` and ``PORT``, as popularity does: that is how the
Microwizard runs it, and how you run it by hand:

    HOST=127.0.0.1 PORT=5000 python app.py
"""

from __future__ import annotations

import itertools
import logging
import os

from flask import Flask, jsonify

VERSION = 1

QUOTES = [
    "Everything fails, all the time. (Werner Vogels)",
    "A distributed system is one in which the failure of a computer you didn't even know "
    "existed can render your own computer unusable. (Leslie Lamport)",
    "There are only two hard things in Computer Science: cache invalidation and naming "
    "things. (Phil Karlton)",
]

app = Flask(__name__)
served = itertools.count()  # next() on a count is atomic under the GIL: thread-safe


@app.get("/")
def quote():
    """One quote per call, in turn, with this code's version and this instance's id."""
    return jsonify(quote=QUOTES[next(served) % len(QUOTES)], version=VERSION,
                   instance=os.environ.get("MWKIT_INSTANCE_ID", "run by hand"))


# TODO(you): the /health endpoint. Watson GETs it every `period` seconds; 200 means "healthy".


if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per health check
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "5000")),
            threaded=True)
