"""The package's import graph: no cycles, and no module importing a command of the command line.

The graph is read from the source with ``ast``, imports inside functions and under
``if TYPE_CHECKING:`` included: a lazy or type-only import back and forth is still a circle a
reader has to untangle, even if it never runs at import time. A submodule importing its own
package's ``__init__`` is not an edge: Python imports the package first anyway.
"""

from __future__ import annotations

import ast
from pathlib import Path

import dattavani

PACKAGE = Path(dattavani.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The dattavani modules ``path`` imports (a name imported from a package counts as its
    submodule when there is one)."""
    name = module_name(path)
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return {m for m in found if m in modules and m != name and m not in ancestors}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_the_checker_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package() -> None:
    graph = import_graph()
    assert "dattavani.cli._common" in graph["dattavani.cli.transcribe"]  # the graph is read
    assert find_cycle(graph) is None


def test_no_module_imports_a_command_module() -> None:
    """Commands import from ``cli._common`` and ``cli._files``; only ``cli`` lists them."""
    graph = import_graph()
    commands = {m for m in graph if m.startswith("dattavani.cli.") and ".cli._" not in m}
    commands.discard("dattavani.cli.__main__")
    assert "dattavani.cli.whisper" in commands
    for module, targets in graph.items():
        assert not targets & commands, f"{module} imports {sorted(targets & commands)}"
