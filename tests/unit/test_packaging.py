"""Packaging: one version source, the license and type marker shipped, the sdist's contents."""
from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import uwsgi_py

ROOT = Path(__file__).resolve().parents[2]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_has_one_source():
    project = pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "uwsgi_py.version.__version__"}
    assert metadata.version("uwsgi-py") == uwsgi_py.__version__


def test_the_mirrored_uwsgi_version_has_one_source():
    """The uWSGI release number is spelled once; everything else derives from it."""
    spelled = []
    for path in [*ROOT.glob("core/*.py"), *ROOT.glob("plugins/*/*.py")]:
        if path.name == "uwsgi_names.py":
            continue   # generated data: the uWSGI release its option names were read from
        if re.search(r"[\"']2\.0\.\d+[\"']", path.read_text()):
            spelled.append(path.relative_to(ROOT).as_posix())
    assert spelled == ["core/version.py"]


def test_license_and_type_marker_are_shipped():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert (ROOT / "core" / "py.typed").exists()
    project = pyproject()
    assert project["project"]["license"] == "MIT"
    assert "LICENSE" in project["project"]["license-files"]
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["uwsgi_py"]
    assert metadata.metadata("uwsgi-py")["License-Expression"] == "MIT"


def test_the_sdist_carries_tests_docs_and_examples():
    manifest = (ROOT / "MANIFEST.in").read_text().split("\n")
    for folder in ("docs", "examples", "tests"):
        assert f"graft {folder}" in manifest


def test_every_extra_is_documented():
    extras = set(pyproject()["project"]["optional-dependencies"]) - {"test"}
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Extras", 1)[1].split("\n## ", 1)[0]
    for extra in extras:
        assert f"`uwsgi-py[{extra}]`" in section, extra
