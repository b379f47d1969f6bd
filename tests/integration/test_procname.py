"""Process titles (the procname plugin), read back the way ps reads them (/proc/PID/cmdline, comm).

Real uWSGI 2.0.31 with ``--auto-procname --procname-prefix-spaced myapp --procname-append ' [x]'``
showed, in ``ps -o args``: ``myapp uWSGI master [x]``, ``myapp uWSGI worker 1 [x]``,
``myapp uWSGI worker 2 [x]``; with ``--procname-master mymaster`` alone: ``mymaster`` and
``uWSGI worker 1``/``uWSGI worker 2`` (any procname option implies --auto-procname).
"""
from __future__ import annotations

import importlib.util
import subprocess

import pytest

from conftest import run_cli, wait_until

pytestmark = pytest.mark.timeout(60)

HAS_SETPROCTITLE = importlib.util.find_spec("setproctitle") is not None


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")[0].decode().rstrip()


def comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def ps_args(pid: int) -> str:
    return subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True,
                          text=True, check=True).stdout.strip()


def titles(inst, n: int, read=cmdline) -> tuple[str, list[str]]:
    workers = inst.wait_workers(n)
    return read(inst.pid), sorted(read(pid) for pid in workers)


@pytest.mark.skipif(not HAS_SETPROCTITLE, reason="setproctitle is not installed (the procname extra)")
def test_uwsgi_titles_with_prefix_and_append(server):
    inst = server("--master", "-p", "2", "--auto-procname", "--procname-prefix-spaced", "myapp",
                  "--procname-append", " [x]")
    expected = ("myapp uWSGI master [x]", ["myapp uWSGI worker 1 [x]", "myapp uWSGI worker 2 [x]"])
    assert wait_until(lambda: titles(inst, 2) == expected and expected, 10, what="titles")
    assert ps_args(inst.pid) == "myapp uWSGI master [x]"


@pytest.mark.skipif(not HAS_SETPROCTITLE, reason="setproctitle is not installed (the procname extra)")
def test_procname_master_implies_auto_procname_and_survives_reload(server, tmp_path):
    pidfile = tmp_path / "m.pid"
    inst = server("--master", "-p", "2", "--procname-master", "mymaster", "--pidfile", str(pidfile))
    expected = ("mymaster", ["uWSGI worker 1", "uWSGI worker 2"])
    assert wait_until(lambda: titles(inst, 2) == expected and expected, 10, what="titles")
    # --reload PIDFILE still recognizes the master under its new title
    old = inst.workers()
    proc = run_cli("--reload", str(pidfile))
    assert proc.returncode == 0, proc.stderr
    inst.wait_log("reload outcome:")
    inst.wait_workers(2, exclude=old)
    assert wait_until(lambda: titles(inst, 2) == expected and expected, 10, what="titles after reload")


def test_prctl_fallback_sets_comm(server, tmp_path):
    """Without setproctitle (blocked here), PR_SET_NAME names the processes (15 bytes)."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "setproctitle.py").write_text("raise ImportError('blocked by the test')\n")
    inst = server("--master", "-p", "1", "--auto-procname", env={"PYTHONPATH": str(blocker)})
    assert wait_until(lambda: titles(inst, 1, comm) == ("uWSGI master", ["uWSGI worker 1"])
                      and True, 10, what="comm names")
    assert "uwsgi_py" in " ".join(open(f"/proc/{inst.pid}/cmdline").read().split("\0"))
