"""Run a server, or real uWSGI's config reader, on a corpus config in a throwaway world.

``run(job)`` starts ``unshare --mount --net --pid --fork --kill-child`` on this
file. Inside, as PID 1 of a new PID namespace with its own mount and network
namespaces, it lays a tmpfs over the root filesystem (overlayfs), chroots into
that, mounts /proc and a fresh /tmp, brings loopback up, does the job and prints
one JSON line. Whatever the config does (sockets on :80, files under /var/log,
daemonizing, ``exec-asap`` commands) stays in there: when PID 1 exits the kernel
kills every process left in the namespace, and the overlay goes with it.

Jobs (dicts):
- ``{"job": "start", "server": [argv...], "file": PATH, "dirs": [...], "users": [...],
  "port": N}``: copy the config to /tmp/corpus, create the directories and users it
  needs, start the server there and GET http://127.0.0.1:N/ until it answers the
  corpus app's body or the deadline passes.
- ``{"job": "truth", "file": PATH, "uwsgi": BINARY}``: ask real uWSGI 2.0 about the config without
  serving anything (``uwsgi --strict`` for the keys it does not know, ``--get`` for
  whether its config stage accepts the file and for the values it reads).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

RUN_DIR = "/tmp/corpus"
APP_BODY = b"corpus-ok"
APP = ('def application(environ, start_response):\n'
       '    start_response("200 OK", [("Content-Type", "text/plain")])\n'
       f'    return [{APP_BODY!r}]\n')
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
       "LANG": "C.UTF-8"}
SEPARATOR = "@@uwsgi-py-sep@@"


def uwsgi_binary() -> str | None:
    """The real uWSGI executable (through a pyenv shim if that is what PATH has)."""
    found = os.environ.get("UWSGI_BIN") or shutil.which("uwsgi")
    if found is None:
        return None
    with open(found, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"#!") and b"pyenv" in head:
        done = subprocess.run(["pyenv", "which", "uwsgi"], capture_output=True, text=True)
        return done.stdout.strip() or None
    return found


def available() -> str | None:
    """None when the sandbox can be built here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (mount and network namespaces, overlayfs)"
    for tool in ("unshare", "mount", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = run({"job": "probe"}, timeout=20)
    return None if probe.get("ok") else f"cannot build the sandbox: {probe.get('error')}"


def run(job: dict, timeout: float = 60) -> dict:
    """Run ``job`` in a fresh sandbox; the JSON it prints, or {"error": ...}."""
    argv = ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child",
            sys.executable, os.path.abspath(__file__), "--inner", json.dumps(job)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              start_new_session=True)
    except subprocess.TimeoutExpired:
        return {"error": f"sandbox timed out after {timeout}s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": (done.stderr or done.stdout).strip()[-500:] or f"exit {done.returncode}"}


# ---- inside the sandbox -----------------------------------------------------------

def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


# the checkout this file is in: a clone under /tmp (as a CI run may make) would vanish under the
# sandbox's fresh /tmp, with the configs and the editable uwsgi-py in it, so it is bound back
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _enter() -> None:
    _sh("mount", "--make-rprivate", "/")
    # a handle on the checkout before /tmp is covered: mount follows /proc/self/fd/N to it
    repo = os.open(REPO, os.O_PATH | os.O_DIRECTORY)
    _sh("mount", "-t", "tmpfs", "tmpfs", "/tmp")
    for d in ("upper", "work", "root"):
        os.mkdir(f"/tmp/{d}")
    _sh("mount", "-t", "overlay", "overlay", "-o",
        "lowerdir=/,upperdir=/tmp/upper,workdir=/tmp/work", "/tmp/root")
    _sh("mount", "--rbind", "/dev", "/tmp/root/dev")
    _sh("mount", "-t", "proc", "proc", "/tmp/root/proc")
    _sh("mount", "-t", "tmpfs", "tmpfs", "/tmp/root/tmp")
    if REPO == "/tmp" or REPO.startswith("/tmp/"):
        os.makedirs("/tmp/root" + REPO, exist_ok=True)
        subprocess.run(["mount", "--rbind", f"/proc/self/fd/{repo}", "/tmp/root" + REPO],
                       check=True, capture_output=True, pass_fds=(repo,))
    os.close(repo)
    os.chroot("/tmp/root")
    os.chdir("/")
    _sh("ip", "link", "set", "lo", "up")


def _stage(path: str) -> str:
    os.makedirs(RUN_DIR, exist_ok=True)
    os.chmod(RUN_DIR, 0o777)
    name = os.path.basename(path)
    shutil.copy(path, os.path.join(RUN_DIR, name))
    with open(os.path.join(RUN_DIR, "app.py"), "w") as f:
        f.write(APP)
    return name


