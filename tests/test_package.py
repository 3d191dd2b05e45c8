"""The package's layout (``paradox_utils/__init__.py``): every module in one room, every import
(lazy ones too) from the module's own room or an earlier one, and no circle."""

from __future__ import annotations

import ast
from pathlib import Path

import paradox_utils
from paradox_utils import ROOMS

PACKAGE = Path(paradox_utils.__file__).parent


def _imports(path: Path) -> set[str]:
    """The package modules ``path`` imports, wherever in it the import stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from .x import y
                found.add(node.module.split(".")[0])
            elif node.level == 1 or node.module == "paradox_utils":  # from . import x / from paradox_utils import x
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("paradox_utils."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("paradox_utils."))
    return found - {"__version__", "ROOMS"}  # the package's own names, not modules


def _graph() -> dict[str, set[str]]:
    return {path.stem: _imports(path) for path in PACKAGE.glob("*.py") if path.stem != "__init__"}


def _floor() -> dict[str, int]:
    return {module: floor for floor, modules in enumerate(ROOMS.values()) for module in modules}


def test_every_module_is_in_exactly_one_room():
    listed = [m for modules in ROOMS.values() for m in modules]
    assert len(listed) == len(set(listed)), "a module is in two rooms"
    assert set(listed) == set(_graph()), "the rooms and the package's files differ"


def test_no_module_imports_from_a_later_room():
    floor = _floor()
    against = [f"{module} ({_room(module)}) imports {target} ({_room(target)})"
               for module, targets in _graph().items() for target in targets if floor[target] > floor[module]]
    assert against == []


def test_the_import_graph_has_no_circle():
    graph, done, path = _graph(), set(), []

    def visit(module: str) -> None:
        if module in path:
            raise AssertionError("import circle: " + " → ".join([*path[path.index(module):], module]))
        if module in done:
            return
        path.append(module)
        for target in sorted(graph[module]):
            visit(target)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_the_checks_see_imports_in_every_form(tmp_path):
    """The parser finds relative, absolute and lazy imports (a test that can fail)."""
    source = tmp_path / "m.py"
    source.write_text("from . import files, models\nfrom .data import load\nimport paradox_utils.plots\n"
                      "def f():\n    from paradox_utils.cluster import run_population\n"
                      "    from paradox_utils import report\nfrom . import __version__\n")
    assert _imports(source) == {"files", "models", "data", "plots", "cluster", "report"}


def _room(module: str) -> str:
    return next(room for room, modules in ROOMS.items() if module in modules)
