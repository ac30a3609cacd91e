"""A shared, durable Store in one SQLite file (WAL): the source of truth for every process serving from it.

Every change gets a sequence number; each process catches up on the others' changes before it reads or
writes (`poll`), and writes inside one `BEGIN IMMEDIATE` transaction (`begin`/`commit`), so processes
never act on stale state. A lease row says which process runs the scheduler and the callback dispatcher.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mock_server.domain.store import RELOAD, Changes, Records
from mock_server.sqlite_journal import SqliteJournal, connect

if sys.platform != "win32":  # a platform check mypy understands; Windows has no flock (see WriterLock)
    import fcntl

TOMBSTONE = ""  # body of a deleted record, kept so other processes learn of the deletion
TOMBSTONES_KEPT = 100_000  # changes; a process further behind than that reloads everything
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, "
    "PRIMARY KEY (kind, key))",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS lease (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL)",
)


class WriterLock:
    """Queues writers of all processes on an flock of `<file>.lock` before they ask SQLite for its write lock.

    SQLite's busy handler sleeps (1, 2, 5 … 100 ms) when the write lock is taken; the kernel wakes the next
    flock waiter the moment it is released, so writers take turns without sleeping.
    """

    def __init__(self, path: Path) -> None:
        # Windows: no flock, so writers fall back to SQLite's busy handler.
        self._fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644) if sys.platform != "win32" else -1

    def acquire(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class SqliteStore:
    durable = True
    shared = True

    def __init__(self, path: str | Path, *, lease_ttl: float = 3.0) -> None:
        self.path = Path(path)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_ttl = lease_ttl
        self._db = connect(self.path)
        self._writer = WriterLock(self.path)
        self._lock = threading.RLock()  # one connection, used by one thread at a time
        self._writer_held = False
        self._takeover = False  # lease_available() saw the holder gone: claim_lease() may take it
        self._closed = False
        self._in_tx = False
        self._seq = 0  # the last sequence number handed out inside the open transaction
        self._cursor = 0  # every change up to here is known to this process
        self._epoch = -1  # bumped by clear(): a process seeing another epoch reloads everything
        self._version: int | None = None  # PRAGMA data_version at the last poll
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    self._db.execute(statement)
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(records)")}
                if "seq" not in columns:  # a state file from before shared state: every record counts as new
                    self._db.execute("ALTER TABLE records ADD COLUMN seq INTEGER NOT NULL DEFAULT 0")
                    self._db.execute("ALTER TABLE records ADD COLUMN writer TEXT NOT NULL DEFAULT ''")
                self._db.execute("CREATE INDEX IF NOT EXISTS records_seq ON records (seq)")
                for name in ("seq", "epoch", "purged"):
                    self._db.execute("INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)", (name,))
            finally:
                self._db.execute("COMMIT")

    # -- transactions -----------------------------------------------------------------------------
    def _counter(self, name: str) -> int:
        return int(self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0])

    def begin(self) -> None:
        """Take the database's write lock (waiting for other processes) until commit()."""
        self._lock.acquire()
        if self._closed:
            return
        self._writer.acquire()
        self._writer_held = True
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._in_tx = True
            self._seq = self._counter("seq")
        except BaseException:
            self._writer.release()
            self._writer_held = False
            self._lock.release()
            raise

    def commit(self) -> None:
        try:
            if self._in_tx:
                first = self._counter("seq")
                if self._seq != first:
                    self._db.execute("UPDATE counters SET value = ? WHERE name = 'seq'", (self._seq,))
                    if self._seq // 1000 != first // 1000:
                        self._purge_tombstones()
                self._db.execute("COMMIT")
                # poll() ran at the start of this transaction, so nothing below our own writes is unseen.
                self._cursor = max(self._cursor, self._seq)
        finally:
            if self._writer_held:
                self._writer.release()
                self._writer_held = False
            self._in_tx = False
            self._lock.release()

    def _purge_tombstones(self) -> None:
        bound = self._seq - TOMBSTONES_KEPT
        if bound > 0:
            self._db.execute("DELETE FROM records WHERE body = ? AND seq < ?", (TOMBSTONE, bound))
            self._db.execute("UPDATE counters SET value = MAX(value, ?) WHERE name = 'purged'", (bound,))

    def _write(self, kind: str, key: str, body: str) -> None:
        with self._lock:
            if self._closed:
                return  # a callback attempt finishing after shutdown: the next start retries it anyway
            if self._in_tx:
                self._seq += 1
                self._db.execute(
                    "INSERT OR REPLACE INTO records (kind, key, body, seq, writer) VALUES (?, ?, ?, ?, ?)",
                    (kind, key, body, self._seq, self.holder),
                )
                return
            # A write outside a platform transaction: its own small one (poll() will skip it as ours).
            with self._writer.held():
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    seq = self._counter("seq") + 1
                    self._db.execute(
                        "INSERT OR REPLACE INTO records (kind, key, body, seq, writer) VALUES (?, ?, ?, ?, ?)",
                        (kind, key, body, seq, self.holder),
                    )
                    self._db.execute("UPDATE counters SET value = ? WHERE name = 'seq'", (seq,))
                finally:
                    self._db.execute("COMMIT")

    def put(self, kind: str, key: str, record: dict[str, Any]) -> None:
        # \u-escapes (not ensure_ascii=False): a lone surrogate in a run's inputs cannot break the write.
        self._write(kind, key, json.dumps(record, separators=(",", ":")))

    def delete(self, kind: str, key: str) -> None:
        self._write(kind, key, TOMBSTONE)

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM records WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return json.loads(row[0]) if row and row[0] != TOMBSTONE else None

    # -- catching up with other processes ---------------------------------------------------------
    def poll(self) -> Changes:
        """Other processes' changes since the last poll: None (nothing), RELOAD, or [(kind, key, record|None)]."""
        with self._lock:
            if self._closed:
                return None
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version == self._version:
                return None  # no other connection committed since: the common case costs one pragma
            if not self._in_tx:
                self._db.execute("BEGIN")  # one snapshot for the counters and the changes
            try:
                epoch, purged = self._counter("epoch"), self._counter("purged")
                if epoch != self._epoch or purged > self._cursor:
                    return RELOAD
                rows = self._db.execute(
                    "SELECT seq, kind, key, body, writer FROM records WHERE seq > ? ORDER BY seq", (self._cursor,)
                ).fetchall()
            finally:
                if not self._in_tx:
                    self._db.execute("COMMIT")
            # Only now: a read that failed half-way (a busy file) is simply made again by the next poll.
            self._version = version
        changes = []
        for seq, kind, key, body, writer in rows:
            self._cursor = max(self._cursor, seq)
            if writer != self.holder:
                changes.append((kind, key, None if body == TOMBSTONE else json.loads(body)))
        return changes

    def load(self) -> Records:
        """Everything, to (re)build a process's state; the changes it covers count as seen."""
        out: Records = {}
        with self._lock:
            if not self._in_tx:
                self._db.execute("BEGIN")
            try:
                self._version = self._db.execute("PRAGMA data_version").fetchone()[0]
                self._epoch, self._cursor = self._counter("epoch"), self._counter("seq")
                rows = self._db.execute("SELECT kind, key, body FROM records WHERE body != ?", (TOMBSTONE,)).fetchall()
            finally:
                if not self._in_tx:
                    self._db.execute("COMMIT")
        for kind, key, body in rows:
            out.setdefault(kind, {})[key] = json.loads(body)
        return out

    def clear(self) -> None:
        """Forget every record (/__admin/reset); other processes see the new epoch and reload."""
        with self._lock:
            own = not self._in_tx
            if own:
                self.begin()
            try:
                self._db.execute("DELETE FROM records")
                self._db.execute("UPDATE counters SET value = value + 1 WHERE name = 'epoch'")
                self._db.execute("UPDATE counters SET value = ? WHERE name = 'purged'", (self._seq,))
                self._epoch = self._counter("epoch")
            finally:
                if own:
                    self.commit()

    # -- the scheduler lease ----------------------------------------------------------------------
    # Wall time on purpose: the lease is about whether a process is alive, which the emulator's clock
    # (virtual, or offset by advances) cannot tell; every process on the host reads the same wall clock.
    def _holder_gone(self, holder: str) -> bool:
        """A holder on this host whose process no longer exists (killed): no need to wait for expiry."""
        host, _, rest = holder.partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit():
            return False
        if not Path("/proc/self/stat").exists():  # no procfs (macOS): existence is all we can see
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                return True
            except OSError:
                return False
            return False
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        # A killed worker stays a zombie until its parent reaps it: dead all the same.
        return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]

    def lease_available(self) -> bool:
        """Read-only: could this process take (or must it renew) the lease now?"""
        with self._lock:
            if self._closed:
                return False
            row = self._db.execute("SELECT holder, expires_at FROM lease WHERE name = 'engine'").fetchone()
        now = time.time()
        if row is None:
            return True
        holder: str
        expires_at: float
        holder, expires_at = row  # the lease table's TEXT and REAL columns
        if holder == self.holder:
            return expires_at - now < self.lease_ttl * 2 / 3  # renewal due
        # Looking for the holder's process here (the keeper's beat), not in every write transaction.
        self._takeover = expires_at <= now or self._holder_gone(holder)
        return self._takeover

    def holds_lease(self) -> bool:
        return self.lease_holder() == self.holder

    def claim_lease(self) -> bool:
        """Inside a transaction: keep or take the lease if it is ours, free, expired or its holder died."""
        with self._lock:
            if self._closed or not self._in_tx:
                return False
            now = time.time()
            row = self._db.execute("SELECT holder, expires_at FROM lease WHERE name = 'engine'").fetchone()
            if row is not None and row[0] != self.holder and row[1] > now and not self._takeover:
                return False
            self._takeover = False
            if row is None or row[0] != self.holder or row[1] - now < self.lease_ttl * 2 / 3:
                self._db.execute(
                    "INSERT OR REPLACE INTO lease (name, holder, expires_at) VALUES ('engine', ?, ?)",
                    (self.holder, now + self.lease_ttl),
                )
            return True

    def lease_holder(self) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT holder, expires_at FROM lease WHERE name = 'engine'").fetchone()
        return row[0] if row is not None and row[1] > time.time() else None

    def _release_lease(self) -> None:
        self._db.execute("DELETE FROM lease WHERE name = 'engine' AND holder = ?", (self.holder,))

    # -- the shared journal -----------------------------------------------------------------------
    def journal(self, size: int) -> SqliteJournal:
        return SqliteJournal(self.path, size)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                with self._writer.held():
                    self._release_lease()  # a clean stop hands the scheduler over at once
            except sqlite3.Error:
                pass
            self._db.close()
            self._writer.close()


