"""An export folder is complete or absent, and only ever replaces what the tool wrote.

A folder is built under a temporary name and renamed into place; a killed export leaves only its
temporary folder, named after its host and process, which the next export on that host removes once
the process is gone. Each folder records what it holds (`.nas-export.json`: every file's sha256), so
a later export replaces it only when it still holds exactly that: a file the user added or edited
there (notes, a build folder, a tuned model.c) makes the export refuse with one line naming it, or,
with `force`, be replaced anyway.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nas.core.atomic import atomic_write_text
from nas.core.errors import UserError
from nas.core.locks import pid_alive

MANIFEST = ".nas-export.json"


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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if (p.is_symlink() or not p.is_dir()) and p != folder / MANIFEST)


def not_written_by_us(folder: Path) -> list[str]:
    """Files under an existing export folder that the export did not write, or that changed since."""
    try:
        recorded = json.loads((folder / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = {}
    return [str(p.relative_to(folder)) for p in _files(folder)
            if p.is_symlink() or not p.is_file() or recorded.get(str(p.relative_to(folder))) != _sha256(p)]


def check_replaceable(final: Path, force: bool = False) -> None:
    """UserError when replacing `final` would delete something the tool did not write (unless `force`)."""
    if force or not final.exists():
        return
    foreign = not_written_by_us(final) if final.is_dir() else [final.name]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise UserError(f"{final}: holds {len(foreign)} file(s) the export did not write or that changed since "
                        f"({shown}); move them away, or pass --force to replace the folder")


@contextmanager
def staged(out_dir: Path, name: str, force: bool = False) -> Iterator[Path]:
    """A temporary folder that replaces ``out_dir/name`` when the block succeeds (if
    `check_replaceable` lets it), and is removed when it fails."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".tmp-{name}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        manifest = {str(p.relative_to(tmp)): _sha256(p) for p in _files(tmp)}
        atomic_write_text(tmp / MANIFEST, json.dumps({"files": manifest}, indent=1, sort_keys=True) + "\n")
        check_replaceable(out_dir / name, force)
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
