"""core/argv.py reads every command line as click does (cli.parse_here, the reference).

For each argv of a corpus (the command lines the test suite starts servers with, the public
ini corpus turned into command lines, every option in every spelling, hand-picked edge cases
and a seeded random mix), ``read_argv`` either gives click's ``meta`` and ``given`` or, where
click refuses the line, says it is unsure (then ``parse_cli`` lets click word the error).
"""
from __future__ import annotations

import ast
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from uwsgi_py import cli, plugins
from uwsgi_py.argv import (FLAG, MULTIPLE, OPTIONAL, PATH_METAVARS, VALUE, Unsure, kind,
                           read_argv)
from uwsgi_py.options import Option, OptionError, Registry

pytestmark = pytest.mark.timeout(120)

TESTS = Path(__file__).resolve().parents[1]
# what the server fixture (tests/conftest.py) puts before a test's own arguments
SERVER_PREFIX = ["--http-socket", "127.0.0.1:0", "--wsgi-file", "app.py"]
STARTERS = {"server", "run_cli", "uwsgi_py"}    # and any *_server helper


@pytest.fixture(scope="module")
def registry():
    return cli.build_registry(plugins.build())


def synthetic() -> Registry:
    """Every kind, short letters on each (the real registry has no short optional-value or
    short flag-less multiple path option), a path-valued flag and optional value."""
    registry = Registry()
    registry.add(*cli.cli_options(), group="core")
    registry.add(
        Option("flag-a", "a flag", short="a", flag=True),
        Option("flag-b", "a flag", short="b", flag=True, aliases=("bee",)),
        Option("value", "a value", short="v", aliases=("val",)),
        Option("path", "a path", short="f", metavar="FILE"),
        Option("many", "a multiple path", short="m", multiple=True, metavar="PATH"),
        Option("optional", "an optional value", short="o", flag_value="on", metavar="DIR"),
        Option("empty-flag-value", "flag_value ''", flag_value=""),
        group="synthetic")
    return registry


def outcome(parse, registry, argv):
    try:
        parsed = parse(registry, argv)
    except OptionError as e:
        return ("error", str(e))
    return ("ok", parsed.meta, list(parsed.given.items()))   # given: in the registry's order


def fast(registry, argv):
    meta, given = read_argv(list(registry), argv)
    return cli.CommandLine(meta, given)


def check(registry, argv: list[str]) -> None:
    """click's reading == read_argv's, or click refuses and read_argv is unsure; either
    way parse_cli's answer is click's, byte for byte."""
    reference = outcome(cli.parse_here, registry, argv)
    try:
        ours = outcome(fast, registry, argv)
    except Unsure:
        assert reference[0] == "error", f"read_argv unsure of a valid command line: {argv}"
    else:
        assert ours == reference, argv
    assert outcome(cli.parse_cli, registry, argv) == reference, argv


# ---- the corpus -------------------------------------------------------------------------------

def from_the_tests() -> list[list[str]]:
    """The argv of every server(...), run_cli(...) call in tests/ that starts with an option;
    a value that is not a literal (f-string, variable) becomes a placeholder."""
    found = set()
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            first = node.args[0]
            if not (name in STARTERS or name.endswith("_server")) or not (
                    isinstance(first, ast.Constant) and str(first.value).startswith("-")):
                continue
            argv = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str)
                    else "/tmp/placeholder" for a in node.args if not isinstance(a, ast.Starred)]
            found.add(tuple(SERVER_PREFIX + argv if name == "server" else argv))
    return [list(argv) for argv in sorted(found)]


def from_the_ini_corpus(registry) -> list[list[str]]:
    """Each public ini file's [uwsgi] options we have, as a command line: real values."""
    lines = []
    for path in sorted((TESTS / "corpus" / "ini").glob("*.ini")):
        argv, section, attached = [], None, False
        for raw in path.read_text(errors="surrogateescape").splitlines():
            line = raw.strip()
            if line.startswith("["):
                section = line.strip("[]").strip()
            elif section == "uwsgi" and "=" in line and not line.startswith(("#", ";")):
                key, _, value = (part.strip() for part in line.partition("="))
                opt = registry.get(key)
                if opt is None or opt.cli_only:
                    continue
                if kind(opt) == FLAG:
                    argv.append(f"--{key}")
                elif attached := not attached:       # every other value as --key=value
                    argv.append(f"--{key}={value}")
                else:
                    argv += [f"--{key}", value]
        lines.append(argv)
    return lines


