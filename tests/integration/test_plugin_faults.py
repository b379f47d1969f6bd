"""A third-party plugin that raises: named in one line, never fatal to a running master.

tests/external_plugin_faulty/ is its own distribution (``uwsgi-py-faulty-plugin``,
entry point ``faulty``), pip-installed into a fresh venv as in test_external_plugin.py.
``--faulty-fail HOOK`` makes that hook raise. In a configure or launch hook the
exception is a one-line start-up error (exit 1); in a master hook or a watched-fd
callback it is logged with the plugin's name and the master carries on.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import APPS, ROOT, Instance, wait_until
from test_external_plugin import make_venv

pytestmark = pytest.mark.timeout(120)

FAULTY_PROJECT = ROOT / "tests" / "external_plugin_faulty"
MASTER_HOOKS = ("master_actions", "master_init", "master_start", "master_cycle", "master_tick",
                "master_event", "master_cleanup")
PORT = re.compile(r"bound to TCP address 127\.0\.0\.1:(\d+)")
WHERE = r"\(at \S+/uwsgi_py_faulty/__init__\.py:\d+\)"


def failed(where: str, count: int | None = None) -> re.Pattern:
    """The master's line for the faulty plugin failing in ``where`` (a regex)."""
    n = r"\d+" if count is None else str(count)
    return re.compile(rf"\*\*\* plugin 'faulty' \(distribution uwsgi-py-faulty-plugin 0\.0\.1\) "
                      rf"failed in {where}: RuntimeError: faulty plugin fails in \w+ on purpose "
                      rf"{WHERE}; the master carries on \(failure {n}\) \*\*\*")


@pytest.fixture(scope="module")
def faulty_python(tmp_path_factory) -> Path:
    return make_venv(tmp_path_factory.mktemp("faulty"), FAULTY_PROJECT)


@pytest.fixture
def faulty_server(faulty_python, tmp_path):
    """Factory: the venv's ``python -m uwsgi_py --master --http-socket 127.0.0.1:0 ARGS``,
    serving; always cleaned up (its process group killed)."""
    started: list[Instance] = []

    def start(*args: str) -> Instance:
        shutil.copy(APPS / "app.py", tmp_path / "app.py")
        log_path = tmp_path / f"server-{len(started)}.log"
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen(
                [str(faulty_python), "-m", "uwsgi_py", "--master", "--http-socket", "127.0.0.1:0",
                 "--wsgi-file", "app.py", *args],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path,
                start_new_session=True)
        inst = Instance(proc, log_path, tmp_path)
        started.append(inst)
        inst.port = int(PORT.search(inst.wait_log("bound to TCP address")).group(1))
        inst.wait_serving()
        return inst

    yield start
    for inst in started:
        inst.cleanup()


def wait_match(inst: Instance, pattern: re.Pattern, count: int = 1, timeout: float = 15.0) -> list[str]:
    def seen():
        if inst.proc.poll() is not None:
            raise AssertionError(f"server exited ({inst.proc.returncode}):\n{inst.log()[-3000:]}")
        found = pattern.findall(inst.log())
        return found if len(found) >= count else None
    try:
        return wait_until(seen, timeout, what=f"{pattern.pattern!r} x{count}")
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- server log ---\n{inst.log()[-4000:]}") from None


