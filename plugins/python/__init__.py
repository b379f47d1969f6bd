"""The Python plugin: WSGI apps (``--wsgi-file``, ``--module``, ``--mount``) and the ``uwsgi`` module."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time

from uwsgi_py import Instance, Option, OptionError, hookimpl, non_negative_int, string

DEMO_MODULE = "uwsgi_py_python.demo"
# set on the re-exec into the environment's interpreter (venv.py), popped by the new image: it
# must not exec again, whatever its sys.prefix says
EXEC_MARK = "UWSGI_PY_PYTHON_VENV_EXEC"
OPTIMIZE = "--optimize {level}: re-executing the Python interpreter with {flag}"


def header_var(raw) -> str:
    text = string(raw).strip()
    if len(text.split()) != 2:
        raise ValueError("is not 'HEADER VAR'")
    return text


def mount_value(raw) -> str:
    from .mounts import parse_mount
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
        Option("write-errors-tolerance", "the app's first N write() calls to a client that "
               "went away raise nothing (their data is dropped); the next one raises (0: the "
               "first one, unless --disable-write-exception)", convert=non_negative_int,
               default=0, metavar="N"),
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
        Option("optimize", "Python's optimization level N (as python -O/-OO): uwsgi-py "
               "re-executes its interpreter with it at start", short="O",
               convert=non_negative_int, default=0, metavar="N"),
        Option("paste", "load the app from a PasteDeploy URI (config:/path/app.ini); needs the "
               "PasteDeploy package", metavar="URI"),
        Option("vhost", "virtual hosting: a request goes to the app mounted at "
               "'SERVER_NAME|SCRIPT_NAME' (--mount 'host|/path=APP'), else to the first app",
               flag=True),
        Option("vhost-host", "like --vhost with the Host header (HTTP_HOST) instead of "
               "SERVER_NAME", flag=True),
        Option("collect-header", "'HEADER VAR': copy the response header HEADER of a WSGI app "
               "into the request variable VAR (for %(var.VAR) in --logformat; repeatable)",
               multiple=True, convert=header_var, metavar="HEADER VAR"),
        Option("pull-header", "like --collect-header, and remove the header from the response",
               multiple=True, convert=header_var, metavar="HEADER VAR"),
    )


@hookimpl
def uwsgi_configure(settings):
    if not settings.home:
        return
    from . import venv
    # the image this server exec'd into the environment: never exec again
    marked = os.environ.get(EXEC_MARK) == os.path.abspath(settings.home)
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
    s = server.settings
    marked = os.environ.pop(EXEC_MARK, None)
    if s.home and not marked:
        from . import venv
        env, what = venv.check(s.home)
        if what == "exec":
            _log(venv.REEXEC.format(path=env.path, python=env.python))
            venv.reexec(env)
    more = s.optimize - sys.flags.optimize
    if s.optimize and more > 0:
        # Python reads -O before any code runs: the honest way is to be started with it
        flag = "-" + "O" * more
        _log(OPTIMIZE.format(level=s.optimize, flag=flag))
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, flag, *sys.orig_argv[1:]])


@hookimpl
def uwsgi_load_apps(server):
    from . import api
    from .mounts import MOUNTING, SKIP, UNABLE, Mounts, is_file_target, parse_mount
    from .wsgi import WSGIApp
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
               "write_errors_tolerance": s.write_errors_tolerance,
               "multithread": s.threads > 1}
    apps = []
    # uWSGI loads each app on its own: one that fails is logged and the others serve; only
    # when none loads does the first failure stand (the server's no-app path)
    failed: list[tuple[Exception, str]] = []

    def add(mountpoint: str, load) -> None:
        try:
            apps.append(WSGIApp(load(), mountpoint, **options))
        except Exception as e:    # noqa: BLE001 - an app that fails to import is reported
            import traceback   # an error path: not imported at start-up
            failed.append((e, traceback.format_exc().rstrip() + "\n" + UNABLE.format(
                n=len(apps) + len(failed), mountpoint=mountpoint)))

    target = DEMO_MODULE if s.demo else s.module
    if target:
        add("", lambda: load_target(target, s.callable))
    if s.wsgi_file:
        if target:
            _log(SKIP.format(mountpoint=""))
        else:
            add("", lambda: _file_app(s.wsgi_file, s.callable))
    if s.paste:
        if target or s.wsgi_file:
            _log(SKIP.format(mountpoint=""))
        else:
            add("", lambda: _paste_app(s.paste))
    for item in s.mount:
        mountpoint, app_target = parse_mount(item)
        if any(app.name == mountpoint for app in apps):
            _log(SKIP.format(mountpoint=mountpoint))
            continue
        _log(MOUNTING.format(target=app_target, mountpoint=mountpoint))
        if is_file_target(app_target):
            add(mountpoint, lambda: _file_app(app_target, s.callable))
        else:
            add(mountpoint, lambda: load_target(app_target, s.callable))
    for _, report in failed[0 if apps else 1:]:
        _log(report)
    if not apps:
        if failed:
            raise failed[0][0]
        return None
    collect = [(h.split()[0], h.split()[1], False) for h in s.collect_header]
    collect += [(h.split()[0], h.split()[1], True) for h in s.pull_header]
    for app in apps:
        app.collect = {header.lower(): (var, pull) for header, var, pull in collect}
    vhost = "SERVER_NAME" if s.vhost else "HTTP_HOST" if s.vhost_host else None
    if len(apps) == 1 and not s.manage_script_name:
        return apps
    return [Mounts(apps, s.manage_script_name, vhost)]


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
        from . import autoreload
        extra = tuple(os.path.abspath(p) for p in (master.settings.wsgi_file,) if p)
        Instance(master.server).state_for("python")["reloader"] = autoreload.Reloader(every, extra)


@hookimpl
def uwsgi_master_tick(master):
    reloader = Instance(master.server).state_for("python").get("reloader")
    if reloader is None:
        return
    path = reloader.changed(time.monotonic())
    if path is not None:
        from .autoreload import MODIFIED
        _log(MODIFIED.format(path=path))
        master.request("graceful_reload")


def load_target(target: str, default_callable: str):
    """``pkg.mod``, ``pkg.mod:name`` or ``pkg.mod:factory()`` -> the WSGI callable."""
    modname, _, name = target.partition(":")
    module = importlib.import_module(modname)
    return _pick(module, name or default_callable)


def _pick(module, name: str):
    from .wsgi import load_callable
    if name.endswith("()"):   # uWSGI's quick callable: a factory, called once at load
        return load_callable(module, name[:-2])()
    return load_callable(module, name)


def _paste_app(uri: str):
    """uWSGI's paste loader: ``paste.deploy.loadapp(URI)``."""
    try:
        from paste.deploy import loadapp
    except ImportError:
        raise ImportError(f"--paste {uri}: the PasteDeploy package is not installed "
                          "(pip install PasteDeploy)") from None
    return loadapp(uri)


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
