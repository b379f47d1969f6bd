"""Settings from every source, funnelled through one place.

Every source yields ``(name, raw_value, origin)``. Precedence, lowest first:
defaults < config files (TOML and ini, in the order given) < ``UWSGI_*``
environment < command line. Repeatable options accumulate in that order.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable, Iterator

from .options import Option, OptionError, Registry, python_value

Entry = tuple[str, Any, str]

# UWSGI_* variables that uWSGI itself sets; they are not options.
ENV_IGNORED_PREFIXES = ("UWSGI_PY_", "UWSGI_EMPEROR", "UWSGI_VASSAL")
ENV_IGNORED = {"UWSGI_RELOADS", "UWSGI_ORIGINAL_PROC_NAME", "UWSGI_FILE"}

SOURCE_RANK = {"default": 0, "file": 1, "env": 2, "cli": 3}


class Settings:
    """The resolved options: ``settings.http_socket``, ``settings.master``, ...

    ``origins`` maps an option name to where its value came from;
    ``written`` keeps each option as the user spelled it, for ``uwsgi.opt``.
    """

    def __init__(self, registry: Registry):
        self._registry = registry
        self.origins: dict[str, str] = {}
        self.written: dict[str, tuple[Option, Any]] = {}
        self.config_files: list[str] = []
        for opt in registry:
            setattr(self, opt.attr, opt.initial())

    @property
    def registry(self) -> Registry:
        return self._registry

    def opt_dict(self) -> dict[str, Any]:
        """The ``uwsgi.opt`` dict (PYAPI-2): flags True, values bytes, repeats lists."""
        out: dict[str, Any] = {}
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

    def is_set(self, name: str) -> bool:
        return name in self.origins


def parse_ini(path: str, section: str = "uwsgi") -> Iterator[Entry]:
    """uWSGI's ini dialect: ``[uwsgi]`` section, repeated keys accumulate."""
    current = None
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line[0] in ";#":
                continue
            if line.startswith("[") and line.endswith("]"):
                current = line[1:-1].strip()
                continue
            if current != section:
                continue
            key, sep, value = line.partition("=")
            if not sep:
                # a bare key is a flag, as in uWSGI
                value = "true"
            yield key.strip(), value.strip(), f"{os.path.basename(path)} line {lineno}"


def parse_toml(path: str) -> Iterator[Entry]:
    """A ``[uwsgi]`` table; keys spelled like the long flags; arrays repeat."""
    if sys.version_info >= (3, 11):   # imported here: most starts read no TOML (~1 MB, 2 ms)
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    with open(path, "rb") as f:
        try:
            doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise OptionError(f"{path}: invalid TOML: {e}") from None
    table = doc.get("uwsgi")
    if table is None:
        raise OptionError(f"{path}: no [uwsgi] table")
    origin = os.path.basename(path)
    for key, value in table.items():
        if isinstance(value, dict):
            raise OptionError(f"{origin}: option {key!r} must not be a table")
        if isinstance(value, list):
            for item in value:
                yield key, item, origin
        else:
            yield key, value, origin


def load_file(path: str) -> Iterator[Entry]:
    if not os.path.exists(path):
        raise OptionError(f"config file {path!r} not found")
    if path.endswith(".toml"):
        return parse_toml(path)
    if path.endswith(".ini"):
        return parse_ini(path)
    raise OptionError(f"config file {path!r}: unknown type (use .toml or .ini)")


def env_entries(registry: Registry, environ: dict[str, str]) -> Iterator[Entry]:
    for var, value in environ.items():
        if not var.startswith("UWSGI_") or var in ENV_IGNORED or var.startswith(ENV_IGNORED_PREFIXES):
            continue
        name = var[len("UWSGI_"):].lower().replace("_", "-")
        yield name, value, f"environment {var}"


def build_settings(registry: Registry, layers: list[tuple[str, Iterable[Entry]]]) -> Settings:
    """Apply ``layers`` (kind, entries) in precedence order into Settings."""
    settings = Settings(registry)
    ranked = sorted(layers, key=lambda layer: SOURCE_RANK[layer[0]])
    multiples: dict[str, list[Any]] = {}
    for kind, entries in ranked:
        for name, raw, origin in entries:
            opt = registry.lookup(name, origin)
            try:
                value = opt.parse(raw)
            except ValueError as e:
                raise OptionError(f"--{opt.name}: {str(raw)!r} {e} ({origin})") from None
            key = name.strip().lower().replace("_", "-")
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
            settings.origins[opt.name] = origin
    finish(settings)
    return settings


def finish(settings: Settings) -> None:
    """Derived settings: options that imply master mode (MASTER-1)."""
    for opt in settings.registry:
        if opt.master and settings.is_set(opt.name) and getattr(settings, opt.attr):
            settings.master = True
