"""The tree's rules, checked on the source: no import cycles, one module reads the environment,
the library never prints, library errors never name the command line's flags."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "grmpiqa"


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def _imports(tree: ast.Module) -> list[str]:
    """Every grmpiqa module imported at run time (at the top or inside a function), not the
    ones imported only for type checking."""
    hidden = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden.update(id(sub) for sub in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return [name for name in found if name.startswith("grmpiqa.")]


def _unit(module: str) -> str:
    """The package a module belongs to (``grmpiqa.io.output`` -> ``io``); top-level modules
    are their own unit."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "grmpiqa"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def test_no_import_cycles_between_packages_or_modules():
    modules = _modules()
    packages: dict[str, set[str]] = defaultdict(set)
    files: dict[str, set[str]] = defaultdict(set)
    for name, tree in modules.items():
        if name == "grmpiqa":  # the lazy re-exports of the public API
            continue
        for target in _imports(tree):
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]  # ``from pkg.mod import name``
            if target in (name, "grmpiqa"):
                continue
            files[name].add(target)
            if _unit(target) != _unit(name):
                packages[_unit(name)].add(_unit(target))
    assert _cycles(packages) == []
    assert _cycles(files) == []


def test_the_environment_is_read_in_one_module():
    readers = [name for name, tree in _modules().items()
               if "os.environ" in ast.unparse(tree) or "getenv" in ast.unparse(tree)]
    assert readers == ["grmpiqa.env"]


def test_the_library_prints_nothing():
    printing = []
    for name, tree in _modules().items():
        if name.startswith("grmpiqa.cli") or name == "grmpiqa.__main__":
            continue
        for node in ast.walk(tree):
            called = ast.unparse(node.func) if isinstance(node, ast.Call) else ""
            if called in ("print", "sys.stderr.write", "sys.stdout.write"):
                printing.append(f"{name}:{node.lineno}")
    assert printing == []


_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]+")


def test_library_errors_never_name_command_line_flags():
    named = []
    for name, tree in _modules().items():
        if name.startswith("grmpiqa.cli"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                for part in ast.walk(node.exc):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str) \
                            and _FLAG.search(part.value):
                        named.append(f"{name}:{node.lineno}: {part.value!r}")
    assert named == []
