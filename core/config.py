"""Settings from every source, funnelled through one place.

Sources are read into uWSGI's exported list (``dialect.py``, ``ini.py``): the
``UWSGI_*`` environment, then the config files (``UWSGI_INI``, ``--ini``,
``--toml``, a lone ``app.ini`` argument), then the command line; ``$(VAR)``,
``@(file)`` and ``%(key)`` are expanded over the whole list. Every item then
goes through one funnel as ``(name, raw_value, origin)``. Precedence, lowest
first: defaults < config files < ``UWSGI_*`` environment < command line.
Repeatable options accumulate in that order.

A key that is not a declared option is looked up in ``compat.py``: no effect
here (an info line), a uWSGI option not implemented yet (start-up refuses it),
or unknown to uWSGI too: a placeholder, with a warning unless the config refers
to it as ``%(key)``; ``--strict`` makes unknown keys fatal, as in uWSGI.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

from . import compat, log
from .dialect import Context, Exported, Item, expand
from .ini import Reader
from .options import Option, OptionError, ReadAs, Registry, python_value
from .version import UWSGI_VERSION as VERSION   # %V: the uWSGI version uwsgi-py follows

Entry = tuple[str, Any, str]

# UWSGI_* variables that uWSGI itself sets; they are not options. UWSGI_EMPEROR and
# UWSGI_EMPEROR_FREQ are options (--emperor, --emperor-freq), as in uWSGI.
ENV_IGNORED_PREFIXES = ("UWSGI_PY_", "UWSGI_VASSAL")
ENV_IGNORED = {"UWSGI_RELOADS", "UWSGI_ORIGINAL_PROC_NAME", "UWSGI_FILE", "UWSGI_JAIL_PID",
               "UWSGI_EMPEROR_FD", "UWSGI_EMPEROR_FD_CONFIG", "UWSGI_EMPEROR_PROXY",
               "UWSGI_BROODLORD_NUM"}

SOURCE_RANK = {"default": 0, "file": 1, "env": 2, "cli": 3}
_INLINE_COMMENT = re.compile(r"\s[#;]")


class Settings:
    """The resolved options: ``settings.http_socket``, ``settings.master``, ...

    ``origins`` maps an option name to where its value came from;
    ``written`` keeps each option as the user spelled it, for ``uwsgi.opt``;
    ``placeholders`` the keys that are no option; ``exported`` every item read,
    expanded (``show-config``); ``notes`` the warning and info lines to log;
    ``unimplemented`` the uWSGI options given that uwsgi-py does not implement.
    """

    def __init__(self, registry: Registry):
        self._registry = registry
        self.origins: dict[str, str] = {}
        self.written: dict[str, tuple[Option, Any]] = {}
        self.config_files: list[str] = []
        self.placeholders: dict[str, list[str]] = {}
        self.exported: list[Item] = []
        self.notes: list[str] = []
        self.unimplemented: list[tuple[str, str]] = []
        for opt in registry:
            if not opt.cli_only:
                setattr(self, opt.attr, opt.initial())

    @property
    def registry(self) -> Registry:
        return self._registry

    def opt_dict(self) -> dict[str, Any]:
        """The ``uwsgi.opt`` dict (PYAPI-2): flags True, values bytes, repeats lists;
        placeholders as uWSGI has them (their expanded text as bytes)."""
        out: dict[str, Any] = {}
        for key, values in self.placeholders.items():
            encoded = [v.encode("utf-8", "surrogateescape") for v in values]
            out[key] = encoded if len(encoded) > 1 else encoded[0]
        for key, (opt, value) in self.written.items():
            if opt.flag and not value:
                continue
            out[key] = python_value(opt, value)
        return out

    def ini_lines(self) -> list[str]:
        """The configuration as ini lines, for the SIGUSR1 dump (SIG-7)."""
        lines = []
        for key, (opt, value) in self.written.items():
            if opt.flag:
                if value:
                    lines.append(f"{key} = true")
            elif opt.multiple:
                lines.extend(f"{key} = {v}" for v in value)
            else:
                lines.append(f"{key} = {value}")
        return lines

    def show_config_lines(self) -> list[str]:
        """``--show-config``: every item read, expanded, as uWSGI prints it."""
        lines = [log.SHOW_CONFIG_BEGIN, "[uwsgi]"]
        for item in self.exported:
            value = "true" if item.value is True else "false" if item.value is False else item.value
            lines.append(f"{item.key} = {value}")
        lines.append(log.SHOW_CONFIG_END)
        return lines

    def is_set(self, name: str) -> bool:
        return name in self.origins


def config_options() -> list[Option]:
    """Options of the config reader itself."""
    return [
        Option("strict", "unknown keys in config files and UWSGI_* variables are fatal "
               "(from where it is set), as in uWSGI", flag=True),
        Option("show-config", "log the whole configuration, expanded, as ini at start-up",
               flag=True),
    ]


# ---- reading the sources ------------------------------------------------------------

def _reader(warnings: list[str], context: Context | None = None) -> Reader:
    exported = Exported(context or Context(environ={}))
    return Reader(exported, VERSION, warnings.append)


def parse_ini(path: str, section: str = "uwsgi") -> list[Entry]:
    """One ini file as uWSGI reads it (magic variables, logic blocks, includes),
    before the ``$()``/``@()``/``%()`` passes."""
    reader = _reader([])
    reader.read_ini(path if section == "uwsgi" else f"{path}:{section}")
    return [(i.key, i.value, i.origin) for i in reader.exported.items]


def parse_toml(path: str) -> list[Entry]:
    """A ``[uwsgi]`` table; keys spelled like the long flags; arrays repeat."""
    reader = _reader([])
    reader.read_toml(path)
    return [(i.key, i.value, i.origin) for i in reader.exported.items]


def env_entries(registry: Registry | None, environ: dict[str, str]) -> Iterator[Entry]:
    """``UWSGI_FOO_BAR=x`` is ``foo-bar = x`` (uWSGI's parse_sys_envs)."""
    for var, value in environ.items():
        if not var.startswith("UWSGI_") or var in ENV_IGNORED or var.startswith(ENV_IGNORED_PREFIXES):
            continue
        name = var[len("UWSGI_"):].lower().replace("_", "-")
        yield name, value, f"environment {var}"


def gather(files: list[str], environ: dict[str, str], cli: Iterable[Entry] = (), *,
           plugins: frozenset[str] = frozenset(), reload: bool = False,
           strict: bool = False) -> tuple[list[Item], set[str], list[str]]:
    """Read every source into the exported list, in uWSGI's order, and expand it.
    Returns the items, the keys ``%(...)`` referred to, and warning lines."""
    warnings: list[str] = []
    exported = Exported(Context(environ=dict(environ), plugins=plugins, reload=reload), strict=strict)
    Reader(exported, VERSION, warnings.append)
    for name, value, origin in env_entries(None, environ):
        exported.add(name, value, origin, "env")
    for path in files:
        exported.add("ini", path, "command line", "cli")
    for name, value, origin in cli:
        exported.add(name, value, origin, "cli")
    referenced = expand(exported.items, environ, warnings.append)
    return exported.items, referenced, warnings


# ---- the funnel ---------------------------------------------------------------------

def build_settings(registry: Registry, layers: list[tuple[str, Iterable[Any]]],
                   referenced: set[str] = frozenset(), strict: bool = False) -> Settings:
    """Apply ``layers`` (kind, entries) in precedence order into Settings. Entries
    are ``Item``s or ``(name, raw, origin)`` tuples (unexpanded)."""
    items: list[Item] = []
    for kind, entries in layers:
        for entry in entries:
            items.append(entry if isinstance(entry, Item) else
                         Item(entry[0], entry[1], entry[2], kind, strict=strict))
    return settle(registry, items, referenced)


def settle(registry: Registry, items: list[Item], referenced: set[str] = frozenset()) -> Settings:
    """Sort every exported item out (option, placeholder, no effect, not implemented)
    and funnel the options into Settings, by precedence."""
    settings = Settings(registry)
    settings.exported = items
    options: list[tuple[Item, Option]] = []
    said: set[str] = set()
    for item in items:
        if item.key == "print" and item.dialect:
            settings.notes.append(str(item.value))
            continue
        if item.dialect:
            continue
        opt = registry.get(item.key)
        if opt is not None and not opt.cli_only:
            options.append((item, opt))
            continue
        kind = compat.classify(item.key)
        if kind == compat.NO_EFFECT_KIND:
            if item.key not in said:
                said.add(item.key)
                settings.notes.append(log.CONFIG_INFO.format(message=log.NO_EFFECT.format(
                    name=item.key, reason=compat.NO_EFFECT[item.key], origin=item.origin)))
        elif kind == compat.NOT_IMPLEMENTED_KIND:
            settings.unimplemented.append((item.key, item.origin))
        else:
            _placeholder(settings, item, referenced)
    ranked = sorted(options, key=lambda pair: SOURCE_RANK[pair[0].kind])
    multiples: dict[str, list[Any]] = {}
    for item, opt in ranked:
        value = _convert(settings, item, opt)
        key = item.key.strip().lower().replace("_", "-")
        if opt.multiple:
            multiples.setdefault(opt.name, []).append(value)
            value = list(multiples[opt.name])
            settings.written.pop(key, None)
        elif opt.flag and not value:
            settings.written.pop(key, None)
        for other in (opt.name, *opt.aliases):
            if other != key:
                settings.written.pop(other, None)
        settings.written[key] = (opt, value)
        setattr(settings, opt.attr, value)
        settings.origins[opt.name] = item.origin
    finish(settings)
    return settings


def refuse_unimplemented(settings: Settings) -> None:
    """uWSGI options that would change behaviour and are not implemented: one line, exit 1."""
    if settings.unimplemented:
        first = dict(reversed(settings.unimplemented))
        named = ", ".join(f"--{name} ({first[name]})" for name in dict.fromkeys(
            name for name, _ in settings.unimplemented))
        raise OptionError(log.NOT_IMPLEMENTED.format(options=named))


def _placeholder(settings: Settings, item: Item, referenced: set[str]) -> None:
    import difflib  # only for a key that is no option
    close = difflib.get_close_matches(item.key.lower(), list(settings.registry.names)
                                      + sorted(compat.known_names()), n=1, cutoff=0.75)
    hint = f"; did you mean --{close[0]}?" if close else ""
    message = log.UNKNOWN_OPTION.format(key=item.key, origin=item.origin, suggestion=hint)
    if item.strict:
        raise OptionError(f"{message} (strict mode)")
    if item.key not in referenced and item.key not in settings.placeholders:
        settings.notes.append(log.CONFIG_WARNING.format(message=message))
    value = "" if item.value is True else str(item.value)
    settings.placeholders.setdefault(item.key, []).append(value)


def _convert(settings: Settings, item: Item, opt: Option) -> Any:
    raw = item.value
    try:
        value = opt.parse(raw)
    except ReadAs as e:
        settings.notes.append(log.CONFIG_WARNING.format(
            message=f"--{opt.name}: {_show(raw)} is read as {_show(e.value)}: {e.why} ({item.origin})"))
        return e.value
    except ValueError as e:
        raise OptionError(f"--{opt.name}: {_show(raw)} {e} ({item.origin})") from None
    if isinstance(value, str) and item.kind == "file" and _INLINE_COMMENT.search(value):
        settings.notes.append(log.CONFIG_WARNING.format(
            message=f"--{opt.name}: {value!r}: uWSGI does not strip comments after a value, "
                    f"the whole text is the value ({item.origin})"))
    return value


def _show(raw: Any) -> str:
    return repr(raw if isinstance(raw, (bool, int)) else str(raw))


def finish(settings: Settings) -> None:
    """Derived settings: options that imply master mode (MASTER-1)."""
    for opt in settings.registry:
        if opt.master and settings.is_set(opt.name) and getattr(settings, opt.attr):
            settings.master = True
