"""The event loop a cycle's fetches run on: uvloop where it is installed, else asyncio's own.

The loop runs only the network side of a cycle (httpx, and the fetcher's own connections in
`monitor.netstream`), beside the storage thread and the thread receiving the parse workers'
results, under one GIL. uvloop does in C what asyncio's loop does in Python (the selector,
the transports' reads and writes, the callbacks from other threads): on the bench's cold
cycle the event loop's thread took about half the CPU (docs/decisions.md, "The cycle's event
loop on uvloop"). `http.event_loop` picks it: "auto" (uvloop when importable), "uvloop"
(required: an error names the setting when it is missing) or "asyncio".
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from typing import Literal

from monitor.errors import ConfigError

EventLoopChoice = Literal["auto", "asyncio", "uvloop"]


def uvloop_installed() -> bool:
    """Whether uvloop can be imported (it is not built for Windows)."""
    return importlib.util.find_spec("uvloop") is not None


def resolve(choice: EventLoopChoice) -> Literal["asyncio", "uvloop"]:
    """The loop `choice` means on this machine; ConfigError when it asks for a missing uvloop."""
    if choice == "asyncio":
        return "asyncio"
    if uvloop_installed():
        return "uvloop"
    if choice == "uvloop":
        raise ConfigError(
            "http.event_loop: uvloop is not installed (pip install uvloop, "
            "or set it to auto or asyncio)"
        )
    return "asyncio"


def loop_factory(choice: EventLoopChoice) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new event loop of the kind `choice` resolves to (`resolve`)."""
    if resolve(choice) == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop
