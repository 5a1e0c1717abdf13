"""User-facing errors: one line, no traceback.

Everything a user can get wrong (a file, a key, a flag) raises `UserError`; the CLIs catch it in
`run_cli`, print the single line and exit non-zero. A fault of the machine rather than of the code
(a full disk, a read-only or forbidden folder: `fault_line`) is reported the same way, whichever
verb meets it. Programming errors still raise normally.
"""
from __future__ import annotations

import errno
import signal
import sys
from typing import Callable

# errno → what to do about it; a write that fails with one of these is never the code's fault
_FAULTS = {
    errno.ENOSPC: "free some space and rerun the same command: completed work is kept",
    errno.EDQUOT: "free some space and rerun the same command: completed work is kept",
    errno.EROFS: "choose a writable folder",
    errno.EACCES: "choose a folder you may write to",
    errno.EPERM: "choose a folder you may write to",
}


class UserError(Exception):
    """A mistake in something the user supplied; the message names where and what was expected."""


def fault_line(exc: BaseException) -> str | None:
    """The one line for an exception that is the user's or the machine's (a `UserError`, a full disk,
    a read-only or forbidden folder), None for anything else.

    Long-running loops use it to tell such an exception, which stops the run, from one trial's failure."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in _FAULTS:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or errno.errorcode[exc.errno]} ({_FAULTS[exc.errno]})"
    return None


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> None:
    """Run a CLI entry point, turning `UserError`, machine faults, Ctrl-C and SIGTERM into one line
    and an exit code.

    SIGTERM is raised as KeyboardInterrupt so a `kill` ends work as cleanly as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = main(argv)
    except (UserError, OSError) as exc:
        line = fault_line(exc)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt
