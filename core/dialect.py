"""uWSGI's configuration dialect: the exported option list and its expansions.

Every source adds ``key = value`` items to one ordered list, as uWSGI's
``add_exported_option`` does: the environment first, then the config files,
then the command line. Logic blocks (``if-env`` ... ``endif``, ``for`` ...
``endfor``) are applied while items are added; ``ini =`` includes are read at
the line that names them. Once everything is read, three passes run over the
whole list, in uWSGI's order: ``$(VAR)`` (environment), ``@(file)`` (file
contents), then ``%(key)`` (the first item with that key, placeholders
included, or arithmetic: ``%(%k * 2 + 1)``). Magic variables (``%d``, ``%n``,
``%k`` ...) belong to the file reader (``ini.py``): they are replaced in the
file's text before it is parsed.

One deliberate difference: uWSGI applies ``listen`` and ``umask`` when it reads
the line, so ``%(...)`` in them is never expanded there; here it is.
"""
from __future__ import annotations

import os
import re
import socket
from typing import Any, Callable

from .options import OptionError, read_bool

# ---- the exported list ------------------------------------------------------------


class Item:
    """One exported ``key = value``. ``kind`` is the precedence layer (file, env, cli).
    ``dialect`` items (ini, if-env, print ...) are not options; ``placeholder`` items
    come from ``set-placeholder``."""

    def __init__(self, key: str, value: Any, origin: str, kind: str, dialect: bool = False,
                 placeholder: bool = False, strict: bool = False, configured: bool = False):
        self.key = key
        self.value = value
        self.origin = origin
        self.kind = kind
        self.dialect = dialect
        self.placeholder = placeholder
        self.strict = strict
        self.configured = configured    # acted on while reading: the passes leave it as written

    def __repr__(self) -> str:
        return f"Item({self.key!r}, {self.value!r}, {self.origin!r}, {self.kind!r})"


# Logic blocks, as uWSGI 2.0 names them (core/uwsgi.c); each opener maps to its test.
IF_ENV, IF_NOT_ENV, IF_OPT, IF_NOT_OPT = "env", "not-env", "opt", "not-opt"
IF_EXISTS, IF_NOT_EXISTS, IF_FILE, IF_NOT_FILE = "exists", "not-exists", "file", "not-file"
IF_DIR, IF_NOT_DIR, IF_RELOAD, IF_NOT_RELOAD = "dir", "not-dir", "reload", "not-reload"
IF_HOSTNAME, IF_NOT_HOSTNAME, IF_PLUGIN, IF_NOT_PLUGIN = "hostname", "not-hostname", "plugin", "not-plugin"
FOR, FOR_GLOB, FOR_TIMES, FOR_READLINE = "for", "for-glob", "for-times", "for-readline"

LOGIC = {
    "if-env": IF_ENV, "ifenv": IF_ENV, "if-not-env": IF_NOT_ENV,
    "if-opt": IF_OPT, "if-not-opt": IF_NOT_OPT,
    "if-exists": IF_EXISTS, "ifexists": IF_EXISTS, "if-not-exists": IF_NOT_EXISTS,
    "if-file": IF_FILE, "if-not-file": IF_NOT_FILE,
    "if-dir": IF_DIR, "ifdir": IF_DIR, "if-directory": IF_DIR, "if-not-dir": IF_NOT_DIR,
    "if-reload": IF_RELOAD, "if-not-reload": IF_NOT_RELOAD,
    "if-hostname": IF_HOSTNAME, "if-not-hostname": IF_NOT_HOSTNAME,
    "if-plugin": IF_PLUGIN, "ifplugin": IF_PLUGIN, "if-not-plugin": IF_NOT_PLUGIN,
    "for": FOR, "for-glob": FOR_GLOB, "for-times": FOR_TIMES, "for-readline": FOR_READLINE,
}
ENDS = {"end", "endif", "end-if", "endfor", "end-for"}
INCLUDES = {"ini", "include", "config"}
PLACEHOLDERS = {"set": False, "set-placeholder": True, "set-ph": True}
OTHER_FORMATS = {"yaml", "yml", "json", "js", "xml", "xmlconfig", "sqlite3", "ldap"}
# Keys read by this module (not options): they show in show-config, never in the funnel.
DIALECT = set(LOGIC) | ENDS | INCLUDES | set(PLACEHOLDERS) | {"print", "iprint", "inherit"}


class Context:
    """What the logic blocks test: the environment, the loaded plugins, a reload."""

    def __init__(self, environ: dict[str, str], plugins: frozenset[str] = frozenset(),
                 reload: bool = False, hostname: str | None = None):
        self.environ = environ
        self.plugins = plugins
        self.reload = reload
        self.hostname = socket.gethostname() if hostname is None else hostname


