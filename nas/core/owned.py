"""Folders the tool makes and may remove again, and nothing else.

A folder built under a temporary name (an export, a feature cache) or made to hold what is being
replaced is created by `make`: `<parent>/.tmp-<kind>-<host>-<pid>-<random>`, holding a record that
says so (`.nas-owned`: its name, host and process). A later run removes such a folder
(`remove_stale`) only when it holds that record, or is still empty, and its process is gone: a
folder a user made or named alike (`.tmp-mine`, `.old-trial_0`) is never touched, whatever it holds.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

from nas.core.atomic import atomic_write_text
from nas.core.locks import pid_alive

RECORD = ".nas-owned"
PREFIX = ".tmp-"
HOST = "".join(ch if ch.isalnum() else "_" for ch in os.uname().nodename)


def make(parent: Path, kind: str) -> Path:
    """A new, recorded folder in `parent` (which must exist)."""
    path = Path(parent) / f"{PREFIX}{kind}-{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    atomic_write_text(path / RECORD, json.dumps({"name": path.name, "host": HOST, "pid": os.getpid()}) + "\n")
    return path


def disown(path: Path) -> None:
    """Drop the record of a folder published under its final name (it is no longer temporary)."""
    (Path(path) / RECORD).unlink(missing_ok=True)


def _owner(path: Path) -> tuple[str, int] | None:
    """(host, pid) of a folder `make` made: from its record, or, for a folder holding nothing but
    (the temporary file of) a record (made, killed before its record was written), from its name;
    None for anything else."""
    try:
        record = json.loads((path / RECORD).read_text())
        if isinstance(record, dict) and record.get("name") == path.name:
            return str(record["host"]), int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    parts = path.name.split("-")
    try:
        unborn = all(p.name.startswith(f".{RECORD}.") and p.name.endswith(".tmp") for p in path.iterdir())
        if unborn and len(parts) >= 5:
            return parts[-3], int(parts[-2])
    except (OSError, ValueError):
        pass
    return None


def remove_stale(parent: Path, max_age_s: float | None = None) -> None:
    """Remove the folders `make` made in `parent` whose process is gone (on this host), or that are
    older than `max_age_s` (any host: a shared folder)."""
    for path in Path(parent).glob(f"{PREFIX}*"):
        if path.is_symlink() or not path.is_dir():
            continue
        owner = _owner(path)
        if owner is None:
            continue
        try:
            old = max_age_s is not None and time.time() - path.stat().st_mtime > max_age_s
        except OSError:
            continue
        if old or (owner[0] == HOST and not pid_alive(owner[1])):
            shutil.rmtree(path, ignore_errors=True)
