"""The ceiling for a Python server here: accept, read, a canned response, close; nothing else.

Not a server (no parsing, no app, no accounting): ``bench/run.py`` runs it next to the real
ones with ``Connection: close`` to show how much of a request's cost any Python server could
remove. The listener has the options uwsgi-py sets (deferred accept, TCP_NODELAY, TCP_CORK),
two forked workers wait on it with EPOLLEXCLUSIVE, as uwsgi-py's do.

    python3 bare_server.py PORT
"""
import os
import select
import signal
import socket
import sys

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
            b"Connection: close\r\n\r\nHello, World!")


def serve(sock: socket.socket) -> None:
    ep = select.epoll()
    ep.register(sock.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
    while True:
        for _ in ep.poll(-1, 64):
            try:
                fd, _ = sock._accept()
            except BlockingIOError:
                continue
            os.set_blocking(fd, False)
            try:
                os.read(fd, 65536)
                os.write(fd, RESPONSE)
            except OSError:
                pass
            os.close(fd)


def main() -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(sys.argv[1])))
    sock.listen(4096)
    for opt, value in ((socket.TCP_DEFER_ACCEPT, 4), (socket.TCP_NODELAY, 1), (socket.TCP_CORK, 1)):
        sock.setsockopt(socket.IPPROTO_TCP, opt, value)
    sock.setblocking(False)
    for _ in range(2):
        if os.fork() == 0:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            serve(sock)
    signal.signal(signal.SIGINT, lambda *_: os.killpg(0, signal.SIGKILL))
    while True:
        os.wait()


if __name__ == "__main__":
    main()
