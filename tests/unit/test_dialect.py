"""uWSGI's config dialect (core/dialect.py, core/ini.py, core/config.py).

Each expectation was checked against real uWSGI 2.0.31 (``uwsgi --ini F --show-config``
with a failing ``--clock`` to stop it right after printing); test_corpus.py makes the
same comparison over 168 public configs.
"""
from __future__ import annotations

import os
import socket

import pytest

from uwsgi_py import cli, config, dialect, plugins
from uwsgi_py.options import OptionError, ReadAs, boolean, non_negative_int, positive_int

pytestmark = pytest.mark.timeout(30)

ENV = {"HOME": "/home/me", "PATH": "/bin"}


@pytest.fixture(scope="module")
def registry():
    return cli.build_registry(plugins.build())


@pytest.fixture
def read(tmp_path, monkeypatch, registry):
    """read(text, env=..., cli=[...], strict=...) -> (settings, {key: first value})."""
    monkeypatch.chdir(tmp_path)

    def _read(text: str, env: dict | None = None, cli=(), strict: bool = False,
              name: str = "app.ini", files: list[str] | None = None):
        (tmp_path / name).write_text(text)
        items, referenced, warnings = config.gather(
            [name] if files is None else files, dict(ENV if env is None else env), cli,
            strict=strict)
        settings = config.settle(registry, items, referenced)
        settings.notes[:0] = warnings
        first: dict = {}
        for item in items:
            first.setdefault(item.key, item.value)
        return settings, first
    return _read


def values(settings, key):
    return [str(i.value) for i in settings.exported if i.key == key]


# ---- magic variables ----------------------------------------------------------------

def test_magic_variables_of_the_file(read, tmp_path):
    s, v = read("[uwsgi]\nd = %d\nn = %n\ne = %e\np = %p\ns = %s\nc = %c\no = %o\nx = %x\n"
                "v = %v\nk = %k\nh = %h\nV = %V\npct = 100%%\nz = %0|%1\nup = %D|%N\n")
    d = str(tmp_path)
    assert v["d"] == d + "/" and v["n"] == "app" and v["e"] == "ini"
    assert v["p"] == d + "/app.ini" and v["s"] == "app.ini" and v["c"] == tmp_path.name
    assert v["o"] == "app.ini" and v["x"] == "" and v["v"] == d
    assert v["k"] == str(os.cpu_count()) and v["h"] == socket.gethostname() and v["V"] == "2.0.31"
    assert v["pct"] == "100%"
    parts = [p for p in d.split("/") if p]
    assert v["z"] == f"{parts[0]}|{parts[1]}"
    assert v["up"] == d + "/|app"


def test_an_unknown_magic_letter_is_read_as_nothing_with_a_warning(read):
    s, v = read("[uwsgi]\nlog-x = 50%q done\n")
    assert v["log-x"] == "50 done"
    assert any("'%q' is not a magic variable" in n and "app.ini line 2" in n for n in s.notes)


def test_a_percent_ending_a_line_joins_the_next_one(read):
    s, v = read("[uwsgi]\nabc = 100%\nprocesses = 4\n")
    assert v["abc"] == "100processes = 4"       # uWSGI eats the newline: processes is gone
    assert "processes" not in v
    assert any("a '%' ends the line" in n for n in s.notes)


# ---- %(key), $(VAR), @(file) ------------------------------------------------------------

def test_placeholders_take_the_first_value_known_or_not_and_may_come_later(read):
    s, v = read("[uwsgi]\nr = %(later)\nbase = /srv/app\nchdir = %(base)/x\nbase = /other\n"
                "later = L\nmiss = %(nope)|\n")
    assert v["chdir"] == "/srv/app/x" and v["r"] == "L" and v["miss"] == "%(nope)|"
    assert s.chdir == "/srv/app/x"
    # placeholders the config refers to are not warned about; base is in uwsgi.opt
    assert not [n for n in s.notes if "unknown option 'base'" in n]
    assert s.opt_dict()["base"] == [b"/srv/app", b"/other"]


