"""The recipes in examples/: run the supervisors that exist here, check the others' syntax.

Every run test follows the same story: the supervisor starts uwsgi-py from the
recipe, a request is served, a reload through the supervisor's own command (or
the signal it sends) keeps the master pid and replaces the workers, and a stop
leaves no process behind.
"""
from __future__ import annotations

import os
import plistlib
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import xml.dom.minidom

import pytest

from conftest import Instance, children_of, pid_alive, require_tool, wait_until
from launch_helpers import (EXAMPLES, RECIPE_ADDRESS, RECIPE_LOG, RECIPE_PIDFILE, get, port_from_log,  # noqa: F401
                            reaper, recipe_values, render, spawn, uwsgi_py_script, wait_file_text, wait_gone)

pytestmark = pytest.mark.timeout(120)

RECIPES = ["systemd/uwsgi-py.service", "systemd/uwsgi-py.socket", "upstart/uwsgi-py.conf",
           "launchd/org.example.uwsgi-py.plist", "smf/uwsgi-py.xml", "init.d/uwsgi-py",
           "supervisor/uwsgi-py.conf", "daemontools/run", "daemontools/log/run", "inetd/inetd.conf",
           "xinetd/uwsgi-py", "docker/Dockerfile", "docker/uwsgi.toml", "kubernetes/deployment.yaml"]
AUTO_PORT = "127.0.0.1:0"


def test_every_recipe_exists_and_is_documented():
    doc = (EXAMPLES.parent / "docs" / "launch.md").read_text()
    for recipe in RECIPES:
        assert (EXAMPLES / recipe).is_file(), recipe
        assert f"examples/{recipe}" in doc, f"docs/launch.md does not mention {recipe}"


def reload_keeps_master(master: int, logfile, reload) -> None:
    """Run RELOAD (the supervisor's command); the same master must come back with new workers."""
    workers = children_of(master)
    count = logfile.read_text().count("reload outcome:")
    reload()
    wait_until(lambda: logfile.read_text().count("reload outcome:") > count, 20,
               what="the reload to complete")
    assert pid_alive(master)
    wait_until(lambda: len(children_of(master)) == len(workers)
               and set(children_of(master)).isdisjoint(workers), 15, what="new workers")


# ---- Supervisor --------------------------------------------------------------------------

def test_supervisord(tmp_path, reaper):
    pytest.importorskip("supervisor")
    logfile = tmp_path / "app.log"
    program = render("supervisor/uwsgi-py.conf", tmp_path / "program.conf", recipe_values(
        tmp_path, **{RECIPE_ADDRESS: AUTO_PORT, RECIPE_LOG: str(logfile), "--processes 4": "--processes 2"}))
    conf = tmp_path / "supervisord.conf"
    conf.write_text(f"""[supervisord]
logfile={tmp_path}/supervisord.log
pidfile={tmp_path}/supervisord.pid
childlogdir={tmp_path}
[unix_http_server]
file={tmp_path}/supervisor.sock
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{tmp_path}/supervisor.sock
[include]
files={program}
""")
    reaper.proc(spawn([sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(conf)],
                      tmp_path / "supervisord.out"))

    def ctl(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", str(conf), *args],
                                capture_output=True, text=True, timeout=30)
        return result.stdout.strip()

    text = wait_file_text(logfile, "spawned uWSGI worker 2", timeout=30)
    wait_until(lambda: "RUNNING" in ctl("status", "uwsgi-py"), 15, what="Supervisor to report RUNNING")
    master = reaper.pid(int(ctl("pid", "uwsgi-py")))
    assert get(port_from_log(text)) == (200, b"hello\n")

    reload_keeps_master(master, logfile, lambda: ctl("signal", "HUP", "uwsgi-py"))
    assert int(ctl("pid", "uwsgi-py")) == master and "RUNNING" in ctl("status", "uwsgi-py")
    assert get(port_from_log(text)) == (200, b"hello\n")

    workers = children_of(master)
    assert "stopped" in ctl("stop", "uwsgi-py")
    wait_gone([master, *workers])
    assert "goodbye to uWSGI." in logfile.read_text()
    ctl("shutdown")


# ---- daemontools (and runit: same run script) -----------------------------------------------

