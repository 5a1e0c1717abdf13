"""The one place text is generated: Jinja2 templates under `templates/` (and each layer kind's C
template under `nas/kinds/`), filled with numbers.

Python reduces a model to plain numbers and tables; the templates (`*.c.j2`, `*.h.j2`, build files,
README) hold every line of C and prose, readable in the repository as what will be written. The
filters below are the only C formatting: literals that round-trip exactly, and arrays laid out in
rows. Output is deterministic: no timestamps, fixed formatting.
"""
from __future__ import annotations

import math
from pathlib import Path

import jinja2
import numpy as np

from nas.kinds import TEMPLATE_DIR as KIND_TEMPLATES

TEMPLATES = Path(__file__).resolve().parent / "templates"


def c_float(v: float) -> str:
    """float32 C literal that round-trips exactly (9 significant digits, parsed directly to float)."""
    x = float(np.float32(v))
    if not math.isfinite(x):
        raise ValueError(f"non-finite constant {v}")
    s = f"{x:.9g}"
    if "." not in s and "e" not in s:
        s += ".0"
    return s + "f"


def c_int(v: int) -> str:
    """Integer C literal; INT32_MIN spelled so that it has type int32 (a bare -2147483648 does not)."""
    v = int(v)
    return "(-2147483647 - 1)" if v == -(1 << 31) else str(v)


def c_uint(v: int) -> str:
    return f"{int(v)}u"


def c_string(s: str) -> str:
    """C string literal: quotes and backslashes escaped, non-printable or non-ASCII characters as '?'."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.append("?")
    return '"' + "".join(out) + '"'


def c_rows(items, per_line: int) -> str:
    """Array initialiser body: `per_line` items a row, each row indented by four spaces."""
    items = [str(i) for i in items]
    rows = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "    " + ",\n    ".join(rows)


def flat(values) -> list:
    """Any array as a flat Python list (C order), for `c_rows`."""
    return np.asarray(values).reshape(-1).tolist()


def fmt(v, spec: str) -> str:
    """`format(v, spec)`: Python's format mini-language for numbers in prose (",", ".2f", ...)."""
    return format(v, spec)


def kb(n: float) -> str:
    """A byte count for people: `12,345 B (12.1 kB)`."""
    return f"{n:,.0f} B ({n / 1024:.1f} kB)"


_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader([str(TEMPLATES), str(KIND_TEMPLATES)]),
                          undefined=jinja2.StrictUndefined,
                          keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)
_ENV.filters.update(c_float=c_float, c_int=c_int, c_uint=c_uint, c_string=c_string, c_rows=c_rows, flat=flat, fmt=fmt, kb=kb)


def render(template: str, **values) -> str:
    """`templates/<template>` filled with `values`."""
    return _ENV.get_template(template).render(**values)


def macros(template: str):
    """A template's macros, callable from another template (e.g. a layer kind's `<TYPE>.c.j2`)."""
    return _ENV.get_template(template).module
