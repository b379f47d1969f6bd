"""Plugins import lazily (issue 22): a plain hello app's master never loads the modules of a
feature it does not use, and a configured feature loads them and works.

Every module the master imports costs start-up time and heap that every worker shares. The
app (tests/apps/modules_app.py) writes the ``sys.modules`` of the process that imports it,
the master, when it is imported and again when the master exits, so that what the master
loads after the app (the Emperor, cheaper mode, the FIFO) is seen too."""
from __future__ import annotations

import os
import shutil
import signal

import pytest

from conftest import APPS, wait_until

pytestmark = pytest.mark.timeout(60)

# loaded only where the feature is configured or first used (stats and ruby_bridge were
# lazy before; listed so that they stay so)
DEFERRED = {
    "uwsgi_py_appsignals.mules", "uwsgi_py_cache.table", "uwsgi_py_cheaper.algos",
    "uwsgi_py_cheaper.mode", "uwsgi_py_daemons.process", "uwsgi_py_daemons.supervisor",
    "uwsgi_py_emperor.vassals", "uwsgi_py_fifo.channel", "uwsgi_py_fifo.client",
    "uwsgi_py_inetd.daemon", "uwsgi_py_logging.encoders", "uwsgi_py_logging.logformat",
    "uwsgi_py_logging.relay", "uwsgi_py_logging.targets", "uwsgi_py_python.autoreload",
    "uwsgi_py_python.venv", "uwsgi_py_static.files", "uwsgi_py_static.http",
    "uwsgi_py_stats.endpoint", "uwsgi_py_stats.metrics", "uwsgi_py_stats.push",
    "uwsgi_py_stats.requestvars", "uwsgi_py_ruby_bridge.app", "uwsgi_py_ruby_bridge.child",
}
# (no stdlib module here: site's .pth files and an editable install's finder import zlib,
# json and the like before uwsgi-py runs, so their absence depends on the machine)
# the entry modules (options, hooks) are always there
ENTRY = {"uwsgi_py_cache", "uwsgi_py_cheaper", "uwsgi_py_daemons", "uwsgi_py_emperor",
         "uwsgi_py_fifo", "uwsgi_py_logging", "uwsgi_py_static", "uwsgi_py_stats"}


def start(server, tmp_path, *args: str, **kw):
    shutil.copy(APPS / "modules_app.py", tmp_path / "modules_app.py")
    env = {"MODULES_FILE": str(tmp_path / "modules")}
    return server("--master", "--wsgi-file", "modules_app.py", *args, app=False, env=env, **kw)


def modules(tmp_path, when: str) -> set[str]:
    path = tmp_path / f"modules.{when}"
    wait_until(path.exists, 15, what=str(path))
    return set(path.read_text().split())


def stop(inst, tmp_path) -> set[str]:
    """SIGINT the master; what it had loaded when it exited."""
    inst.signal(signal.SIGINT)
    inst.wait_exit()
    return modules(tmp_path, "exit")


def test_hello_master_loads_no_feature_module(server, tmp_path):
    inst = start(server, tmp_path)
    assert inst.get("/") == b"hello"
    at_import = modules(tmp_path, "import")
    assert ENTRY <= at_import, sorted(ENTRY - at_import)
    assert not DEFERRED & at_import, sorted(DEFERRED & at_import)
    at_exit = stop(inst, tmp_path)
    assert not DEFERRED & at_exit, sorted(DEFERRED & at_exit)


def test_cache2_loads_the_table_and_caches(server, tmp_path):
    inst = start(server, tmp_path, "--cache2", "name=lazy,items=8")
    assert inst.get("/cache") == b"cached"
    assert {"uwsgi_py_cache.table", "zlib"} <= modules(tmp_path, "import")


def test_log_format_loads_logformat_and_formats(server, tmp_path):
    inst = start(server, tmp_path, "--log-format", "LAZYFMT %(method) %(uri) %(status)")
    inst.get("/probe")
    inst.wait_log("LAZYFMT GET /probe 200")
    assert "uwsgi_py_logging.logformat" in modules(tmp_path, "import")


def test_logger_loads_the_relay_and_encodes(server, tmp_path):
    inst = start(server, tmp_path, "--logger", "stdio", "--log-encoder", "prefix LAZYLOG")
    inst.wait_log("LAZYLOGspawned uWSGI worker 1")
    loaded = modules(tmp_path, "import")
    assert {"uwsgi_py_logging.relay", "uwsgi_py_logging.targets",
            "uwsgi_py_logging.encoders"} <= loaded


