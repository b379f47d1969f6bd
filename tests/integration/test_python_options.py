"""Python plugin options of real configs: module factories, module + wsgi-file, --mount with
--manage-script-name, --pyargv, --wsgi-disable-file-wrapper, --virtualenv, --py-autoreload."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli, wait_until

pytestmark = pytest.mark.timeout(90)

PROBE = """\
import json, os, sys

NAME = "{name}"

def application(environ, start_response):
    info = {{"name": NAME, "script_name": environ.get("SCRIPT_NAME"),
            "path_info": environ.get("PATH_INFO"), "argv": sys.argv,
            "file_wrapper": "wsgi.file_wrapper" in environ, "prefix": sys.prefix,
            "executable": sys.executable, "pid": os.getpid(),
            "leaked": sorted(k for k in os.environ if k.startswith("UWSGI_PY_"))}}
    try:
        import venvpkg
        info["venvpkg"] = venvpkg.VALUE
    except ImportError:
        info["venvpkg"] = None
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(info).encode()]

def create_app():
    os.write(2, b"factory called in %d\\n" % os.getpid())
    return application
"""


@pytest.fixture
def apps(tmp_path):
    for name in ("first", "second", "third"):
        (tmp_path / f"{name}.py").write_text(PROBE.format(name=name))
    return tmp_path


def info(inst, path="/"):
    return json.loads(inst.get(path))


def test_module_factory_is_called_once(server, apps):
    inst = server("--master", "-p", "2", "--module", "first:create_app()", app=False, cwd=apps)
    assert info(inst)["name"] == "first"
    text = inst.log()
    assert text.count("factory called in ") == 1, "called once, in the master, before fork"
    # --callable may name a factory too
    inst = server("--module", "second", "--callable", "create_app()", app=False, cwd=apps)
    assert info(inst)["name"] == "second"


def test_module_with_wsgi_file_serves_the_module_as_uwsgi_does(server, apps):
    inst = server("--master", "--module", "first", "--wsgi-file", "second.py", app=False,
                  cwd=apps)
    assert info(inst)["name"] == "first"
    inst.wait_log("mountpoint  already configured. skip.")


def test_mount_and_manage_script_name(server, apps):
    # the requests and answers of uWSGI 2.0.31 run with the same options
    inst = server("--master", "--mount", "/app=first:application", "--mount", "/other=second.py",
                  "--manage-script-name", app=False, cwd=apps)
    inst.wait_log("mounting first:application on /app")
    inst.wait_log("mounting second.py on /other")
    cases = {
        "/": ("first", "", "/"),
        "/app": ("first", "/app", ""),
        "/app/x": ("first", "/app", "/x"),
        "/appx": ("first", "", "/appx"),
        "/other/y": ("second", "/other", "/y"),
        "/app/x?q=1": ("first", "/app", "/x"),
    }
    for path, expected in cases.items():
        got = info(inst, path)
        assert (got["name"], got["script_name"], got["path_info"]) == expected, path
    # without --manage-script-name the app is chosen by SCRIPT_NAME (empty here): the first one
    inst = server("--master", "--mount", "/app=first:application", "--mount", "/other=second.py",
                  app=False, cwd=apps)
    got = info(inst, "/other/y")
    assert (got["name"], got["script_name"], got["path_info"]) == ("first", "", "/other/y")


def test_pyargv_and_file_wrapper(server, apps):
    inst = server("--wsgi-file", "first.py", "--pyargv", "--settings prod  -v",
                  "--wsgi-disable-file-wrapper", app=False, cwd=apps)
    got = info(inst)
    assert got["argv"] == ["uwsgi", "--settings", "prod", "-v"]
    assert got["file_wrapper"] is False
    inst = server("--wsgi-file", "first.py", app=False, cwd=apps)
    got = info(inst)
    assert got["argv"] == ["uwsgi"] and got["file_wrapper"] is True


def test_bad_mount_is_a_one_line_error(apps):
    result = run_cli("--http-socket", "127.0.0.1:0", "--mount", "/app", cwd=apps)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--mount: '/app' is not MOUNTPOINT=APP" in result.stderr


# ---- --virtualenv ---------------------------------------------------------------------------

def make_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                   timeout=60)
    site = next(path.glob("lib/python3*/site-packages"))
    return site


def test_virtualenv_without_uwsgi_py_puts_its_packages_first(server, apps):
    site = make_venv(apps / "env")
    (site / "venvpkg").mkdir()
    (site / "venvpkg" / "__init__.py").write_text("VALUE = 'from the virtualenv'\n")
    inst = server("--master", "--wsgi-file", "first.py", "--virtualenv", "env", app=False,
                  cwd=apps)
    inst.wait_log(f"--virtualenv {apps / 'env'}: its site-packages come first on sys.path")
    got = info(inst)
    assert got["venvpkg"] == "from the virtualenv"
    assert got["prefix"] == sys.prefix      # same interpreter, the environment's packages


def test_virtualenv_of_another_python_is_refused(apps):
    (apps / "old" / "lib" / "python3.7" / "site-packages").mkdir(parents=True)
    result = run_cli("--http-socket", "127.0.0.1:0", "--wsgi-file", "first.py", "--home", "old",
                     cwd=apps)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    ours = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert (f"--virtualenv: 'old' is a Python 3.7 environment and this server runs "
            f"Python {ours}") in result.stderr


def _install_here(site: Path) -> None:
    """Make this checkout's uwsgi-py (and its dependencies) an install of the venv ``site``."""
    import uwsgi_py
    ours = None
    for entry in sys.path:
        if entry and list(Path(entry).glob("uwsgi_py-*.dist-info")):
            ours = Path(entry)
            break
    assert ours is not None, f"no uwsgi_py dist-info on sys.path ({uwsgi_py.__file__})"
    for item in ours.iterdir():
        if item.name.startswith(("uwsgi_py", "__editable__")) and "uwsgi_py" in item.name:
            if item.is_dir():
                shutil.copytree(item, site / item.name)
            else:
                shutil.copy2(item, site / item.name)
    (site / "zz_dependencies.pth").write_text(str(ours) + "\n")


