"""An app calling the ``uwsgi`` signal API directly (no decorators).

Effects are lines in $SIGNALS_OUT/events.log, as in signals_app.py.
"""
import os
import time

import uwsgi

OUT = os.environ["SIGNALS_OUT"]


def record(event, detail=""):
    line = (f"{event} {time.time():.3f} pid={os.getpid()} wid={uwsgi.worker_id()} "
            f"mule={uwsgi.mule_id()} {detail}\n")
    fd = os.open(os.path.join(OUT, "events.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def handler(num):
    record(f"sig{num}", num)


def broken(num):
    raise RuntimeError("a broken signal handler")


for num, target in ((20, "workers"), (21, "worker"), (22, ""), (23, "worker"), (30, "worker2"),
                    (31, "active-workers"), (32, "mule1"), (34, "worker"), (35, "workers")):
    uwsgi.register_signal(num, target, handler)
uwsgi.register_signal(36, "worker", broken)
uwsgi.add_rb_timer(34, 1, 2)          # fires twice, then never again
uwsgi.signal(23)                      # raised while the master imports the app

refused = []
for target in ("spooler", "farm1", "bogus"):
    try:
        uwsgi.register_signal(40, target, handler)
    except ValueError as e:
        refused.append(f"{target}:{e}")
try:
    uwsgi.register_signal(30, "workers", handler)   # the master cannot re-register
except ValueError as e:
    refused.append(f"again:{e}")
record("refused", "|".join(refused))


def application(env, start_response):
    path = env["PATH_INFO"]
    body = b"ok"
    if path.startswith("/raise/"):
        uwsgi.signal(int(path.rsplit("/", 1)[1]))
    elif path == "/wait":
        uwsgi.signal_wait(35)
        body = str(uwsgi.signal_received()).encode()
    elif path == "/locks":
        uwsgi.lock(1)
        held = uwsgi.is_locked(1)
        uwsgi.unlock(1)
        try:
            uwsgi.lock(2)
            bad = "no error"
        except ValueError as e:
            bad = str(e)
        body = f"{held} {uwsgi.is_locked(1)} {bad}".encode()
    elif path.startswith("/msg/"):
        body = str(uwsgi.mule_msg(b"ping", int(path.rsplit("/", 1)[1]))).encode()
    elif path == "/procname":
        uwsgi.setprocname("uwsgi-py-named")
        with open("/proc/self/comm") as f:
            body = f.read().strip().encode()
    elif path == "/registered":
        body = f"{uwsgi.signal_registered(20)} {uwsgi.signal_registered(99)}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
