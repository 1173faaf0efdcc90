"""Process-wide memory tuning for the commands that poll (`poll`, `run`): the garbage
collector's thresholds and, on glibc, malloc's mmap threshold."""

from __future__ import annotations

import ctypes
import gc
import sys

#: (generation 0, 1, 2) thresholds; CPython's defaults are (700, 10, 10).
POLLING_THRESHOLDS = (50_000, 20, 100)

#: Blocks from this size up get a mapping of their own, returned to the system when freed.
MMAP_THRESHOLD = 128 * 1024
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


def fix_mmap_threshold() -> bool:
    """Pin glibc's mmap threshold at MMAP_THRESHOLD; False where there is no glibc.

    glibc raises the threshold each time a mapped block is freed (up to 32 MB), so after
    the first story assignment its arrays of a few megabytes came from the heap, which
    fragments and is not given back: the parent's peak on the bench's cold cycle was 15 MB
    higher and it kept 47 MB more after the assignment. A fixed threshold also turns off
    that adjustment, so every large array is mapped and unmapped whole (no measurable time).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
