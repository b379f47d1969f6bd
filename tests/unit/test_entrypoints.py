"""The start-up entry point scan finds what importlib.metadata finds, in the same order."""
from __future__ import annotations

import sys

import pytest

from uwsgi_py import entrypoints


def both(group: str):
    fast = entrypoints._scan(group)
    assert fast is not None, "the scan fell back on a plain sys.path"
    slow = entrypoints._from_metadata(group)
    key = lambda eps: [(e.name, e.value, e.dist_name, e.dist_version) for e in eps]  # noqa: E731
    return key(fast), key(slow)


@pytest.mark.parametrize("group", ["uwsgi_py", "console_scripts", "pytest11"])
def test_installed_groups_match_importlib_metadata(group):
    fast, slow = both(group)
    assert fast == slow


def test_layouts_duplicates_and_comments_match(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    for site in (first, second):
        site.mkdir()

    def dist(site, dirname, meta_name, name, version, text, meta="METADATA"):
        info = site / dirname
        info.mkdir()
        (info / meta).write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nbody\n")
        if text is not None:
            (info / "entry_points.txt").write_text(text)

    dist(first, "My.Plugin-1.0.dist-info", "METADATA", "My.Plugin", "1.0",
         "# comment\n[other]\nx = nope\n\n[grp]\n# another\nalpha = mod_a:obj.attr [extra]\nbeta=mod_b\n")
    dist(second, "my_plugin-2.0.dist-info", "METADATA", "my-plugin", "2.0", "[grp]\nshadowed = mod_c\n")
    dist(second, "eggy.egg-info", "PKG-INFO", "eggy", "0.3", "[grp]\ngamma = mod_d:f\n", meta="PKG-INFO")
    dist(second, "no_points-1.0.dist-info", "METADATA", "no-points", "1.0", None)
    monkeypatch.setattr(sys, "path", [str(first), str(second), str(tmp_path / "missing")])
    fast, slow = both("grp")
    assert fast == slow
    assert [e[0] for e in fast] == ["alpha", "beta", "gamma"]


def test_a_zip_on_sys_path_falls_back(tmp_path, monkeypatch):
    archive = tmp_path / "lib.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    monkeypatch.setattr(sys, "path", [str(archive)])
    assert entrypoints._scan("grp") is None
    assert entrypoints.find("grp") == []


def test_load_resolves_module_and_attribute():
    ep = entrypoints.EntryPoint("x", "os.path:join [extra]", "d", "1")
    import os.path
    assert ep.load() is os.path.join
