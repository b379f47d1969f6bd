"""The option registry and config sources: precedence, repeats, uwsgi.opt shape, errors."""
import signal

import pytest

from uwsgi_py import config, plugins
from uwsgi_py.cli import build_registry, cli_entries, parse_cli, parse_here
from uwsgi_py.declared import core_options
from uwsgi_py.options import Option, OptionError, Registry
from uwsgi_py.signals import master_table

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def registry():
    return build_registry(plugins.build())


def settings_from(registry, *layers):
    return config.build_settings(registry, list(layers))


def test_defaults(registry):
    s = settings_from(registry)
    assert s.processes == 1
    assert s.master is False
    assert s.http_socket == []
    assert s.worker_reload_mercy == 60
    assert s.buffer_size == 4096


def test_precedence_file_env_cli(registry):
    s = settings_from(
        registry,
        ("cli", [("processes", "4", "command line")]),
        ("file", [("processes", 2, "app.toml")]),
        ("env", [("processes", "3", "environment UWSGI_PROCESSES")]),
    )
    assert s.processes == 4
    assert s.origins["processes"] == "command line"
    s = settings_from(registry, ("file", [("processes", 2, "app.toml")]),
                      ("env", [("processes", "3", "environment UWSGI_PROCESSES")]))
    assert s.processes == 3
    s = settings_from(registry, ("file", [("processes", 2, "app.toml")]))
    assert s.processes == 2


def test_repeated_options_accumulate_in_source_order(registry):
    s = settings_from(
        registry,
        ("cli", [("env", "C=3", "command line")]),
        ("file", [("env", "A=1", "a.ini"), ("env", "B=2", "a.ini")]),
    )
    assert s.env == ["A=1", "B=2", "C=3"]
    assert s.opt_dict()["env"] == [b"A=1", b"B=2", b"C=3"]


def test_uwsgi_opt_shape(registry):
    s = settings_from(registry, ("cli", [
        ("master", True, "command line"), ("processes", "2", "command line"),
        ("http-socket", ":9090", "command line"), ("vacuum", True, "command line")]))
    opt = s.opt_dict()
    assert opt["master"] is True
    assert opt["vacuum"] is True
    assert opt["processes"] == b"2"
    assert opt["http-socket"] == [b":9090"]


def test_alias_and_underscore_spelling(registry):
    s = settings_from(registry, ("file", [("workers", "3", "x.ini"), ("http_socket", ":1", "x.ini")]))
    assert s.processes == 3
    assert s.http_socket == [":1"]
    assert "workers" in s.opt_dict()


def test_bad_value_names_option_value_and_origin(registry):
    with pytest.raises(OptionError) as e:
        settings_from(registry, ("file", [("processes", "four", "app.toml")]))
    assert str(e.value) == "--processes: 'four' is not a positive integer (app.toml)"


def test_unknown_key_warns_with_closest_and_goes_on(registry):
    s = settings_from(registry, ("file", [("procesess", "2", "app.ini line 3")]))
    assert s.notes == ["uwsgi-py: warning: unknown option 'procesess' (app.ini line 3); "
                       "did you mean --processes?"]
    assert s.processes == 1
    assert s.opt_dict()["procesess"] == b"2"       # a placeholder, as uWSGI keeps it


def test_unknown_key_is_fatal_in_strict_mode(registry):
    with pytest.raises(OptionError) as e:
        config.build_settings(registry, [("file", [("procesess", "2", "app.ini line 3")])],
                              strict=True)
    assert str(e.value) == ("unknown option 'procesess' (app.ini line 3); did you mean "
                            "--processes? (strict mode)")


def test_flag_values_in_files(registry):
    s = settings_from(registry, ("file", [("master", "true", "a.ini"), ("vacuum", "0", "a.ini")]))
    assert s.master is True and s.vacuum is False
    s = settings_from(registry, ("file", [("master", "maybe", "a.ini line 4")]))
    assert s.master is True          # uWSGI: anything but false/off/no/0 is true
    assert s.notes == ["uwsgi-py: warning: --master: 'maybe' is read as True: uWSGI reads any "
                       "value but false/off/no/0 as true (a.ini line 4)"]


def test_master_only_options_imply_master(registry):
    s = settings_from(registry, ("cli", [("touch-reload", "/tmp/x", "command line")]))
    assert s.master is True


def test_declaring_an_option_twice_names_both_owners():
    reg = Registry()
    reg.add(Option("foo", "a"), group="one")
    with pytest.raises(OptionError) as e:
        reg.add(Option("bar", "b", aliases=("foo",)), group="two")
    assert "declared twice: by one and by two" in str(e.value)


def test_core_options_have_help():
    for opt in core_options():
        assert opt.help, opt.name