def every_spelling(registry) -> list[list[str]]:
    """Every option by every name it has, with and without values, in a handful of lines."""
    def spellings(opt):
        return [f"--{n}" for n in (opt.name, *opt.aliases)] + ([f"-{opt.short}"] if opt.short
                                                                else [])
    short_flag = next(f"-{o.short}" for o in registry if o.short and kind(o) == FLAG)
    out = []
    for form in range(4):
        argv = []
        for opt in registry:
            for spelled in spellings(opt):
                what = kind(opt)
                if what == FLAG:
                    argv.append(spelled)
                elif form == 0:
                    argv += [spelled, f"{opt.name} value"]
                elif form == 1 and spelled.startswith("--"):
                    argv.append(f"{spelled}=a=b")
                elif form == 1:
                    argv.append(f"{spelled}attached")
                elif form == 2:
                    argv += [spelled, "-" if what != OPTIONAL else short_flag]
                else:
                    argv.append(spelled)     # an optional value alone; the others take the next
        out.append(argv)
    return out


EDGE_CASES = [
    [], ["-"], [""], ["--"], ["--", "--"], ["--", "-M", "a.ini"], ["a.ini", "b.toml", "-M", "c.ini:x"],
    ["--log-date"], ["--log-date", "%Y"], ["--log-date=%Y"], ["--log-date", "-M"],
    ["--log-date", "--master"], ["--log-date=-M"], ["--log-date=-"], ["--log-date", "-"],
    ["--log-date", ""], ["--log-date="], ["--log-date", "--"], ["--log-date", "--", "-x"],
    ["--logdate", "x", "--log-prefix"], ["--log-syslog"], ["--log-syslog", "a.ini"],
    ["-p", "-M"], ["--processes", "--master"], ["-p2"], ["-p=2"], ["-Mp2"], ["-Mp", "2"],
    ["-ML"], ["-MLh"], ["-hM"], ["-p", "2", "-p", "3"], ["--processes=2", "--workers", "3"],
    ["--processes="], ["--processes", ""], ["--processes=", "x.ini"], ["--env", "A=B=C"],
    ["--env=A=B", "--env", "C="], ["-s", ":1", "--socket=:2", "--uwsgi-socket", ":3", "-s:4"],
    ["--processes", "ü"], ["--chdir", "/tmp/é\udcff"], ["\udcff.ini"], ["--pidfile", "/"],
    ["--master", "--master"], ["--ini", "a", "--ini", "b", "--toml", "c"],
    ["--help"], ["-h"], ["--version"], ["--plugins-list"], ["--help", "--version"],
    # click refuses these: read_argv must be unsure, parse_cli gives click's words
    ["-p"], ["--processes"], ["--bogus"], ["--procesess", "2"], ["--Master"], ["-master"],
    ["---master"], ["-M=1"], ["--master=1"], ["--master="], ["-x"], ["-Mx"], ["--=x"],
    ["--http-keepalive=75"], ["-p2", "-s"], ["--log-date", "x", "--nope"], ["-="],
]


def fuzz(registry, count: int, seed: int = 22) -> list[list[str]]:
    pool = [f"--{n}" for n in registry.names] + [f"-{o.short}" for o in registry if o.short]
    pool += ["-", "--", "", "=", "-=x", "x=y", "a.ini", "b.toml", "-1", "--x", "é", "%Y",
             "--log-date=", "-Mp", "-ML"]
    rng = random.Random(seed)
    return [[rng.choice(pool) for _ in range(rng.randint(1, 7))] for _ in range(count)]


# ---- the tests --------------------------------------------------------------------------------

def test_the_command_lines_the_tests_start_servers_with(registry):
    corpus = from_the_tests()
    assert len(corpus) > 100
    for argv in corpus:
        check(registry, argv)


def test_the_ini_corpus_as_command_lines(registry):
    corpus = from_the_ini_corpus(registry)
    assert sum(map(len, corpus)) > 500
    for argv in corpus:
        check(registry, argv)


def test_every_option_in_every_spelling(registry):
    for argv in every_spelling(registry):
        check(registry, argv)
    for opt in registry:     # alone too: an option missing its value is click's error
        check(registry, [f"--{opt.name}"])


