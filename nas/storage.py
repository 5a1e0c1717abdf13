"""Optuna storage for studies: a journal file locally, any RDB/Redis URL across machines.

The journal's default lock is a symlink that a killed process leaves behind (and Optuna 5 cannot
clear it when the journal path is relative), so a resumed run would wait on a dead writer. An
`flock` is released by the kernel when its holder dies: kill a search at any moment and the next
run, or a parallel worker, carries on at once.
"""
from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock


class FlockLock(JournalFileOpenLock):
    """Exclusive lock on `<journal>.flock`, shared safely by the threads of one process too.

    Subclasses the public lock type the journal backend accepts; only acquire/release are used."""

    def __init__(self, journal: str):  # noqa: super().__init__ is deliberately not called
        self._path = journal + ".flock"
        self._threads = threading.Lock()
        self._fd: int | None = None

    def acquire(self) -> bool:
        self._threads.acquire()
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        finally:
            self._threads.release()


def open_storage(url: str) -> optuna.storages.BaseStorage | str:
    """A journal file for paths (shareable by local processes and threads), the URL otherwise."""
    if "://" in url:
        return url
    path = Path(url).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=FlockLock(str(path))))
