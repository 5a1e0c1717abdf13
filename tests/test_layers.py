"""The folder tree is the architecture: no import cycle, no import from a higher layer, thin entry points.

The layer order is the ```layers block of ARCHITECTURE.md (lowest line = lowest layer). Imports are
read with `ast` from every module of `nas/`, function bodies included, so a lazy import counts too.
A verb's `__main__.py` is its CLI and sits above every layer: it may import any library module, and
no module may import it.
Function lengths are checked in `nas/` and `bench/` (tests and templates may be longer).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nas"
MAX_MAIN_LINES = 80
MAX_FUNCTION_LINES = 60


def read_layers(text: str) -> list[set[str]]:
    """Layers lowest first, each a set of unit names (a folder or top-level module of nas/)."""
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "ARCHITECTURE.md has no ```layers block"
    return [set(line.split()) for line in reversed(block.group(1).strip().splitlines())]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The nas modules `name` imports (`from a import b` counts as a.b when that is a module)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        out |= {t for t in targets if t == "nas" or t.startswith("nas.")}
    return out - {name}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def unit(module: str) -> str | None:
    """The folder or top-level module of nas/ a module belongs to (None for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def layer_violations(graph: dict[str, set[str]], layers: list[set[str]]) -> list[str]:
    level = {u: i for i, names in enumerate(layers) for u in names}
    bad = []
    for src, targets in graph.items():
        for dst in sorted(targets):
            if dst.endswith(".__main__"):
                bad.append(f"{src} imports {dst}: a CLI is above every layer")
                continue
            if src.endswith(".__main__"):
                continue
            a, b = unit(src), unit(dst)
            if a is None or b is None or a == b:
                continue
            if b not in level or a not in level:
                bad.append(f"{src} -> {dst}: {a if a not in level else b} is in no layer")
            elif level[b] >= level[a]:
                where = "the same layer as" if level[b] == level[a] else "a higher layer than"
                bad.append(f"{src} imports {dst}: {b} is in {where} {a}")
    return bad


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}          # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    tree = ast.parse(source)
    return [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > limit]


LAYERS = read_layers((ROOT / "ARCHITECTURE.md").read_text())


def test_every_folder_has_a_layer():
    units = {unit(m) for m in modules()} - {None}
    declared = set().union(*LAYERS)
    assert units <= declared, f"not in ARCHITECTURE.md's layers: {sorted(units - declared)}"
    assert declared <= units, f"layers name what nas/ does not have: {sorted(declared - units)}"


def test_no_import_from_a_higher_or_the_same_layer():
    assert layer_violations(import_graph(), LAYERS) == []


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


@pytest.mark.parametrize("src, dst", [("nas.core.errors", "nas.search.run"),     # upward
                                      ("nas.cost.analytic", "nas.data.cache"),   # sideways, same layer
                                      ("nas.arch.spec", "nas.train.loop")])
def test_layer_check_catches_an_injected_import(src, dst):
    graph = import_graph()
    graph[src] = graph[src] | {dst}
    assert layer_violations(graph, LAYERS) == [
        f"{src} imports {dst}: {unit(dst)} is in "
        f"{'the same layer as' if dst == 'nas.data.cache' else 'a higher layer than'} {unit(src)}"]


def test_a_cli_may_import_any_layer_but_nothing_imports_a_cli():
    graph = import_graph()
    assert "nas.study.study" in graph["nas.cost.__main__"]         # nas.cost --study
    graph["nas.arch.space"] = graph["nas.arch.space"] | {"nas.cost.__main__"}
    assert layer_violations(graph, LAYERS) == ["nas.arch.space imports nas.cost.__main__: a CLI is above every layer"]


def test_cycle_check_catches_an_injected_cycle():
    graph = import_graph()
    graph["nas.arch.spec"] = graph["nas.arch.spec"] | {"nas.arch.space"}    # space imports spec
    cycle = find_cycle(graph)
    assert cycle and cycle[0] == cycle[-1] and {"nas.arch.spec", "nas.arch.space"} <= set(cycle)


def test_relative_and_lazy_imports_are_seen(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from . import sibling\n\ndef f():\n    from nas.export import codegen\n")
    known = {"nas.pkg.sibling", "nas.export.codegen"}
    assert imports_of("nas.pkg.m", src, known) == {"nas.pkg.sibling", "nas.export.codegen"}


def test_entry_points_are_thin():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("__main__.py")
            if (n := len(p.read_text().splitlines())) > MAX_MAIN_LINES}
    assert long == {}, f"__main__.py over {MAX_MAIN_LINES} lines: logic belongs in the library"


def test_functions_are_short():
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "bench").glob("*.py")]
    long = {f"{p.relative_to(ROOT)}:{name}": n for p in files for name, n in long_functions(p.read_text())}
    assert long == {}, f"functions over {MAX_FUNCTION_LINES} lines"


def test_function_length_check_counts_lines():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    assert long_functions("def f():\n" + body) == [("f", MAX_FUNCTION_LINES + 1)]
    assert long_functions("def f():\n" + body[: body.rindex("    x")]) == []
