"""The package's import graph reads one way: no cycles (imports inside functions count), and tools outside
`ganforge.training` use only its public names."""

from __future__ import annotations

import ast
from pathlib import Path

import ganforge

PACKAGE_DIR = Path(ganforge.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the ganforge modules it imports anywhere in its body (top level, functions, classes)."""
    files = {module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's own package
                    anchor = name.split(".")[: len(name.split(".")) - node.level + int(is_package)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                           for alias in node.names]
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_walker_finds_a_cycle_hidden_in_a_function() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_package_has_no_import_cycle_even_inside_functions() -> None:
    graph = import_graph()
    assert len(graph) > 50 and "ganforge.training.loop" in graph["ganforge.training.session"]
    assert cycles(graph) == []


def test_only_the_training_package_reaches_into_its_modules() -> None:
    outside = {name: targets for name, targets in import_graph().items() if not name.startswith("ganforge.training")}
    reaching = {name: sorted(t for t in targets if t.startswith("ganforge.training."))
                for name, targets in outside.items()}
    assert {name: found for name, found in reaching.items() if found} == {}


def test_nothing_imports_the_cli() -> None:
    importers = [name for name, targets in import_graph().items() if not _in(name, "ganforge.cli")
                 and any(_in(target, "ganforge.cli") for target in targets)]
    assert importers == ["ganforge.__main__"]


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


# The package's map, lowest layer first: a module may import its own layer and the layers below, never above.
LAYERS = (
    {"errors", "version", "progress", "device", "images", "plots", "regular_files", "terminal_text",
     "whole_files"},  # utilities
    {"config"},  # how a setting is declared, the registry, the dataclasses
    {"data", "metrics", "augment", "models"},  # stores, measurements, augmentation, the model families
    {"runs", "recipes"},  # runs and exports as data; presets and the default recipe
    {"training", "generate", "translation"},  # the one loop; images from a run
    {"explore", "export", "evaluation", "doctor", "detect", "generator", "bench"},  # the tools
    {"api", "serve"},  # the Python API and the web apps
    {"cli", "__main__", "__init__"},  # entry points
)


def _unit(module: str) -> str:
    """The top-level package or module a module belongs to: ganforge.training.loop -> training."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_top_level_package_and_module_has_a_layer() -> None:
    placed = set().union(*LAYERS)
    assert {_unit(name) for name in import_graph()} - placed == set()


def test_imports_never_climb_to_a_higher_layer() -> None:
    layer = {unit: index for index, units in enumerate(LAYERS) for unit in units}
    climbs = sorted(f"{name} -> {target}" for name, targets in import_graph().items() for target in targets
                    if layer[_unit(target)] > layer[_unit(name)])
    assert climbs == []