def test_ini_parser(tmp_path):
    p = tmp_path / "a.ini"
    p.write_text("[other]\nprocesses = 9\n[uwsgi]\n; comment\n# comment\nenv = A=1\nenv = B=2\nmaster\n"
                 "processes = 2\n")
    entries = list(config.parse_ini(str(p)))
    assert [(k, v) for k, v, _ in entries] == [("env", "A=1"), ("env", "B=2"), ("master", ""),
                                               ("processes", "2")]
    assert entries[0][2] == "a.ini line 6"


def test_toml_parser_arrays_and_errors(tmp_path):
    p = tmp_path / "a.toml"
    p.write_text('[uwsgi]\nhttp-socket = [":1", ":2"]\nmaster = true\nprocesses = 2\n')
    assert list(config.parse_toml(str(p))) == [
        ("http-socket", ":1", "a.toml"), ("http-socket", ":2", "a.toml"),
        ("master", True, "a.toml"), ("processes", 2, "a.toml")]
    p.write_text("[uwsgi\n")
    with pytest.raises(OptionError, match="invalid TOML"):
        list(config.parse_toml(str(p)))
    p.write_text("[other]\nx = 1\n")
    with pytest.raises(OptionError, match=r"no \[uwsgi\] table"):
        list(config.parse_toml(str(p)))


def test_env_entries_skip_internal_variables(registry):
    env = {"UWSGI_PROCESSES": "2", "UWSGI_RELOADS": "3", "UWSGI_PY_FDS": "[]", "PATH": "/bin",
           "UWSGI_HTTP_SOCKET": ":1"}
    names = sorted(n for n, _, _ in config.env_entries(registry, env))
    assert names == ["http-socket", "processes"]


@pytest.mark.parametrize("parse", [parse_cli, parse_here], ids=["argv", "click"])
def test_cli_parsing_short_flags_and_unknown(registry, parse):
    parsed = parse(registry, ["-M", "-p", "3", "--workers", "4", "-s", ":1", "--env", "A=1",
                              "--env", "B=2", "x.ini"])
    entries = cli_entries(parsed, registry)
    assert ("master", True, "command line") in entries
    assert ("socket", ":1", "command line") in entries
    assert [v for n, v, _ in entries if n == "env"] == ["A=1", "B=2"]
    assert [v for n, v, _ in entries if n == "processes"] == ["4"]   # the last one given
    assert parsed.meta["config_files"] == ["x.ini"] and parsed.meta["help"] is False
    with pytest.raises(OptionError) as e:
        parse(registry, ["--procesess", "2"])
    assert str(e.value) == "unknown option --procesess (command line); did you mean --processes?"
    with pytest.raises(OptionError) as e:
        parse(registry, ["--processes"])
    assert str(e.value) == "Option '--processes' requires an argument. (command line)"


def test_signal_table_and_die_on_term():
    table = master_table(False)
    assert table[signal.SIGHUP] == "graceful_reload"
    assert table[signal.SIGTERM] == "brutal_reload"
    assert table[signal.SIGINT] == table[signal.SIGQUIT] == "immediate_shutdown"
    assert table[signal.SIGUSR1] == "stats"
    assert table[signal.SIGUSR2] == "worker_status"
    assert table[signal.SIGTSTP] == "toggle_pause"
    swapped = master_table(True)
    assert swapped[signal.SIGTERM] == "immediate_shutdown"
    assert swapped[signal.SIGQUIT] == "brutal_reload"


def test_every_signal_action_exists():
    from uwsgi_py.actions import BUILTIN
    for name in master_table(False).values():
        assert name in BUILTIN


# ---- the command line's own options and aliases (issue 17) -----------------------------------

def test_the_command_lines_own_options_are_in_the_registry(registry):
    own = [opt.name for opt in registry if opt.cli_only]
    assert own == ["help", "version", "plugins-list", "ini", "toml"]
    assert registry.get("help").short == "h"
    parsed = parse_here(registry, ["-h", "--ini", "a.ini", "--toml", "b.toml", "--ini", "c.ini:x"])
    assert parsed.meta["help"] is True
    assert parsed.meta["ini"] == ["a.ini", "c.ini:x"] and parsed.meta["toml"] == ["b.toml"]
    assert cli_entries(parsed, registry) == []        # never settings: cli.run acts on them


def test_the_command_lines_own_names_in_a_file_are_what_they_were(registry):
    """``help``/``version`` are uWSGI options not implemented here; ``toml`` is no uWSGI option."""
    settings = settings_from(registry, ("file", [("toml", "x", "a.ini line 1")]))
    assert settings.placeholders == {"toml": ["x"]} and not hasattr(settings, "toml")
    settings = settings_from(registry, ("file", [("version", "1", "a.ini line 2")]))
    assert settings.unimplemented == [("version", "a.ini line 2")]


@pytest.mark.parametrize("flag", ["--pause", "--suspend", "--resume"])
def test_pause_suspend_and_resume_are_one_option(registry, flag):
    opt = registry.get(flag[2:])
    assert opt.name == "pause" and opt.immediate is not None
    assert parse_here(registry, [flag, "x.pid"]).given == {"pause": "x.pid"}
