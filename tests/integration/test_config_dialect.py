"""The real server started from configs in uWSGI's dialect (README "Options and config files")."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli

pytestmark = pytest.mark.timeout(60)

DIALECT_INI = """\
[uwsgi]
; a placeholder, the usual way to share a path
base = %d
chdir = %(base)
procs = %k
processes = %(procs / procs + 1)
max-requests = 1000 ; recycle now and then
print = config read from %n.%e
if-env = APP_MODE=demo
env = MODE=%(_)
endif =
ini = :extra
show-config = true
thunder-lock = true
procesess = 9

[extra]
env = X=from-extra
"""


def test_a_config_in_uwsgis_dialect_starts_and_serves(server, tmp_path):
    (tmp_path / "app.ini").write_text(DIALECT_INI)
    inst = server("--ini", "app.ini", env={"APP_MODE": "demo"})
    info = json.loads(inst.get("/info"))
    assert info["numproc"] == 2 and info["env_x"] == "from-extra"
    opt = info["opt"]
    assert opt["base"] == f"{tmp_path}/" and opt["procesess"] == "9"     # placeholders, as uWSGI
    assert opt["max-requests"] == "1000" and opt["env"] == ["MODE=demo", "X=from-extra"]
    log = inst.log()
    assert "config read from app.ini" in log
    assert ("uwsgi-py: warning: unknown option 'procesess' (app.ini line 15); "
            "did you mean --processes?") in log
    assert "uwsgi-py: info: --thunder-lock has no effect in uwsgi-py" in log
    assert ";uWSGI instance configuration" in log and f"chdir = {tmp_path}/" in log
    assert log.index(";end of configuration") < log.index("*** Starting uwsgi-py")


def test_uwsgi_ini_names_the_config_file(server, tmp_path):
    (tmp_path / "env.ini").write_text("[uwsgi]\nprocesses = 2\nenv = X=%n\n")
    inst = server(env={"UWSGI_INI": str(tmp_path / "env.ini")})
    info = json.loads(inst.get("/info"))
    assert info["numproc"] == 2 and info["env_x"] == "env"


@pytest.mark.parametrize("content,args,expected", [
    ("[uwsgi]\nstrict = true\nbase = /srv\n", [],
     "uwsgi-py: error: unknown option 'base' (app.ini line 3) (strict mode)"),
    ("[uwsgi]\nbase = /srv\n", ["--strict"],
     "uwsgi-py: error: unknown option 'base' (app.ini line 2) (strict mode)"),
    ("[uwsgi]\nzerg = /run/zerg.sock\ngevent = 100\nzerg = /run/more.sock\n", [],
     "uwsgi-py: error: not implemented in uwsgi-py yet, and it would change how the app is "
     "served: --zerg (app.ini line 2), --gevent (app.ini line 3); remove it or run uWSGI"),
])
def test_refused_configs_exit_1_with_one_line(tmp_path, content, args, expected):
    (tmp_path / "app.ini").write_text(content)
    r = run_cli("--http-socket", "127.0.0.1:0", *args, "app.ini", cwd=tmp_path)
    assert r.returncode == 1
    assert [line for line in r.stderr.splitlines() if line.strip()] == [expected]


def test_values_uwsgi_reads_differently_than_written_warn(tmp_path):
    # zerg (not implemented) stops the start right after the warnings are logged
    (tmp_path / "app.ini").write_text("[uwsgi]\nstrict = true\nprocesses = 4 workers\n"
                                      "module = app:app  # the app\nzerg = /x\n")
    r = run_cli("--http-socket", "127.0.0.1:0", "app.ini", cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[:2] == [
        "uwsgi-py: warning: --processes: '4 workers' is read as 4: uWSGI reads the leading "
        "number and ignores 'workers' (app.ini line 3)",
        "uwsgi-py: warning: --module: 'app:app  # the app': uWSGI does not strip comments "
        "after a value, the whole text is the value (app.ini line 4)"]
    assert lines[2].startswith("uwsgi-py: error: not implemented in uwsgi-py yet")
