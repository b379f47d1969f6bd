"""Plugin controls (issue 8): --plugins-list, --plugin, --disable-plugin, load errors.

Extra plugins here are real installed distributions: a ``*.dist-info`` folder
with an ``entry_points.txt`` on ``PYTHONPATH``, which ``importlib.metadata``
finds exactly as it finds a pip-installed package (the pip path itself is
covered by test_external_plugin.py).
"""
from __future__ import annotations

import os
import signal
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from conftest import run_cli, wait_until

pytestmark = pytest.mark.timeout(60)

VERSION = metadata.version("uwsgi-py")


def install_dist(site: Path, dist: str, version: str, entry: str, module: str, code: str) -> dict:
    """Lay out distribution ``dist`` with plugin ``entry`` = module ``module``; return the env."""
    site.mkdir(exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[uwsgi_py]\n{entry} = {module}\n")
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path}


def error_line(result) -> str:
    """The one line a failed start prints; asserts there is nothing else."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("uwsgi-py: error: "), lines[0]
    return lines[0]


# ---- --plugins-list -------------------------------------------------------------------

def test_plugins_list_names_distribution_version_and_hooks():
    result = run_cli("--plugins-list")
    assert result.returncode == 0, result.stderr
    lines = {line.split(" ", 1)[0]: line for line in result.stdout.splitlines()}
    assert lines["python"].startswith(f"python (uwsgi-py {VERSION}): ")
    hooks = lines["python"].split(": ", 1)[1].split(", ")
    assert {"uwsgi_add_options", "uwsgi_load_apps", "uwsgi_post_fork"} <= set(hooks)
    assert lines["touch"].startswith(f"touch (uwsgi-py {VERSION}): ")
    assert {"uwsgi_add_options", "uwsgi_master_tick"} <= set(lines["touch"].split(": ", 1)[1].split(", "))


def test_plugins_list_shows_a_third_party_distribution(tmp_path):
    env = install_dist(tmp_path / "site", "uwsgi-py-listed", "1.2.3", "listed", "listed_plugin", """
        from uwsgi_py import Option, hookimpl

        @hookimpl
        def uwsgi_add_options(registry):
            registry.add(Option("listed-level", "how loud the listed plugin is"))

        @hookimpl
        def uwsgi_master_tick(master):
            pass
    """)
    result = run_cli("--plugins-list", env=env)
    assert result.returncode == 0, result.stderr
    assert "listed (uwsgi-py-listed 1.2.3): uwsgi_add_options, uwsgi_master_tick" \
        in result.stdout.splitlines()
    help_text = run_cli("--help", env=env).stdout
    assert "\nlisted:\n  --listed-level VALUE" in help_text


# ---- --plugin -------------------------------------------------------------------------------

def test_plugin_aliases_are_accepted(server):
    inst = server("--plugin", "python3,rack", "--plugin", "python", "--plugins", "wsgi")
    assert inst.get("/") == b"hello\n"


def test_unknown_plugin_is_one_clear_error():
    result = run_cli("--plugin", "python3,nosuch", "--http-socket", "127.0.0.1:0")
    line = error_line(result)
    assert line.startswith("uwsgi-py: error: --plugin: 'nosuch' is not loaded (loaded: ")
    assert "python" in line


def test_plugin_in_a_config_file_is_checked_too(tmp_path):
    (tmp_path / "app.toml").write_text('[uwsgi]\nplugin = "nosuch"\nhttp-socket = "127.0.0.1:0"\n')
    line = error_line(run_cli("app.toml", cwd=tmp_path))
    assert "--plugin: 'nosuch' is not loaded" in line


# ---- --disable-plugin / UWSGI_PY_DISABLE_PLUGINS ---------------------------------------------

@pytest.mark.parametrize("how", ["cli", "cli=", "env"])
def test_disable_plugin_removes_it(how):
    args, env = [], {}
    if how == "cli":
        args = ["--disable-plugin", "touch"]
    elif how == "cli=":
        args = ["--disable-plugin=stats,touch"]
    else:
        env = {"UWSGI_PY_DISABLE_PLUGINS": "stats, touch"}
    listing = run_cli(*args, "--plugins-list", env=env)
    assert listing.returncode == 0, listing.stderr
    assert f"touch (uwsgi-py {VERSION}): disabled" in listing.stdout.splitlines()
    assert "python (uwsgi-py" in listing.stdout
    help_text = run_cli(*args, "--help", env=env).stdout
    assert "--touch-reload" not in help_text and "--wsgi-file" in help_text
    line = error_line(run_cli(*args, "--touch-reload", "x", "--http-socket", "127.0.0.1:0", env=env))
    assert "unknown option --touch-reload" in line


def test_disable_plugin_accepts_an_alias():
    result = run_cli("--disable-plugin", "python3", "--plugins-list")
    assert f"python (uwsgi-py {VERSION}): disabled" in result.stdout.splitlines()


def test_requiring_a_disabled_plugin_is_an_error():
    line = error_line(run_cli("--disable-plugin", "python", "--plugin", "python3",
                              "--http-socket", "127.0.0.1:0"))
    assert line == ("uwsgi-py: error: --plugin: 'python3' is disabled "
                    "(--disable-plugin or UWSGI_PY_DISABLE_PLUGINS)")


def test_disable_plugin_in_a_config_file_is_refused_not_ignored(tmp_path):
    (tmp_path / "app.toml").write_text('[uwsgi]\ndisable-plugin = "touch"\n')
    line = error_line(run_cli("app.toml", "--http-socket", "127.0.0.1:0", cwd=tmp_path))
    assert "--disable-plugin: 'touch' is already loaded" in line
    assert "UWSGI_PY_DISABLE_PLUGINS" in line


# ---- a plugin that fails to load -----------------------------------------------------------------

def test_plugin_raising_at_import_is_one_line_naming_plugin_and_distribution(tmp_path):
    env = install_dist(tmp_path / "site", "uwsgi-py-exploding", "0.3", "exploding",
                       "exploding_plugin", """
        raise RuntimeError("no frobnicator configured")
    """)
    for args in (["--http-socket", "127.0.0.1:0"], ["--plugins-list"], ["--version"]):
        line = error_line(run_cli(*args, env=env))
        assert line.startswith("uwsgi-py: error: plugin 'exploding' "
                               "(distribution uwsgi-py-exploding 0.3) failed to load: "
                               "RuntimeError: no frobnicator configured (at "), line
        assert "exploding_plugin.py:2)" in line
    # the way out: block it by name
    result = run_cli("--disable-plugin", "exploding", "--plugins-list", env=env)
    assert result.returncode == 0, result.stderr
    assert "exploding (uwsgi-py-exploding 0.3): disabled" in result.stdout.splitlines()


def test_plugin_raising_in_add_options_names_the_plugin(tmp_path):
    env = install_dist(tmp_path / "site", "uwsgi-py-badopts", "2.0", "badopts", "badopts_plugin", """
        from uwsgi_py import hookimpl

        @hookimpl
        def uwsgi_add_options(registry):
            raise KeyError("greeting")
    """)
    line = error_line(run_cli("--http-socket", "127.0.0.1:0", env=env))
    assert line.startswith("uwsgi-py: error: plugin 'badopts' (distribution uwsgi-py-badopts 2.0) "
                           "failed in uwsgi_add_options: KeyError: 'greeting' (at "), line


def test_misspelled_hook_names_the_plugin(tmp_path):
    env = install_dist(tmp_path / "site", "uwsgi-py-typo", "0.1", "typo", "typo_plugin", """
        from uwsgi_py import hookimpl

        @hookimpl
        def uwsgi_master_tik(master):
            pass
    """)
    line = error_line(run_cli("--plugins-list", env=env))
    assert line.startswith("uwsgi-py: error: plugin 'typo' (distribution uwsgi-py-typo 0.1) "
                           "failed to load: PluginValidationError: "), line
    assert "uwsgi_master_tik" in line


def test_two_distributions_claiming_one_plugin_name(tmp_path):
    env = install_dist(tmp_path / "site", "uwsgi-py-impostor", "9.9", "touch", "impostor_plugin", "")
    line = error_line(run_cli("--plugins-list", env=env))
    assert "plugin 'touch' is provided by two distributions" in line
    assert "uwsgi-py-impostor" in line and "uwsgi-py" in line


def test_option_owned_by_two_plugins_names_both(tmp_path):
    env = install_dist(tmp_path / "site", "uwsgi-py-clash", "0.1", "clash", "clash_plugin", """
        from uwsgi_py import Option, hookimpl

        @hookimpl
        def uwsgi_add_options(registry):
            registry.add(Option("touch-reload", "mine"))
    """)
    line = error_line(run_cli("--plugins-list", env=env))
    assert "option --touch-reload is declared twice" in line
    assert "touch" in line and "clash" in line


def test_trace_plugins_env_traces_hook_calls(tmp_path):
    result = run_cli("--http-socket", "127.0.0.1:0", "--wsgi-file", "missing.py", "--need-app",
                     cwd=tmp_path, env={"UWSGI_PY_TRACE_PLUGINS": "1"})
    assert result.returncode == 22, result.stderr
    assert "uwsgi_configure" in result.stderr and "uwsgi_load_apps" in result.stderr


# ---- the guide's examples run as written -----------------------------------------------------

def guide_example(section: str) -> str:
    """The first python block after the ``## {section}`` heading of docs/plugins.md."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
    after = text.split(f"\n## {section}\n", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_quick_start_example_runs(server, tmp_path):
    env = install_dist(tmp_path / "site", "uwsgi-py-greeter", "1.0.0", "greeter", "uwsgi_py_greeter",
                       guide_example("Quick start"))
    inst = server("--master", "--greeter-text", "Howdy", env=env)
    inst.wait_log("greeter: Howdy (pid ")
    assert "greeter (uwsgi-py-greeter 1.0.0): uwsgi_add_options, uwsgi_master_actions, " \
           "uwsgi_master_event" in run_cli("--plugins-list", env=env).stdout


def test_control_channel_example_runs(server, tmp_path):
    env = install_dist(tmp_path / "site", "uwsgi-py-channel", "1.0", "channel", "channel_plugin",
                       guide_example("A control channel"))
    fifo = tmp_path / "hello.fifo"
    inst = server("--master", "--hello-fifo", str(fifo), env=env)
    wait_until(fifo.exists, 10, what="the plugin's FIFO")
    with open(fifo, "wb") as f:
        f.write(b"h\n")
    inst.wait_log("hello from the master")
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
    assert not fifo.exists()


def test_request_handler_example_runs(server, tmp_path):
    env = install_dist(tmp_path / "site", "uwsgi-py-handler", "1.0", "handler", "handler_plugin",
                       guide_example("A request handler"))
    inst = server("--http-socket-modifier1", "42", "--hello-app", "demo", app=False, env=env)
    status, body = inst.request("/x", method="POST", body=b"abcd")
    assert (status, body) == (200, b"hello from demo: /x (4 bytes in)\n")
