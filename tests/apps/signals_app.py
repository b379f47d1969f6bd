"""A WSGI app written for uWSGI: the real ``uwsgidecorators`` module, unmodified.

Every effect is one line appended to $SIGNALS_OUT/events.log:
``<event> <time> pid=<pid> wid=<worker id> mule=<mule id> <detail>``.
"""
import os
import time

import uwsgi
from uwsgidecorators import cron, filemon, lock, mulefunc, postfork, signal, thread, timer

OUT = os.environ["SIGNALS_OUT"]
WATCHED = os.path.join(OUT, "watched")


def record(event, detail=""):
    line = (f"{event} {time.time():.3f} pid={os.getpid()} wid={uwsgi.worker_id()} "
            f"mule={uwsgi.mule_id()} {detail}\n")
    fd = os.open(os.path.join(OUT, "events.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@postfork
def reconnect():
    record("postfork")


@timer(1)
def every_second(num):
    record("timer", num)


@cron(-1, -1, -1, -1, -1)
def every_minute(num):
    record("cron", num)


@filemon(WATCHED)
def watched_changed(num):
    record("filemon", num)


@signal(17, target="workers")
def broadcast(num):
    record("signal17", num)


@signal(18, target="mules")
def to_mules(num):
    record("signal18", num)


@lock
def critical_section():
    # a second holder would find the marker: O_EXCL fails
    marker = os.path.join(OUT, "held")
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        record("lock-violated")
        return
    os.close(fd)
    time.sleep(0.05)
    os.unlink(marker)
    record("locked")


@mulefunc
def in_background(text):
    record("mulefunc", text)


@thread
def in_thread(text):
    record("thread", text)


def application(env, start_response):
    path = env["PATH_INFO"]
    if path == "/raise":
        uwsgi.signal(17)
    elif path == "/raise-mules":
        uwsgi.signal(18)
    elif path == "/mule":
        in_background("hello")
    elif path == "/thread":
        in_thread("t")
    elif path == "/lock":
        critical_section()
    body = f"{uwsgi.worker_id()} {os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
