"""The package's layers: imports point one way, no cycles, modules of ordinary size.

core (no I/O, no threads) <- runtime <- adapters <- cli; the public modules at the top
(``botkit``, ``botkit.testing``, ``botkit.mml``, ``botkit.pytest_plugin``) may import
anything. Imports are read from the source: function-local ones count, those under
``if TYPE_CHECKING:`` do not. See the README's "Architecture".
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "botkit"

LAYERS = {"core": 0, "runtime": 1, "adapters": 2, "cli": 3}
TOP = 4
#: The only imports against the direction, lazy, as Flask's ``app.py`` does: building
#: the app and the test client from the bot.
ALLOWED_UPWARD = {
    ("botkit.core.bot", "botkit.adapters.web", "create_app"),
    ("botkit.core.bot", "botkit.testing", "test_client"),
}
#: What "no I/O, no threads" means for core: none of these may be imported there.
NOT_IN_CORE = {
    "threading",
    "socket",
    "sqlite3",
    "subprocess",
    "concurrent",
    "multiprocessing",
    "queue",
    "requests",
    "redis",
    "huey",
    "flask",
    "werkzeug",
    "gunicorn",
    "click",
}
MAX_LINES = 700


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], TOP) if len(parts) > 1 else TOP


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path) -> list[tuple[str, str]]:
    """(imported module, enclosing function or "") for every import of the file."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, str]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, function)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                found.append((target, function))
                # ``from . import signals``: the names may be modules themselves
                for alias in child.names:
                    candidate = f"{target}.{alias.name}"
                    if candidate in MODULES:
                        found.append((candidate, function))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, function or child.name)
                continue
            visit(child, function)

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return found


FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(p): p for p in FILES}


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for target, function in imports(path):
            if target not in MODULES or target == module:
                continue
            if (module, target, function) in ALLOWED_UPWARD:
                continue
            edges[module].add(target)
    return edges


def test_the_layer_table_covers_every_module() -> None:
    assert {m.split(".")[1] for m in MODULES if m.count(".") >= 1} <= set(LAYERS) | {
        "testing",
        "mml",
        "pytest_plugin",
    }


def test_imports_point_one_way() -> None:
    wrong = [
        f"{module} imports {target} (layer {layer(target)} > {layer(module)})"
        for module, targets in graph().items()
        for target in sorted(targets)
        if layer(target) > layer(module)
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    edges = graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_core_does_no_io() -> None:
    found = [
        f"{module} imports {target}"
        for module, path in MODULES.items()
        if layer(module) == 0
        for target, _ in imports(path)
        if target.split(".")[0] in NOT_IN_CORE
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_modules_are_of_ordinary_size(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines; split it by what it does"


def test_the_checker_sees_what_it_must(tmp_path: Path) -> None:
    """The import reader itself: local imports count, TYPE_CHECKING ones do not."""
    source = tmp_path / "botkit" / "core" / "sample.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from ..runtime import pool\n"
        "if TYPE_CHECKING:\n"
        "    from ..adapters import web\n"
        "def f():\n"
        "    from ..cli import main\n"
        "    import threading\n",
        encoding="utf-8",
    )
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "botkit"
    try:
        found = imports(source)
    finally:
        PACKAGE = saved
    assert ("botkit.runtime", "") in found
    assert ("botkit.cli", "f") in found
    assert ("threading", "f") in found
    assert all(not target.startswith("botkit.adapters") for target, _ in found)
