"""Typed loading of the YAML files users edit (budgets, search spaces, architecture specs).

One small validator instead of a schema library: dataclass type hints are the schema, field metadata
adds bounds. Every problem becomes a one-line `UserError` naming the file, the dotted key and what
was expected, so a typo in a budget never ends in a traceback.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from nas.core.errors import UserError


def bounded(default: Any = dataclasses.MISSING, *, gt: float | None = None, ge: float | None = None,
            le: float | None = None, lt: float | None = None, doc: str = "", omit_default: bool = False,
            **kw: Any) -> Any:
    """A dataclass field with numeric bounds the loader enforces (applied to every element of a tuple).
    `omit_default`: `to_dict` leaves the field out while it holds its default, so a field added later
    keeps the serialised form (and the hashes of it) of everything written before it existed."""
    meta = {"gt": gt, "ge": ge, "le": le, "lt": lt, "doc": doc, "omit_default": omit_default}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta, **kw)
    return dataclasses.field(default=default, metadata=meta, **kw)


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (YAML lets the last one win
    silently, so a second `limits:` block would replace the first without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; a missing, binary, malformed or empty file, or a key given twice, is a
    `UserError`."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: file not found")
    raw = p.read_bytes()
    if b"\x00" in raw:
        raise UserError(f"{p}: not a text file (expected YAML)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{p}: not UTF-8 text (expected YAML)") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UserError(f"{p}: invalid YAML{where}: {problem}") from None
    if data is None:
        raise UserError(f"{p}: file is empty (expected a YAML mapping)")
    return data


def write_yaml(path: str | Path, data: Any) -> None:
    """Write YAML atomically (temp file + rename) so a crash never leaves half a file."""
    from nas.core.atomic import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(data, sort_keys=False))


def load(cls: type, data: Any, source: str, key: str = "") -> Any:
    """Build dataclass `cls` from parsed YAML/JSON `data`, validating against its type hints."""
    return _convert(cls, data, source, key, None)


def _where(source: str, key: str) -> str:
    return f"{source}: {key}" if key else source


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fail(source: str, key: str, expected: str, value: Any) -> UserError:
    return UserError(f"{_where(source, key)}: expected {expected}, got {_describe(value)}")


def _convert(tp: Any, value: Any, source: str, key: str, meta: dict | None) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, source, key)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            raise _fail(source, key, "one of " + ", ".join(map(str, choices)), value)
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _convert(options[0], value, source, key, meta)
        return _tagged(options, value, source, key)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise _fail(source, key, "a list", value)
        if len(args) == 2 and args[1] is Ellipsis:
            if not value:
                raise _fail(source, key, "a non-empty list", value)
            return tuple(_convert(args[0], v, source, f"{key}[{i}]", meta) for i, v in enumerate(value))
        if len(value) != len(args):
            raise _fail(source, key, f"a list of {len(args)} values", value)
        return tuple(_convert(a, v, source, f"{key}[{i}]", meta) for i, (a, v) in enumerate(zip(args, value)))
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(source, key, "true or false", value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
                value = int(value)
            else:
                raise _fail(source, key, "an integer" + _bounds_text(meta), value)
        _check_bounds(value, source, key, meta, "an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _fail(source, key, "a number" + _bounds_text(meta), value)
        _check_bounds(value, source, key, meta, "a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str) or not value.strip():
            raise _fail(source, key, "a non-empty string", value)
        return value
    raise TypeError(f"unsupported config type {tp!r}")


def _bounds_text(meta: dict | None) -> str:
    if not meta:
        return ""
    parts = []
    for name, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if meta.get(name) is not None:
            parts.append(f"{sym} {meta[name]:g}")
    return (" " + " and ".join(parts)) if parts else ""


def _check_bounds(value: float, source: str, key: str, meta: dict | None, kind: str) -> None:
    if not meta:
        return
    ok = ((meta.get("gt") is None or value > meta["gt"]) and (meta.get("ge") is None or value >= meta["ge"])
          and (meta.get("lt") is None or value < meta["lt"]) and (meta.get("le") is None or value <= meta["le"]))
    if not ok:
        raise _fail(source, key, kind + _bounds_text(meta), value)


def _dataclass(cls: type, value: Any, source: str, key: str) -> Any:
    if not isinstance(value, dict):
        raise _fail(source, key, f"a mapping ({cls.__name__})", value)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for name in value:
        if name not in fields:
            known = ", ".join(fields)
            raise UserError(f"{_where(source, _join(key, str(name)))}: unknown key (expected one of: {known})")
    kwargs = {}
    for name, f in fields.items():
        sub = _join(key, name)
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise UserError(f"{_where(source, sub)}: missing key ({_expected(hints[name], f.metadata)})")
            continue
        if value[name] == [] and f.default == ():
            kwargs[name] = ()
            continue
        kwargs[name] = _convert(hints[name], value[name], source, sub, dict(f.metadata) or None)
    try:
        return cls(**kwargs)
    except (ValueError, UserError) as exc:
        raise UserError(f"{_where(source, key)}: {exc}") from None


def _tagged(options: list, value: Any, source: str, key: str) -> Any:
    """A union of dataclasses is discriminated by their `type` class attribute (e.g. layers)."""
    tags = {getattr(o, "TYPE", None): o for o in options}
    if not isinstance(value, dict) or "type" not in value:
        raise _fail(source, key, "a mapping with a 'type' key (" + ", ".join(map(str, tags)) + ")", value)
    cls = tags.get(value["type"])
    if cls is None:
        raise UserError(f"{_where(source, _join(key, 'type'))}: expected one of {', '.join(map(str, tags))}, "
                        f"got {_describe(value['type'])}")
    return _dataclass(cls, {k: v for k, v in value.items() if k != "type"}, source, key)


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _expected(tp: Any, meta: Any) -> str:
    doc = meta.get("doc") if meta else ""
    return doc or f"expected {getattr(tp, '__name__', str(tp))}"


def to_dict(obj: Any) -> Any:
    """Plain JSON/YAML-able data from a config dataclass (tuples become lists, tagged unions get `type`)."""
    if dataclasses.is_dataclass(obj):
        out = {}
        tag = getattr(type(obj), "TYPE", None)
        if tag is not None:
            out["type"] = tag
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.init and not (f.metadata.get("omit_default") and value == f.default):
                out[f.name] = to_dict(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj
