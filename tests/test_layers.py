"""The package's layers point one way: a test builds the import graph of ``autograder`` and
``dlcourse`` (every import, at module level or inside a function) and fails on any cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import autograder
import dlcourse

PACKAGES = {
    "autograder": Path(autograder.__file__).parent,
    "dlcourse": Path(dlcourse.__file__).parent,
}


def _module_name(package: str, root: Path, path: Path) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for package, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            modules[_module_name(package, root, path)] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name in modules:
        # importing a.b.c runs a/b/__init__.py first: a module depends on its package's face
        parent = name.rpartition(".")[0]
        if parent in modules and parent != name.split(".")[0]:
            graph[name].add(parent)
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
                    parent = target.rpartition(".")[0]  # and on the target's package face
                    if parent in modules and parent != target.split(".")[0] and parent != name:
                        graph[name].add(parent)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_import_graph_has_no_cycle():
    assert not cycles(import_graph())


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert not cycles({"a": {"b"}, "b": set()})


def test_dlcourse_never_imports_the_grader():
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("dlcourse"):
            assert not any(t.startswith("autograder") for t in targets), (name, targets)


def test_artifact_paths_are_spelled_only_in_the_layout_module():
    """``dlcourse.layout`` names every artifact path (with the layout's version); capture,
    checkers, plots, feedback, report and regrade use it, so a path changes in one place."""
    import re

    spelled = re.compile(
        r"""["'](?:keras/|split/|answers/|artifacts["'/]|execution\.json|\w*training\.json)"""
    )
    offenders = []
    for package, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            if path.name == "layout.py" and package == "dlcourse":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if spelled.search(code) and not code.lstrip().startswith(('"""', "``")):
                    offenders.append(f"{path.relative_to(root.parent)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_layout_module_needs_only_the_standard_library():
    import ast

    tree = ast.parse((PACKAGES["dlcourse"] / "layout.py").read_text(encoding="utf-8"))
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"__future__", "pathlib"}, imported