@pytest.mark.parametrize("argv", EDGE_CASES, ids=repr)
def test_edge_cases(registry, argv):
    check(registry, argv)


def test_a_random_mix(registry):
    for argv in fuzz(registry, 300):
        check(registry, argv)


def test_every_kind_with_short_letters():
    registry = synthetic()
    for argv in [*every_spelling(registry), *fuzz(registry, 300), ["-oab"], ["-o", "-ab"],
                 ["-abo"], ["-abo", "x"], ["-mf", "g"], ["-vx", "-m-", "-m", "--"], ["-o--"],
                 ["--optional=-a"], ["--empty-flag-value"], ["--empty-flag-value", "x"]]:
        check(registry, argv)


def test_an_unreadable_path_is_clicks_error(tmp_path):
    """click's Path(): a value that exists must be readable (as root everything is)."""
    secret = tmp_path / "secret.ini"
    secret.write_text("")
    secret.chmod(0)
    for argv in (["--pidfile", str(secret)], [str(secret)], ["--pidfile", str(tmp_path)]):
        check(cli.build_registry(plugins.build()), argv)
    if os.geteuid() != 0:
        with pytest.raises(Unsure):
            read_argv(list(synthetic()), [str(secret)])


# ---- an option kind read_argv does not know fails here -----------------------------------------

def test_every_option_of_every_plugin_is_of_a_kind_read_argv_knows(registry):
    unknown = [opt.name for opt in registry if kind(opt) is None]
    assert not unknown, f"core/argv.py does not know how click reads {unknown}: teach it"


def test_the_click_command_reads_each_kind_as_read_argv_does(registry):
    """build_command is the reference: each option's click parameter must be the kind
    read_argv reads (a change there without one in argv.py fails here)."""
    expected = {FLAG: (True, False, False), VALUE: (False, False, False),
                MULTIPLE: (False, True, False), OPTIONAL: (False, False, True)}
    options = {opt.attr: opt for opt in registry}
    params = cli.build_command(list(registry)).params
    assert [p.name for p in params] == [*options, "config_files"]
    for param in params[:-1]:
        opt = options[param.name]
        assert (param.is_flag, param.multiple, param._flag_needs_value) == expected[kind(opt)]
        assert (param.nargs, param.count, param.secondary_opts) == (1, False, [])
        assert sorted(param.opts) == sorted([f"--{n}" for n in (opt.name, *opt.aliases)]
                                            + ([f"-{opt.short}"] if opt.short else []))
        path = opt.metavar in PATH_METAVARS and kind(opt) in (VALUE, MULTIPLE)
        assert isinstance(param.type, click.Path) == path, opt.name
        if kind(opt) == OPTIONAL:
            assert param.flag_value == opt.flag_value
    last = params[-1]
    assert (last.nargs, isinstance(last.type, click.Path)) == (-1, True)


@pytest.mark.parametrize("odd", [
    Option("flags", "a multiple flag", flag=True, multiple=True),
    Option("opts", "a multiple optional value", flag_value="1", multiple=True),
    Option("long-short", "a two-letter short", short="ab"),
    Option("dash", "a dash for a short", short="-"),
])
def test_an_option_of_another_kind_sends_every_line_to_click(odd):
    registry = synthetic()
    registry.add(odd)
    assert kind(odd) is None
    with pytest.raises(Unsure, match=re.escape(f"--{odd.name}")):
        read_argv(list(registry), ["-a"])


# ---- the real process ---------------------------------------------------------------------------

def test_a_valid_command_line_leaves_click_out_of_the_process():
    """The master's heap is every worker's, and importing click is ~40 ms of every start."""
    code = ("import sys; from uwsgi_py import cli, plugins; "
            "reg = cli.build_registry(plugins.build()); "
            "p = cli.parse_cli(reg, ['-Mp', '2', '--log-date', '--env=A=1', 'x.ini']); "
            "print(sorted(p.given.items()), p.meta['config_files'], 'click' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == ("[('env', ['A=1']), ('log-date', '1'), ('master', True), "
                                  "('processes', '2')] ['x.ini'] False"), out.stderr


def test_an_error_is_clicks_one_line():
    out = subprocess.run([sys.executable, "-m", "uwsgi_py", "-p", "2", "--procesess", "2"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].endswith(
        "unknown option --procesess (command line); did you mean --processes?"), out.stderr
    assert "Traceback" not in out.stderr
