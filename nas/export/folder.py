"""An export folder is complete or absent, and only ever replaces what the tool wrote.

A folder is built in a temporary folder the export made and recorded (`nas.core.owned`) and renamed
into place; a folder it replaces is first moved into another such folder. A killed export leaves only
those, which the next export on that host removes once the process is gone; folders the export did
not make (a user's `.tmp-*` or `.old-trial_*`) are never touched. Each published folder records what
it holds (`.nas-export.json`: every file's sha256), so a later export replaces it only when it still
holds exactly that: a file the user added or edited there (notes, a build folder, a tuned model.c),
or a `trial_<n>` that is a link or a file, makes the export refuse with one line naming it, or,
with `force`, be replaced anyway (a link itself, never what it points to).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nas.core import owned
from nas.core.atomic import atomic_write_text
from nas.core.errors import UserError

MANIFEST = ".nas-export.json"


def clean_stale(out_dir: Path) -> None:
    """Remove the folders of exports killed on this host (only folders an export made)."""
    owned.remove_stale(out_dir)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if (p.is_symlink() or not p.is_dir())
                  and p not in (folder / MANIFEST, folder / owned.RECORD))


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
    if force or not os.path.lexists(final):
        return
    if final.is_symlink() or not final.is_dir():
        kind = "a symbolic link" if final.is_symlink() else "a file"
        raise UserError(f"{final}: is {kind}, not a folder the export wrote; move it away, or pass --force to "
                        "replace it" + (" (the link, not what it points to)" if final.is_symlink() else ""))
    foreign = not_written_by_us(final)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise UserError(f"{final}: holds {len(foreign)} file(s) the export did not write or that changed since "
                        f"({shown}); move them away, or pass --force to replace the folder")


@contextmanager
def staged(out_dir: Path, name: str, force: bool = False) -> Iterator[Path]:
    """A temporary folder that replaces ``out_dir/name`` when the block succeeds (if
    `check_replaceable` lets it), and is removed when it fails."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = owned.make(out_dir, name)
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
    """Rename `tmp` to `final`; what `final` was (a folder, or with force a link or a file) goes into
    a folder of its own that is removed afterwards, or by the next export if this one is killed."""
    trash = None
    if os.path.lexists(final):
        trash = owned.make(final.parent, f"old-{final.name}")
        os.rename(final, trash / final.name)
    try:
        os.rename(tmp, final)
    except BaseException:
        if trash is not None:
            os.rename(trash / final.name, final)
        raise
    owned.disown(final)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
