"""The import graph of the project's own code: no cycle between packages or between modules, no module imports a
private name (``_foo``) of another module, and no code reads a private attribute of an object other than ``self``
(e.g. ``sim._blocks``). Read with ``ast``: nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("infermax_env", "baselines", "agents")
SCRIPTS = ("train.py",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    files = {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    files.update({module_name(ROOT / script): ROOT / script for script in SCRIPTS if (ROOT / script).exists()})
    return files


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, str | None, int]]:
    """(module imported, name imported from it or None, line) for every import of a project module, wherever it
    sits in the file (function-level imports count too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append((submodule, None, node.lineno) if submodule in known else (base, alias.name, node.lineno))
    return [(module, imported, line) for module, imported, line in found if module.split(".")[0] in known_roots(known)]


def known_roots(known: set[str]) -> set[str]:
    return {module.split(".")[0] for module in known}


def graph() -> tuple[dict[str, set[str]], list[str]]:
    files = sources()
    known = set(files)
    edges: dict[str, set[str]] = {module: set() for module in files}
    private = []
    for module, path in files.items():
        for target, imported, line in imports(module, path, known):
            if target == module:
                continue
            edges[module].add(target)
            if imported is not None and imported.startswith("_") and not imported.startswith("__"):
                private.append(f"{path.relative_to(ROOT)}:{line} imports {imported} from {target}")
    return edges, private


def private_attribute_reads() -> list[str]:
    """``x._name`` where ``x`` is not ``self``, ``cls`` or ``super()``: reading another object's private state."""
    found = []
    for path in sources().values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                continue
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} reads {ast.unparse(node)}")
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_a_private_name_of_another():
    _, private = graph()
    assert not private, "\n".join(private)


def test_no_module_reads_a_private_attribute_of_another_object():
    found = private_attribute_reads()
    assert not found, "\n".join(found)


def test_no_import_cycle_between_modules():
    edges, _ = graph()
    # A package's __init__ importing its own submodules, which import siblings through the package, is the usual
    # re-export pattern, not a cycle: only edges that leave a module's own package (or go down into it) count.
    def own(module: str, target: str) -> bool:
        return target == module.rpartition(".")[0] or module == target.rpartition(".")[0]
    pruned = {module: {t for t in targets if not own(module, t)} for module, targets in edges.items()}
    assert not cycles(pruned), cycles(pruned)


def test_no_import_cycle_between_packages():
    edges, _ = graph()
    top: dict[str, set[str]] = {}
    for module, targets in edges.items():
        top.setdefault(module.split(".")[0], set()).update(t.split(".")[0] for t in targets)
    for package in top:
        top[package].discard(package)
    assert not cycles(top), cycles(top)


def test_the_checker_sees_cycles_and_private_imports(tmp_path):
    """The checks can fail: a two-module cycle and a private import are found."""
    edges = {"a.x": {"a.y"}, "a.y": {"a.x"}, "a.z": set()}
    assert cycles(edges) == [["a.x", "a.y"]]
    source = tmp_path / "m.py"
    source.write_text("from infermax_env.simulator import _NO_IDS\nfrom . import layout\n")
    found = imports("infermax_env.m", source, set(sources()))
    assert ("infermax_env.simulator", "_NO_IDS", 1) in found and ("infermax_env.layout", None, 2) in found
