"""No import cycles inside src/sortnet, counting module-level AND function-level imports of sortnet.*.

The graph is built from the source with `ast` (nothing is imported): an edge A -> B for every
`import sortnet.B` / `from sortnet.B import x` / `from sortnet import B` (B a module) / relative import
in A, wherever it is written, except under `if TYPE_CHECKING:`. Implicit parent-package imports are not
edges (importing sortnet.data.folder runs sortnet/__init__.py, which imports nothing eagerly).
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "sortnet"


def module_files() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The sortnet modules that module `name` imports anywhere in its body."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")} & set(modules) - {name} | (
        {name} if name in found else set())


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a -> ... -> a) per strongly connected component that has one (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1 or node in graph.get(node, ()):
                    components.append(sorted(comp))
    return [_cycle_in(comp, graph) for comp in components]


def _cycle_in(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path start -> ... -> start inside one strongly connected component (breadth-first)."""
    members, start = set(component), component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start] + path[::-1][1:] + [start] if node != start else [start, start]
                if child not in parents:
                    parents[child] = node
                    nxt.append(child)
        frontier = nxt
    return component


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for child in graph[todo.pop()] - seen:
            seen.add(child)
            todo.append(child)
    return seen


def test_the_graph_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "sortnet"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "a.py").write_text("def f():\n    from sortnet.sub import b\n")
    (pkg / "sub" / "b.py").write_text("from ..a import f\nimport os\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import sortnet.a\n")
    modules = {"sortnet": pkg / "__init__.py", "sortnet.sub": pkg / "sub" / "__init__.py", "sortnet.a": pkg / "a.py",
               "sortnet.sub.b": pkg / "sub" / "b.py", "sortnet.c": pkg / "c.py"}
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert graph == {"sortnet": set(), "sortnet.sub": {"sortnet.sub.b"}, "sortnet.a": {"sortnet.sub.b"},
                     "sortnet.sub.b": {"sortnet.a"}, "sortnet.c": set()}
    assert find_cycles(graph) == [["sortnet.a", "sortnet.sub.b", "sortnet.a"]]


def test_no_import_cycles_in_sortnet():
    graph = import_graph()
    assert len(graph) > 40 and graph["sortnet.cli.main"]  # the walk really found the package
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in src/sortnet:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_layers():
    """infer never reaches training (prediction needs no training code); data and models never reach the CLI."""
    graph = import_graph()
    for name in graph:
        below = reachable(graph, name)
        if name.startswith("sortnet.infer"):
            assert not any(m.startswith("sortnet.training") for m in below), f"{name} reaches training"
        if name.startswith(("sortnet.data", "sortnet.models", "sortnet.infer", "sortnet.training")):
            assert not any(m.startswith("sortnet.cli") for m in below), f"{name} reaches the CLI"


def package_of(module: str) -> str:
    """sortnet.runs.fit -> sortnet.runs; sortnet.calibrate -> sortnet.calibrate; sortnet -> sortnet (the API)."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Every module collapsed onto its top-level package (or top-level module); edges inside one package dropped."""
    out: dict[str, set[str]] = {}
    for name, targets in graph.items():
        here = package_of(name)
        out.setdefault(here, set()).update(package_of(t) for t in targets if package_of(t) != here)
    return out


def test_package_graph_collapses_modules():
    graph = {"sortnet.a.x": {"sortnet.b.y", "sortnet.a.z"}, "sortnet.a.z": set(), "sortnet.b.y": {"sortnet.c"},
             "sortnet.c": {"sortnet.a.z"}}
    assert package_graph(graph) == {"sortnet.a": {"sortnet.b"}, "sortnet.b": {"sortnet.c"}, "sortnet.c": {"sortnet.a"}}
    assert find_cycles(package_graph(graph)) == [["sortnet.a", "sortnet.b", "sortnet.c", "sortnet.a"]]


def test_no_import_cycles_between_packages():
    """A package-level knot (training -> transfer -> training through function-level imports, say) is a layering
    fault even where no two modules import each other."""
    packages = package_graph(import_graph())
    assert {"sortnet.runs", "sortnet.training", "sortnet.transfer", "sortnet.runfolder"} <= set(packages)
    cycles = find_cycles(packages)
    assert not cycles, "package-level import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


ENGINES = ("sortnet.training", "sortnet.transfer", "sortnet.models", "sortnet.data")
ABOVE_ENGINES = ("sortnet.runs", "sortnet.compare", "sortnet.nas", "sortnet.labels", "sortnet.reporting",
                 "sortnet.classifier", "sortnet.ensemble", "sortnet.studio", "sortnet.serve", "sortnet.cli")


def test_engines_never_reach_the_run_layer():
    """The engines are driven from above: none of them reaches runs/ (their conductor) or anything on top of it."""
    graph = import_graph()
    for name in graph:
        if name.startswith(ENGINES):
            above = sorted(m for m in reachable(graph, name) if m == "sortnet" or m.startswith(ABOVE_ENGINES))
            assert not above, f"{name} (an engine) reaches {above}"
