"""The plugin manager, built on demand (never at import time)."""
from __future__ import annotations

import os
import sys
import types

import pluggy

from . import entrypoints, hookspecs, log
from .options import OptionError

GROUP = "uwsgi_py"
DISABLE_ENV = "UWSGI_PY_DISABLE_PLUGINS"
TRACE_ENV = "UWSGI_PY_TRACE_PLUGINS"

# names users write in uWSGI command lines (--plugin python3,rack)
ALIASES = {
    "python3": "python", "python": "python", "py": "python", "wsgi": "python",
    "rack": "ruby_bridge", "ruby": "ruby_bridge", "rbrack": "ruby_bridge", "ruby_bridge": "ruby_bridge",
    "http": "core", "corerouter": "core",
    # uWSGI plugins whose job is built in here: a config that loads them needs nothing more
    "logfile": "core", "syslog": "core", "rsyslog": "core", "router_static": "core",
}


def alias(name: str) -> str:
    """The plugin (or ``core``) that does the job of uWSGI plugin ``name``; ``python310``,
    ``python3.11`` and the like are the python plugin. A path or file name names the plugin
    as uWSGI reads it: ``/usr/lib/uwsgi/plugins/python39_plugin.so`` is ``python39``."""
    name = os.path.basename(name)
    name = name[:-3] if name.endswith(".so") else name
    name = name[:-7] if name.endswith("_plugin") else name
    if name.startswith("python") and name[6:].replace(".", "").isdigit():
        return "python"
    return ALIASES.get(name, name)


class PluginLoadError(OptionError):
    pass


class Manager(pluggy.PluginManager):
    """pluggy's manager, asking only about names a hook implementation can have.

    pluggy looks up every attribute of every plugin module (hundreds of imported names)
    to find hook implementations; every hook here is named ``uwsgi_*``. Any other name of
    a module is asked about only when it carries our marker, so a marked function with a
    misspelled name is still refused by ``check_pending``.
    """

    def parse_hookimpl_opts(self, plugin: object, name: str):
        if (not name.startswith("uwsgi_") and isinstance(plugin, types.ModuleType)
                and not hasattr(vars(plugin).get(name), GROUP + "_impl")):
            return None
        return super().parse_hookimpl_opts(plugin, name)


def disabled_from(argv: list[str], environ=os.environ) -> set[str]:
    """Plugins blocked by ``--disable-plugin`` or ``UWSGI_PY_DISABLE_PLUGINS``."""
    names = set()
    for item in environ.get(DISABLE_ENV, "").split(","):
        if item.strip():
            names.add(item.strip())
    for i, arg in enumerate(argv):
        if arg == "--disable-plugin" and i + 1 < len(argv):
            names.update(n.strip() for n in argv[i + 1].split(",") if n.strip())
        elif arg.startswith("--disable-plugin="):
            names.update(n.strip() for n in arg.split("=", 1)[1].split(",") if n.strip())
    return {ALIASES.get(n, n) for n in names}


def build(disabled: set[str] = frozenset()) -> Manager:
    """Add the hookspecs, block ``disabled``, load every ``uwsgi_py`` entry point.

    A plugin that raises while importing or registering, or two distributions
    claiming one plugin name, is a ``PluginLoadError`` with one line naming the
    plugin and its distribution (``main`` prints it and exits 1).
    """
    pm = Manager(GROUP)
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    dists: dict[str, tuple[str, str]] = {}
    pm._uwsgi_dists = dists  # type: ignore[attr-defined]
    for ep in entrypoints.find(GROUP):
        dist = (ep.dist_name, ep.dist_version)
        if ep.name in dists:
            if dists[ep.name][0] != dist[0]:
                raise PluginLoadError(
                    f"plugin {ep.name!r} is provided by two distributions: "
                    f"{dists[ep.name][0]} and {dist[0]}; uninstall or disable one")
            continue
        dists[ep.name] = dist
        if pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as e:  # noqa: BLE001 - one clear line naming the plugin
            raise PluginLoadError(
                f"plugin {ep.name!r} (distribution {dist[0]} {dist[1]}) failed to load: "
                f"{_one_line(e)}") from None
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        name = pm.get_name(e.plugin) or "?"
        raise PluginLoadError(
            f"plugin {name!r} (distribution {_dist_label(pm, name)}) failed to load: "
            f"{_one_line(e)}") from None
    if os.environ.get(TRACE_ENV):
        pm.trace.root.setwriter(lambda s: sys.stderr.write(s))
        pm.enable_tracing()
    return pm


