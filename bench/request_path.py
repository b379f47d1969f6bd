#!/usr/bin/env python3
"""The cost of one Connection: close request inside a worker, without wrk or a second process.

    python3 bench/request_path.py            # microseconds per request: worker, minimal, bare
    python3 bench/request_path.py --opcodes  # bytecodes the worker executes per request, by function

A client socket and the worker's own ``accept()`` run in one process: connect, send wrk's request,
call the handler, read the answer. Three handlers, same listener (TCP_CORK and TCP_NODELAY set as
the server sets them):

- ``worker``: uwsgi-py's ``Loop.accept`` (serving.py) serving bench/apps/hello.py, everything included
- ``minimal``: accept, read, parse, environ, the app, response head, shutdown, close; nothing else
- ``bare``: accept, read, a canned response, close: the syscalls alone

Times are the best of several batches (the machine is shared); the opcode count is exact. Run it
with the interpreter that has uwsgi-py installed (``bench/.venv/bin/python`` after a bench run).
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import os
import socket
import sys
import time
from pathlib import Path

HELLO = Path(__file__).resolve().parent / "apps" / "hello.py"
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nConnection: close\r\n\r\n"
CANNED = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
          b"Connection: close\r\n\r\nHello, World!")


def build_worker():
    """A Worker set up as ``Worker.serve`` does, on a listener bound by ``Server``."""
    from uwsgi_py import cli, handoff, plugins
    from uwsgi_py.scoreboard import Scoreboard, WorkerSlot
    from uwsgi_py.server import Server
    from uwsgi_py.workers import Worker

    argv = ["--http-socket", "127.0.0.1:0", "--disable-logging", "--wsgi-file", str(HELLO)]
    pm = plugins.build(set())
    registry = cli.build_registry(pm)
    settings = cli.load_settings(registry, cli.parse_here(registry, argv), {})
    server = Server(settings, pm.hook, handoff.take(), os.getcwd(), guard=plugins.HookGuard(pm))
    server.setup_sockets()
    server.scoreboard = Scoreboard(1)
    server.load_apps()
    w = Worker(server, 1, -1, -1)
    w.pid = os.getpid()
    w.slot = WorkerSlot(server.scoreboard, 1)
    for app in server.apps:
        w.apps.setdefault(app.modifier1, app)
    # what Worker.serve does before the loop runs (no pipes to watch here)
    w.dispatcher.start(w.pid, w.slot, [], server.hook.uwsgi_request_logger(worker=w))
    w.loop.start(w.pid, w.slot)
    return w, server.listeners[0], server.apps[0].base


def handlers(worker, base):
    from uwsgi_py.body import NO_BODY
    from uwsgi_py.conn import _shutdown_wr
    from uwsgi_py.proto import parse_http

    spec = importlib.util.spec_from_file_location("hello", HELLO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = module.application

    def minimal(lst):
        fd, addr = lst.sock._accept()
        os.set_blocking(fd, False)
        head = parse_http(os.read(fd, 65536), 4096, "8080", addr[0])
        env = head.vars
        env.update(base)
        env["wsgi.input"] = NO_BODY
        state = []

        def start_response(status, headers, exc_info=None):
            state[:] = (status, headers)

        body = b"".join(app(env, start_response))
        status, headers = state
        lines = "".join([f"{n}: {v}\r\n" for n, v in headers])
        os.write(fd, f"HTTP/1.1 {status}\r\n{lines}Connection: close\r\n\r\n".encode("latin-1") + body)
        _shutdown_wr(fd)
        os.close(fd)

    def bare(lst):
        fd, _ = lst.sock._accept()
        os.set_blocking(fd, False)
        os.read(fd, 65536)
        os.write(fd, CANNED)
        os.close(fd)

    return {"worker": worker.loop.accept, "minimal": minimal, "bare": bare}


def one(handler, lst, addr) -> float:
    c = socket.create_connection(addr)
    c.sendall(REQUEST)
    t0 = time.perf_counter()
    handler(lst)
    spent = time.perf_counter() - t0
    answer = c.recv(4096)
    c.close()
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"Hello, World!"), answer
    return spent


def opcodes(handler, lst, addr) -> collections.Counter:
    counts: collections.Counter = collections.Counter()

    def tracer(frame, event, arg):
        frame.f_trace_opcodes = True
        if event == "opcode":
            counts[f"{frame.f_code.co_name} ({Path(frame.f_code.co_filename).name})"] += 1
        return tracer

    c = socket.create_connection(addr)
    c.sendall(REQUEST)
    sys.settrace(tracer)
    try:
        handler(lst)
    finally:
        sys.settrace(None)
    c.recv(4096)
    c.close()
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--opcodes", action="store_true", help="count bytecodes instead of timing")
    ap.add_argument("--requests", type=int, default=5000, help="requests per batch")
    ap.add_argument("--batches", type=int, default=6)
    args = ap.parse_args()
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(2)
    os.dup2(devnull, 2)              # the server's start-up log lines
    try:
        worker, lst, base = build_worker()
    finally:
        os.dup2(saved, 2)
    addr = lst.sock.getsockname()
    for name, handler in handlers(worker, base).items():
        for _ in range(500):         # warm up: header and name caches, the kernel's
            one(handler, lst, addr)
        if args.opcodes:
            counts = opcodes(handler, lst, addr)
            print(f"{name}: {sum(counts.values())} bytecodes per request")
            for where, n in counts.most_common(12 if name == "worker" else 0):
                print(f"  {n:5d}  {where}")
            continue
        best = min(sum(one(handler, lst, addr) for _ in range(args.requests))
                   for _ in range(args.batches))
        print(f"{name}: {best / args.requests * 1e6:.1f} us per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