def test_daemontools_supervise(tmp_path, reaper):
    supervise = require_tool("supervise")
    svc, svstat = require_tool("svc"), require_tool("svstat")
    service = tmp_path / "service"
    service.mkdir()
    render("daemontools/run", service / "run", recipe_values(
        tmp_path, **{RECIPE_ADDRESS: AUTO_PORT, "--processes 4": "--processes 2"}))
    logfile = tmp_path / "supervise.log"        # the run script's output (multilog's input)
    reaper.proc(spawn([supervise, str(service)], logfile))

    def status() -> str:
        return subprocess.run([svstat, str(service)], capture_output=True, text=True, timeout=10).stdout

    text = wait_file_text(logfile, "spawned uWSGI worker 2", timeout=30)
    master = reaper.pid(int(re.search(r"up \(pid (\d+)\)", status()).group(1)))
    port = port_from_log(text)
    assert get(port) == (200, b"hello\n")

    reload_keeps_master(master, logfile, lambda: subprocess.run([svc, "-h", str(service)], check=True))
    assert f"(pid {master})" in status()
    assert get(port) == (200, b"hello\n")

    workers = children_of(master)
    subprocess.run([svc, "-d", str(service)], check=True)     # SIGTERM: --die-on-term stops it
    wait_gone([master, *workers])
    wait_until(lambda: "down" in status(), 10, what="svstat to report down")
    assert "goodbye to uWSGI." in logfile.read_text()
    subprocess.run([svc, "-x", str(service)], check=True)


# ---- init.d (daemonize + pidfile) ----------------------------------------------------------------

def test_initd_script(tmp_path, reaper):
    values = recipe_values(tmp_path)
    script = EXAMPLES / "init.d" / "uwsgi-py"
    pidfile, logfile = tmp_path / "run" / "app.pid", tmp_path / "log" / "app.log"
    env = {**os.environ, "DAEMON": values["/usr/local/bin/uwsgi-py"], "APPDIR": values["/srv/app"],
           "PIDFILE": str(pidfile), "LOGFILE": str(logfile),
           "ARGS": f"--master --processes 2 --http-socket {AUTO_PORT} --wsgi-file app.py"}

    def initd(action: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", str(script), action], env=env, capture_output=True, text=True,
                              timeout=60, start_new_session=True)

    assert initd("start").returncode == 0
    text = wait_file_text(logfile, "spawned uWSGI worker 2")
    master = reaper.pid(int(pidfile.read_text()))
    assert initd("status").returncode == 0
    port = port_from_log(text)
    assert get(port) == (200, b"hello\n")
    reload_keeps_master(master, logfile, lambda: initd("reload"))
    assert get(port) == (200, b"hello\n")
    workers = children_of(master)
    assert initd("stop").returncode == 0
    wait_gone([master, *workers])
    assert initd("status").returncode == 3


# ---- recipes for systems that do not run here: syntax, and their commands where they can run -------

def test_systemd_units_verify(tmp_path):
    analyze = require_tool("systemd-analyze")
    units = [render("systemd/uwsgi-py.service", tmp_path / "uwsgi-py.service",
                    {"/usr/local/bin/uwsgi-py": uwsgi_py_script()}),
             render("systemd/uwsgi-py.socket", tmp_path / "uwsgi-py.socket", {})]
    result = subprocess.run([analyze, "verify", "--man=no", *map(str, units)], capture_output=True, text=True,
                            timeout=60)
    problems = [line for line in result.stderr.splitlines() if "uwsgi-py." in line]
    assert result.returncode == 0 and problems == [], result.stderr
    service = (EXAMPLES / "systemd" / "uwsgi-py.service").read_text()
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM", "KillMode=mixed"):
        assert line in service
    socket_unit = (EXAMPLES / "systemd" / "uwsgi-py.socket").read_text()
    assert f"ListenStream={RECIPE_ADDRESS}" in socket_unit and f"--http-socket {RECIPE_ADDRESS}" in service


