"""Start-up errors are one line naming the option and the value, never a traceback.

Each case is a real start of ``python -m uwsgi_py --master ... --http-socket 127.0.0.1:0
--wsgi-file app.py`` that must exit 1 with exactly one ``uwsgi-py: error:`` line. The
tests run as root, who may read a mode-000 file and write almost anywhere: an
unreadable config is a directory, a read-only place is /sys (sysfs refuses new files
even to root).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import APPS

pytestmark = pytest.mark.timeout(60)

MISSING_DIR = "/nonexistent-uwsgi-py-test/dir"
READ_ONLY = "/sys/uwsgi-py-test.pid"


def start(tmp_path, *args: str) -> tuple[int, str]:
    """Run the server to its exit (30 s at most); (exit status, everything it wrote).
    Its process group is killed whatever happens."""
    shutil.copy(APPS / "app.py", tmp_path / "app.py")
    out = tmp_path / "out.log"
    with open(out, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "uwsgi_py", "--master", "-p", "1", "--http-socket",
                                 "127.0.0.1:0", "--wsgi-file", "app.py", *args],
                                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path,
                                start_new_session=True)
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)
    return code, out.read_text(errors="replace")


def one_error(code, text: str) -> str:
    assert code == 1, text
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("uwsgi-py: error: ")]
    assert len(errors) == 1, text
    return errors[0]


@pytest.mark.parametrize("option", ["logto", "logto2", "daemonize", "daemonize2"])
def test_log_file_in_a_missing_directory(tmp_path, option):
    path = f"{MISSING_DIR}/app.log"
    line = one_error(*start(tmp_path, f"--{option}", path))
    shown = "logto" if option == "logto2" else option     # logto2 is logto's alias
    assert line == (f"uwsgi-py: error: --{shown}: cannot open log file '{path}': "
                    f"No such file or directory")


def test_log_file_that_is_a_directory(tmp_path):
    (tmp_path / "logs").mkdir()
    line = one_error(*start(tmp_path, "--logto", "logs"))
    assert line == "uwsgi-py: error: --logto: cannot open log file 'logs': Is a directory"


@pytest.mark.parametrize("how", ["--ini", "--toml", "argument"])
def test_unreadable_config_file(tmp_path, how):
    name = "app.toml" if how == "--toml" else "app.ini"
    (tmp_path / name).mkdir()
    args = [name] if how == "argument" else [how, name]
    line = one_error(*start(tmp_path, *args))
    assert line.startswith(f"uwsgi-py: error: cannot read config file '{name}': Is a directory")


def test_config_file_that_is_not_text(tmp_path):
    (tmp_path / "app.ini").write_bytes(b"[uwsgi]\nprocesses = \xff\xfe\n")
    line = one_error(*start(tmp_path, "--ini", "app.ini"))
    assert "app.ini" in line


@pytest.mark.parametrize("option", ["pidfile", "pidfile2", "safe-pidfile", "safe-pidfile2"])
def test_pidfile_in_a_read_only_place(tmp_path, option):
    line = one_error(*start(tmp_path, f"--{option}", READ_ONLY))
    assert line.startswith(f"uwsgi-py: error: --{option}: cannot write pidfile '{READ_ONLY}': "), line
    assert not os.path.exists(READ_ONLY)


@pytest.mark.parametrize("option", ["socket", "http-socket"])
def test_unix_socket_in_a_missing_directory(tmp_path, option):
    path = f"{MISSING_DIR}/app.sock"
    line = one_error(*start(tmp_path, f"--{option}", path))
    assert line == f"uwsgi-py: error: --{option}: bind(): No such file or directory ({path})"


def test_chdir_to_a_missing_directory(tmp_path):
    line = one_error(*start(tmp_path, "--chdir", MISSING_DIR))
    assert line == f"uwsgi-py: error: --chdir: '{MISSING_DIR}': No such file or directory"
