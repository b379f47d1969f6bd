"""``--hook-master-start unix_signal:N ACTION``: parsing, the table it rewires, its errors."""
import signal

import pytest

from uwsgi_py import config, plugins
from uwsgi_py.actions import BUILTIN
from uwsgi_py.cli import build_registry
from uwsgi_py.options import OptionError
from uwsgi_py.signals import UWSGI_ACTIONS, check_hooks, master_table, parse_hook

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("value, expected", [
    ("unix_signal:15 gracefully_kill_them_all", (signal.SIGTERM, "graceful_shutdown")),
    ("unix_signal:15 kill_them_all", (signal.SIGTERM, "immediate_shutdown")),
    ("unix_signal:1 reload", (signal.SIGHUP, "graceful_reload")),
    ("unix_signal:1 grace_them_all", (signal.SIGHUP, "graceful_reload")),
    ("unix_signal:3 brutally_reload", (signal.SIGQUIT, "brutal_reload")),
    ("unix_signal:3 reap_them_all", (signal.SIGQUIT, "brutal_reload")),
    ("unix_signal:TERM graceful_shutdown", (signal.SIGTERM, "graceful_shutdown")),
    ("  unix_signal:SIGWINCH   stats ", (signal.SIGWINCH, "stats")),
])
def test_parse_hook(value, expected):
    assert parse_hook(value) == expected


@pytest.mark.parametrize("value, why", [
    ("exec:touch /tmp/x", "only 'unix_signal:SIGNUM ACTION' hooks are"),
    ("mount:proc none /proc", "only 'unix_signal:SIGNUM ACTION' hooks are"),
    ("unix_signal:15", "is not 'unix_signal:SIGNUM ACTION'"),
    ("unix_signal:15 a b", "is not 'unix_signal:SIGNUM ACTION'"),
    ("unix_signal:NOPE reload", "has no signal 'NOPE'"),
    ("unix_signal:0 reload", "has no signal '0'"),
    ("unix_signal:9 reload", "SIGKILL"),
    ("unix_signal:17 reload", "SIGCHLD"),
])
def test_bad_hooks_say_why(value, why):
    with pytest.raises(ValueError, match=why):
        parse_hook(value)


def test_every_uwsgi_name_is_an_action():
    assert set(UWSGI_ACTIONS.values()) <= set(BUILTIN)


def test_hooks_rewire_the_table_after_die_on_term():
    table = master_table(False, ["unix_signal:15 gracefully_kill_them_all"])
    assert table[signal.SIGTERM] == "graceful_shutdown"
    assert table[signal.SIGHUP] == "graceful_reload"          # the rest is the default table
    swapped = master_table(True, ["unix_signal:15 gracefully_kill_them_all"])
    assert swapped[signal.SIGTERM] == "graceful_shutdown"     # the hook wins over the swap
    assert swapped[signal.SIGQUIT] == "brutal_reload"
    extra = master_table(False, ["unix_signal:SIGRTMIN stats"])
    assert extra[signal.SIGRTMIN] == "stats"


def settings_with(*hooks):
    registry = build_registry(plugins.build())
    return config.build_settings(registry, [("cli", [("hook-master-start", h, "command line")
                                                     for h in hooks])])


def test_option_errors_name_option_value_and_origin():
    with pytest.raises(OptionError) as err:
        settings_with("exec:/bin/true")
    assert str(err.value).startswith("--hook-master-start: 'exec:/bin/true' is not supported")
    assert str(err.value).endswith("(command line)")
    settings = settings_with("unix_signal:15 no_such_action")
    with pytest.raises(OptionError, match=r"names no master action 'no_such_action'.*\(command line\)"):
        check_hooks(settings, BUILTIN)
    check_hooks(settings_with("unix_signal:15 gracefully_kill_them_all", "unix_signal:10 stats"), BUILTIN)
    assert settings_with("unix_signal:15 reload").hook_master_start == ["unix_signal:15 reload"]