def test_virtualenv_with_uwsgi_py_reexecs_with_its_interpreter(server, apps):
    env = apps / "env"
    _install_here(make_venv(env))
    inst = server("--master", "--wsgi-file", "first.py", "--venv", str(env), app=False, cwd=apps)
    inst.wait_log(f"--virtualenv {env}: re-executing with {env / 'bin' / 'python'}")
    got = info(inst)
    assert got["prefix"] == str(env) and got["executable"] == str(env / "bin" / "python")
    assert got["leaked"] == []
    assert inst.log().count("*** Starting uwsgi-py") == 1, "the exec happens before the banner"
    # an exec reload keeps the environment's interpreter
    old_pid = got["pid"]
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome: generation=1")
    got = wait_until(lambda: (lambda g: g if g["pid"] != old_pid else None)(info(inst)), 15,
                     what="a worker of the new generation")
    assert got["prefix"] == str(env) and got["leaked"] == []


# ---- --py-autoreload --------------------------------------------------------------------------

def test_py_autoreload_reloads_when_a_module_changes(server, apps):
    (apps / "helper.py").write_text("VALUE = 1\n")
    (apps / "main.py").write_text(PROBE.format(name="main") + "\nimport helper\n")
    inst = server("--wsgi-file", "main.py", "--py-autoreload", "1", app=False, cwd=apps)
    first = info(inst)["pid"]
    stamp = os.stat(apps / "helper.py").st_mtime + 10
    os.utime(apps / "helper.py", (stamp, stamp))
    inst.wait_log(f"[uwsgi-python-reloader] module/file {apps / 'helper.py'} has been modified")
    inst.wait_log("reload outcome: generation=1")
    wait_until(lambda: info(inst)["pid"] != first, 15, what="a reloaded worker")
    assert "graceful" in inst.log().split("has been modified", 1)[1]


FROZEN = """\
import gc

def application(environ, start_response):
    gc.collect()          # a full collection, as a long-running worker's app causes one
    body = str(gc.get_freeze_count()).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""


def test_a_workers_full_collection_leaves_what_the_master_loaded_alone(server, tmp_path):
    """The master freezes its objects before it forks (gc.freeze): a worker's collections do
    not write into them, so their pages stay shared with the master and the other workers."""
    (tmp_path / "frozen.py").write_text(FROZEN)
    # one worker: each fork freezes what the master holds then, so two workers' counts differ
    inst = server("--master", "-p", "1", "--wsgi-file", "frozen.py", app=False, cwd=tmp_path)
    frozen = int(inst.get("/"))
    assert frozen > 10000          # the core, the plugins and the app: tens of thousands
    assert int(inst.get("/")) == frozen   # the worker's own objects are not added
