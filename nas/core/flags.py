"""Command-line flags checked before any work, each error one line naming the flag.

`Parser` is argparse with one-line errors (`error: --timeout: expected ...`, exit 2, no usage
block); the types below are what every verb's numeric and name flags are parsed with, so `--timeout
nan`, `--seed -1` or `--study ../x` stop at the command line, never half-way through a run.
"""
from __future__ import annotations

import argparse
import math
from typing import Callable

from nas.core.errors import UserError
from nas.core.names import check_name

MAX_SEED = 2**31 - 1   # numpy, torch and Optuna's samplers all take it, with room for derived seeds


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are `UserError`s: one line, exit 2 (through `run_cli`)."""

    def error(self, message: str):
        raise UserError(message.removeprefix("argument "))


def _number(text: str, convert: Callable[[str], float | int], expected: str):
    try:
        value = convert(text.strip())
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A count: 1, 2, ..."""
    value = _number(text, int, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def index(text: str) -> int:
    """A number of something that counts from 0 (a trial)."""
    value = _number(text, int, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def seed(text: str) -> int:
    value = _number(text, int, f"a seed from 0 to {MAX_SEED}")
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to {MAX_SEED}, got {value}")
    return value


def seconds(text: str) -> float:
    """A duration: a finite number of seconds above 0."""
    value = _number(text, float, "a number of seconds > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text.strip()}")
    return value


def name(text: str) -> str:
    """A name that becomes a folder (a study)."""
    try:
        return check_name(text, "")
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc).strip()) from None
