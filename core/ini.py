"""Config files in uWSGI's dialect: ini (and TOML) into the exported list.

An ini file is read as uWSGI 2.0 reads it (core/ini.c): the magic variables
(``%d`` ...) are replaced in the whole text first, then each line of the asked
section (``[uwsgi]``, or ``file.ini:section``) is ``key = value``: the key ends
at the first ``=``, spaces and tabs around both are dropped, a line without
``=`` is a key with an empty value, and lines starting with ``;`` or ``#`` are
comments. Nothing else is a comment: ``key = 10 ; note`` has the value
``10 ; note`` (converters warn where that changes what is read).

TOML files are typed, so only their string values go through the magic
variables; repeated keys are arrays. Both end up in ``dialect.Exported``.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from typing import Callable

from .dialect import Exported
from .options import OptionError

# The magic variables uWSGI fills (core/uwsgi.c, config_magic_table_fill and
# uwsgi_setup). Any other ``%X`` is replaced by nothing, as in uWSGI.
PER_FILE = "opsdcenxij0123456789"
FIRST_FILE = "ODSPCENXIJ"          # the same, for the first config file read
STATIC = "vhtTVk[uUgGb"
MAGIC = set(PER_FILE + FIRST_FILE + STATIC + "%(")


def djb33x(text: str) -> int:
    """uWSGI's djb33x_hash over the bytes of ``text`` (as signed chars)."""
    h = 5381
    for b in text.encode("utf-8", "surrogateescape"):
        h = (((h << 5) + h) ^ (b - 256 if b > 127 else b)) & 0xFFFFFFFF
    return h


