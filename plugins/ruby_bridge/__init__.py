"""The ruby bridge: Rack apps (``--rack config.ru``) served by a Ruby child of each worker.

Each worker runs one persistent Ruby process (``bridge.rb``) that loads the app
with ``Rack::Builder`` and answers the requests the worker hands it over a
socketpair; the protocol is in docs/ruby_bridge.md. The master never runs Ruby
except for a short load check of the config.ru, also run by the reload check.
"""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from uwsgi_py import Instance, Option, OptionError, hookimpl

if TYPE_CHECKING:
    from .app import RackApp
    from .child import Launch

# The bridge itself (.app, .child: subprocess, the wire codec) is imported only
# when --rack is given: every other start of every instance skips ~1 MB of heap
# in the master and each worker, and a few ms.


@hookimpl
def uwsgi_add_options(registry):
    registry.add(
        Option("rack", "load a Rack app from FILE (config.ru); each worker serves it through "
               "a Ruby child process (modifier1 7)", metavar="FILE"),
        Option("rb-require", "require LIB in the Ruby processes before loading the app",
               aliases=("ruby-require", "rbrequire", "rubyrequire"), multiple=True, metavar="LIB"),
        Option("rb-lib", "add DIR to the Ruby load path, like ruby -I",
               aliases=("ruby-lib",), multiple=True, metavar="DIR"),
        Option("rack-ruby", "the Ruby interpreter that runs Rack apps", default="ruby",
               metavar="PATH"),
    )


@hookimpl
def uwsgi_configure(settings):
    # a worker's Rack app is one Ruby child process answering one request at a time
    if settings.rack and settings.threads > 1:
        raise OptionError(f"--threads {settings.threads}: request threads do not apply to Rack "
                          "apps here (each worker's Ruby process serves one request at a "
                          "time); raise --processes instead")


def launch_for(settings) -> Launch:
    import shutil

    from .app import RackLoadError
    from .child import Launch
    ruby = shutil.which(settings.rack_ruby)
    if ruby is None:
        raise RackLoadError(f"--rack: Ruby interpreter {settings.rack_ruby!r} not found "
                            "(install Debian's ruby and ruby-rack, or set --rack-ruby)")
    config = os.path.abspath(settings.rack)
    if not os.path.isfile(config):
        raise RackLoadError(f"--rack: {settings.rack} not found")
    flags = [f"-I{os.path.abspath(d)}" for d in settings.rb_lib]
    flags += [f"-r{lib}" for lib in settings.rb_require]
    return Launch(ruby, config, tuple(flags))


@hookimpl
def uwsgi_load_apps(server):
    if not server.settings.rack:
        return None
    from .app import RackApp
    app = RackApp(launch_for(server.settings), server)
    if Instance(server).worker_id:
        app.start()   # --lazy-apps: this worker loads its own app now
    else:
        app.check()   # the master (or the reload check): prove it loads, run no Ruby after
    return [app]


def _rack_apps(server) -> list[RackApp]:
    module = sys.modules.get(f"{__name__}.app")   # not imported: no Rack app was loaded
    if module is None:
        return []
    return [app for app in server.apps if isinstance(app, module.RackApp)]


@hookimpl
def uwsgi_post_fork(worker):
    for app in _rack_apps(worker.server):
        from .app import RackLoadError
        try:
            app.start()
        except RackLoadError:
            pass  # logged; the next request tries a new child


@hookimpl
def uwsgi_worker_cleanup(worker):
    for app in _rack_apps(worker.server):
        app.stop()
