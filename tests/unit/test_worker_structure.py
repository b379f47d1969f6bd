"""The worker's code keeps two rules (issue 17), checked on the source without running it:
every attribute of a worker-side class is set in its ``__init__``, and the bytes on the
master <-> worker pipes are named once, in core/control.py, and spelled nowhere else."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)

CORE = Path(__file__).resolve().parents[2] / "core"
# the modules a worker runs a request through, and the process around them
WORKER_SIDE = ("workers.py", "serving.py", "dispatch.py", "conn.py", "body.py", "response.py",
               "chunked.py", "postbuffer.py")
MUST_SCAN = {"Worker", "Loop", "Dispatcher", "Conn", "Input", "Request"}


def _tree(name: str) -> ast.Module:
    path = CORE / name
    return ast.parse(path.read_text(), str(path))


def _self_stores(node: ast.AST):
    """(attribute, line) of every ``self.X = / += / : T =`` under ``node``."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assign):
            targets = sub.targets
        elif isinstance(sub, (ast.AugAssign, ast.AnnAssign)):
            targets = [sub.target]
        else:
            continue
        for target in targets:
            for t in ast.walk(target):   # chained and tuple targets too
                if (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                        and t.value.id == "self" and isinstance(t.ctx, ast.Store)):
                    yield t.attr, t.lineno


def _undeclared(cls: ast.ClassDef) -> list[str]:
    declared = set()
    for item in cls.body:           # class-level names (constants, __slots__ users' defaults)
        if isinstance(item, ast.Assign):
            declared.update(t.id for t in item.targets if isinstance(t, ast.Name))
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            declared.add(item.target.id)
    methods = [item for item in cls.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for method in methods:
        if method.name == "__init__":
            declared.update(attr for attr, _ in _self_stores(method))
    return [f"{cls.name}.{attr} (line {line}, in {method.name})"
            for method in methods if method.name != "__init__"
            for attr, line in _self_stores(method) if attr not in declared]


def test_worker_side_attributes_are_all_set_in_init():
    scanned, bad = set(), []
    for name in WORKER_SIDE:
        for node in ast.walk(_tree(name)):
            if isinstance(node, ast.ClassDef):
                scanned.add(node.name)
                bad += [f"{name}: {entry}" for entry in _undeclared(node)]
    assert MUST_SCAN <= scanned, f"classes not found (moved?): {sorted(MUST_SCAN - scanned)}"
    assert not bad, f"attributes first set outside __init__ (declare them there): {bad}"


def test_the_attribute_check_sees_a_late_attribute():
    cls = ast.parse("class A:\n    def __init__(self):\n        self.a = self.b = 0\n"
                    "    def f(self):\n        self.a, self.c = 1, 2\n        self.b += 1\n"
                    "        self.d: int = 3\n").body[0]
    assert [entry.split(" ")[0] for entry in _undeclared(cls)] == ["A.c", "A.d"]


# ---- control bytes ------------------------------------------------------------------------
def _control_bytes() -> dict[str, bytes]:
    names: dict[str, bytes] = {}
    for node in _tree("control.py").body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id.startswith(("CTL_", "NOTE_")):
                    assert target.id not in names, f"{target.id} assigned twice in control.py"
                    assert isinstance(node.value, ast.Constant) and type(node.value.value) is bytes \
                        and len(node.value.value) == 1, f"{target.id} is not a one-byte literal"
                    names[target.id] = node.value.value
    return names


def _core_modules():
    for path in sorted(CORE.glob("*.py")):
        if path.name != "control.py":
            yield path.name, ast.parse(path.read_text(), str(path))


def test_each_control_byte_is_defined_once_in_control_py():
    names = _control_bytes()
    assert {n for n in names if n.startswith("CTL_")} and {n for n in names if n.startswith("NOTE_")}
    values = list(names.values())
    assert len(set(values)) == len(values), f"two names for one byte: {names}"
    elsewhere = [f"{module}:{node.lineno}: {target.id}"
                 for module, tree in _core_modules() for node in ast.walk(tree)
                 if isinstance(node, (ast.Assign, ast.AnnAssign))
                 for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                 if isinstance(target, ast.Name) and target.id.startswith(("CTL_", "NOTE_"))]
    assert not elsewhere, f"control bytes defined outside core/control.py: {elsewhere}"


def test_no_control_byte_is_spelled_as_a_literal_elsewhere_in_core():
    """A one-byte literal equal to a control byte, or a note line spelled out (``b"A%d"``):
    written or compared anywhere in core but control.py, it is one end of the protocol
    that the names no longer cover."""
    values = set(_control_bytes().values())
    bad = [f"{module}:{node.lineno}: {node.value!r}"
           for module, tree in _core_modules() for node in ast.walk(tree)
           if isinstance(node, ast.Constant) and type(node.value) is bytes
           and (node.value in values or (node.value[:1] in values and node.value[1:2] == b"%"))]
    assert not bad, f"control bytes spelled as literals (import them from control.py): {bad}"


def test_every_control_byte_is_used_on_both_ends():
    """Each command is sent by the master side and handled in workers.py; each note is
    written in workers.py and read on the master side. A name one end lacks is dead."""
    users: dict[str, set[str]] = {}
    for module, tree in _core_modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                users.setdefault(node.id, set()).add(module)
    for name in _control_bytes():
        where = users.get(name, set())
        assert "workers.py" in where, f"{name} is not used by the worker (workers.py)"
        assert where - {"workers.py"}, f"{name} is not used on the master side"