def test_a_replacement_is_not_expanded_again_except_as_uwsgi_rescans(read):
    _, v = read("[uwsgi]\nx = %(q)\ny = %(q)%(a)\nz = %(a)%(q)\nq = %(a)\na = 1\n")
    # uWSGI restarts its scan at the value's second character after each replacement
    assert (v["x"], v["y"], v["z"], v["q"]) == ("%(a)", "%(a)1", "11", "1")


@pytest.mark.parametrize("expr,expected", [
    ("%(a + 1)", "2"), ("%(a * 3)", "3"), ("%(a - 5)", "-4"), ("%(a / 2)", "0"),
    ("%(1 + 2)", "3"), ("%(a a)", "11"), ("%(1 + 2 3)", "33"), ("%(foo a)", "bar1"),
    ("%(a * foo)", "0"), ("%(10 / 0)", "0"), ("%(0 - 5 / 2)", "-2"), ("%(a - -1)", "1"),
    ("%(1.5 + 1)", "1"), ("%(sp ace)", ""), ("%(3 x 4)", "34"), ("%(-)", "%(-)"),
    ("%(a +)", "1"), ("%(7 ++)", "8"), ("%(big * big)", "1864712049423024128"),
    ("%(%k * 2)", str(2 * (os.cpu_count() or 1))), ("%((%k * 2) + 1)", "1"),
])
def test_placeholder_arithmetic(read, expr, expected):
    _, v = read(f"[uwsgi]\na = 1\nfoo = bar\nbig = 100000000000\nm = {expr}\n")
    assert v["m"] == expected


def test_arithmetic_warns_about_tokens_it_reads_as_empty(read):
    s, v = read("[uwsgi]\nprocesses = %((%k * 2) + 1)\n")
    assert s.processes == 1        # "(2", "*", "2)", "+", "1": a public config's hidden bug
    assert [n for n in s.notes if "'(2' is no number, operator or known key" in n]


def test_environment_and_file_references(read, tmp_path):
    (tmp_path / "name.txt").write_text("from-file\n")
    env = {**ENV, "EV": "%(a)", "PORT": "8000"}
    s, v = read("[uwsgi]\na = 1\ne = $(HOME)/x\nf = @(name.txt)|\nunset = $(NOPE)\nev = $(EV)\n"
                "http-socket = :$(PORT)\n", env=env)
    assert v["e"] == "/home/me/x" and v["f"] == "from-file|" and v["unset"] == "$(NOPE)"
    assert v["ev"] == "1"           # the environment's text is subject to the %() pass
    assert s.http_socket == [":8000"]
    assert any("$(NOPE) is not set in the environment" in n for n in s.notes)


def test_at_file_refuses_commands_and_missing_files(read):
    with pytest.raises(OptionError, match=r"@\(exec://id\): only plain files"):
        read("[uwsgi]\nx = @(exec://id)\n")
    with pytest.raises(OptionError, match=r"@\(missing.txt\): No such file"):
        read("[uwsgi]\nx = @(missing.txt)\n")


def test_a_value_that_names_itself_is_an_error_not_a_hang(read):
    with pytest.raises(OptionError, match="expands without end"):
        read("[uwsgi]\na = x%(a)\n")


# ---- sections and includes ------------------------------------------------------------

def test_sections_include_and_file_colon_section(read, tmp_path):
    text = ("[uwsgi]\nini = :base\nsocket = %dapp.sock\n[dev]\nini = :base\nhttp-socket = :8001\n"
            "[base]\nchdir = /srv\nmodule = web.wsgi\n")
    s, _ = read(text)
    assert s.chdir == "/srv" and s.socket == [f"{tmp_path}/app.sock"]
    s, _ = read(text, files=["app.ini:dev"])
    assert s.http_socket == [":8001"] and s.socket == [] and s.chdir == "/srv"


def test_an_included_file_is_read_at_its_line_with_its_own_magic(read, tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "extra.ini").write_text("[uwsgi]\nenv = FROM=%n\nprocesses = 3\n")
    s, _ = read("[uwsgi]\nenv = A=1\nini = sub/extra.ini\nenv = B=%n\n")
    assert s.env == ["A=1", "FROM=extra", "B=app"] and s.processes == 3


