"""The shape of the core (issue 17, docs/architecture.md): no import cycles, a worker table
and a reload that never import the master, actions that are the functions doing the work."""
from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import pytest

from uwsgi_py import actions

pytestmark = pytest.mark.timeout(30)

CORE = Path(__file__).resolve().parents[2] / "core"
PACKAGE = "uwsgi_py"


def imports(path: Path, modules: set[str]) -> set[str]:
    """The core modules ``path`` imports anywhere in it: at module level, in functions,
    under ``if TYPE_CHECKING``. ``from . import x`` is module ``x`` if there is one, else
    a name of the package (``__init__``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 or (node.level == 0 and (node.module or "").split(".")[0] == PACKAGE):
                parts = (node.module or "").split(".")
                if node.level == 0:
                    parts = parts[1:]
                if parts and parts[0]:
                    found.add(parts[0])
                else:
                    found.update(a.name if a.name in modules else "__init__" for a in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE:
                    found.add(parts[1] if len(parts) > 1 else "__init__")
    return found & modules


def graph() -> dict[str, set[str]]:
    paths = {p.stem: p for p in CORE.glob("*.py")}
    modules = set(paths)
    return {name: imports(path, modules) - {name} for name, path in paths.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_parser_sees_function_level_and_package_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(textwrap.dedent("""
        from . import log, NAME
        from .children import Child
        import uwsgi_py.reload
        def f():
            from .master import State
        if TYPE_CHECKING:
            from uwsgi_py.server import Server
    """))
    assert imports(src, {"log", "children", "reload", "master", "server", "__init__"}) == \
        {"log", "__init__", "children", "reload", "master", "server"}


def test_core_has_no_import_cycle():
    assert cycles(graph()) == []


@pytest.mark.parametrize("module", ["children", "reload", "worker_reload", "upkeep", "limits",
                                    "state", "handoff"])
def test_what_the_master_drives_never_imports_it(module):
    # they tell the master what happened (return values) instead of calling back into it
    assert "master" not in graph()[module]
    assert "actions" not in graph()[module]


def _body(function) -> list[ast.stmt]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    body = tree.body[0].body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]       # the docstring
    return body


def _forwards(function) -> bool:
    """The body is one call to a method of the action's argument: ``master.x(...)``."""
    body = _body(function)
    if len(body) != 1 or not isinstance(body[0], (ast.Expr, ast.Return)):
        return False
    call = body[0].value
    first = next(iter(inspect.signature(function).parameters))
    return (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Name) and call.func.value.id == first)


@pytest.mark.parametrize("name", sorted(actions.BUILTIN))
def test_each_action_is_the_function_that_does_the_work(name):
    function = actions.BUILTIN[name]
    assert inspect.isfunction(function) and function.__name__ == name
    assert function.__module__ != actions.__name__, "actions.py is the registry, not a layer"
    assert not _forwards(function), f"{name} only forwards to a method of the master"
    assert function.__doc__, f"{name} says which uWSGI function it mirrors"
    # it reports what it did
    assert inspect.signature(function).return_annotation in ("dict", dict)
