"""Pure logic of the options real uWSGI configs use: value converters, byte ranges, dates,
validators, mount selection, virtualenv checks, the autoreload scan."""
from __future__ import annotations

import calendar
import datetime
import os
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uwsgi_py.declared import core_options
from uwsgi_py.options import OptionError, Registry
from uwsgi_py import config
from uwsgi_py_python import autoreload, venv
from uwsgi_py_python.mounts import parse_mount, split_script_name
from uwsgi_py_static import http

pytestmark = pytest.mark.timeout(30)


def settings_from(entries):
    registry = Registry()
    registry.add(*core_options(), group="core")
    return config.build_settings(registry, [("file", entries)])


# ---- converters ------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, value", [("true", 1), ("", 0), ("75", 75), ("0", 0), ("1", 1),
                                        (True, 1), ("off", 0)])
def test_http_keepalive_takes_a_flag_or_a_number(raw, value):
    assert settings_from([("http-keepalive", raw, "app.ini line 3")]).http_keepalive == value


def test_http_keepalive_refuses_other_text_naming_the_source():
    with pytest.raises(OptionError, match=r"--http-keepalive: 'soon' .* \(app.ini line 3\)"):
        settings_from([("http-keepalive", "soon", "app.ini line 3")])


def test_add_header_is_normalised_and_checked():
    s = settings_from([("add-header", "X-Frame-Options:DENY", "f"),
                       ("add-header", "  Cache-Control :  no-store ", "f")])
    assert s.add_header == ["X-Frame-Options: DENY", "Cache-Control: no-store"]
    for bad in ("no colon", ": empty name", "Bad Name: x"):
        with pytest.raises(OptionError, match="--add-header"):
            settings_from([("add-header", bad, "f")])


def test_http_is_repeatable_and_its_timeout_defaults_to_the_routers():
    s = settings_from([("http", ":8080", "f"), ("http", ":8081", "f")])
    assert s.http == [":8080", ":8081"] and s.http_timeout == 60


def test_mount_values():
    assert parse_mount("/app=mod:application") == ("/app", "mod:application")
    assert parse_mount("/=app.py") == ("/", "app.py")
    with pytest.raises(ValueError):
        parse_mount("/app")


# ---- --manage-script-name: longest mountpoint at a / boundary (uWSGI's protocol.c) -----------

@pytest.mark.parametrize("path, expected", [
    ("/app/x", ("/app", "/x")),
    ("/app", ("/app", "")),
    ("/appx", None),                       # not under /app
    ("/app/deep/y", ("/app/deep", "/y")),  # the longest wins
    ("/other/", ("/other", "/")),          # a mountpoint's trailing / is ignored
    ("/", None),
])
def test_split_script_name(path, expected):
    assert split_script_name(path, ["/app", "/app/deep", "/other/"]) == expected


# ---- static files: ranges, dates, validators -------------------------------------------------

@pytest.mark.parametrize("header, result", [
    ("bytes=0-4", (0, 4)),
    ("bytes=5-", (5, 12)),
    ("bytes=-3", (10, 12)),
    ("bytes=-100", (0, 12)),
    ("bytes=3-100", (3, 12)),
    ("bytes=13-", "unsatisfiable"),
    ("bytes=-0", "unsatisfiable"),
    ("bytes=0-1,3-4", None),     # several ranges: the whole file
    ("bytes=4-2", None),
    ("items=0-1", None),
    ("bytes=x-1", None),
    ("bytes=", None),
])
def test_parse_range(header, result):
    assert http.parse_range(header, 13) == result


def test_http_dates_round_trip():
    assert http.http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert http.parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert http.parse_http_date("yesterday") is None


@given(st.datetimes(min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 12, 31)))
def test_http_date_epoch_is_calendar_timegms(when):
    """The static plugin counts days itself (no calendar/datetime import in the server)."""
    text = when.strftime("%a, %d %b ") + f"{when.year:04d}" + when.strftime(" %H:%M:%S GMT")
    assert http.parse_http_date(text) == calendar.timegm(when.timetuple())


def test_etag_matching():
    tag = '"a-b-c"'
    assert http.etag_matches('"a-b-c"', tag)
    assert http.etag_matches('W/"a-b-c"', tag)
    assert http.etag_matches('"x", "a-b-c"', tag)
    assert http.etag_matches("*", tag)
    assert not http.etag_matches('"a-b"', tag)


# ---- virtualenv -------------------------------------------------------------------------------

def _fake_env(root, version: str, with_uwsgi_py: bool = False):
    site = root / "lib" / f"python{version}" / "site-packages"
    site.mkdir(parents=True)
    (root / "bin").mkdir()
    if with_uwsgi_py:
        (site / "uwsgi_py-0.1.0.dist-info").mkdir()
        python = root / "bin" / "python"
        python.write_text("#!/bin/sh\n")
        python.chmod(0o755)
    return site


def test_venv_same_version_goes_on_sys_path(tmp_path):
    ours = f"{sys.version_info[0]}.{sys.version_info[1]}"
    site = _fake_env(tmp_path / "env", ours)
    (site / "extra.pth").write_text(str(tmp_path / "from_pth") + "\n")
    (tmp_path / "from_pth").mkdir()
    env, what = venv.check(str(tmp_path / "env"))
    assert what == "site"
    saved = list(sys.path)
    try:
        added = venv.site_first(env)
        assert sys.path[:len(added)] == added
        assert str(site) in added and str(tmp_path / "from_pth") in added
    finally:
        sys.path[:] = saved


def test_venv_other_version_is_one_clear_line(tmp_path):
    _fake_env(tmp_path / "old", "3.7")
    with pytest.raises(venv.VenvError) as e:
        venv.check(str(tmp_path / "old"))
    ours = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert f"is a Python 3.7 environment and this server runs Python {ours}" in str(e.value)
    assert "\n" not in str(e.value)


def test_venv_with_uwsgi_py_is_exec_target_unless_already_exec(tmp_path):
    _fake_env(tmp_path / "env", "3.7", with_uwsgi_py=True)
    assert venv.check(str(tmp_path / "env"))[1] == "exec"
    with pytest.raises(venv.VenvError):      # after the exec: never again, and 3.7 != ours
        venv.check(str(tmp_path / "env"), exec_ok=False)


def test_venv_missing_or_empty(tmp_path):
    with pytest.raises(venv.VenvError, match="is not a directory"):
        venv.check(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(venv.VenvError, match="not a Python environment"):
        venv.check(str(tmp_path / "empty"))


# ---- py-autoreload ---------------------------------------------------------------------------

def test_autoreload_sees_a_changed_source_once(tmp_path):
    source = tmp_path / "watched_mod.py"
    source.write_text("X = 1\n")
    reloader = autoreload.Reloader(1, extra=(str(source),))
    now = time.monotonic()
    assert reloader.changed(now) is None            # not due yet
    later = now + 1.5
    assert reloader.changed(later) is None          # due, nothing changed
    stamp = os.stat(source).st_mtime + 5
    os.utime(source, (stamp, stamp))
    assert reloader.changed(later) is None          # not due again yet
    assert reloader.changed(later + 1.5) == str(source)
    assert reloader.changed(later + 3.0) is None    # recorded: reported once
