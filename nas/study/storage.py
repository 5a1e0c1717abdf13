"""Optuna storage for studies: a journal file locally, any RDB URL across machines.

The journal's default lock is a symlink that a killed process leaves behind (and Optuna 5 cannot
clear it when the journal path is relative), so a resumed run would wait on a dead writer. An
`flock` is released by the kernel when its holder dies: kill a search at any moment and the next
run, or a parallel worker, carries on at once.

Journal appends are whole or absent (`nas.core.appendlog`: a torn last record is set aside into
`<journal>.torn` before anything is appended, a failed append is cut back). A `--storage` that cannot
work (an unknown scheme, a missing driver or folder, a server that does not answer) is one line before
anything starts; a database that fails during a run (a server stopped) is one line from any verb,
saying that what it recorded is kept (`register_fault`).
"""
from __future__ import annotations

import json
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from nas.core.appendlog import append_locked, repair
from nas.core.errors import UserError, register_fault
from nas.core.locks import FileLock

CONNECT_TIMEOUT_S = 10


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


def _database_fault(exc: BaseException) -> str:
    """One line for a database that failed during a run: its deepest cause (the driver's words)."""
    cause = exc
    for _ in range(20):
        if cause.__cause__ is None:
            break
        cause = cause.__cause__
    words = " ".join(str(cause).split()) or type(cause).__name__
    return (f"the study storage failed ({words[:300]}): every trial it recorded before is kept; rerun the same "
            "command once it answers and the unfinished trials are redone")


register_fault(optuna.exceptions.StorageInternalError, _database_fault)


class SafeJournalFile(JournalFileBackend):
    """Optuna's journal file with appends that are whole or absent (see the module docstring)."""

    def __init__(self, path: str):
        self._guard = FlockLock(path)
        super().__init__(path, lock_obj=self._guard)

    def append_logs(self, logs: list[dict]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode("utf-8")
        self._guard.acquire()
        try:
            append_locked(self._file_path, data)
        finally:
            self._guard.release()


def open_storage(url: str) -> optuna.storages.BaseStorage | str:
    """A journal file for paths (shareable by local processes and threads), the URL otherwise."""
    if "://" in url:
        return url
    path = Path(url).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    repair(path)
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
    for kind in (sa_exc.OperationalError, sa_exc.InterfaceError):   # a server lost during the run
        register_fault(kind, _database_fault)
    try:
        with engine.connect():
            pass
    except sa_exc.SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise UserError(f"--storage {shown}: cannot connect ({cause})") from None
    finally:
        engine.dispose()
