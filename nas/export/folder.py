"""An export folder is complete or absent: it is built under a temporary name and renamed into place.

A killed export leaves only its temporary folder, named after its host and process, which the next
export on that host removes once the process is gone.
"""
from __future__ import annotations

import os
import shutil
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nas.core.locks import pid_alive


def clean_stale(out_dir: Path) -> None:
    """Remove temporary folders of exports killed on this host."""
    host = socket.gethostname()
    for old in out_dir.glob(".old-trial_*"):       # a replaced folder whose removal was cut short
        shutil.rmtree(old, ignore_errors=True)
    for tmp in out_dir.glob(".tmp-*"):
        parts = tmp.name.split("-")
        try:
            t_host, pid = "-".join(parts[2:-2]), int(parts[-2])
        except (ValueError, IndexError):
            continue
        if t_host == host and not pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def staged(out_dir: Path, name: str) -> Iterator[Path]:
    """A temporary folder that replaces ``out_dir/name`` when the block succeeds, and is removed when
    it fails."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".tmp-{name}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        _publish(tmp, out_dir / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish(tmp: Path, final: Path) -> None:
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
