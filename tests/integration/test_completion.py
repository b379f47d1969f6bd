"""Shell completion (click's, on the option registry) and the man page in the sdist."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]


def uwsgi_py(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from uwsgi_py.cli import main; "
                          "sys.exit(main())", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=30, start_new_session=True)


def test_bash_source_prints_the_script_instead_of_starting_a_server():
    proc = uwsgi_py({"_UWSGI_PY_COMPLETE": "bash_source"})
    assert proc.returncode == 0, proc.stderr
    assert "_uwsgi_py_completion()" in proc.stdout and "complete -o nosort" in proc.stdout
    assert "Starting uwsgi-py" not in proc.stdout + proc.stderr


def test_completes_option_names_of_plugins_too():
    proc = uwsgi_py({"_UWSGI_PY_COMPLETE": "bash_complete", "COMP_WORDS": "uwsgi-py --log-f",
                     "COMP_CWORD": "1"})
    assert proc.returncode == 0
    words = {line.split(",", 1)[1] for line in proc.stdout.splitlines()}
    assert {"--log-format", "--log-format-escape", "--log-format-strftime"} <= words
    proc = uwsgi_py({"_UWSGI_PY_COMPLETE": "zsh_complete", "COMP_WORDS": "uwsgi-py --procname-p",
                     "COMP_CWORD": "1"})
    assert "--procname-prefix" in proc.stdout


def test_completes_file_names_for_path_options(tmp_path):
    (tmp_path / "app.pid").write_text("1\n")
    proc = subprocess.run([sys.executable, "-c", "import sys; from uwsgi_py.cli import main; "
                           "sys.exit(main())"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "_UWSGI_PY_COMPLETE": "bash_complete",
                               "COMP_WORDS": "uwsgi-py --reload ap", "COMP_CWORD": "2"},
                          timeout=30)
    assert proc.stdout.splitlines() == ["file,ap"]   # click hands file names to the shell


def test_sdist_ships_the_man_page(tmp_path):
    # build from a copy: the build writes *.egg-info into the tree it builds
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(
        ".git", "*.egg-info", "build", "dist", "__pycache__", ".ci", "bench"))
    code = ("import sys; from setuptools import build_meta as b; "
            "print(b.build_sdist(sys.argv[1]))")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=tree,
                          capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-2000:]
    name = proc.stdout.strip().splitlines()[-1]
    with tarfile.open(tmp_path / name) as tar:
        names = tar.getnames()
    assert any(n.endswith("/docs/uwsgi-py.1") for n in names), names
    assert any(n.endswith("/docs/logging.md") for n in names)
    # the packaging promise (tests/unit/test_packaging.py): license, tests, docs and examples
    for part in ("/LICENSE", "/tests/conftest.py", "/examples/systemd/uwsgi-py.service",
                 "/core/py.typed", "/README.md"):
        assert any(n.endswith(part) for n in names), part
