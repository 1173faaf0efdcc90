"""SQLite's write-ahead log copied into the database file: in a thread of its own while a
cycle writes, and once more as a large cycle ends."""

from __future__ import annotations

import logging
import sqlite3
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StorageError

log = logging.getLogger(__name__)

#: Items committed after which `WalCheckpointer` copies the log (a few MB of pages: a cold
#: cycle commits some 6,000 items a second, a steady one a few hundred in all).
ITEMS_PER_CHECKPOINT = 1000
#: Seconds at least between two of its checkpoints.
PERIOD_S = 0.5


def keeps_a_log(engine: Engine) -> bool:
    """True for an SQLite database file (in WAL mode: `make_engine`)."""
    return engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")


def checkpoint(engine: Engine) -> None:
    """Copy what the log holds into the database file without waiting for readers or
    writers (a PASSIVE checkpoint: what they hold is copied at the next one); nothing to do
    but for an SQLite file. StorageError when it fails (nothing is lost: the log keeps it)."""
    if not keeps_a_log(engine):
        return
    try:
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cursor.close()
        finally:
            connection.close()
    except (sqlite3.Error, SQLAlchemyError) as e:
        raise StorageError(f"cannot checkpoint the database: {e}") from e


class WalCheckpointer:
    """Checkpoints (`checkpoint`) in a thread of its own, from `start` to `stop`: one each
    time `per_checkpoint` more items were committed, at most one per `period_s`.

    On SQLite a commit that finds the log over the engine's threshold copies it into the
    database file itself, and waits for the disk while it holds the write lock; the storage
    thread then stalls, and the feeds queued behind it with it. A checkpoint from another
    connection runs beside the writer. A failed one is logged and ends the thread (the log
    keeps every write; the engine's threshold remains)."""

    def __init__(
        self,
        engine: Engine,
        owed: int = 0,
        per_checkpoint: int = ITEMS_PER_CHECKPOINT,
        period_s: float = PERIOD_S,
    ) -> None:
        self._engine = engine
        self._per_checkpoint = per_checkpoint
        self._period_s = period_s
        self._lock = threading.Lock()
        self._due = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor-checkpoint", daemon=True)
        #: Items committed since the log was last copied (from `owed`, left by earlier ones).
        self.owed = owed
        #: Checkpoints done so far.
        self.done = 0

    def start(self) -> None:
        self._thread.start()

    def committed(self, items: int) -> None:
        """Count `items` committed (from any thread; never waits)."""
        with self._lock:
            self.owed += items
            due = self.owed >= self._per_checkpoint
        if due:
            self._due.set()

    def stop(self) -> None:
        """End the thread, once a checkpoint under way is done."""
        self._stopping.set()
        self._due.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self._due.wait()
            if self._stopping.is_set():
                return
            self._due.clear()
            with self._lock:  # what commits during the checkpoint is owed to the next one
                self.owed = 0
            try:
                checkpoint(self._engine)
            except StorageError as e:
                log.warning("%s; left to the engine's threshold", e)
                return
            self.done += 1
            if self._stopping.wait(self._period_s):
                return