class Exported:
    """The exported list being built. ``load(spec, origin)`` reads an included file
    (set by the caller: ini or TOML). ``strict`` makes later unknown keys fatal."""

    def __init__(self, context: Context, load: Callable[[str, str], None] | None = None,
                 strict: bool = False):
        self.items: list[Item] = []
        self.context = context
        self.load = load
        self.strict = strict
        self._logic: tuple[str, str, str] | None = None   # (test, argument, origin)
        self._running = False

    def add(self, key: str, value: Any, origin: str, kind: str = "file",
            placeholder: bool = False) -> None:
        if not self._running:
            if key in ENDS:
                self._logic = None
            elif self._logic is not None:
                self._apply_logic(key, value, origin, kind)
                return
        self._append(key, value, origin, kind, placeholder)

    def _append(self, key, value, origin, kind, placeholder) -> None:
        item = Item(key, value, origin, kind, placeholder=placeholder, strict=self.strict)
        self.items.append(item)
        text = "" if value is True else str(value)
        if placeholder:
            item.dialect = item.configured = True
            return
        if key == "print":
            item.dialect = True
            return
        item.configured = key in DIALECT or key == "strict"
        if key in LOGIC:
            item.dialect = True
            if self._logic is not None:
                raise OptionError(f"{key}: a logic block inside another is not supported ({origin})")
            self._logic = (LOGIC[key], text, origin)
        elif key in ENDS or key in ("iprint", "inherit"):
            item.dialect = True
        elif key in INCLUDES:
            item.dialect = True
            if self.load is None:
                raise OptionError(f"{key}: no file can be included here ({origin})")
            self.load(text, origin)
        elif key in PLACEHOLDERS:
            item.dialect = True
            name, eq, rest = text.partition("=")
            if not eq:
                raise OptionError(f"--{key}: {text!r} is not NAME=VALUE ({origin})")
            self._append(name, rest, origin, kind, PLACEHOLDERS[key])
        elif key in OTHER_FORMATS:
            raise OptionError(f"--{key}: {text!r}: only ini and TOML configs are read here ({origin})")
        elif key == "strict":
            self.strict = read_bool(value)

    def _apply_logic(self, key, value, origin, kind) -> None:
        test, arg, _ = self._logic
        self._running = True
        try:
            for val in self._expand_logic(test, arg, value):
                self._append(key, val, origin, kind, False)
        finally:
            self._running = False

    def _expand_logic(self, test: str, arg: str, value: Any) -> list[Any]:
        """The values to add for one line inside a block (none when the test fails);
        ``%(_)`` becomes the tested value, as in uWSGI's logic functions."""
        if test in (FOR, FOR_GLOB, FOR_TIMES, FOR_READLINE):
            return [_sub_underscore(value, v) for v in _iterate(test, arg)]
        ok, data = self._test(test, arg)
        if not ok:
            return []
        return [_sub_underscore(value, data)]

    def _test(self, test: str, arg: str) -> tuple[bool, str | None]:
        env = self.context.environ
        if test in (IF_ENV, IF_NOT_ENV, IF_OPT, IF_NOT_OPT):
            name, eq, want = arg.partition("=")
            got = env.get(name) if test in (IF_ENV, IF_NOT_ENV) else self.first(name)
            found = got is not None and (not eq or str(got) == want)
            if test in (IF_ENV, IF_OPT):
                return found, got
            return not found, got
        if test in (IF_EXISTS, IF_NOT_EXISTS):
            return os.path.exists(arg) == (test == IF_EXISTS), arg
        if test in (IF_FILE, IF_NOT_FILE):
            return os.path.isfile(arg) == (test == IF_FILE), arg
        if test in (IF_DIR, IF_NOT_DIR):
            return os.path.isdir(arg) == (test == IF_DIR), arg
        if test in (IF_RELOAD, IF_NOT_RELOAD):
            return self.context.reload == (test == IF_RELOAD), None
        if test in (IF_HOSTNAME, IF_NOT_HOSTNAME):
            return (self.context.hostname == arg) == (test == IF_HOSTNAME), arg
        return (arg in self.context.plugins) == (test == IF_PLUGIN), arg

    def first(self, key: str) -> Any:
        """The value of the first item named ``key`` (uWSGI's uwsgi_get_exported_opt)."""
        for item in self.items:
            if item.key == key:
                return "" if item.value is True else item.value
        return None


def _sub_underscore(value: Any, data: str | None) -> Any:
    if data is None or not isinstance(value, str):
        return value
    return value.replace("%(_)", data)


def _iterate(test: str, arg: str) -> list[str]:
    if test == FOR:
        return [t for t in arg.split(" ") if t]
    if test == FOR_GLOB:   # glob(3) with GLOB_MARK | GLOB_NOCHECK
        import glob   # only for @(glob) values: not imported at start-up
        return [p + "/" if os.path.isdir(p) else p for p in sorted(glob.glob(arg))] or [arg]
    if test == FOR_TIMES:
        return [str(i) for i in range(1, c_atoi(arg) + 1)]
    try:
        with open(arg, encoding="utf-8", errors="surrogateescape") as f:
            return [line.rstrip("\r\n") for line in f]
    except OSError as e:
        raise OptionError(f"--for-readline: {arg!r}: {e.strerror}") from None


# ---- the three passes -----------------------------------------------------------

