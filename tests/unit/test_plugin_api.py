"""The plugin boundary (STYLE §1, issues 8 and 17): the core never names a plugin package,
the example third-party plugins and the built-in ones use only the public API, plugins keep
their state in ``state_for`` rather than on the core's objects, use only the documented attributes
of ``master``/``server``/``worker`` (``PUBLIC_ATTRIBUTES``), and the guide lists the API."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import uwsgi_py
from uwsgi_py.api import PUBLIC_ATTRIBUTES

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                yield node.lineno, node.module, alias.name


def test_core_never_imports_a_plugin_package():
    bad = [f"{path.name}:{line}: {module}"
           for path in sorted((ROOT / "core").glob("*.py"))
           for line, module, _ in _imports(path)
           if module.split(".")[0].startswith("uwsgi_py_")]
    assert not bad, f"the core imports plugin packages (plugins are found by entry point only): {bad}"


@pytest.mark.parametrize("project", ["tests/external_plugin", "tests/external_plugin_broken",
                                     "examples/plugins/response_header",
                                     "examples/plugins/udp_control", "examples/plugins/reload_log"])
def test_example_plugins_use_only_the_public_api(project):
    public = set(uwsgi_py.__all__)
    paths = sorted((ROOT / project).rglob("*.py"))
    assert paths, project
    for path in paths:
        for line, module, name in _imports(path):
            if module == "uwsgi_py":
                assert name in public, f"{path.name}:{line} imports uwsgi_py.{name}, not in __all__"
            else:
                assert not module.startswith("uwsgi_py"), f"{path.name}:{line} imports {module}"


# Built-in plugins' imports of core internals still allowed, by (file, module), each with
# why the public API does not cover it. Empty: every built-in plugin lives on ``__all__``. A
# new private import fails the test below, and an entry no longer needed fails too.
ALLOWED: dict[tuple[str, str], str] = {}


def _private_imports():
    public = set(uwsgi_py.__all__)
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        rel = path.relative_to(ROOT / "plugins").as_posix()
        for line, module, name in _imports(path):
            if module == "uwsgi_py" and (name is None or name in public):
                continue    # ``import uwsgi_py`` is fine: uwsgi_py.X names public X
            if module == "uwsgi_py" or module.startswith("uwsgi_py."):
                target = module if module != "uwsgi_py" else f"uwsgi_py.{name}"
                yield rel, line, target


def test_builtin_plugins_use_only_the_public_api_or_the_allow_list():
    found = {(rel, target) for rel, _, target in _private_imports()}
    bad = sorted(f"plugins/{rel}:{line} imports {target}" for rel, line, target in _private_imports()
                 if (rel, target) not in ALLOWED)
    assert not bad, f"built-in plugins import core internals (use uwsgi_py.__all__): {bad}"
    stale = sorted(set(ALLOWED) - found)
    assert not stale, f"allow-list entries no longer needed (remove them): {stale}"


def test_all_names_exist_and_the_guide_lists_them():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    section = guide.split("\n## What a plugin imports\n", 1)[1].split("\n## ", 1)[0]
    for name in uwsgi_py.__all__:
        assert hasattr(uwsgi_py, name), name
        assert f"`{name}`" in section, f"docs/plugins.md 'What a plugin imports' does not list {name}"


# the names plugin hooks get the core's objects under; a plugin keeps its own state in
# ``Instance(server).state_for(name)`` (or ``MasterView(master)``'s), never as attributes on these
CORE_OBJECTS = {"master", "server"}


def _core_object(node) -> bool:
    """``master``, ``server``, or an attribute chain ending in one (``worker.server``)."""
    if isinstance(node, ast.Name):
        return node.id in CORE_OBJECTS
    return isinstance(node, ast.Attribute) and node.attr in CORE_OBJECTS


def _attribute_sets(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("setattr", "delattr") and node.args
              and _core_object(node.args[0])):
            yield node.lineno, f"{node.func.id}({ast.unparse(node.args[0])}, ...)"
        for target in _flat(targets):
            if isinstance(target, ast.Attribute) and _core_object(target.value):
                yield node.lineno, ast.unparse(target)


def _flat(targets):
    """Assignment targets, unpacking ``a, b = ...`` (a subscript's key is read, not set)."""
    for target in targets:
        if isinstance(target, (ast.Tuple, ast.List)):
            yield from _flat(target.elts)
        elif isinstance(target, ast.Starred):
            yield from _flat([target.value])
        else:
            yield target


@pytest.mark.parametrize("tree", ["plugins", "examples/plugins", "tests/external_plugin"])
def test_plugins_never_set_attributes_on_the_core_objects(tree):
    paths = sorted((ROOT / tree).rglob("*.py"))
    assert paths, tree
    bad = [f"{path.relative_to(ROOT)}:{line}: {what}" for path in paths
           for line, what in _attribute_sets(path)]
    assert not bad, f"plugins set attributes on master/server (use state_for): {bad}"


def test_the_scan_sees_every_form_of_attribute_set(tmp_path):
    sample = tmp_path / "p.py"
    sample.write_text("master.a = 1\nworker.server.b += 1\nx = master.server.c = 2\n"
                      "setattr(master, 'd', 3)\ndel server.e\nmaster.f.g = 4\na, master.h = 5, 6\n"
                      "state = master.settings\nself.master = master\n"
                      "Instance(master.server).state_for('p')['k'] = 7\n")
    assert sorted(what for _, what in _attribute_sets(sample)) == sorted([
        "master.a", "worker.server.b", "master.server.c", "setattr(master, ...)", "server.e",
        "master.h"])


# ---- what plugins use of the core objects: PUBLIC_ATTRIBUTES, listed in the guide -------------

def _kind(node) -> str | None:
    """``master``/``server``/``worker`` for that name or a chain ending in it (``self.master``,
    ``worker.server``); None for anything else."""
    if isinstance(node, ast.Name):
        name = node.id
    elif isinstance(node, ast.Attribute):
        name = node.attr
    else:
        return None
    return name if name in PUBLIC_ATTRIBUTES else None


def _attribute_uses(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute):
            kind = _kind(node.value)
            if kind is not None and node.attr not in PUBLIC_ATTRIBUTES[kind]:
                yield node.lineno, f"{ast.unparse(node.value)}.{node.attr}"


@pytest.mark.parametrize("tree", ["plugins", "examples/plugins", "tests/external_plugin"])
def test_plugins_use_only_the_public_attributes_of_the_core_objects(tree):
    paths = sorted((ROOT / tree).rglob("*.py"))
    assert paths, tree
    bad = [f"{path.relative_to(ROOT)}:{line}: {what}" for path in paths
           for line, what in _attribute_uses(path)]
    assert not bad, ("plugins use attributes of master/server/worker that the plugin API does not "
                     f"offer (read them through Instance/MasterView, or make them public): {bad}")


def test_the_attribute_scan_sees_chains_and_calls(tmp_path):
    sample = tmp_path / "p.py"
    sample.write_text("master.workers\nself.master.state.value\nworker.server.scoreboard\n"
                      "master.server.listeners\nworker.slot.publish = 1\nmaster.cheap_slot(1)\n"
                      "state.server.worker_id\nmaster.request('x')\nworker.id\nmaster_fds.x\n")
    assert sorted(what for _, what in _attribute_uses(sample)) == sorted([
        "master.workers", "self.master.state", "worker.server.scoreboard", "worker.slot",
        "master.cheap_slot", "state.server.worker_id"])


def test_the_guide_lists_exactly_the_public_attributes():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    section = guide.split("\n### What the hook arguments offer\n", 1)[1].split("\n### ", 1)[0]
    listed = set(re.findall(r"`((?:master|server|worker)\.\w+)", section))
    public = {f"{kind}.{name}" for kind, names in PUBLIC_ATTRIBUTES.items() for name in names}
    assert listed == public, (f"docs/plugins.md lists {sorted(listed - public)} that are not in "
                              f"PUBLIC_ATTRIBUTES and misses {sorted(public - listed)}")
    # the guide's own examples keep to them too
    used = set(re.findall(r"\b((?:master|server|worker)\.[a-z_]\w*)", guide))
    assert used <= public | {"master.py"}, sorted(used - public)
