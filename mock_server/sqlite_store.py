"""A durable Store in one SQLite file (WAL): every change is written through, so `kill -9` loses nothing accepted."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from mock_server.domain.store import Records


class SqliteStore:
    durable = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._lock = threading.Lock()
        self._closed = False
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process (only an OS crash may lose the last commits).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, key TEXT NOT NULL, "
                             "body TEXT NOT NULL, PRIMARY KEY (kind, key))")

    def put(self, kind: str, key: str, record: dict[str, Any]) -> None:
        body = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            if self._closed:
                return  # a callback attempt finishing after shutdown: its next start retries it anyway
            self._db.execute("INSERT OR REPLACE INTO records (kind, key, body) VALUES (?, ?, ?)", (kind, key, body))

    def delete(self, kind: str, key: str) -> None:
        with self._lock:
            if self._closed:
                return
            self._db.execute("DELETE FROM records WHERE kind = ? AND key = ?", (kind, key))

    def load(self) -> Records:
        out: Records = {}
        with self._lock:
            rows = self._db.execute("SELECT kind, key, body FROM records").fetchall()
        for kind, key, body in rows:
            out.setdefault(kind, {})[key] = json.loads(body)
        return out

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM records")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()
