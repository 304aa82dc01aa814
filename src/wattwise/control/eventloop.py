"""The controller's event loop: uvloop's where it is installed, else asyncio's.

The controller's work between decisions is I/O: thousands of polls and, in a power event,
thousands of commands. On the 2 000-server example a response's first decision was
acknowledged ~25 % sooner on uvloop (``bench/event_ack.py --loop``, figures in
``bench/reports/event_ack.md``).
"""

from __future__ import annotations

import asyncio


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop for a long-running controller process (not set as current)."""
    try:
        import uvloop
    except ImportError:  # uvloop does not build on Windows: asyncio's loop works the same, slower
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
