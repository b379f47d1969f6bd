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


@pytest.mark.parametrize("project", ["external_plugin", "external_plugin_broken"])
def test_example_plugins_use_only_the_public_api(project):
    public = set(uwsgi_py.__all__)
    for path in sorted((ROOT / "tests" / project).rglob("*.py")):
        for line, module, name in _imports(path):
            if module == "uwsgi_py":
                assert name in public, f"{path.name}:{line} imports uwsgi_py.{name}, not in __all__"
            else:
                assert not module.startswith("uwsgi_py"), f"{path.name}:{line} imports {module}"


def test_all_names_exist_and_the_guide_lists_them():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    section = guide.split("\n## What a plugin imports\n", 1)[1].split("\n## ", 1)[0]
    for name in uwsgi_py.__all__:
        assert hasattr(uwsgi_py, name), name
        assert f"`{name}`" in section, f"docs/plugins.md 'What a plugin imports' does not list {name}"