# -- the start-up check of a state file -------------------------------------------------------------
_SQLITE_HEADER = b"SQLite format 3\x00"


def state_file_problem(path: str | Path) -> str | None:
    """Why `path` cannot be a state file, or None: asked before any server process opens it, since a process
    that cannot open its state dies at start, is replaced and dies again (tracebacks, never an answer).
    Checks the state file, its `-requests` journal and its `.lock`, and changes none of them (a read-only look
    into a WAL database may leave SQLite's empty -wal and -shm companions, which the store makes anyway)."""
    path = Path(os.path.abspath(path))
    if path.is_dir():
        return f"{path} is a directory, not a file"
    if not path.parent.is_dir():
        what = "is not a directory" if path.parent.exists() else "does not exist"
        return f"directory {path.parent} {what}"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return (
            f"directory {path.parent} is not writable (SQLite keeps {path.name}-wal, {path.name}-shm "
            f"and {path.name}.lock beside the state file)"
        )
    lock = Path(f"{path}.lock")
    if lock.exists() and not lock.is_file():
        return f"{lock} (the writers' lock beside the state file) is not a regular file"
    return _sqlite_problem(path, "records", {"kind", "key", "body"}, "a dpa-mock state file") or _sqlite_problem(
        Path(f"{path}-requests"), "batches", {"body"}, "the request journal kept beside a dpa-mock state file"
    )


def _sqlite_problem(path: Path, table: str, columns: set[str], what: str) -> str | None:
    """None if `path` is absent, empty, an empty SQLite database, or one whose `table` has `columns` (ours)."""
    if not path.exists():
        return None
    if not path.is_file():
        return f"{path} is not a regular file"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"{path} is not readable and writable by this user"
    try:
        with path.open("rb") as file:
            head = file.read(len(_SQLITE_HEADER))
    except OSError as exc:
        return f"{path} cannot be read: {exc.strerror or exc}"
    if not head:
        return None  # SQLite makes an empty file a new database
    if head != _SQLITE_HEADER:
        return f"{path} is not an SQLite database ({what} is one): name another file, or move this one away"
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            found = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        finally:
            db.close()
    except sqlite3.Error as exc:
        return f"{path} cannot be read as an SQLite database: {exc}"
    if tables and not columns <= found:
        names = sorted(tables)
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        return f"{path} is an SQLite database of another application (tables: {shown}), not {what}"
    return None