def test_master_hooks_that_raise_are_logged_and_the_master_carries_on(faulty_server, tmp_path):
    touch = tmp_path / "reload.touch"
    touch.write_text("")
    args = ["-p", "2", "--touch-reload", str(touch)]
    for hook in MASTER_HOOKS:
        args += ["--faulty-fail", hook]
    inst = faulty_server(*args)
    before = inst.wait_workers(2)
    for hook in ("master_actions", "master_init", "master_start", "master_event"):
        wait_match(inst, failed(f"uwsgi_{hook}"))
    # a hook failing on every pass is logged at its 1st, 2nd, 4th... failure, not each time
    wait_match(inst, failed("uwsgi_master_cycle", 4))
    assert not failed("uwsgi_master_cycle", 3).search(inst.log())
    # the faulty tick raises every second; the touch plugin's tick still runs
    wait_match(inst, failed("uwsgi_master_tick"))
    stamp = os.stat(touch).st_mtime + 10
    os.utime(touch, (stamp, stamp))
    outcome = wait_match(inst, re.compile(r"reload outcome: generation=1 .* refused=(\w+)"))
    assert outcome == ["no"]
    wait_match(inst, failed("uwsgi_master_cleanup"))          # reason="reload"
    inst.wait_workers(2, exclude=before)
    assert inst.get("/") == b"hello\n"
    # the new image runs (and fails in) its master hooks again, and still serves and stops
    wait_match(inst, failed("uwsgi_master_start"), count=2)
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
    assert len(failed("uwsgi_master_cleanup").findall(inst.log())) == 2   # reload, then exit
    assert "Traceback" not in inst.log()


def test_a_watched_fd_callback_that_raises_is_unwatched_and_the_master_carries_on(faulty_server,
                                                                                   tmp_path):
    fifo = tmp_path / "faulty.fifo"
    inst = faulty_server("--faulty-fifo", str(fifo), "--faulty-fail", "watch")
    wait_until(fifo.exists, 10, what="the faulty plugin's FIFO")

    def writer() -> int | None:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:          # ENXIO: made, but the master has not opened it to read yet
            if e.errno != errno.ENXIO:
                raise
            return None

    def poke(data: bytes) -> None:
        fd = wait_until(writer, 10, what="the master reading the faulty plugin's FIFO")
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    poke(b"x")
    fd = int(wait_match(inst, re.compile(r"failed in a watched-fd callback \(fd (\d+)\)"))[0])
    assert failed(rf"a watched-fd callback \(fd {fd}\)", 1).search(inst.log())
    inst.wait_log(f"*** fd {fd} of plugin 'faulty' is no longer watched: its callback raised ***")
    # no longer watched: a byte written before SIGUSR1 is not read in the pass that logs the stats
    poke(b"y")
    inst.signal(signal.SIGUSR1)
    inst.wait_log(";end of configuration")
    assert inst.count("failed in a watched-fd callback") == 1
    assert inst.get("/") == b"hello\n"
    # a graceful reload works, and the new image watches the plugin's FIFO again
    inst.signal(signal.SIGHUP)
    assert wait_match(inst, re.compile(r"reload outcome: generation=1 .* refused=(\w+)")) == ["no"]
    inst.wait_log("faulty-plugin: ran master_start", count=2)
    poke(b"z")
    wait_match(inst, re.compile(r"failed in a watched-fd callback"), count=2)
    assert inst.get("/") == b"hello\n"
    assert "Traceback" not in inst.log()


@pytest.mark.parametrize("hook", ["configure", "launch", "adopt_sockets", "post_apps"])
def test_a_configure_or_launch_hook_that_raises_is_a_one_line_start_up_error(faulty_python, tmp_path,
                                                                             hook):
    shutil.copy(APPS / "app.py", tmp_path / "app.py")
    out = tmp_path / "out.log"
    with open(out, "wb") as f:
        proc = subprocess.Popen([str(faulty_python), "-m", "uwsgi_py", "--master", "--http-socket",
                                 "127.0.0.1:0", "--wsgi-file", "app.py", "--faulty-fail", hook],
                                stdout=subprocess.DEVNULL, stderr=f, stdin=subprocess.DEVNULL,
                                cwd=tmp_path, start_new_session=True)
    try:
        code = proc.wait(30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)
    text = out.read_text()
    assert code == 1, text
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("uwsgi-py: error:")]
    assert len(errors) == 1, text
    assert re.fullmatch(rf"uwsgi-py: error: plugin 'faulty' \(distribution uwsgi-py-faulty-plugin "
                        rf"0\.0\.1\) failed in uwsgi_{hook}: RuntimeError: faulty plugin fails in "
                        rf"{hook} on purpose {WHERE}", errors[0]), errors[0]