def test_emperor_loads_vassals_and_runs_one(server, tmp_path):
    vassals = tmp_path / "vassals"
    vassals.mkdir()
    vassal_log = tmp_path / "vassal.log"
    (vassals / "one.ini").write_text(
        f"[uwsgi]\nmaster = true\nhttp-socket = 127.0.0.1:0\nwsgi-file = {APPS / 'app.py'}\n"
        f"logto = {vassal_log}\n")
    inst = start(server, tmp_path, "--emperor", str(vassals))
    inst.wait_log("*** starting uWSGI Emperor ***")
    wait_until(lambda: vassal_log.exists() and "spawned uWSGI worker" in vassal_log.read_text(),
               30, what="the vassal's worker")
    assert "uwsgi_py_emperor.vassals" not in modules(tmp_path, "import")  # loaded at master start
    assert "uwsgi_py_emperor.vassals" in stop(inst, tmp_path)


def write_fifo(path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def test_cheaper_loads_its_mode_and_fifo_plus_spawns(server, tmp_path):
    fifo = tmp_path / "master.fifo"
    inst = start(server, tmp_path, "-p", "2", "--cheaper", "1", "--cheaper-algo", "spare",
                 "--master-fifo", str(fifo))
    inst.get("/")
    wait_until(fifo.exists, 10, what="the master FIFO")
    write_fifo(fifo, b"+")
    inst.wait_log("spawned uWSGI worker 2")
    write_fifo(fifo, b"+")      # the --processes maximum: cheaper mode refuses a third
    inst.wait_log("cheaper: all 2 workers running: 1 more refused")
    assert {"uwsgi_py_cheaper.mode", "uwsgi_py_cheaper.algos",
            "uwsgi_py_fifo.channel"} <= stop(inst, tmp_path)


def test_cheaper_algo_names_are_the_algorithms():
    from uwsgi_py_cheaper import ALGO_NAMES
    from uwsgi_py_cheaper.algos import ALGOS
    assert ALGO_NAMES == tuple(ALGOS)


# stdlib modules only an error, a reload, a feature or a misspelled option needs
STDLIB_DEFERRED = {"json", "traceback", "textwrap", "subprocess", "dataclasses", "urllib.parse",
                   "ipaddress", "glob", "difflib", "tempfile", "datetime", "uuid", "zlib", "click"}
START_PATH = """
import sys
before = set(sys.modules)   # what the interpreter and site (.pth files) loaded: not ours
from uwsgi_py import cli, plugins
pm = plugins.build()
cli.build_registry(pm)
import uwsgi_py.actions, uwsgi_py_python.api, uwsgi_py_python.mounts, uwsgi_py_python.wsgi
print(" ".join(sorted(set(sys.modules) - before)))
"""


def test_start_path_imports_no_stdlib_module_it_does_not_use():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", START_PATH], capture_output=True, text=True,
                         timeout=30, check=True).stdout.split()
    assert "uwsgi_py.master" in out and "uwsgi_py_python.wsgi" in out   # the path ran here
    assert not STDLIB_DEFERRED & set(out), sorted(STDLIB_DEFERRED & set(out))


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_dropping_privileges_imports_every_deferred_module_first(server):
    """--uid: the new user may not read a Python under ~root, so the master imports what a
    later path would import lazily before it drops (privileges.import_the_rest); the app,
    imported after the drop, sees every feature module and the deferred stdlib ones."""
    import tempfile
    from pathlib import Path
    path = Path(tempfile.mkdtemp(prefix="uwsgi-py-lazy-uid-", dir="/tmp"))
    try:
        os.chmod(path, 0o777)    # the app writes its list there as nobody
        shutil.copy(APPS / "modules_app.py", path / "modules_app.py")
        inst = server("--master", "--uid", "nobody", "--gid", "nogroup", "--wsgi-file",
                      "modules_app.py", app=False, cwd=path, env={"MODULES_FILE": str(path / "m")})
        assert inst.get("/") == b"hello"
        wait_until((path / "m.import").exists, 15, what="m.import")
        at_import = set((path / "m.import").read_text().split())
        assert DEFERRED <= at_import, sorted(DEFERRED - at_import)
        assert {"json", "traceback", "subprocess", "ipaddress"} <= at_import
    finally:
        shutil.rmtree(path, ignore_errors=True)
