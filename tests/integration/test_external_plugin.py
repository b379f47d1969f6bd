"""A real third-party plugin, pip-installed into a fresh virtualenv (issue 8).

tests/external_plugin/ is its own project (distribution ``uwsgi-py-hello-plugin``,
entry point ``hello`` in the ``uwsgi_py`` group). Each test copies it out of the
tree, creates a venv that sees the site-packages of the interpreter running the
tests (so the uwsgi-py under test, pip and setuptools: nothing is downloaded),
pip-installs the copy there and runs that venv's ``python -m uwsgi_py``. Nothing
in uwsgi-py names the plugin: it takes part through the entry point alone.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import site
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import APPS, IN_CI, ROOT, Instance, run_cli, wait_until
from uwsgi_py.proto import pack_uwsgi

pytestmark = pytest.mark.timeout(120)

HELLO_PROJECT = ROOT / "tests" / "external_plugin"
BROKEN_PROJECT = ROOT / "tests" / "external_plugin_broken"
BOUND = re.compile(r"uwsgi socket (\d+) bound to INET address 127\.0\.0\.1:(\d+)")
HELLO_HOOKS = ("uwsgi_add_options, uwsgi_configure, uwsgi_fifo_commands, uwsgi_load_apps, "
               "uwsgi_master_actions, uwsgi_master_cleanup, uwsgi_master_watch")


# ---- the virtualenv --------------------------------------------------------------------------

def _require_build_tools() -> None:
    """pip --no-build-isolation builds with this interpreter's setuptools (+ wheel before 70.1)."""
    missing = []
    try:
        import setuptools
    except ImportError:
        missing.append("setuptools")
    else:
        major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
        if (major, minor) < (70, 1):
            try:
                import wheel  # noqa: F401
            except ImportError:
                missing.append("wheel")
    if missing:
        why = f"{', '.join(missing)} missing (pip install -e '.[test]' installs them)"
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)