def test_a_missing_section_warns_and_a_missing_include_fails(read):
    s, _ = read("[other]\nprocesses = 2\n")
    assert any("can't find section [uwsgi]" in n for n in s.notes)
    with pytest.raises(OptionError, match="config file 'nope.ini' not found"):
        read("[uwsgi]\nini = nope.ini\n")


def test_lines_as_uwsgi_splits_them(read):
    s, v = read("[uwsgi]\n  # comment\n; comment\nmaster\n\tprocesses\t=  3 \r\nk=a=b\n=x\n")
    assert s.master is True and s.processes == 3
    assert v["k"] == "a=b" and v[""] == "x" and v["master"] == ""


# ---- logic blocks ------------------------------------------------------------------------

def test_if_env_blocks_with_the_tested_value(read):
    text = ("[uwsgi]\nif-env = WORKERS\nprocesses = %(_)\nendif =\nif-not-env = WORKERS\n"
            "processes = 2\nendif =\nif-env = MODE=prod\nenv = PROD=1\nendif =\n")
    s, _ = read(text, env={**ENV, "WORKERS": "5", "MODE": "dev"})
    assert s.processes == 5 and s.env == []
    s, _ = read(text, env={**ENV, "MODE": "prod"})
    assert s.processes == 2 and s.env == ["PROD=1"]


def test_if_exists_if_opt_and_for_blocks(read, tmp_path):
    (tmp_path / "here").write_text("")
    s, _ = read("[uwsgi]\nif-exists = here\nenv = E=%(_)\nendif =\nif-not-exists = gone\n"
                "env = G=1\nendif =\nbase = x\nif-opt = base=x\nenv = O=%(_)\nendif =\n"
                "for = a b\nenv = F=%(_)\nendfor =\nfor-times = 2\nenv = T=%(_)\nendfor =\n")
    assert s.env == ["E=here", "G=1", "O=x", "F=a", "F=b", "T=1", "T=2"]


def test_a_block_inside_a_block_is_an_error(read):
    with pytest.raises(OptionError, match="logic block inside another"):
        read("[uwsgi]\nfor = a b\nif-env = HOME\nendif =\n")


def test_uwsgi_ini_from_the_environment(read, tmp_path):
    (tmp_path / "env.ini").write_text("[uwsgi]\nprocesses = 4\n")
    s, _ = read("", env={**ENV, "UWSGI_INI": "env.ini", "UWSGI_BASE": "/srv"}, files=[],
                cli=[("chdir", "%(base)/app", "command line")])
    assert s.processes == 4 and s.chdir == "/srv/app"


# ---- values --------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,value,warns", [
    ("true", True, False), ("", True, False), ("1", True, False), ("75", True, False),
    ("yes", True, False), ("false", False, False), ("False", False, False), ("off", False, False),
    ("NO", False, False), ("0", False, False), ("00", True, True), ("n", True, True),
    ("f", True, True), ("false # comment", True, True),
])
def test_flags_are_read_as_uwsgi_reads_them(raw, value, warns):
    # checked with real uWSGI: master = <raw> starts a master or not
    try:
        assert boolean(raw) is value and not warns
    except ReadAs as e:
        assert warns and e.value is value


@pytest.mark.parametrize("raw,value,warns", [
    ("1000", 1000, False), ("1000 ; note", 1000, False), ("1000       # Restart", 1000, False),
    ("3600s", 3600, False), ("512M", 512, True), ("1e3", 1, True), ("2.5", 2, True),
    ("0x10", 0, True),
])
def test_numbers_are_read_by_their_leading_digits(raw, value, warns):
    try:
        assert non_negative_int(raw) == value and not warns
    except ReadAs as e:
        assert warns and e.value == value


def test_numbers_uwsgi_would_read_as_zero(read):
    assert non_negative_int("") == 0
    with pytest.raises(ReadAs) as e:
        non_negative_int("true")
    assert e.value.value == 0
    with pytest.raises(ValueError):
        positive_int("four")          # uWSGI reads 0 and starts no worker: refused here
    s, _ = read("[uwsgi]\ncheaper = true\nhttp-keepalive = 75\nmax-requests = 1000 ; note\n")
    assert s.cheaper == 0 and s.http_keepalive == 75 and s.max_requests == 1000
    assert [n for n in s.notes if "--cheaper: 'true' is read as 0" in n]


