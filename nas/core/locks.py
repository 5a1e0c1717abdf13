"""Cross-process locks that die with their holder.

An `flock` is released by the kernel when the process holding it exits, however it exits, so a
SIGKILLed search, cache build or export never leaves a lock that blocks the next run. The journal
storage, the trial claim and the feature cache all lock through `FileLock`.
"""
from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import Callable


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FileLock:
    """Exclusive flock on `path`, also exclusive between the threads of one process.

    `on_wait` is called once when the lock is held by someone else (to say why we are waiting)."""

    def __init__(self, path: str | Path, on_wait: Callable[[], None] | None = None):
        self.path = Path(path)
        self.on_wait = on_wait
        self._threads = threading.Lock()
        self._fd: int | None = None

    def acquire(self) -> None:
        self._threads.acquire()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except BaseException:
            self._threads.release()
            raise
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if self.on_wait is not None:
                    self.on_wait()
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            self._threads.release()
            raise
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        try:
            if fd is not None:
                os.close(fd)  # closing the descriptor releases the flock
        finally:
            self._threads.release()

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
