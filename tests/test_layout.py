"""The package's shape, read from its source: layers import only downward, no import cycle,
nothing below the command line prints, Optuna stays in the study and results layers, no
function runs past 50 lines, and no test module imports another."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "hpsearch"
# Lowest first; a module may import its own layer and those below it.
LAYERS = {"base": 0, "models": 1, "engine": 2, "study": 3, "results": 4, "cli": 5}
ENTRY_SHIMS = {"hpsearch.__main__", "hpsearch.study.__main__", "hpsearch.models.__main__",
               "hpsearch.train", "hpsearch.confirm", "hpsearch.export", "hpsearch.report",
               "hpsearch.dashboard", "hpsearch.worker", "hpsearch.bench"}
MAX_FUNCTION_LINES = 50


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


SOURCES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    if module in ENTRY_SHIMS:
        return LAYERS["cli"]
    parts = module.split(".")
    return LAYERS.get(parts[1], LAYERS["base"]) if len(parts) > 1 else LAYERS["base"]


def imports(module: str) -> set[str]:
    """The hpsearch (and benchmarks) modules MODULE imports, lazily inside functions too; a
    `from package import name` counts as an import of the submodule where NAME is one."""
    tree = ast.parse(SOURCES[module].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if f"{node.module}.{a.name}" in SOURCES}
    return {m for m in found if m.split(".")[0] in ("hpsearch", "benchmarks")}


GRAPH = {m: imports(m) for m in SOURCES}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [f"{m} ({layer(m)}) imports {i} ({layer(i)})"
            for m, targets in graph.items() for i in targets
            if i in graph and layer(i) > layer(m)]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module (a package importing
    its own submodules is no cycle unless one of them imports it back)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_layers_import_only_downward():
    assert upward_imports(GRAPH) == []


def test_no_import_cycle():
    assert cycles(GRAPH) == []


def test_the_checks_catch_an_upward_import_and_a_cycle():
    bad = {"hpsearch.engine.train": {"hpsearch.study.loop"},
           "hpsearch.study.loop": {"hpsearch.study.run"},
           "hpsearch.study.run": {"hpsearch.study.loop"}, "hpsearch.cli.study": set()}
    assert upward_imports(bad) == ["hpsearch.engine.train (2) imports hpsearch.study.loop (3)"]
    assert cycles(bad) == [["hpsearch.study.loop", "hpsearch.study.run"]]
    assert layer("hpsearch.study.__main__") == LAYERS["cli"]  # an entry point, not the study


def test_benchmarks_are_outside_the_package():
    users = sorted(m for m, targets in GRAPH.items()
                   if any(t.startswith("benchmarks") for t in targets))
    assert users == ["hpsearch.cli.bench"]  # which finds them in a checkout, or says so
    assert not list(PACKAGE.glob("bench_*.py"))


def calls(tree: ast.AST, name: str) -> list[int]:
    return [n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name]


def test_nothing_below_the_command_line_prints():
    printing = {m: lines for m in SOURCES if layer(m) < LAYERS["cli"]
                for lines in [calls(ast.parse(SOURCES[m].read_text()), "print")] if lines}
    assert printing == {}
    writes = [m for m in SOURCES if layer(m) < LAYERS["cli"]
              and ("sys.stdout" in SOURCES[m].read_text() or "sys.stderr" in SOURCES[m].read_text())]
    assert writes == []


def test_optuna_only_in_the_study_and_results_layers():
    allowed = (LAYERS["study"], LAYERS["results"])
    def imports_optuna(tree: ast.AST) -> bool:
        for n in ast.walk(tree):
            names = ([a.name for a in n.names] if isinstance(n, ast.Import) else
                     [n.module] if isinstance(n, ast.ImportFrom) and n.module else [])
            if any(name == "optuna" or name.startswith(("optuna.", "optuna_dashboard"))
                   for name in names):
                return True
        return False

    users = [m for m in SOURCES if layer(m) not in allowed
             and imports_optuna(ast.parse(SOURCES[m].read_text()))]
    assert users == []


def test_no_function_over_50_lines():
    long = []
    for m, path in SOURCES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{m}.{node.name}: {n} lines")
    assert long == []


@pytest.mark.parametrize("module", sorted(m for m in SOURCES if m not in ENTRY_SHIMS))
def test_every_module_imports(module):
    importlib.import_module(module)


def test_no_test_module_imports_another():
    tests = {p.stem for p in (ROOT / "tests").glob("test_*.py")}
    offenders = []
    for path in (ROOT / "tests").glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            offenders += [f"{path.name} imports {n}" for n in names if n in tests]
    assert offenders == []
