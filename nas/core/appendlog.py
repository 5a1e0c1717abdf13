"""Append-only files whose every record is whole: the study journal, `evaluation.jsonl`.

A file of lines is read back record by record, and one line cut short (a full disk, a kill or a power
cut in the middle of a write) followed by another record glues the two into one unreadable line, so
the record after it is lost too. So every append here starts on a record boundary: a torn last record
is set aside (into `<file>.torn`, with a warning) before anything is written after it, and an append
that fails (a full disk) is cut back to where it began before its error is raised. Writers on one
file take its flock (`<file>.flock`), so records of several processes never interleave.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from nas.core.locks import FileLock

_BLOCK = 1 << 16


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


def _write_whole(fd: int, data: bytes, path: str | Path) -> None:
    """Append `data` to the file open as `fd` (O_APPEND) and sync it, or leave the file as it was
    and raise the error naming `path`."""
    start = os.fstat(fd).st_size
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException as exc:
        os.ftruncate(fd, start)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def set_aside_torn_tail(path: str | Path, fd: int | None = None) -> int:
    """Move the bytes after the file's last complete record into `<path>.torn`; returns how many.
    The caller holds the file's lock (or is alone), so no writer is half-way through."""
    own = fd is None
    if own:
        fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return 0
        end = _record_end(fd, size)
        torn = os.pread(fd, size - end, end)
        aside = os.open(f"{path}.torn", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            _write_whole(aside, torn + b"\n", f"{path}.torn")
        finally:
            os.close(aside)
        os.ftruncate(fd, end)
        os.fsync(fd)
    finally:
        if own:
            os.close(fd)
    print(f"warning: {path}: its last record was cut short (a full disk, a kill or a power cut mid-write); "
          f"set {len(torn)} bytes aside in {path}.torn, every complete record is kept", file=sys.stderr)
    return len(torn)


def append_locked(path: str | Path, data: bytes) -> None:
    """Append whole records (`data`: lines, each ending in a newline) to `path`, created when absent;
    the caller holds the file's lock."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        set_aside_torn_tail(path, fd)
        _write_whole(fd, data, path)
    finally:
        os.close(fd)


def append_records(path: str | Path, data: bytes) -> None:
    """`append_locked` under the file's flock (`<path>.flock`)."""
    with FileLock(f"{path}.flock"):
        append_locked(path, data)


def repair(path: str | Path) -> None:
    """Set a torn last record aside before the file is read, when it can be written (a read-only
    file is left alone: readers skip a torn tail, and nothing will be appended)."""
    if not Path(path).is_file() or not Path(path).stat().st_size:
        return
    try:
        with FileLock(f"{path}.flock"):
            set_aside_torn_tail(path)
    except OSError:
        pass
