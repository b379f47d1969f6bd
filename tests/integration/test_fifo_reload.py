"""``uwsgi-py --reload-fifo PATH``: a reload through the master FIFO that a deploy script can
wait on, with ``--reload PIDFILE``'s exit codes (0: the new code serves, 2: refused)."""
from __future__ import annotations

import json
import os

import pytest

from conftest import run_cli, wait_until
from test_fifo import has_no_reader

pytestmark = pytest.mark.timeout(120)


def test_reload_fifo_waits_for_the_outcome(server, tmp_path):
    fifo = str(tmp_path / "m.fifo")
    pidfile = tmp_path / "m.pid"
    inst = server("--master", "-p", "2", "--master-fifo", fifo, "--pidfile", str(pidfile))
    wait_until(lambda: os.path.exists(fifo) and not has_no_reader(fifo), what="the FIFO's reader")

    proc = run_cli("--reload-fifo", fifo, timeout=90)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")   # quiet, as --reload
    status = run_cli("--status", str(pidfile))      # the new generation serves already
    assert status.returncode == 0 and json.loads(status.stdout)["generation"] == 1
    assert inst.get("/") == b"hello\n"

    # a broken deploy: refused, exit 2, the old code keeps serving
    good = (inst.cwd / "app.py").read_text()
    (inst.cwd / "app.py").write_text("raise RuntimeError('broken deploy')\n")
    wait_until(lambda: os.path.exists(fifo) and not has_no_reader(fifo), what="the FIFO again")
    proc = run_cli("--reload-fifo", fifo, timeout=90)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "reload refused: the new code or configuration failed to load" in proc.stderr
    assert inst.get("/") == b"hello\n"

    # fixed: accepted again
    (inst.cwd / "app.py").write_text(good)
    wait_until(lambda: os.path.exists(fifo) and not has_no_reader(fifo), what="the FIFO again")
    proc = run_cli("--reload-fifo", fifo, timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(run_cli("--status", str(pidfile)).stdout)["generation"] == 2


def test_reload_fifo_refuses_what_is_not_a_served_fifo(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("")
    proc = run_cli("--reload-fifo", str(plain))
    assert (proc.returncode, proc.stderr.strip()) == (1, f"error: {plain} is not a FIFO")
    orphan = tmp_path / "orphan.fifo"
    os.mkfifo(orphan)
    proc = run_cli("--reload-fifo", str(orphan))
    assert proc.returncode == 1 and "no uwsgi-py master has" in proc.stderr
