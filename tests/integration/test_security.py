"""Security defaults (issue 10, point 5; docs/hardening.md).

- unix sockets are created 0600 whatever the umask, unless --chmod-socket; --chown-socket;
- a symlink planted at a unix socket path is refused, never followed;
- pidfiles never follow a planted symlink (PID-4: temp file + rename);
- --uid/--gid drop privileges as uWSGI does (MASTER-2 step 4): --pidfile written before the
  drop (PID-1, owned by root), --pidfile2 right after it (PID-2) and the safe pidfiles once
  the workers run (PID-3), both owned by the new user; --master-as-root drops in the workers.

The master FIFO (0600, planted symlink replaced: tests/integration/test_fifo.py) and the
stats socket (0600: tests/integration/test_stats.py) are tested with their plugins.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile

import pytest

from conftest import APPS, run_cli, wait_until
from launch_helpers import get_unix

pytestmark = pytest.mark.timeout(60)

NOBODY = 65534


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# ---- unix sockets -------------------------------------------------------------------------------

def test_unix_sockets_are_0600_by_default_even_with_umask_000(server, tmp_path):
    path = tmp_path / "app.sock"
    inst = server("--master", "--socket", str(path), "--protocol", "http", "--umask", "000",
                  http=False)
    wait_until(lambda: path.exists(), 10, what="the socket")
    assert mode(path) == 0o600
    assert get_unix(str(path)) == (200, b"hello\n")
    assert inst.proc.poll() is None


def test_chmod_socket_widens_the_mode_on_request(server, tmp_path):
    path = tmp_path / "app.sock"
    server("--master", "--socket", str(path), "--protocol", "http", "--chmod-socket", "666",
           http=False)
    wait_until(lambda: path.exists(), 10, what="the socket")
    assert mode(path) == 0o666


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_chown_socket_gives_the_socket_to_the_front_end_user(server, tmp_path):
    path = tmp_path / "app.sock"
    server("--master", "--socket", str(path), "--protocol", "http", "--chmod-socket", "660",
           "--chown-socket", "nobody:nogroup", http=False)
    wait_until(lambda: path.exists(), 10, what="the socket")
    st = os.lstat(path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o660)


def test_a_symlink_planted_at_the_socket_path_is_refused_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "app.sock"
    link.symlink_to(victim)
    res = run_cli("--socket", str(link), "--wsgi-file", str(APPS / "app.py"), cwd=tmp_path)
    assert res.returncode == 1
    assert f"bind(): Address already in use ({link})" in res.stdout + res.stderr
    assert victim.read_text() == "precious\n" and link.is_symlink()


# ---- pidfiles ------------------------------------------------------------------------------------

def test_pidfiles_replace_a_planted_symlink_instead_of_following_it(server, tmp_path):
    victims = {}
    links = {}
    for name in ("pidfile", "pidfile2", "safe-pidfile"):
        victims[name] = tmp_path / f"victim-{name}"
        victims[name].write_text("precious\n")
        links[name] = tmp_path / f"{name}.pid"
        links[name].symlink_to(victims[name])
    inst = server("--master", *(a for n in links for a in (f"--{n}", str(links[n]))))
    inst.wait_log(f"writing pidfile to {links['safe-pidfile']}")
    for name, link in links.items():
        assert not link.is_symlink() and link.read_text() == f"{inst.pid}\n", name
        assert victims[name].read_text() == "precious\n", name
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]   # no temp left


# ---- --uid / --gid --------------------------------------------------------------------------------

def ids(pid: int) -> tuple[int, int, list[int]]:
    """(real uid, real gid, supplementary groups) from /proc/PID/status."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return int(fields["Uid"][0]), int(fields["Gid"][0]), [int(g) for g in fields["Groups"]]


