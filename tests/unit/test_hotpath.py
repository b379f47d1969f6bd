"""The optional compiled request path (setup.py, core/hotpath.py): what runs is what is reported.

The suite runs on whichever build is installed. CI runs it all on the pure build, then the parser
tests, these and tests/integration/test_compiled.py on the compiled one (scripts/test_compiled.sh,
which sets EXPECT_COMPILED=1; 0 asks for the pure build).
"""
from __future__ import annotations

import ast
import importlib
import os
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from uwsgi_py import hotpath

ROOT = Path(__file__).resolve().parents[2]
SUFFIX = EXTENSION_SUFFIXES[0]


def setup_compiled() -> list[str]:
    """setup.py's COMPILED, read without running setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COMPILED":
            return sorted(ast.literal_eval(node.value))
    raise AssertionError("setup.py has no COMPILED")


def test_the_reported_modules_are_the_imported_ones():
    compiled = hotpath.compiled()
    assert set(compiled) <= set(setup_compiled())
    for name in setup_compiled():
        path = importlib.import_module(f"uwsgi_py.{name}").__file__
        assert path.endswith(SUFFIX if name in compiled else ".py"), (name, path)


def test_this_build_is_the_one_asked_for():
    expect = os.environ.get("EXPECT_COMPILED")
    if expect == "1":
        assert hotpath.compiled() == setup_compiled()
        assert hotpath.stale(hotpath.compiled()) == []
    elif expect == "0":
        assert hotpath.compiled() == []


def test_a_module_edited_after_its_build_is_reported_stale(tmp_path, monkeypatch):
    (tmp_path / "setup.py").write_text("")   # a checkout: setup.py beside the package
    package = tmp_path / "core"
    package.mkdir()
    for name, built, edited in (("fresh", 100, 50), ("edited", 100, 200)):
        (package / f"{name}.py").write_text("")
        (package / f"{name}{SUFFIX}").write_bytes(b"")
        os.utime(package / f"{name}.py", (edited, edited))
        os.utime(package / f"{name}{SUFFIX}", (built, built))
    (package / f"{hotpath.SHARED}{SUFFIX}").write_bytes(b"")
    monkeypatch.setattr(hotpath, "HERE", str(package))
    assert hotpath.compiled() == ["edited", "fresh"]
    assert hotpath.stale(["edited", "fresh"]) == ["edited"]
    (tmp_path / "setup.py").unlink()   # installed: no times to compare
    assert hotpath.stale(["edited", "fresh"]) == []
