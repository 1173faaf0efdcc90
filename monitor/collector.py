"""Process-wide garbage-collector thresholds for the commands that poll (`poll`, `run`)."""

from __future__ import annotations

import gc

#: (generation 0, 1, 2) thresholds; CPython's defaults are (700, 10, 10).
POLLING_THRESHOLDS = (50_000, 20, 100)


def tune_for_polling() -> None:
    """Collect cyclic garbage less often while polling.

    A cycle allocates millions of short-lived containers (parsed entries, match records,
    story rows) while the process keeps a large, long-lived heap (the spaCy pipeline, the
    compiled watchlist, the story window). With the default thresholds the collector ran
    over a thousand times in a 30,000-item cycle, eight of them full collections over that
    whole heap: about 1.2 s of the cycle (0.5 s with stories off). These thresholds bring
    it to ten young collections and 0.15 s (docs/decisions.md). Nothing here relies on
    cyclic garbage being freed promptly; reference counting frees everything else as usual.
    """
    gc.set_threshold(*POLLING_THRESHOLDS)
