"""The command line, read as click reads it, without importing click.

Why our own parser: importing click costs about 40 ms at every start and every exec reload,
and whatever the master imports stays in the heap every worker shares. The registry's options
come in four kinds (``kind``), and for those click's reading of ``argv`` is small enough to
restate here. click stays the reference: on any error, and on anything this module is not
sure of, it raises ``Unsure`` and ``cli.parse_cli`` hands ``argv`` to click
(``cli.parse_here``), so error messages are click's, word for word. Shell completion is
click's too (``completion.py``).

How click reads a command line (click 8, ``click/parser.py``), and so how this module does:

- ``--`` ends the options; ``-`` and anything not starting with ``-`` is a config file
  (``config_files``), wherever it stands.
- ``--name=value`` or ``--name value`` for a long name or alias; a value is taken even if it
  starts with ``-`` (``-p --master`` sets processes to ``--master``).
- a flag takes no value: ``--master=1`` is an error.
- an optional-value option (``flag_value``, ``--log-date``) takes the next argument unless
  there is none or it looks like an option (``-x``, ``--x``): then it is ``flag_value``.
  ``--log-date=-M`` is read the same way: the ``=`` value goes back in front of the rest.
- ``-abc``: single-letter options, one after another; the first that takes a value takes the
  rest of the word (``-Mp2``, ``-p=2`` is processes ``=2``) or, at the word's end, the next
  argument. A single-dash word is never a long name here (``-master`` is ``-m``...).
- a value given twice: the last wins; ``multiple`` options keep every value, in order.
- values of options whose metavar is a path, and config files, are click ``Path`` values:
  click refuses one that exists but cannot be read.
"""
from __future__ import annotations

import os

META = ("help", "version", "plugins_list", "ini", "toml", "config_files")
PATH_METAVARS = ("FILE", "PATH", "PIDFILE", "DIR")    # click.Path values (completion: file names)

FLAG, VALUE, MULTIPLE, OPTIONAL = "flag", "value", "multiple", "optional value"
UNSET = {FLAG: False, VALUE: None, MULTIPLE: [], OPTIONAL: None}   # click's value when not given


class Unsure(Exception):
    """click refuses this command line, or may: let click parse it (and word the error)."""


def kind(opt) -> str | None:
    """Which of the four kinds click is given for ``opt`` (``cli.build_command``), or None
    for an option this module does not know how click reads."""
    names = (opt.name, *opt.aliases)
    if any("=" in name or not name for name in names):
        return None
    if opt.short is not None and not (len(opt.short) == 1 and opt.short.isalnum()):
        return None
    if opt.flag:
        return FLAG if not opt.multiple and opt.flag_value is None else None
    if opt.flag_value is not None:
        return OPTIONAL if not opt.multiple and isinstance(opt.flag_value, str) else None
    return MULTIPLE if opt.multiple else VALUE


def read_argv(options, argv: list[str]) -> tuple[dict, dict]:
    """``(meta, given)`` as ``cli.parse_here`` gives them for ``argv``; ``Unsure`` if not sure.

    ``given``: option name -> value for the options the command line sets (a list for
    ``multiple`` ones, True for flags), in the registry's order; ``meta``: the ``META``
    keys, given or not."""
    kinds, longs, shorts = {}, {}, {}
    for opt in options:
        kinds[opt.name] = kind(opt)
        if kinds[opt.name] is None:
            raise Unsure(f"--{opt.name}: an option kind this parser does not know")
        for name in (opt.name, *opt.aliases):
            longs[f"--{name}"] = opt
        if opt.short:
            shorts[opt.short] = opt
    values: dict[str, object] = {}
    config_files: list[str] = []
    rest = list(argv)

    def take(opt, spelled: str) -> None:
        """Store ``opt``'s value, taking it from the front of ``rest`` if it has one."""
        what = kinds[opt.name]
        if what == FLAG:
            value = True
        elif what == OPTIONAL and (not rest or (rest[0][:1] == "-" and len(rest[0]) > 1)):
            value = opt.flag_value
        elif not rest:
            raise Unsure(f"{spelled} needs a value")
        else:
            value = rest.pop(0)
            if opt.metavar in PATH_METAVARS and what != OPTIONAL:
                _check_path(value)
        if what == MULTIPLE:
            values.setdefault(opt.name, []).append(value)
        else:
            values[opt.name] = value

    while rest:
        arg = rest.pop(0)
        if arg == "--":
            config_files += rest
            break
        if arg[:1] != "-" or len(arg) == 1:
            config_files.append(arg)
            continue
        name, eq, attached = arg.partition("=")
        opt = longs.get(name)
        if opt is not None:
            if eq:
                if kinds[opt.name] == FLAG:
                    raise Unsure(f"{name} takes no value")
                rest.insert(0, attached)
            take(opt, name)
        elif arg.startswith("--"):
            raise Unsure(f"unknown option {name}")
        else:
            for i, letter in enumerate(arg[1:], start=2):
                opt = shorts.get(letter)
                if opt is None:
                    raise Unsure(f"unknown option -{letter}")
                if kinds[opt.name] != FLAG and i < len(arg):
                    rest.insert(0, arg[i:])      # -p2: the rest of the word is the value
                    take(opt, f"-{letter}")
                    break
                take(opt, f"-{letter}")
    for path in config_files:
        _check_path(path)

    given = {}
    meta = {"config_files": config_files}
    for opt in options:
        if opt.name in values:
            value = values[opt.name]
            given[opt.name] = list(value) if isinstance(value, list) else value
        if opt.attr in META:
            value = values.get(opt.name, UNSET[kinds[opt.name]])
            meta[opt.attr] = list(value) if isinstance(value, list) else value
    return meta, given


def _check_path(path: str) -> None:
    """click's ``Path()`` check: a path that exists must be readable (one that does not
    exist is taken as it is)."""
    try:
        os.stat(path)
    except OSError:
        return
    except ValueError:           # a NUL byte: not in a real argv; let click say what it does
        raise Unsure(f"{path!r}") from None
    if not os.access(path, os.R_OK):
        raise Unsure(f"{path!r} is not readable")
