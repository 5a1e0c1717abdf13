"""Optuna storage for studies: a journal file locally, any RDB URL across machines.

The journal's default lock is a symlink that a killed process leaves behind (and Optuna 5 cannot
clear it when the journal path is relative), so a resumed run would wait on a dead writer. An
`flock` is released by the kernel when its holder dies: kill a search at any moment and the next
run, or a parallel worker, carries on at once.

A journal is a file of JSON lines, and one line cut short (a full disk, a kill or a power cut in the
middle of a write) followed by another record would make the file unreadable from there on. So
every append starts on a record boundary: a torn last record is set aside (into `<journal>.torn`)
before anything is written after it, and an append that fails (a full disk) is cut back to where it
began before its error is raised. A `--storage` that cannot work (an unknown scheme, a missing
driver or folder, a server that does not answer) is one line before anything starts.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from nas.core.errors import UserError
from nas.core.locks import FileLock

CONNECT_TIMEOUT_S = 10
_BLOCK = 1 << 16


class FlockLock(JournalFileOpenLock):
    """The journal backend's lock, as an flock on `<journal>.flock` (public lock type, only
    acquire/release are used by the backend)."""

    def __init__(self, journal: str):  # noqa: super().__init__ is deliberately not called
        self._lock = FileLock(journal + ".flock")

    def acquire(self) -> bool:
        self._lock.acquire()
        return True

    def release(self) -> None:
        self._lock.release()


def _record_end(fd: int, size: int) -> int:
    """Offset just after the last newline of the file open as `fd` (0 when it has none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - _BLOCK)
        block = os.pread(fd, pos - start, start)
        cut = block.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        pos = start
    return 0


def set_aside_torn_tail(journal: str | Path, fd: int | None = None) -> int:
    """Move the bytes after the journal's last complete record into `<journal>.torn`; returns how
    many. The caller holds the journal's lock (or is alone), so no writer is half-way through."""
    own = fd is None
    if own:
        fd = os.open(journal, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return 0
        end = _record_end(fd, size)
        torn = os.pread(fd, size - end, end)
        with open(f"{journal}.torn", "ab") as fh:
            fh.write(torn + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.ftruncate(fd, end)
        os.fsync(fd)
    finally:
        if own:
            os.close(fd)
    print(f"warning: {journal}: its last record was cut short (a full disk, a kill or a power cut mid-write); "
          f"set {len(torn)} bytes aside in {journal}.torn, every complete record is kept", file=sys.stderr)
    return len(torn)


class SafeJournalFile(JournalFileBackend):
    """Optuna's journal file with appends that are whole or absent (see the module docstring)."""

    def __init__(self, path: str):
        self._guard = FlockLock(path)
        super().__init__(path, lock_obj=self._guard)

    def append_logs(self, logs: list[dict]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode("utf-8")
        self._guard.acquire()
        try:
            fd = os.open(self._file_path, os.O_RDWR | os.O_APPEND)
            try:
                set_aside_torn_tail(self._file_path, fd)
                start = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                except BaseException as exc:
                    os.ftruncate(fd, start)
                    if isinstance(exc, OSError):
                        raise OSError(exc.errno, exc.strerror, self._file_path) from None
                    raise
            finally:
                os.close(fd)
        finally:
            self._guard.release()


def open_storage(url: str) -> optuna.storages.BaseStorage | str:
    """A journal file for paths (shareable by local processes and threads), the URL otherwise."""
    if "://" in url:
        return url
    path = Path(url).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.stat().st_size:
        try:
            with FileLock(str(path) + ".flock"):
                set_aside_torn_tail(path)
        except OSError:  # a read-only journal: readers skip a torn tail, and nothing will be appended
            pass
    return optuna.storages.JournalStorage(SafeJournalFile(str(path)))


def check_storage(url: str, write: bool = True) -> None:
    """One UserError when `url` cannot hold a study: an unknown scheme, a driver that is not
    installed, an SQLite file in a missing folder, a server that does not answer. A journal path
    only needs its folder (created when `write`); faults there (read-only) are the caller's line."""
    if "://" not in url:
        if write:
            Path(url).resolve().parent.mkdir(parents=True, exist_ok=True)
        return
    import sqlalchemy
    from sqlalchemy import exc as sa_exc

    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sa_exc.ArgumentError, ValueError):
        raise UserError(f"--storage {url}: neither a file path nor a database URL") from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        folder = Path(parsed.database or ".").expanduser().parent
        if parsed.database not in (None, "", ":memory:") and not folder.is_dir():
            raise UserError(f"--storage {shown}: folder {folder} does not exist")
        return
    timeout = {"connect_timeout": CONNECT_TIMEOUT_S} if parsed.get_backend_name() in ("postgresql", "mysql") else {}
    try:
        engine = sqlalchemy.create_engine(parsed, poolclass=sqlalchemy.pool.NullPool, connect_args=timeout)
    except sa_exc.NoSuchModuleError:
        raise UserError(f"--storage {shown}: unknown scheme {parsed.drivername!r} (expected a journal file "
                        "path, sqlite:///FILE, postgresql://... or mysql://...)") from None
    except ImportError as exc:
        raise UserError(f"--storage {shown}: the {parsed.drivername} driver is not installed ({exc}); "
                        "for PostgreSQL: pip install \"nas[postgres]\"") from None
    try:
        with engine.connect():
            pass
    except sa_exc.SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise UserError(f"--storage {shown}: cannot connect ({cause})") from None
    finally:
        engine.dispose()
