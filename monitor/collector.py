"""Process-wide memory tuning for the commands that poll (`poll`, `run`): the garbage
collector's thresholds and, on glibc, malloc's mmap threshold and the return of free heap
pages after each cycle."""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: (generation 0, 1, 2) thresholds; CPython's defaults are (700, 10, 10).
POLLING_THRESHOLDS = (50_000, 20, 100)

#: Blocks from this size up get a mapping of their own, returned to the system when freed.
#: Smaller ones come from the heap, whose free pages `release_free_memory` gives back.
MMAP_THRESHOLD = 4 * 1024 * 1024
#: glibc's mallopt parameter for it (malloc.h).
_M_MMAP_THRESHOLD = -3


def tune_for_polling() -> None:
    """Collect cyclic garbage less often, and keep large arrays out of malloc's heap.

    A cycle allocates millions of short-lived containers (parsed entries, match records,
    story rows) while the process keeps a large, long-lived heap (the spaCy pipeline, the
    compiled watchlist, the story window). With the default thresholds the collector ran
    over a thousand times in a 30,000-item cycle, eight of them full collections over that
    whole heap: about 1.2 s of the cycle (0.5 s with stories off). These thresholds bring
    it to ten young collections and 0.15 s (docs/decisions.md). Nothing here relies on
    cyclic garbage being freed promptly; reference counting frees everything else as usual.

    See `fix_mmap_threshold` for the second part.
    """
    gc.set_threshold(*POLLING_THRESHOLDS)
    fix_mmap_threshold()


def tune_worker() -> None:
    """The collector's thresholds of `tune_for_polling` in a parse worker, which allocates a
    container or more for every entry and item it parses while holding the compiled
    watchlist: with CPython's defaults a worker ran about 350 collections for the bench's
    cold cycle, 0.11 s per 30,000 items (2 % of its CPU). The mmap threshold is left as glibc
    sets it: a worker makes no large arrays."""
    gc.set_threshold(*POLLING_THRESHOLDS)


def fix_mmap_threshold() -> bool:
    """Pin glibc's mmap threshold at MMAP_THRESHOLD; False where there is no glibc.

    glibc raises the threshold each time a mapped block is freed (up to 32 MB), so after
    the first story assignment its arrays of a few megabytes came from the heap, which
    fragments and is not given back: the parent's peak on the bench's cold cycle was 15 MB
    higher and it kept 47 MB more after the assignment. A fixed threshold turns off that
    adjustment. It is 4 MiB, not lower: every mapped block is zeroed page by page when first
    touched, and at 128 KiB the story decision's temporary arrays (a few megabytes each) made
    it twice as slow (docs/decisions.md); the heap pages they leave free go back after the
    cycle (`release_free_memory`).
    """
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def release_free_memory() -> bool:
    """Give the heap's free pages back to the system (glibc's `malloc_trim`), as `monitor
    run` does after each cycle; False where there is no glibc. About 2 ms after a cold
    cycle, which otherwise left the parent holding 13 MB more."""
    trim = _glibc("malloc_trim")
    if trim is None:
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    trim(0)
    return True


_pause_lock = threading.Lock()
_pauses = 0


@contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block; reference counting frees as usual, and
    the collector runs again after it (as before, when it was enabled).

    For a burst of allocations that makes no reference cycles: the end-of-cycle story pass
    of a cold cycle allocates about 200,000 records, tuples and rows, which set off five
    young-generation collections that found nothing to free and took 0.02-0.03 s of it. The
    collector is process-wide: pauses from several threads nest, and the last one out turns
    it back on."""
    global _pauses
    with _pause_lock:
        if _pauses == 0 and not gc.isenabled():
            owned = False
        else:
            owned = True
            _pauses += 1
            gc.disable()
    try:
        yield
    finally:
        if owned:
            with _pause_lock:
                _pauses -= 1
                if _pauses == 0:
                    gc.enable()


def _glibc(name: str) -> Any:
    """A function of the C library by name, or None off Linux or where it has none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