def _one_line(e: BaseException) -> str:
    """``Type: message (at file:line)`` on one line: where the plugin raised."""
    import traceback   # an error path: not imported at start-up
    text = " ".join(str(e).split()) or "(no message)"
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not _machinery(f.filename)]
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(e).__name__}: {text}{where}"


def _machinery(filename: str) -> bool:
    """Frames of the loading machinery (pluggy, importlib, this module) say nothing."""
    return (filename.startswith("<frozen ") or filename == __file__
            or os.sep + "pluggy" + os.sep in filename or os.sep + "importlib" + os.sep in filename)


def _dist_label(pm: pluggy.PluginManager, name: str) -> str:
    dist, version = getattr(pm, "_uwsgi_dists", {}).get(name, ("?", "?"))
    return f"{dist} {version}"


def plugin_error(pm: pluggy.PluginManager, name: str, hook: str, e: Exception) -> PluginLoadError:
    """The one-line error for a plugin that raised in a configure-time hook."""
    return PluginLoadError(f"plugin {name!r} (distribution {_dist_label(pm, name)}) "
                           f"failed in {hook}: {_one_line(e)}")


def loaded(pm: pluggy.PluginManager) -> dict[str, object]:
    """Registered plugins by name (blocked names, which pluggy maps to None, left out)."""
    return {name: plugin for name, plugin in pm.list_name_plugin() if plugin is not None}


def describe(pm: pluggy.PluginManager) -> list[str]:
    """Lines for ``--plugins-list``: name, distribution, version, hooks (or ``disabled``)."""
    plugins = loaded(pm)
    lines = []
    for name in sorted(set(plugins) | set(getattr(pm, "_uwsgi_dists", {}))):
        plugin = plugins.get(name)
        if plugin is None:
            what = "disabled"
        else:
            what = ", ".join(sorted(h.name for h in pm.get_hookcallers(plugin) or ())) or "(no hooks)"
        lines.append(f"{name} ({_dist_label(pm, name)}): {what}")
    return lines


def check_required(pm: pluggy.PluginManager, names: list[str]) -> None:
    """``--plugin python3,rack``: each named plugin must be loaded."""
    present = set(loaded(pm)) | {"core"}
    for item in names:
        for raw in item.split(","):
            raw = raw.strip()
            if not raw:
                continue
            name = alias(raw)
            if name in present:
                continue
            if pm.is_blocked(name):
                raise OptionError(f"--plugin: {raw!r} is disabled "
                                  f"(--disable-plugin or {DISABLE_ENV})")
            raise OptionError(f"--plugin: {raw!r} is not loaded (loaded: {', '.join(sorted(present))})")


def check_disabled(pm: pluggy.PluginManager, names: list[str]) -> None:
    """``disable-plugin`` from a config file comes too late: refuse it, never ignore it."""
    present = set(loaded(pm))
    for item in names:
        for raw in item.split(","):
            name = ALIASES.get(raw.strip(), raw.strip())
            if name in present:
                raise OptionError(f"--disable-plugin: {raw.strip()!r} is already loaded; disable "
                                  f"plugins on the command line or with {DISABLE_ENV}")


