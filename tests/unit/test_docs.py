"""Every hook and every option is documented (STYLE §2, §7; issue 8).

- each hookspec docstring says when it runs, in which process, what it returns,
  whether the first result wins, and what it must never do;
- docs/plugins.md has a section with an example for each hook, and names no hook
  that does not exist;
- every option of the full registry (core + every loaded plugin) has help text,
  and docs/options.md is exactly what scripts/gen_options_doc.py generates.
"""
from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

import pluggy
import pytest

from uwsgi_py import cli, hookspecs, plugins

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]
PLUGINS_MD = ROOT / "docs" / "plugins.md"
OPTIONS_MD = ROOT / "docs" / "options.md"
GENERATOR = ROOT / "scripts" / "gen_options_doc.py"


def _specs() -> dict[str, pluggy.HookspecOpts]:
    pm = pluggy.PluginManager(plugins.GROUP)
    pm.add_hookspecs(hookspecs)
    return {name: caller.spec for name, caller in vars(pm.hook).items()
            if isinstance(caller, pluggy.HookCaller) and caller.spec is not None}


SPECS = _specs()


def test_hookspecs_are_found():
    assert len(SPECS) >= 10
    assert all(name.startswith("uwsgi_") for name in SPECS)


# ---- hookspec docstrings ----------------------------------------------------------------------

PROCESS = re.compile(r"\b(CLI process|master|worker)\b")
WHEN = re.compile(r"\b(runs|called)\b", re.I)
RETURNS = re.compile(r"\breturns?\b", re.I)
NEVER = re.compile(r"\b(never|must not)\b", re.I)
FIRST_WINS = "first non-None result wins"
ALL_RUN = "every implementation runs"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hookspec_docstring_is_complete(name):
    spec = SPECS[name]
    doc = inspect.getdoc(spec.function)
    assert doc, f"{name} has no docstring"
    flat = " ".join(doc.split())
    assert len(flat) >= 120, f"{name}: docstring too thin: {flat!r}"
    assert WHEN.search(flat), f"{name}: does not say when it runs ('Runs ...' / 'Called ...')"
    assert PROCESS.search(flat), f"{name}: does not name the process (CLI process, master, worker)"
    assert RETURNS.search(flat), f"{name}: does not say what it returns"
    assert NEVER.search(flat), f"{name}: does not say what it must never do"
    if spec.opts.get("firstresult"):
        assert FIRST_WINS in flat, f"{name} is firstresult: its docstring must say {FIRST_WINS!r}"
    else:
        assert ALL_RUN in flat.lower(), f"{name}: must say {ALL_RUN!r} (it is not firstresult)"
        assert FIRST_WINS not in flat, f"{name} is not firstresult but claims the first result wins"


def test_hookspec_signatures_are_typed_for_docs():
    for name, spec in SPECS.items():
        for param in inspect.signature(spec.function).parameters.values():
            assert param.annotation is not inspect.Parameter.empty, f"{name}({param.name}) has no type"


# ---- docs/plugins.md ---------------------------------------------------------------------------

def _sections(text: str) -> dict[str, str]:
    """``### `uwsgi_x(...)` `` heading -> its text up to the next heading."""
    out = {}
    parts = re.split(r"^(#{2,4} .*)$", text, flags=re.M)
    for heading, body in zip(parts[1::2], parts[2::2]):
        match = re.match(r"#{2,4} `(uwsgi_\w+)", heading)
        if match:
            out[match.group(1)] = body
    return out


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_hook_has_a_section_with_an_example(name):
    sections = _sections(PLUGINS_MD.read_text())
    assert name in sections, f"docs/plugins.md has no '### `{name}(...)`' section"
    body = sections[name]
    assert "```python" in body, f"docs/plugins.md: the {name} section has no example"
    assert f"def {name}(" in body, f"docs/plugins.md: the {name} example does not implement it"
    assert "@hookimpl" in body


def test_plugins_md_names_only_existing_hooks():
    text = PLUGINS_MD.read_text()
    named = set(re.findall(r"\b(uwsgi_(?:[a-z]+_)*[a-z]+)\(", text))
    unknown = {n for n in named if n not in SPECS}
    assert not unknown, f"docs/plugins.md calls hooks that do not exist: {sorted(unknown)}"


def test_plugins_md_covers_the_guide_topics():
    text = PLUGINS_MD.read_text()
    for needle in ("[project.entry-points.uwsgi_py]", "--plugins-list", "--disable-plugin",
                   "UWSGI_PY_DISABLE_PLUGINS", "--plugin", "master.request(", "Watch(",
                   "modifier1", "uwsgi_adopt_sockets", "uwsgi_launch", "Compatibility",
                   "firstresult", "scripts/gen_options_doc.py"):
        assert needle in text, f"docs/plugins.md does not mention {needle}"


# ---- options -----------------------------------------------------------------------------------

def _generator():
    spec = importlib.util.spec_from_file_location("gen_options_doc", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_option_has_help_text():
    pm = plugins.build(set())
    registry = cli.build_registry(pm)
    missing = [f"--{opt.name} ({opt.group})" for opt in registry if not (opt.help or "").strip()]
    assert not missing, f"options without help text: {missing}"


def test_options_md_is_the_generated_reference():
    generated = _generator().render()
    assert OPTIONS_MD.exists(), "docs/options.md is missing: run python scripts/gen_options_doc.py"
    assert OPTIONS_MD.read_text() == generated, \
        "docs/options.md is stale: run python scripts/gen_options_doc.py and commit it"


def test_every_builtin_option_is_in_the_reference():
    gen = _generator()
    pm, registry = gen.build()
    dists = pm._uwsgi_dists
    text = OPTIONS_MD.read_text()
    for opt in registry:
        if opt.group != "core" and dists.get(opt.group, ("",))[0] != gen.DISTRIBUTION:
            continue  # a third-party plugin installed here; it documents its own options
        assert f"| `--{opt.name}`" in text, f"--{opt.name} is missing from docs/options.md"
        for alias in opt.aliases:
            assert f"`--{alias}`" in text, f"alias --{alias} is missing from docs/options.md"


def test_man_page_is_the_generated_one():
    spec = importlib.util.spec_from_file_location("gen_man", ROOT / "scripts" / "gen_man.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = ROOT / "docs" / "uwsgi-py.1"
    assert page.read_text() == module.render(), \
        "docs/uwsgi-py.1 is stale: run python scripts/gen_man.py and commit it"
    for opt in cli.build_registry(plugins.build(set())):
        if opt.group == "core":
            assert f"\\fB\\-\\-{opt.name.replace('-', chr(92) + '-')}\\fR" in page.read_text()


def test_every_documented_difference_names_a_uwsgi_option_we_accept():
    """docs/options.md's "uWSGI 2.0" column: a difference is noted only for an option uWSGI
    has and uwsgi-py accepts (declared, or in the no-effect table)."""
    from uwsgi_py import compat
    from uwsgi_py.differences import DIFFERS
    from uwsgi_py.uwsgi_names import NAMES
    registry = cli.build_registry(plugins.build())
    for name in DIFFERS:
        assert name in NAMES, f"{name} is not a uWSGI 2.0 option"
        assert name in registry.names or name in compat.NO_EFFECT, f"{name} is not accepted here"
    text = (ROOT / "docs" / "options.md").read_text()
    for name in DIFFERS:
        if name in registry.names:
            assert f"differs: {DIFFERS[name][:30]}" in text, name
