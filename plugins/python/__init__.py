"""The Python plugin: WSGI apps (``--wsgi-file``, ``--module``, ``--mount``) and the ``uwsgi`` module."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time

from uwsgi_py import Option, OptionError, hookimpl, non_negative_int, string

from . import api, autoreload, venv
from .mounts import MOUNTING, SKIP, Mounts, is_file_target, parse_mount
from .wsgi import WSGIApp, load_callable

DEMO_MODULE = "uwsgi_py_python.demo"


def mount_value(raw) -> str:
    text = string(raw).strip()
    parse_mount(text)
    return text


@hookimpl
def uwsgi_add_options(registry):
    registry.add(
        Option("wsgi-file", "load a WSGI app from FILE", aliases=("file",), metavar="FILE"),
        Option("module", "load a WSGI module: pkg.mod, pkg.mod:callable, or pkg.mod:factory() "
               "(called once, its result is the app); with --wsgi-file too, the module is the "
               "app and the file is skipped, as in uWSGI", short="w", aliases=("wsgi",),
               metavar="MODULE"),
        Option("callable", "name of the WSGI callable (NAME() calls a factory)",
               default="application", metavar="NAME"),
        Option("pythonpath", "add DIR to sys.path (repeatable)", aliases=("python-path", "pp"),
               multiple=True, convert=string, metavar="DIR"),
        Option("mount", "load the app APP (a .py/.wsgi file or module:callable) under "
               "MOUNTPOINT (repeatable); requests go to the app whose mountpoint is their "
               "SCRIPT_NAME, else to the first app loaded (all apps share one interpreter)",
               multiple=True, convert=mount_value, metavar="MOUNTPOINT=APP"),
        Option("manage-script-name", "move the longest matching --mount mountpoint from "
               "PATH_INFO to SCRIPT_NAME before choosing the app", flag=True),
        Option("pyargv", "sys.argv of the app: 'uwsgi' then ARGS split on spaces (without it, "
               "['uwsgi'])", metavar="ARGS"),
        Option("wsgi-disable-file-wrapper", "leave wsgi.file_wrapper out of the WSGI environ",
               flag=True),
        Option("home", "run the app with the packages of the virtualenv DIR: re-exec with its "
               "interpreter when uwsgi-py is installed there, else (same Python version only) "
               "its site-packages go first on sys.path", short="H",
               aliases=("virtualenv", "venv", "pyhome"), metavar="DIR"),
        Option("py-autoreload", "development: every SECS seconds the master checks the source "
               "files of the modules it loaded and gracefully reloads when one changed (0: off)",
               convert=non_negative_int, master=True,
               aliases=("py-auto-reload", "python-autoreload", "python-auto-reload"),
               metavar="SECS"),
        Option("demo", "serve the built-in demo app", flag=True),
    )


@hookimpl
def uwsgi_configure(settings):
    if not settings.home:
        return
    # the image this server exec'd into the environment: never exec again
    marked = os.environ.get(venv.EXEC_MARK) == os.path.abspath(settings.home)
    try:
        env, what = venv.check(settings.home, exec_ok=not marked)
    except venv.VenvError as e:
        raise OptionError(str(e)) from None
    if what == "site":
        added = venv.site_first(env)
        _log(venv.SITE_FIRST.format(path=env.path, site=", ".join(added)))


@hookimpl(tryfirst=True)
def uwsgi_launch(server):
    """First start only, before daemonizing or binding: become the environment's interpreter."""
    marked = os.environ.pop(venv.EXEC_MARK, None)
    s = server.settings
    if not s.home or marked:
        return
    env, what = venv.check(s.home)
    if what == "exec":
        _log(venv.REEXEC.format(path=env.path, python=env.python))
        venv.reexec(env)


@hookimpl
def uwsgi_load_apps(server):
    s = server.settings
    sys.modules["uwsgi"] = api.build(server)
    sys.argv = ["uwsgi", *(s.pyargv or "").split()]
    for path in s.pythonpath:
        if path not in sys.path:
            sys.path.insert(0, path)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    options = {"file_wrapper": not s.wsgi_disable_file_wrapper,
               "write_exception": not s.disable_write_exception,
               "multithread": s.threads > 1}
    apps = []
    target = DEMO_MODULE if s.demo else s.module
    if target:
        apps.append(WSGIApp(load_target(target, s.callable), "", **options))
    if s.wsgi_file:
        if apps:
            _log(SKIP.format(mountpoint=""))
        else:
            apps.append(WSGIApp(_file_app(s.wsgi_file, s.callable), "", **options))
    for item in s.mount:
        mountpoint, app_target = parse_mount(item)
        if any(app.name == mountpoint for app in apps):
            _log(SKIP.format(mountpoint=mountpoint))
            continue
        _log(MOUNTING.format(target=app_target, mountpoint=mountpoint))
        if is_file_target(app_target):
            callable_ = _file_app(app_target, s.callable)
        else:
            callable_ = load_target(app_target, s.callable)
        apps.append(WSGIApp(callable_, mountpoint, **options))
    if not apps:
        return None
    if len(apps) == 1 and not s.manage_script_name:
        return apps
    return [Mounts(apps, s.manage_script_name)]


@hookimpl
def uwsgi_post_fork(worker):
    # the module sees this process's identity (worker_id() reads the context)
    mod = sys.modules.get("uwsgi")
    if mod is not None:
        mod.sockets = [lst.fd for lst in worker.server.listeners]


@hookimpl
def uwsgi_master_init(master):
    # before the first worker is forked: a change made once a worker serves is a change
    every = master.settings.py_autoreload
    if every:
        extra = tuple(os.path.abspath(p) for p in (master.settings.wsgi_file,) if p)
        master.python_reloader = autoreload.Reloader(every, extra)


@hookimpl
def uwsgi_master_tick(master):
    reloader = getattr(master, "python_reloader", None)
    if reloader is None:
        return
    path = reloader.changed(time.monotonic())
    if path is not None:
        _log(autoreload.MODIFIED.format(path=path))
        master.request("graceful_reload")


def load_target(target: str, default_callable: str):
    """``pkg.mod``, ``pkg.mod:name`` or ``pkg.mod:factory()`` -> the WSGI callable."""
    modname, _, name = target.partition(":")
    module = importlib.import_module(modname)
    return _pick(module, name or default_callable)


def _pick(module, name: str):
    if name.endswith("()"):   # uWSGI's quick callable: a factory, called once at load
        return load_callable(module, name[:-2])()
    return load_callable(module, name)


def _file_app(path: str, name: str):
    return _pick(_load_file(path), name)


def _log(line: str) -> None:
    os.write(2, (line + "\n").encode("utf-8", "backslashreplace"))


def _load_file(path: str):
    full = os.path.abspath(path)
    if not os.path.exists(full):
        raise FileNotFoundError(f"--wsgi-file: {path} not found")
    name = "uwsgi_file_" + "".join(c if c.isalnum() else "_" for c in os.path.splitext(path)[0])
    spec = importlib.util.spec_from_file_location(name, full)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    directory = os.path.dirname(full)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec.loader.exec_module(module)
    return module
