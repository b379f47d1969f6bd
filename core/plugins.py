"""The plugin manager, built on demand (never at import time)."""
from __future__ import annotations

import os
import sys
from importlib import metadata

import pluggy

from . import hookspecs
from .options import OptionError

GROUP = "uwsgi_py"
DISABLE_ENV = "UWSGI_PY_DISABLE_PLUGINS"
TRACE_ENV = "UWSGI_PY_TRACE_PLUGINS"

# names users write in uWSGI command lines (--plugin python3,rack)
ALIASES = {
    "python3": "python", "python": "python", "py": "python", "wsgi": "python",
    "rack": "ruby_bridge", "ruby": "ruby_bridge", "rbrack": "ruby_bridge", "ruby_bridge": "ruby_bridge",
    "http": "core", "corerouter": "core",
}


class PluginLoadError(OptionError):
    pass


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


def build(disabled: set[str] = frozenset()) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    for ep in metadata.entry_points(group=GROUP):
        if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
        dist = ep.dist.name if ep.dist else "?"
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as e:  # noqa: BLE001 - one clear line naming the plugin
            raise PluginLoadError(
                f"plugin {ep.name!r} (distribution {dist}) failed to load: "
                f"{type(e).__name__}: {e}") from None
        pm._uwsgi_dists = getattr(pm, "_uwsgi_dists", {})  # type: ignore[attr-defined]
        pm._uwsgi_dists[ep.name] = (dist, ep.dist.version if ep.dist else "?")  # type: ignore
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        raise PluginLoadError(f"plugin validation failed: {e}") from None
    if os.environ.get(TRACE_ENV):
        pm.trace.root.setwriter(lambda s: sys.stderr.write(s))
        pm.enable_tracing()
    return pm


def describe(pm: pluggy.PluginManager) -> list[str]:
    """Lines for ``--plugins-list``: name, distribution, version, hooks."""
    dists = getattr(pm, "_uwsgi_dists", {})
    lines = []
    for name, plugin in sorted(pm.list_name_plugin()):
        dist, version = dists.get(name, ("?", "?"))
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or ())
        lines.append(f"{name} ({dist} {version}): {', '.join(hooks)}")
    return lines


def check_required(pm: pluggy.PluginManager, names: list[str]) -> None:
    """``--plugin python3,rack``: each named plugin must be loaded."""
    loaded = {n for n, _ in pm.list_name_plugin()} | {"core"}
    for item in names:
        for raw in item.split(","):
            raw = raw.strip()
            if not raw:
                continue
            name = ALIASES.get(raw, raw)
            if name not in loaded:
                raise OptionError(f"--plugin: {raw!r} is not loaded (loaded: {', '.join(sorted(loaded))})")
