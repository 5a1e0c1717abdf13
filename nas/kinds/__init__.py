"""Layer kinds: one module per kind, each holding its spec and every facet the stages ask of it
(`base.LayerKind`), and one C template beside it (``<TYPE>.c.j2``).

Adding a kind = its module, one line in `KINDS` below and its template. The registry is checked when
this package is imported, so a kind that misses a facet stops every command before any search:
an abstract method left unimplemented cannot be instantiated, and a missing template or template
macro (`TEMPLATE_MACROS`) is named here.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Union

from nas.kinds import conv2d, dense, depthwise, inverted_residual, pooling, softmax
from nas.kinds.base import Constants, KernelCall, LayerKind, QLayer, Shape
from nas.kinds.conv2d import Conv2D
from nas.kinds.dense import Dense
from nas.kinds.depthwise import DepthwiseConv2D
from nas.kinds.inverted_residual import InvertedResidual
from nas.kinds.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from nas.kinds.softmax import Softmax

KINDS: tuple[LayerKind, ...] = (conv2d.KIND, depthwise.KIND, pooling.MAX, pooling.AVG, pooling.GLOBAL_AVG,
                                dense.KIND, softmax.KIND, inverted_residual.KIND)

TEMPLATE_DIR = Path(__file__).resolve().parent
# What model.c.j2 asks of every kind's template: its FLASH constants, its kernel parameter structs,
# its arena bytes as a C expression (checked at compile time against the cost model) and its calls.
TEMPLATE_MACROS = ("constants", "params", "arena", "invoke")

BY_TYPE: dict[str, LayerKind] = {k.type: k for k in KINDS}
Layer = Union[tuple(k.spec for k in KINDS)]  # type: ignore[valid-type]


def kind_of(layer) -> LayerKind:
    """The kind of a spec layer (or of a `QLayer`, by its `kind`)."""
    kind = BY_TYPE.get(layer.kind if isinstance(layer, QLayer) else getattr(layer, "TYPE", None))
    if kind is None:
        raise TypeError(f"no layer kind for {layer!r}")
    return kind


def check_registry(kinds: tuple[LayerKind, ...] = KINDS, template_dir: Path = TEMPLATE_DIR) -> None:
    """Every kind complete: an implemented facet for each abstract method, a unique TYPE and prefix, and
    a C template defining every macro model.c calls; raises TypeError naming what is missing."""
    problems = []
    for kind in kinds:
        missing = sorted(getattr(type(kind), "__abstractmethods__", ()))
        if missing:
            problems.append(f"{type(kind).__name__}: no {', '.join(missing)}")
        path = template_dir / kind.template
        if not path.is_file():
            problems.append(f"{kind.type}: no C template {path.name}")
            continue
        defined = set(re.findall(r"{%-?\s*macro\s+(\w+)", path.read_text()))
        lacking = [m for m in TEMPLATE_MACROS if m not in defined]
        if lacking:
            problems.append(f"{kind.type}: {path.name} defines no macro {', '.join(lacking)}")
    for attr in ("type", "prefix"):
        values = [getattr(k, attr) for k in kinds]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            problems.append(f"layer kinds share a {attr}: {', '.join(dupes)}")
    if problems:
        raise TypeError("incomplete layer kinds: " + "; ".join(problems))


check_registry()

__all__ = ["AvgPool2D", "BY_TYPE", "Constants", "Conv2D", "Dense", "DepthwiseConv2D", "GlobalAvgPool2D", "InvertedResidual", "KINDS",
           "KernelCall", "Layer", "LayerKind", "MaxPool2D", "QLayer", "Shape", "Softmax", "TEMPLATE_DIR", "kind_of"]
