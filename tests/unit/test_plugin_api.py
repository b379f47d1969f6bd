"""The plugin boundary (STYLE §1, issue 8): the core never names a plugin package,
the example third-party plugin uses only the public API, and the guide lists that API."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import uwsgi_py

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


# Built-in plugins' imports of core internals still allowed, by (file, module): each entry says
# why the public API does not cover it yet. The list should end empty; a new private import
# fails the test below, and an entry no longer needed fails too (so the list only shrinks).
ALLOWED = {
    ("health/__init__.py", "uwsgi_py.health"):
        "the status document is shared with the core's --status client (core/health.py)",
    ("inetd/__init__.py", "uwsgi_py.log"): "launch mode: opens --logto files before the log exists",
    ("inetd/__init__.py", "uwsgi_py.pidfile"): "launch mode: writes the pidfile after daemonizing",
    ("inetd/daemon.py", "uwsgi_py.log"): "daemonize re-points fds 1/2 at the log file",
    ("inetd/inetd.py", "uwsgi_py.sockets"): "launch mode: adopts fd 0 as a Listener (not public yet)",
    ("inetd/systemd.py", "uwsgi_py.sockets"): "launch mode: adopts systemd's fds as Listeners",
    ("logging/__init__.py", "uwsgi_py.log"): "replaces the core's log writer (log.set_writer, capture)",
    ("logging/targets.py", "uwsgi_py.log"): "file loggers join the core's reopen/rotate list (log.FILES)",
    ("stats/document.py", "uwsgi_py.scoreboard"): "builds uWSGI's document from raw slots; "
                                                  "Instance.worker() could serve it",
    ("stats/document.py", "uwsgi_py.sockets"): "listen queue per Listener; Instance.sockets() could",
    ("stats/endpoint.py", "uwsgi_py.health"): "the health section of the stats document",
    ("stats/endpoint.py", "uwsgi_py.sockets"): "parses and prints ADDR as the core's sockets do",
    ("stats/requestvars.py", "uwsgi_py.scoreboard"): "torn-read check on the raw BUSY status",
}


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
