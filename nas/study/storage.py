"""Optuna storage for studies: a journal file locally, any RDB/Redis URL across machines.

The journal's default lock is a symlink that a killed process leaves behind (and Optuna 5 cannot
clear it when the journal path is relative), so a resumed run would wait on a dead writer. An
`flock` is released by the kernel when its holder dies: kill a search at any moment and the next
run, or a parallel worker, carries on at once.
"""
from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from nas.core.locks import FileLock


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


def open_storage(url: str) -> optuna.storages.BaseStorage | str:
    """A journal file for paths (shareable by local processes and threads), the URL otherwise."""
    if "://" in url:
        return url
    path = Path(url).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=FlockLock(str(path))))