def make_venv(base: Path, project: Path) -> Path:
    """A venv under ``base`` with ``project`` pip-installed; returns its python."""
    _require_build_tools()
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    # not --system-site-packages: from a venv, that is the base interpreter's site-packages,
    # where another checkout of uwsgi-py may be installed; the running one's are under test
    outer = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    purelib = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    (purelib / "outer_site.pth").write_text("".join(f"import site; site.addsitedir({d!r})\n" for d in outer))
    src = base / project.name          # build a copy: pip writes build/ and *.egg-info in place
    shutil.copytree(project, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    python = venv / "bin" / "python"
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index",
         "--disable-pip-version-check", "-q", str(src)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    return python


@pytest.fixture(scope="module")
def hello_python(tmp_path_factory) -> Path:
    return make_venv(tmp_path_factory.mktemp("hello"), HELLO_PROJECT)


def venv_cli(python: Path, *args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.pop("UWSGI_PY_DISABLE_PLUGINS", None)
    full_env.update(env or {})
    return subprocess.run([str(python), "-m", "uwsgi_py", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=60, start_new_session=True)


@pytest.fixture
def venv_server(tmp_path):
    """Factory: start ``python -m uwsgi_py ARGS`` with a venv's python; always cleaned up."""
    started: list[Instance] = []

    def start(python: Path, *args: str) -> Instance:
        shutil.copy(APPS / "app.py", tmp_path / "app.py")
        log_path = tmp_path / f"server-{len(started)}.log"
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen([str(python), "-m", "uwsgi_py", *args], stdout=logf,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path,
                                    start_new_session=True)
        inst = Instance(proc, log_path, tmp_path)
        started.append(inst)
        inst.wait_log("spawned uWSGI worker 1")
        return inst

    yield start
    for inst in started:
        inst.cleanup()       # SIGINT, then killpg(SIGKILL), then wait until the group is empty


def ports(inst: Instance) -> dict[int, int]:
    return {int(i): int(p) for i, p in BOUND.findall(inst.log())}


def uwsgi_request(port: int, modifier1: int, path: str = "/") -> bytes:
    """One request over the uwsgi protocol; the server closes the connection after it."""
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "test",
           "SERVER_PORT": str(port), "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"}
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(pack_uwsgi(env, modifier1=modifier1))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


# ---- the tests -----------------------------------------------------------------------------------

def test_pip_installed_plugin_is_listed_and_adds_options(hello_python, tmp_path):
    listing = venv_cli(hello_python, "--plugins-list")
    assert listing.returncode == 0, listing.stderr
    assert f"hello (uwsgi-py-hello-plugin 1.0.0): {HELLO_HOOKS}" in listing.stdout.splitlines()
    # only the venv has it: uwsgi-py itself is unchanged
    assert "hello (" not in run_cli("--plugins-list").stdout

    help_text = venv_cli(hello_python, "--help").stdout
    assert "\nhello:\n  --hello-greeting TEXT" in help_text
    assert "--hello-fifo PATH" in help_text and "--hello-app NAME" in help_text

    # its uwsgi_configure refuses a value with one line, like the core's options
    result = venv_cli(hello_python, "--hello-greeting", " ", "--http-socket", "127.0.0.1:0",
                      cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "uwsgi-py: error: --hello-greeting: the greeting must not be empty"

    # and it can be disabled like any plugin
    result = venv_cli(hello_python, "--hello-greeting", "hi", env={"UWSGI_PY_DISABLE_PLUGINS": "hello"})
    assert result.returncode == 1 and "unknown option --hello-greeting" in result.stderr


def test_pip_installed_plugin_serves_acts_and_survives_a_reload(hello_python, venv_server, tmp_path):
    (tmp_path / "app.toml").write_text('[uwsgi]\nhello-greeting = "Howdy"\nhello-app = "demo"\n')
    fifo = tmp_path / "hello.fifo"
    inst = venv_server(hello_python, "app.toml", "--master", "--plugin", "python3,hello",
                       "--http-socket", "127.0.0.1:0", "--http-socket-modifier1", "42",
                       "--socket", "127.0.0.1:0", "--wsgi-file", "app.py",
                       "--hello-fifo", str(fifo))
    inst.wait_log("hello-plugin: control FIFO")
    bound = ports(inst)
    http_port, uwsgi_port = bound[0], bound[1]
    worker = inst.wait_workers(1)[0]

    # request handler: modifier1 42 from the HTTP socket and from a uwsgi packet
    inst.port = http_port
    status, body = inst.request("/greet", method="POST", body=b"abc")
    assert status == 200
    assert body == f"Howdy from demo (modifier1 42, pid {worker}) path=/greet body=3\n".encode()
    reply = uwsgi_request(uwsgi_port, 42, "/u")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert reply.endswith(f"Howdy from demo (modifier1 42, pid {worker}) path=/u body=0\n".encode())
    # modifier1 0 still reaches the WSGI app; an unknown modifier gets no reply
    assert uwsgi_request(uwsgi_port, 0).endswith(b"\r\n\r\nhello\n")
    assert uwsgi_request(uwsgi_port, 43) == b""
    inst.wait_log("-- unavailable modifier requested: 43 --")

    # master action through the plugin's own control channel
    with open(fifo, "wb") as f:
        f.write(b"h")
    inst.wait_log(f"hello-plugin: master action hello #1: Howdy (master pid {inst.pid}, generation 0)")

    # an exec reload: the new image reloads the plugin, its FIFO and its app
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome: generation=1")
    new_worker = inst.wait_workers(1, exclude=(worker,))[0]
    inst.wait_log("hello-plugin: control FIFO", count=2)
    with open(fifo, "wb") as f:
        f.write(b"hh")
    inst.wait_log(f"hello-plugin: master action hello #2: Howdy (master pid {inst.pid}, generation 1)")
    assert inst.get("/again") == \
        f"Howdy from demo (modifier1 42, pid {new_worker}) path=/again body=0\n".encode()

    # shutdown: uwsgi_master_cleanup(reason="exit") removes the FIFO
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
    assert not fifo.exists()
    assert "Traceback" not in inst.log()


def test_master_fifo_byte_reaches_the_plugin_action(hello_python, venv_server, tmp_path):
    if "--master-fifo" not in venv_cli(hello_python, "--help").stdout:
        pytest.skip("the fifo plugin (--master-fifo) is not available")
    master_fifo = tmp_path / "master.fifo"
    inst = venv_server(hello_python, "--master", "--http-socket", "127.0.0.1:0", "--wsgi-file", "app.py",
                       "--master-fifo", str(master_fifo))
    wait_until(master_fifo.exists, 10, what="the master FIFO")
    with open(master_fifo, "wb") as f:
        f.write(b"h")
    inst.wait_log(f"hello-plugin: master action hello #1: hello (master pid {inst.pid}, generation 0)")


def test_plugin_raising_at_import_is_one_clear_line(tmp_path):
    python = make_venv(tmp_path, BROKEN_PROJECT)
    shutil.copy(APPS / "app.py", tmp_path / "app.py")
    for args in (["--http-socket", "127.0.0.1:0", "--wsgi-file", "app.py"], ["--plugins-list"]):
        result = venv_cli(python, *args, cwd=tmp_path)
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert re.fullmatch(
            r"uwsgi-py: error: plugin 'broken' \(distribution uwsgi-py-broken-plugin 0\.0\.1\) "
            r"failed to load: RuntimeError: hello-broken needs HELLO_BROKEN_TOKEN to be set "
            r"\(at .*/uwsgi_py_broken/__init__\.py:4\)", lines[0]), lines[0]
    # blocking it by name is the way out
    result = venv_cli(python, "--plugins-list", env={"UWSGI_PY_DISABLE_PLUGINS": "broken"})
    assert result.returncode == 0, result.stderr
    assert "broken (uwsgi-py-broken-plugin 0.0.1): disabled" in result.stdout.splitlines()