@pytest.fixture
def shared_dir():
    """A directory nobody can read (the app) with a ``run`` subdirectory it owns."""
    path = tempfile.mkdtemp(prefix="uwsgi-py-uid-", dir="/tmp")
    os.chmod(path, 0o755)
    run = os.path.join(path, "run")
    os.mkdir(run)
    os.chown(run, NOBODY, NOBODY)
    shutil.copy(APPS / "app.py", os.path.join(path, "app.py"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_uid_gid_drop_before_binding_and_pidfile_ownership(server, shared_dir):
    from pathlib import Path
    run = Path(shared_dir) / "run"
    inst = server("--master", "-p", "2", "--uid", "nobody", "--gid", "nogroup",
                  "--pidfile", f"{shared_dir}/app.pid", "--pidfile2", f"{run}/app2.pid",
                  "--safe-pidfile", f"{run}/safe.pid", cwd=Path(shared_dir))
    inst.wait_log(f"writing pidfile to {run}/safe.pid")
    log = inst.log()
    assert "dropped privileges: uid 65534 (nobody), gid 65534 (nogroup), groups [65534]" in log
    # MASTER-2: pidfile, drop, pidfile2, then bind
    order = [log.index(f"writing pidfile to {shared_dir}/app.pid"), log.index("dropped privileges"),
             log.index(f"writing pidfile to {run}/app2.pid"), log.index("bound to TCP address")]
    assert order == sorted(order)
    assert ids(inst.pid) == (NOBODY, NOBODY, [NOBODY])
    workers = inst.wait_workers(2)
    for pid in workers:
        assert ids(pid) == (NOBODY, NOBODY, [NOBODY])
    assert inst.get("/pid")
    owners = {name: (os.stat(p).st_uid, os.stat(p).st_gid) for name, p in
              (("pidfile", f"{shared_dir}/app.pid"), ("pidfile2", f"{run}/app2.pid"),
               ("safe-pidfile", f"{run}/safe.pid"))}
    assert owners == {"pidfile": (0, 0), "pidfile2": (NOBODY, NOBODY),
                      "safe-pidfile": (NOBODY, NOBODY)}


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_stats_server_after_dropping_privileges(server, shared_dir):
    """The stats plugin loads its modules (and the stdlib ones they need) before the drop: after
    it, an interpreter installed under a directory only root can read could not import them."""
    from pathlib import Path

    from test_stats import stats
    path = f"{shared_dir}/run/stats.sock"
    inst = server("--master", "-p", "1", "--uid", "nobody", "--gid", "nogroup", "--stats", path,
                  cwd=Path(shared_dir))
    assert inst.get("/pid")
    doc = stats(path)
    assert doc["uid"] == NOBODY and [w["status"] for w in doc["workers"]] == ["idle"]


PDEATHSIG_APP = """
import ctypes

def application(env, start_response):
    value = ctypes.c_int(-1)
    ctypes.CDLL(None).prctl(2, ctypes.byref(value), 0, 0, 0)   # PR_GET_PDEATHSIG
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d" % value.value]
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_workers_have_their_parent_death_signal_after_dropping_privileges(server, shared_dir):
    """privileges.drop() imports ctypes (PR_SET_PDEATHSIG) before dropping: after it, an
    interpreter under a directory only root can read could not import it, and a worker would
    not learn of a killed master from the kernel."""
    from pathlib import Path
    Path(shared_dir, "pds.py").write_text(PDEATHSIG_APP)
    inst = server("--master", "-p", "1", "--uid", "nobody", "--gid", "nogroup",
                  "--wsgi-file", "pds.py", app=False, cwd=Path(shared_dir))
    inst.wait_log("spawned uWSGI worker")
    assert inst.request("/") == (200, b"15")        # SIGTERM (SIGKILL with --no-orphans)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_master_as_root_drops_only_in_the_workers(server, shared_dir):
    from pathlib import Path
    inst = server("--master", "-p", "2", "--uid", "65534", "--gid", "65534", "--master-as-root",
                  cwd=Path(shared_dir))
    assert inst.get("/pid")
    assert ids(inst.pid)[0] == 0
    for pid in inst.wait_workers(2):         # each drops right after its fork
        wait_until(lambda: ids(pid) == (NOBODY, NOBODY, [NOBODY]), 10, what=f"worker {pid} drop")
    assert inst.log().count("dropped privileges: uid 65534 (nobody), gid 65534 (nogroup)") == 2


def test_unknown_user_is_a_clear_error(tmp_path):
    res = run_cli("--http-socket", "127.0.0.1:0", "--wsgi-file", str(APPS / "app.py"),
                  "--uid", "no-such-user-here", cwd=tmp_path)
    assert res.returncode == 1
    assert "--uid: user 'no-such-user-here' not found" in res.stdout + res.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_chown_socket_binds_as_root_then_drops(server, shared_dir):
    from pathlib import Path
    sock = f"{shared_dir}/run/app.sock"
    inst = server("--master", "--socket", sock, "--protocol", "http", "--chown-socket",
                  "nobody:nogroup", "--uid", "nobody", "--gid", "nogroup",
                  "--pidfile2", f"{shared_dir}/run/app2.pid", http=False, cwd=Path(shared_dir))
    log = inst.wait_log("spawned uWSGI worker")
    assert log.index("bound to UNIX address") < log.index("dropped privileges") \
        < log.index("writing pidfile to")
    st = os.lstat(sock)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o600)
    assert ids(inst.pid)[:2] == (NOBODY, NOBODY)
    assert os.stat(f"{shared_dir}/run/app2.pid").st_uid == NOBODY
    assert get_unix(sock) == (200, b"hello\n")