def test_systemd_unit_stops_gracefully(tmp_path, reaper):
    """systemd is not PID 1 here: run the unit's ExecStart and send its KillSignal to the main
    PID, as `systemctl stop` does with KillMode=mixed: the in-flight request is answered,
    new connections are refused at once, the master exits 0."""
    service = render("systemd/uwsgi-py.service", tmp_path / "uwsgi-py.service",
                     recipe_values(tmp_path, **{RECIPE_ADDRESS: AUTO_PORT, "--processes 4": "--processes 2"}))
    unit = dict(line.split("=", 1) for line in service.read_text().splitlines()
                if "=" in line and not line.startswith("#"))
    assert unit["KillMode"] == "mixed" and float(unit["TimeoutStopSec"]) > 60   # > the mercy
    logfile = tmp_path / "service.log"
    inst = reaper.instance(Instance(spawn(shlex.split(unit["ExecStart"]), logfile), logfile, tmp_path))
    inst.port = port_from_log(inst.wait_log("spawned uWSGI worker 2"))
    inst.wait_serving()
    slow = {}

    def request():
        slow["reply"] = get(inst.port, "/slow/2")
    client = threading.Thread(target=request, daemon=True)
    client.start()
    wait_until(lambda: "slow-started" in inst.log(), 10, what="the slow request")
    inst.signal(getattr(signal, unit["KillSignal"]))
    wait_until(lambda: refused(inst.port), 10, what="connects to be refused")
    client.join(20)
    assert slow["reply"][0] == 200
    assert inst.wait_exit() == 0
    assert "graceful shutdown triggered..." in inst.log()


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_launchd_plist(tmp_path, reaper):
    """Valid plist; launchd stops a job with SIGTERM, which must stop (not reload) it."""
    with open(EXAMPLES / "launchd" / "org.example.uwsgi-py.plist", "rb") as f:
        plist = plistlib.load(f)
    assert plist["Label"] == "org.example.uwsgi-py" and plist["KeepAlive"] is True
    args = plist["ProgramArguments"]
    assert args[0] == "/usr/local/bin/uwsgi-py" and "--die-on-term" in args
    values = recipe_values(tmp_path, **{RECIPE_ADDRESS: AUTO_PORT, "4": "1"})
    argv = [values.get(a, a) for a in args]
    logfile = tmp_path / "launchd.log"
    inst = reaper.instance(Instance(spawn(argv, logfile), logfile, tmp_path))
    inst.wait_log("spawned uWSGI worker 1")
    inst.signal(signal.SIGTERM)
    assert inst.wait_exit() == 0


def test_smf_manifest_and_its_methods(tmp_path, reaper):
    """Well-formed XML (no SMF DTD here), and the start/refresh/stop methods work as written."""
    dom = xml.dom.minidom.parse(str(EXAMPLES / "smf" / "uwsgi-py.xml"))
    methods = {m.getAttribute("name"): m.getAttribute("exec") for m in dom.getElementsByTagName("exec_method")}
    assert set(methods) == {"start", "refresh", "stop"}
    logfile, pidfile = tmp_path / "app.log", tmp_path / "app.pid"
    values = recipe_values(tmp_path, **{RECIPE_ADDRESS: AUTO_PORT, "--processes 4": "--processes 2",
                                        RECIPE_LOG: str(logfile), RECIPE_PIDFILE: str(pidfile)})

    def run(method: str) -> None:
        command = methods[method]
        for old, new in values.items():
            command = command.replace(old, new)
        subprocess.run(shlex.split(command), check=True, timeout=30, start_new_session=True,
                       cwd=values["/srv/app"], capture_output=True)

    run("start")
    text = wait_file_text(logfile, "spawned uWSGI worker 2")
    master = reaper.pid(int(pidfile.read_text()))
    assert get(port_from_log(text)) == (200, b"hello\n")
    reload_keeps_master(master, logfile, lambda: run("refresh"))
    workers = children_of(master)
    run("stop")
    wait_gone([master, *workers])


def test_upstart_job():
    """No checker exists without Upstart: check the stanzas the docs rely on."""
    stanzas = {}
    for line in (EXAMPLES / "upstart" / "uwsgi-py.conf").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            stanzas.setdefault(key, []).append(value)
    assert stanzas["kill"] == ["signal INT", "timeout 70"]
    assert stanzas["reload"] == ["signal HUP"]
    assert "expect" not in stanzas                      # uwsgi-py stays in the foreground
    assert stanzas["exec"][0].startswith("/usr/local/bin/uwsgi-py ") and "--daemonize" not in stanzas["exec"][0]


def test_shell_recipes_parse():
    for script in ("init.d/uwsgi-py", "daemontools/run", "daemontools/log/run"):
        result = subprocess.run(["sh", "-n", str(EXAMPLES / script)], capture_output=True, text=True)
        assert result.returncode == 0, (script, result.stderr)
        assert os.access(EXAMPLES / script, os.X_OK), script