def test_inline_comments_stay_in_string_values_with_a_warning(read):
    s, _ = read("[uwsgi]\nchdir = /srv  # the app\nlazy-apps = false  # not now\n")
    assert s.chdir == "/srv  # the app" and s.lazy_apps is True
    assert [n for n in s.notes if "--chdir: '/srv  # the app': uWSGI does not strip comments" in n]
    assert [n for n in s.notes if "--lazy-apps: 'false  # not now' is read as True" in n]


# ---- unknown keys, no effect, not implemented, strict ------------------------------------

def test_unknown_keys_warn_once_with_a_suggestion(read):
    s, _ = read("[uwsgi]\nchmod-sock = 664\nharakari = 60\nharakari = 61\n")
    warned = [n for n in s.notes if "unknown option" in n]
    assert warned == [
        "uwsgi-py: warning: unknown option 'chmod-sock' (app.ini line 2); did you mean --chmod-socket?",
        "uwsgi-py: warning: unknown option 'harakari' (app.ini line 3); did you mean --harakiri?"]


def test_options_without_effect_are_accepted_with_one_info_line(read):
    s, _ = read("[uwsgi]\nthunder-lock = true\nthunder-lock = true\nsingle-interpreter\n")
    info = [n for n in s.notes if n.startswith("uwsgi-py: info:")]
    assert len(info) == 2 and "--thunder-lock has no effect in uwsgi-py" in info[0]
    assert s.unimplemented == []


def test_uwsgi_options_not_implemented_are_collected_and_refused(read):
    s, _ = read("[uwsgi]\nzerg = /run/zerg.sock\ngevent = 100\n")
    assert s.unimplemented == [("zerg", "app.ini line 2"), ("gevent", "app.ini line 3")]
    with pytest.raises(OptionError) as e:
        config.refuse_unimplemented(s)
    assert str(e.value).startswith("not implemented in uwsgi-py yet")
    assert "--zerg (app.ini line 2), --gevent (app.ini line 3)" in str(e.value)


def test_strict_applies_from_where_it_is_set(read):
    s, _ = read("[uwsgi]\nbase = /srv\nstrict = true\nchdir = %(base)\n")
    assert s.chdir == "/srv"           # base came before strict, as in uWSGI
    with pytest.raises(OptionError, match=r"unknown option 'base' \(app.ini line 3\).*strict"):
        read("[uwsgi]\nstrict\nbase = /srv\n")
    with pytest.raises(OptionError, match="strict mode"):
        read("[uwsgi]\nbase = /srv\n", strict=True)
    s, _ = read("[uwsgi]\nstrict\nset-placeholder = base=%(pp)\nchdir = %(base)\n")
    assert s.chdir == "%(pp)"          # a set-placeholder value is not expanded itself (uWSGI)


def test_show_config_lists_every_item_expanded(read):
    s, _ = read("[uwsgi]\nbase = /srv\nchdir = %(base)\nmaster\n", cli=[("vacuum", True, "command line")])
    assert s.show_config_lines() == [";uWSGI instance configuration", "[uwsgi]", "ini = app.ini",
                                     "base = /srv", "chdir = /srv", "master = ",
                                     "vacuum = true", ";end of configuration"]


def test_toml_strings_get_the_same_expansions(read, tmp_path):
    s, _ = read('[uwsgi]\nbase = "/srv"\nchdir = "%(base)/app"\nenv = ["HOME_IS=$(HOME)", "D=%d"]\n'
                "processes = 3\n", name="app.toml", files=["app.toml"])
    assert s.chdir == "/srv/app" and s.processes == 3
    assert s.env == ["HOME_IS=/home/me", f"D={tmp_path}/"]


def test_math_placeholder_is_uwsgi_manage_placeholder():
    first = {"a": "1", "b": "x"}.get
    assert dialect.math_placeholder("a", first) == "1"
    assert dialect.math_placeholder("nope", first) is None
    assert dialect.math_placeholder("a b + 2", first) == "3"    # "1x" + 2: strtoll reads 1
    assert dialect.c_atoi("  -12abc") == -12 and dialect.c_atoi("x") == 0