MAX_SUBSTITUTIONS = 1000
_LEADING_INT = re.compile(r"\s*([+-]?[0-9]+)")
INT64 = 1 << 64


def c_atoi(text: str) -> int:
    """C's strtoll/atoi: leading spaces, a sign, the leading digits; 0 when none."""
    m = _LEADING_INT.match(text or "")
    if not m:
        return 0
    return max(-(1 << 63), min((1 << 63) - 1, int(m.group(1))))


def _wrap(n: int) -> int:
    n %= INT64
    return n - INT64 if n >= 1 << 63 else n


def math_placeholder(key: str, first: Callable[[str], Any],
                     unknown: Callable[[str], None] = lambda token: None) -> str | None:
    """``%(a + 1)``: uWSGI's uwsgi_manage_placeholder. Space-separated tokens:
    numbers, option names (their value, empty when unknown) and the operators
    ``+ - * /`` (one step each, 64-bit integers, x/0 = 0), ``++`` and ``--``;
    two values in a row are concatenated; ``unknown(token)`` hears of a token that
    is none of these (read as empty). Parentheses do not group. A key without a
    space is a plain lookup (None when missing: the reference stays as written)."""
    if " " not in key:
        value = first(key)
        return None if value is None else str(value)
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
           "/": lambda a, b: 0 if b == 0 else int(a / b)}
    op = None
    current: str | None = None
    for token in (t for t in key.split(" ") if t):
        if token.isascii() and token.isdigit():
            value = token
        elif token in ops:
            op = token
            continue
        elif token in ("++", "--"):
            if current is not None:
                current = str(_wrap(c_atoi(current) + (1 if token == "++" else -1)))
            op = None
            continue
        else:
            found = first(token)
            if found is None:
                unknown(token)
            value = "" if found is None else str(found)
        if op is None:
            current = (current or "") + value
        else:
            current = str(_wrap(ops[op](c_atoi(current or ""), c_atoi(value))))
        op = None
    return current


def apply_pass(items: list[Item], symbol: str, hook: Callable[[str, Item], str | None]) -> None:
    """Replace ``<symbol>(key)`` in every value by ``hook(key)``, scanning as
    uWSGI's uwsgi_apply_config_pass does (nested parentheses belong to the key;
    after a replacement the scan restarts at the value's second character)."""
    for item in items:
        if item.configured or not isinstance(item.value, str):
            continue
        item.value = _scan(item, symbol, hook)


def _scan(item: Item, symbol: str, hook) -> str:
    value = item.value
    has = depth = start = 0
    j = done = 0
    while j < len(value):
        c = value[j]
        if c == symbol:
            has = 1
        elif c == "(" and has == 1:
            has, depth, start = 2, 0, j + 1
        elif has > 1:
            if c == "(":
                has += 1
                depth += 1
            elif c == ")":
                if depth > 0:
                    has += 1
                    depth -= 1
                elif has <= 2:
                    has = 0
                else:
                    replacement = hook(value[start:start + has - 2], item)
                    if replacement is not None:
                        value = value[:start - 2] + replacement + value[start + has - 1:]
                        done += 1
                        if done > MAX_SUBSTITUTIONS:
                            raise OptionError(f"{item.key}: {symbol}(...) expands without end "
                                              f"(a value that names itself?) ({item.origin})")
                        has, j = 0, 1
                        continue
                    has = 0
            else:
                has += 1
        else:
            has = 0
        j += 1
    return value


def read_file_value(path: str, item: Item | None = None) -> str:
    """``@(file)``: the file's contents, one trailing newline removed."""
    if "://" in path:
        raise OptionError(f"@({path}): only plain files can be read; config files are data "
                          "here and nothing in them is executed or fetched")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            data = f.read()
    except OSError as e:
        raise OptionError(f"@({path}): {e.strerror}") from None
    return data[:-1] if data[-1:] in ("\n", "\r") else data


def expand(items: list[Item], environ: dict[str, str],
           warn: Callable[[str], None] = lambda line: None) -> set[str]:
    """Run uWSGI's three passes over ``items``; returns the keys that ``%(...)`` found.
    An unset ``$(VAR)`` stays as written, as in uWSGI, with a warning."""
    referenced: set[str] = set()
    unset: set[str] = set()

    def env(name: str, item: Item) -> str | None:
        value = environ.get(name)
        if value is None and name not in unset:
            unset.add(name)
            warn(f"$({name}) is not set in the environment: uWSGI leaves it as written "
                 f"({item.origin})")
        return value

    def first(key: str) -> Any:
        for item in items:
            if item.key == key:
                referenced.add(key)
                return "" if item.value is True else item.value
        return None

    apply_pass(items, "$", env)
    apply_pass(items, "@", read_file_value)
    def reference(key: str, item: Item) -> str | None:
        def unknown(token: str) -> None:
            warn(f"%({key}): {token!r} is no number, operator or known key: uWSGI reads it as "
                 f"empty, and parentheses do not group ({item.origin})")
        return math_placeholder(key, first, unknown)

    apply_pass(items, "%", reference)
    return referenced
