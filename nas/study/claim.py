"""The study-wide claim lock under which a worker counts trials and claims a new one.

`study.optimize` counts trials per process, so N workers on one study would overshoot the requested
total; claiming under one lock for the whole study (an flock beside a journal or SQLite file, a
PostgreSQL advisory lock for a server) keeps the total exact. Creating the study and queueing its
reference models happen under the same lock, so workers starting together do them once.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path

from nas.core.locks import FileLock


class PostgresClaim:
    """Study-wide claim lock on a PostgreSQL server: a session advisory lock keyed by the study."""

    def __init__(self, url: str, study: str):
        import sqlalchemy

        self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        self._key = int.from_bytes(hashlib.sha256(f"nas-claim:{study}".encode()).digest()[:8], "big", signed=True)
        self._threads = threading.Lock()

    def __enter__(self) -> "PostgresClaim":
        import sqlalchemy

        self._threads.acquire()
        try:
            self._conn = self._engine.connect()
            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        import sqlalchemy

        try:
            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            self._conn.close()
        finally:
            self._threads.release()


def claim_for(storage: str, study: str):
    """The study-wide lock under which a worker counts trials and claims a new one."""
    if storage.startswith(("postgresql", "postgres://")):
        return PostgresClaim(storage, study)
    if storage.startswith("sqlite:///"):
        return FileLock(storage[len("sqlite:///"):] + f".{study}.claim")
    if "://" in storage:  # MySQL, Redis, ...: serialised on this host; other hosts may overshoot by a few
        return FileLock(Path(tempfile.gettempdir()) / f"nas-{os.getuid()}-{hashlib.sha256(storage.encode()).hexdigest()[:16]}.claim")
    return FileLock(Path(storage).resolve().with_suffix(".claim"))