class HookGuard:
    """Calls plugin code so that one plugin's exception names that plugin.

    Configure and launch hooks (``startup``): the exception becomes a one-line
    start-up error. Master hooks (``master``) and watched-fd callbacks
    (``callback``) run on the master's only thread: the exception is logged on
    one line and the master carries on. A plugin failing the same way every
    pass is logged at its 1st, 2nd, 4th, 8th... failure, so that the log
    cannot fill up.
    """

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self.failures: dict[tuple[str, str], int] = {}
        self.callers: dict[tuple[str, str], object] = {}

    def startup(self, caller, **kwargs):
        """``caller(**kwargs)`` through pluggy; a plugin's exception is a PluginLoadError.
        OptionError passes through: plugins raise it for a bad value, on purpose."""
        try:
            return caller(**kwargs)
        except OptionError:
            raise
        except Exception as e:  # noqa: BLE001 - one line naming the plugin, not a traceback
            name = _impl_in(caller, e)
            if name is None:
                raise
            raise plugin_error(self.pm, name, caller.name, e) from None

    def master(self, caller, **kwargs) -> list:
        """Every implementation of the master hook ``caller``, in pluggy's order; the
        non-None results. One that raises is logged and the others still run."""
        impls = caller.get_hookimpls()
        if any(impl.wrapper or impl.hookwrapper for impl in impls):
            try:
                return caller(**kwargs)       # wrappers need pluggy's own call
            except Exception as e:  # noqa: BLE001 - the master carries on
                self._failed(_impl_in(caller, e) or "?", caller.name, e)
                return []
        results = []
        for impl in reversed(impls):
            try:
                results += self._only(caller, impl)(**kwargs)
            except Exception as e:  # noqa: BLE001 - the master carries on
                self._failed(impl.plugin_name, caller.name, e)
        return results

    def each(self, caller, only: str | None = None, **kwargs) -> list[tuple[str, object]]:
        """Like ``master`` but each non-None result comes with the plugin's name; with
        ``only``, the implementation of that plugin alone (the handoff hooks)."""
        results = []
        for impl in reversed(caller.get_hookimpls()):
            if only is not None and impl.plugin_name != only:
                continue
            try:
                results += [(impl.plugin_name, r) for r in self._only(caller, impl)(**kwargs)]
            except Exception as e:  # noqa: BLE001 - the master carries on
                self._failed(impl.plugin_name, caller.name, e)
        return results

    def _only(self, caller, impl):
        """``caller`` reduced to ``impl`` (pluggy's subset caller, so that hook tracing
        and monitoring still see the call); made once per hook and plugin."""
        key = (caller.name, impl.plugin_name)
        if key not in self.callers:
            others = {other.plugin for other in caller.get_hookimpls() if other.plugin is not impl.plugin}
            self.callers[key] = self.pm.subset_hook_caller(caller.name, others)
        return self.callers[key]

    def callback(self, function, fd: int) -> bool:
        """Run a watched-fd callback; False when a plugin's callback raised (the
        caller stops watching ``fd``: it would be readable, and fail, at once
        again). An exception from the core's own callbacks propagates."""
        try:
            function()
        except Exception as e:  # noqa: BLE001 - the master carries on
            name = self._owner(e)
            if name is None:
                raise
            self._failed(name, f"a watched-fd callback (fd {fd})", e)
            log.log(log.WATCH_DROPPED.format(fd=fd, name=name))
            return False
        return True

    def _owner(self, e: BaseException) -> str | None:
        """The plugin whose module the outermost plugin frame of ``e`` belongs to."""
        modules = {}
        for name, plugin in loaded(self.pm).items():
            module = plugin.__name__ if isinstance(plugin, types.ModuleType) else type(plugin).__module__
            modules[module] = name
        tb = e.__traceback__
        while tb is not None:
            module = tb.tb_frame.f_globals.get("__name__", "")
            for prefix, name in modules.items():
                if module == prefix or module.startswith(prefix + "."):
                    return name
            tb = tb.tb_next
        return None

    def _failed(self, name: str, where: str, e: Exception) -> None:
        key = (name, where)
        count = self.failures[key] = self.failures.get(key, 0) + 1
        if count & (count - 1) == 0:
            log.log(log.PLUGIN_FAILED.format(name=name, dist=_dist_label(self.pm, name), where=where,
                                             error=_one_line(e), count=count))


def _impl_in(caller, e: BaseException) -> str | None:
    """The plugin whose implementation of ``caller`` is on ``e``'s traceback."""
    codes = {impl.function.__code__: impl.plugin_name for impl in caller.get_hookimpls()}
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in codes:
            return codes[tb.tb_frame.f_code]
        tb = tb.tb_next
    return None
