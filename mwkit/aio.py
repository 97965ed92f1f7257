"""The event loop the kit's asyncio servers (the Directory, the Sherlock proxy) run on."""

from __future__ import annotations

import asyncio


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (libuv: a faster HTTP server), else asyncio's.

    The containers' Debian Python has no uvloop; the servers run the same either way.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
