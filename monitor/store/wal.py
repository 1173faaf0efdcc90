"""SQLite's write-ahead log copied into the database file: in a thread of its own while a
cycle writes, and once more as the cycle ends."""

from __future__ import annotations

import logging
import sqlite3
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StorageError

log = logging.getLogger(__name__)

#: Seconds between two checkpoints of `WalCheckpointer` (a cold cycle commits some 15 MB a
#: second: each copies a few MB, well under the engine's own threshold).
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
    """Checkpoints (`checkpoint`) in a thread of its own after commits, at most one per
    `period_s`, from `start` to `stop`.

    On SQLite a commit that finds the log over the engine's threshold copies it into the
    database file itself, and waits for the disk while it holds the write lock; the storage
    thread then stalls, and the feeds queued behind it with it. A checkpoint from another
    connection runs beside the writer. A failed one is logged and ends the thread (the log
    keeps every write; the engine's threshold and the cycle's last checkpoint remain)."""

    def __init__(self, engine: Engine, period_s: float = PERIOD_S) -> None:
        self._engine = engine
        self._period_s = period_s
        self._committed = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor-checkpoint", daemon=True)
        #: Checkpoints done so far.
        self.done = 0

    def start(self) -> None:
        self._thread.start()

    def committed(self) -> None:
        """Say that a transaction was committed (from any thread; never waits)."""
        self._committed.set()

    def stop(self) -> None:
        """End the thread, once a checkpoint under way is done."""
        self._stopping.set()
        self._committed.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self._committed.wait()
            if self._stopping.is_set():
                return
            self._committed.clear()
            try:
                checkpoint(self._engine)
            except StorageError as e:
                log.warning("%s; left to the end of the cycle", e)
                return
            self.done += 1
            if self._stopping.wait(self._period_s):
                return
