"""The Python plugin: WSGI apps (``--wsgi-file``, ``--module``) and the ``uwsgi`` module."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from uwsgi_py import Option, OptionError, hookimpl, string

from . import api
from .wsgi import WSGIApp, load_callable

DEMO_MODULE = "uwsgi_py_python.demo"


@hookimpl
def uwsgi_add_options(registry):
    registry.add(
        Option("wsgi-file", "load a WSGI app from FILE", aliases=("file",), metavar="FILE"),
        Option("module", "load a WSGI module (pkg.mod or pkg.mod:callable)", short="w",
               aliases=("wsgi",), metavar="MODULE"),
        Option("callable", "name of the WSGI callable", default="application", metavar="NAME"),
        Option("pythonpath", "add DIR to sys.path (repeatable)", aliases=("python-path", "pp"),
               multiple=True, convert=string, metavar="DIR"),
        Option("demo", "serve the built-in demo app", flag=True),
    )


@hookimpl
def uwsgi_configure(settings):
    if settings.wsgi_file and settings.module:
        raise OptionError("--wsgi-file and --module are exclusive: give one app")


@hookimpl
def uwsgi_load_apps(server):
    s = server.settings
    sys.modules["uwsgi"] = api.build(server)
    for path in s.pythonpath:
        if path not in sys.path:
            sys.path.insert(0, path)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if s.wsgi_file:
        module = _load_file(s.wsgi_file)
        name = s.callable
        return [WSGIApp(load_callable(module, name), "")]
    target = DEMO_MODULE if s.demo else s.module
    if not target:
        return None
    modname, _, name = target.partition(":")
    module = importlib.import_module(modname)
    return [WSGIApp(load_callable(module, name or s.callable), "")]


@hookimpl
def uwsgi_post_fork(worker):
    # the module sees this process's identity (worker_id() reads the context)
    mod = sys.modules.get("uwsgi")
    if mod is not None:
        mod.sockets = [lst.fd for lst in worker.server.listeners]


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
