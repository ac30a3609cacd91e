"""The request journal of every process sharing a state file, kept in a second SQLite file beside it."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any


def connect(path: Path) -> sqlite3.Connection:
    """A connection as every dpa-mock SQLite file wants it (autocommit, shared between threads)."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    # NORMAL in WAL mode survives a killed process (only an OS crash may lose the last commits).
    db.execute("PRAGMA synchronous=NORMAL")
    # Each checkpoint costs an fsync: fewer, larger ones (a WAL of up to ~40 MB between them).
    db.execute("PRAGMA wal_autocheckpoint=10000")
    return db


def _at(entry: dict[str, Any]) -> float:
    at = entry.get("at")
    return float(at) if isinstance(at, (int, float)) else 0.0


class SqliteJournal:
    """The request journal of every process, in a file beside the state (`<state>-requests`): each process
    writes what it answered every FLUSH seconds as one row, so its commits neither wait for state writers
    nor make other processes re-read the state."""

    FLUSH = 0.02

    def __init__(self, state_path: Path, size: int) -> None:
        self.path = Path(f"{state_path}-requests")
        self._db = connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        # first_at/last_at: the batch's earliest and latest entry; batches of different processes overlap in time.
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS batches (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL, "
            "first_at REAL NOT NULL, last_at REAL NOT NULL, body TEXT NOT NULL)"
        )
        self._size = max(size, 1)
        self._unpruned = self._size  # entries written since the last trim: trim at once, then every tenth of size
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dpa-journal", daemon=True)
        self._thread.start()

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._buffer.append(entry)

    def _run(self) -> None:
        while not self._stop.wait(self.FLUSH):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return
        body = json.dumps(batch, separators=(",", ":"))  # \u-escapes: a lone surrogate cannot stop the journal
        with self._write_lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    ats = [_at(e) for e in batch]
                    self._db.execute(
                        "INSERT INTO batches (n, first_at, last_at, body) VALUES (?, ?, ?, ?)",
                        (len(batch), min(ats), max(ats), body),
                    )
                    self._unpruned += len(batch)
                    if self._unpruned >= max(self._size // 10, 1):
                        self._trim()
                finally:
                    self._db.execute("COMMIT")
            except sqlite3.Error:
                pass  # closed at shutdown; the journal is a diagnostic, never worth a crash

    def _newest(self, want: int) -> list[dict[str, Any]]:
        """The `want` latest entries (by `at`), reading batches newest first until no older one can hold any."""
        batches: list[list[dict[str, Any]]] = []
        ats: list[float] = []
        cutoff = None
        for last_at, body in self._db.execute("SELECT last_at, body FROM batches ORDER BY last_at DESC, id DESC"):
            if cutoff is not None and last_at < cutoff:
                break
            batches.append(json.loads(body))
            ats.extend(_at(e) for e in batches[-1])
            if len(ats) >= want:
                ats = sorted(ats)[-want:]
                cutoff = ats[0]
        # Oldest batch first, then a stable sort: entries at the same instant keep the order they were written.
        entries = sorted((e for batch in reversed(batches) for e in batch), key=_at)
        return entries[-want:]

    def _trim(self) -> None:
        """Drop batches wholly older than the newest batches holding `size` entries (no entry is parsed)."""
        kept, oldest = 0, None
        for n, first_at in self._db.execute("SELECT n, first_at FROM batches ORDER BY last_at DESC, id DESC"):
            kept += n
            oldest = first_at if oldest is None else min(oldest, first_at)
            if kept >= self._size:
                self._db.execute("DELETE FROM batches WHERE last_at < ?", (oldest,))
                break
        self._unpruned = 0

    def recent(self, limit: int | None = None) -> list[dict[str, Any]]:
        self.flush()
        # Other processes flush every FLUSH seconds: waiting a little longer makes every request
        # answered before this read part of it, whichever process served it.
        time.sleep(self.FLUSH * 2.5)
        with self._write_lock:
            # Each process writes its own batches: entries come back in the order the requests were answered.
            return self._newest(min(limit or self._size, self._size))

    def clear(self) -> None:
        with self._lock:
            self._buffer.clear()
        # A journal that cannot be cleared (the file closed under us at shutdown) keeps old entries: no harm.
        with self._write_lock, contextlib.suppress(sqlite3.Error):
            self._db.execute("DELETE FROM batches")

    def close(self) -> None:
        self._stop.set()
        self.flush()
        with self._write_lock:
            self._db.close()
