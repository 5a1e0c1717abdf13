"""Names that become paths: a study name is a folder under `studies/` and `export/`, so it is a name.

Every user-given name that the tool turns into a file or folder name goes through `check_name`:
letters, digits, '_', '.', '-', starting with a letter or digit, at most 100 characters. No
separator, no `..`, no empty or absolute name, no NUL or undecodable byte can reach a path, so
nothing is written outside its folder.
"""
from __future__ import annotations

import re

from nas.core.errors import UserError

MAX_LENGTH = 100
_NAME = re.compile(rf"[^\W_][\w.-]{{0,{MAX_LENGTH - 1}}}")


def check_name(text: object, what: str) -> str:
    """`text` when it is a plain name, else a UserError naming `what` (e.g. `--study`)."""
    if isinstance(text, str) and _NAME.fullmatch(text) and text.isprintable():
        return text
    shown = repr(text) if isinstance(text, str) else type(text).__name__
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise UserError(f"{what} {shown}: expected a name of letters, digits, '_', '.' and '-' starting with a letter "
                    f"or digit (at most {MAX_LENGTH} characters): it names a folder")