def static_magic(version: str) -> dict[str, str]:
    import pwd, grp
    uid, gid = os.getuid(), os.getgid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return {"v": os.getcwd(), "h": socket.gethostname(), "t": str(int(time.time())),
            "T": str(time.time_ns() // 1000), "V": version, "k": str(os.cpu_count() or 1),
            "[": "\033", "u": str(uid), "U": user, "g": str(gid), "G": group,
            "b": sys.executable, "%": "%", "(": "%("}


def file_magic(spec: str, path: str, section: str) -> dict[str, str]:
    """The per-file variables of ``path`` (as given: ``spec``)."""
    full = os.path.join(os.getcwd(), path) if os.path.islink(path) else os.path.realpath(path)
    table = {k: "" for k in PER_FILE}
    directory, name = full.rsplit("/", 1)
    stem, dot, ext = name.rpartition(".")
    table.update(o=spec, p=full, s=name, d=directory + "/", x=section,
                 c=directory.rsplit("/", 1)[-1], n=stem if dot else name, e=ext if dot else "",
                 j=djb33x(full).to_bytes(4, "little").hex().upper())
    try:
        table["i"] = str(os.lstat(full).st_ino)
    except OSError:
        pass
    for digit, part in zip("0123456789", [p for p in directory.split("/") if p]):
        table[digit] = part
    return table


def substitute(lines: list[str], table: dict[str, str], origin: Callable[[int], str],
               warn: Callable[[str], None]) -> list[tuple[int, str]]:
    """Replace every ``%X`` by its magic variable (nothing for an unknown X), as
    uWSGI does over the file's text: a ``%`` that ends a line takes the newline
    with it, joining the next line (at the end of the file it takes uWSGI's
    terminating NUL). Returns (first line number, text) pairs."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in enumerate(lines, 1):
        text = []
        i, n = 0, len(line)
        joined = False
        while i < n:
            c = line[i]
            if c == "%" and i + 1 < n:
                nxt = line[i + 1]
                if nxt not in MAGIC:
                    warn(f"{'%' + nxt!r} is not a magic variable: uWSGI reads it as nothing "
                         f"(write %% for a %) ({origin(number)})")
                text.append(table.get(nxt, ""))
                i += 2
            elif c == "%":
                warn(f"a '%' ends the line: uWSGI drops it with the line break, joining the "
                     f"next line to this one (write %% for a %) ({origin(number)})")
                joined = True
                i += 1
            else:
                text.append(c)
                i += 1
        piece = "".join(text)
        if pending is not None:
            pending = (pending[0], pending[1] + piece)
        else:
            pending = (number, piece)
        if not joined:
            out.append(pending)
            pending = None
    if pending is not None:
        out.append(pending)
    return out


class Reader:
    """Reads config files into one ``Exported`` list; remembers the last ini file
    (for ``ini = :section``) and the first file's magic variables (``%D`` ...)."""

    def __init__(self, exported: Exported, version: str, warn: Callable[[str], None]):
        self.exported = exported
        self.warn = warn
        self.static = static_magic(version)
        self.first: dict[str, str] | None = None
        self.last_file: str | None = None
        self.last_table: dict[str, str] | None = None
        self.depth = 0
        exported.load = self.include

    def include(self, spec: str, origin: str) -> None:
        """``ini = ...`` / ``include = ...``: read the file here, at this line."""
        if spec.endswith(".toml"):
            self.read_toml(spec)
        else:
            self.read_ini(spec, origin)

    def load(self, spec: str) -> None:
        """A file named on the command line or in UWSGI_INI."""
        self.include(spec, "command line")

    def read_ini(self, spec: str, origin: str = "command line") -> None:
        if "://" in spec:
            raise OptionError(f"config {spec!r}: only local files can be read ({origin})")
        path, colon, section = spec.rpartition(":") if ":" in spec else (spec, "", "")
        section = section or "uwsgi"
        if colon and not path:
            if self.last_file is None:
                raise OptionError(f"config {spec!r}: no file read yet to take a section from ({origin})")
            path = self.last_file
            table = dict(self.last_table, o=spec, x=section)
        else:
            if not os.path.isfile(path):
                if os.path.exists(path):
                    raise OptionError(f"cannot read config file {path!r}: Is a directory ({origin})")
                raise OptionError(f"config file {path!r} not found ({origin})")
            table = file_magic(spec, path, section if colon else "")
        if self.first is None:
            self.first = {k.upper(): table[k] for k in "odspcenxij" if k in table}
        self.last_file, self.last_table = path, table
        magic = {**self.static, **table, **self.first}
        self.depth += 1
        if self.depth > 32:
            raise OptionError(f"config {spec!r}: includes nest more than 32 deep ({origin})")
        try:
            self._parse(path, section, magic)
        finally:
            self.depth -= 1

    def _parse(self, path: str, section: str, magic: dict[str, str]) -> None:
        name = os.path.basename(path)
        try:
            with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
                raw = f.read()
        except OSError as e:
            raise OptionError(f"config file {path!r}: {e.strerror}") from None
        lines = raw.split("\n")
        if lines and lines[-1] == "":
            lines.pop()

        def where(number: int) -> str:
            return f"{name} line {number}"

        current, found = "", False
        for number, line in substitute(lines, magic, where, self.warn):
            key = line.strip(" \t\r")
            if not key or key[0] in ";#":
                continue
            if key[0] == "[":
                current = key[1:-1]
                continue
            if current != section:
                continue
            found = True
            key, _, value = key.partition("=")
            self.exported.add(key.rstrip(" \t\r"), value.strip(" \t\r"), where(number))
        if not found:
            self.warn(f"can't find section [{section}] in {path}")

    def read_toml(self, path: str) -> None:
        """A ``[uwsgi]`` table: keys spelled like the long flags, arrays repeat.
        String values get the magic variables of the TOML file."""
        if sys.version_info >= (3, 11):   # imported here: most starts read no TOML (~1 MB, 2 ms)
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except FileNotFoundError:
            raise OptionError(f"config file {path!r} not found") from None
        except OSError as e:
            raise OptionError(f"cannot read config file {path!r}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise OptionError(f"{path}: invalid TOML: {e}") from None
        table = doc.get("uwsgi")
        if table is None:
            raise OptionError(f"{path}: no [uwsgi] table")
        origin = os.path.basename(path)
        magic = {**self.static, **file_magic(path, path, "")}
        if self.first is None:
            self.first = {k.upper(): magic[k] for k in "odspcenxij" if k in magic}
        magic.update(self.first)
        for key, value in table.items():
            if isinstance(value, dict):
                raise OptionError(f"{origin}: option {key!r} must not be a table")
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    item = substitute([item], magic, lambda _: origin, self.warn)[0][1] if item else item
                self.exported.add(key, item, origin)