def _add_accounts(users: list[str], groups: list[str]) -> None:
    import grp
    import pwd
    for name in groups:
        try:
            grp.getgrnam(name)
        except KeyError:
            with open("/etc/group", "a") as f:
                f.write(f"{name}:x:{_free_id()}:\n")
    for name in users:
        try:
            pwd.getpwnam(name)
        except KeyError:
            uid = _free_id()
            with open("/etc/passwd", "a") as f:
                f.write(f"{name}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin\n")


def _free_id() -> int:
    used = set()
    for path in ("/etc/passwd", "/etc/group"):
        with open(path) as f:
            used |= {int(line.split(":")[2]) for line in f if line.count(":") >= 3}
    return next(i for i in range(20000, 60000) if i not in used)


def _get(port: int) -> tuple[int, bytes]:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _start(job: dict) -> dict:
    name = _stage(job["file"])
    for d in job.get("dirs", ()):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o777)
    _add_accounts(job.get("users", []), job.get("groups", []))
    # a config that drops privileges must still reach the Python under /root (pyenv), as a
    # deployment's system Python is reachable by its service user
    os.chmod("/root", 0o755)
    argv = [a.replace("{FILE}", name) for a in job["server"]]
    log_path = os.path.join(RUN_DIR, "server.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, cwd=RUN_DIR, stdout=log, stderr=subprocess.STDOUT, env=ENV,
                                stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + job.get("deadline", 10)
    status, body, code = None, b"", None
    while time.monotonic() < deadline:
        try:
            status, body = _get(job["port"])
            if status == 200 and body == APP_BODY:
                break
        except OSError:
            pass
        code = proc.poll()
        if code not in (None, 0):     # 0: a daemonizing parent that left
            break
        time.sleep(0.1)
    with open(log_path, errors="replace") as f:
        tail = f.read().splitlines()[-12:]
    return {"served": status == 200 and body == APP_BODY, "status": status,
            "exit": proc.poll(), "log": tail}


def _uwsgi(args: list[str], binary: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([binary, *args], cwd=RUN_DIR, env=ENV, capture_output=True,
                              text=True, errors="replace", timeout=15, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(e.cmd, 124, "", "timed out")


_KEY_LINE = re.compile(r"^\s*([^;#\[=\s][^=]*?)\s*=")


def _truth(job: dict) -> dict:
    name = _stage(job["file"])
    binary = job["uwsgi"]
    path = os.path.join(RUN_DIR, name)
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        original = f.read()
    # 1. the keys uWSGI does not know: --strict stops at the first; comment it out, again
    unknown: list[str] = []
    text = original
    for _ in range(60):
        r = _uwsgi(["--strict", "--ini", name, "--get", "uwsgi-py-probe"], binary)
        m = re.search(r"\[strict-mode\] unknown config directive: (.*)", r.stderr)
        if not m:
            break
        key = m.group(1)
        unknown.append(key)
        lines = text.split("\n")
        hit = [i for i, line in enumerate(lines) if not line.lstrip().startswith((";", "#"))
               and "=" in line and line.split("=", 1)[0].strip() == key
               or line.strip() == key]
        if not hit:
            break
        for i in hit:
            lines[i] = ";" + lines[i]
        text = "\n".join(lines)
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(original)
    # 2. does its config stage accept the file? (users it names are created first)
    for _ in range(10):
        r = _uwsgi(["--ini", name, "--get", "uwsgi-py-probe"], binary)
        m = re.search(r"unable to find (user|group) (\S+)", r.stderr)
        if not m:
            break
        _add_accounts(*(([m.group(2)], []) if m.group(1) == "user" else ([], [m.group(2)])))
    parses = r.returncode == 0
    error = "" if parses else (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
    # 3. the values uWSGI reads for the keys written in the file (first occurrence)
    values: dict[str, str] = {}
    keys = list(dict.fromkeys(m.group(1) for line in original.split("\n")
                              if (m := _KEY_LINE.match(line))))
    if parses and keys:
        # a separator before each value: `print` lines reach stdout too, before the values
        args = ["--set-ph", f"uwsgi-py-sep={SEPARATOR}", "--ini", name]
        for key in keys:
            args += ["--get", "uwsgi-py-sep", "--get", key]
        r = _uwsgi(args, binary)
        parts = r.stdout.split(SEPARATOR + "\n")[1:]
        if r.returncode == 0 and len(parts) == len(keys):
            for key, part in zip(keys, parts):
                if part:
                    values[key] = part[:-1].replace(RUN_DIR, "{DIR}")
    return {"uwsgi_parses": parses, "uwsgi_error": error.replace(RUN_DIR, "{DIR}"),
            "uwsgi_unknown": unknown, "uwsgi_values": values}


def _inner(job: dict) -> dict:
    _enter()
    if job["job"] == "probe":
        return {"ok": True}
    if job["job"] == "start":
        return _start(job)
    return _truth(job)


if __name__ == "__main__" and sys.argv[1:2] == ["--inner"]:
    try:
        result = _inner(json.loads(sys.argv[2]))
    except Exception as e:  # noqa: BLE001 - one JSON line for the caller, whatever went wrong
        result = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result), flush=True)
