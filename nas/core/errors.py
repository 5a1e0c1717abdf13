"""User-facing errors: one line, no traceback.

Everything a user can get wrong (a file, a key, a flag) raises `UserError`; the CLIs catch it in
`run_cli`, print the single line and exit non-zero. Programming errors still raise normally.
"""
from __future__ import annotations

import signal
import sys
from typing import Callable


class UserError(Exception):
    """A mistake in something the user supplied; the message names where and what was expected."""


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> None:
    """Run a CLI entry point, turning `UserError`, Ctrl-C and SIGTERM into one line and an exit code.

    SIGTERM is raised as KeyboardInterrupt so a `kill` ends work as cleanly as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt
