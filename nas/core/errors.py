"""User-facing errors: one line, no traceback.

Everything a user can get wrong (a file, a key, a flag) raises `UserError`; the CLIs catch it in
`run_cli`, print the single line and exit non-zero (2, or the error's `exit_code`). A fault of the
machine rather than of the code (a full disk, a read-only or forbidden folder, a path taken by a file,
a storage server that stopped: `fault_line`) is reported the same way, whichever verb meets it, with
what survived it. Layers above add their own fault types with `register_fault` (the study storage
adds the database's). Programming errors still raise normally.
"""
from __future__ import annotations

import errno
import signal
import sys
from typing import Callable

_KEPT = "completed work is kept"
# errno → what to do about it; a write that fails with one of these is never the code's fault
_FAULTS = {
    errno.ENOSPC: f"free some space and rerun the same command: {_KEPT}",
    errno.EDQUOT: f"free some space and rerun the same command: {_KEPT}",
    errno.EROFS: f"choose a writable folder: {_KEPT}",
    errno.EACCES: f"choose a folder you may write to: {_KEPT}",
    errno.EPERM: f"choose a folder you may write to: {_KEPT}",
    errno.EEXIST: f"a file is where a folder must go: choose another path or move it away; {_KEPT}",
    errno.ENOTDIR: f"a part of the path is a file, not a folder: choose another path; {_KEPT}",
    errno.EISDIR: f"a folder is where a file must go: choose another path or move it away; {_KEPT}",
    errno.ENAMETOOLONG: f"choose a shorter path; {_KEPT}",
    errno.ELOOP: f"a symbolic link loops: choose another path; {_KEPT}",
}
# a write fault of a two-path operation (a copy, a rename) is the destination's
_WRITE_FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
_REGISTERED: dict[type, Callable[[BaseException], str]] = {}


class UserError(Exception):
    """A mistake in something the user supplied; the message names where and what was expected."""

    exit_code = 2


def register_fault(kind: type, describe: Callable[[BaseException], str]) -> None:
    """Make exceptions of `kind` machine faults: `describe(exc)` is their one line (what failed,
    what survived, what to do)."""
    _REGISTERED[kind] = describe


def fault_line(exc: BaseException) -> str | None:
    """The one line for an exception that is the user's or the machine's (a `UserError`, a full disk,
    a read-only or forbidden folder, a registered fault), None for anything else.

    Long-running loops use it to tell such an exception, which stops the run, from one trial's failure."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in _FAULTS:
        path = exc.filename2 if exc.errno in _WRITE_FAULTS and exc.filename2 else exc.filename
        where = f"{path}: " if path else ""
        return f"{where}{exc.strerror or errno.errorcode[exc.errno]} ({_FAULTS[exc.errno]})"
    for kind, describe in _REGISTERED.items():
        if isinstance(exc, kind):
            return describe(exc)
    return None


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> None:
    """Run a CLI entry point, turning `UserError`, machine faults, Ctrl-C and SIGTERM into one line
    and an exit code.

    SIGTERM is raised as KeyboardInterrupt so a `kill` ends work as cleanly as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = main(argv)
    except Exception as exc:  # noqa: BLE001 - only faults become a line; anything else is re-raised
        line = fault_line(exc)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        code = getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt
