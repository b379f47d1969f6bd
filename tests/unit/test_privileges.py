"""--uid/--gid resolution and the non-root rules of privileges.drop (MASTER-2 step 4)."""
from types import SimpleNamespace

import pytest

from uwsgi_py import privileges
from uwsgi_py.options import OptionError

pytestmark = pytest.mark.timeout(10)


def settings(uid=None, gid=None):
    return SimpleNamespace(uid=uid, gid=gid)


def test_names_and_numbers_resolve():
    assert privileges.user("nobody") == (65534, "nobody")
    assert privileges.user("65534") == (65534, "nobody")
    assert privileges.user("4242")[0] == 4242
    assert privileges.group("nogroup") == 65534 and privileges.group("42") == 42
    assert privileges.owner("nobody:nogroup") == (65534, 65534)
    assert privileges.owner(":nogroup") == (-1, 65534)
    assert privileges.owner("nobody") == (65534, -1)


@pytest.mark.parametrize("call,arg,text", [
    (privileges.user, "no-such-user-here", "--uid: user 'no-such-user-here' not found"),
    (privileges.group, "no-such-group-here", "--gid: group 'no-such-group-here' not found"),
])
def test_unknown_names_are_errors(call, arg, text):
    with pytest.raises(OptionError, match=text):
        call(arg)


def test_without_root_only_the_current_ids_are_accepted(monkeypatch):
    monkeypatch.setattr(privileges.os, "getuid", lambda: 1000)
    monkeypatch.setattr(privileges.os, "getgid", lambda: 1000)
    calls = []
    for name in ("setuid", "setgid", "setgroups", "initgroups"):
        monkeypatch.setattr(privileges.os, name, lambda *a, n=name: calls.append(n))
    assert privileges.drop(settings(uid="1000", gid="1000")) is False   # an exec reload
    with pytest.raises(OptionError, match="cannot setuid"):
        privileges.drop(settings(uid="65534"))
    with pytest.raises(OptionError, match="cannot setgid"):
        privileges.drop(settings(gid="65534"))
    assert calls == []


def test_nothing_asked_nothing_done(monkeypatch):
    monkeypatch.setattr(privileges.os, "getuid", lambda: 1000)
    assert privileges.drop(settings()) is False
