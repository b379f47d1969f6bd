"""--udp-control ADDR: a UDP control channel for the master that survives reloads.

Datagrams: ``ping`` is counted; ``count`` logs the count; ``reload`` asks for a
graceful reload. The socket is opened once, on the first start, and handed to
every next image with the public handoff (``uwsgi_handoff_give``/``_take``), with
the count: datagrams sent while the master execs wait in the socket's buffer, and
none is lost. Built only on the public plugin API.
"""
import socket

from uwsgi_py import MasterView, Option, Watch, hookimpl, log_line

LISTENING = "udp-control: listening on {host}:{port} (generation {generation})"
COUNT = "udp-control: pings={pings} generation={generation}"
# this image's socket and count: one master image per process
CHANNEL = {"sock": None, "pings": 0}


@hookimpl
def uwsgi_add_options(registry):
    registry.add(Option("udp-control", "a UDP control channel on HOST:PORT (port 0: any)",
                        master=True, metavar="ADDR"))


@hookimpl
def uwsgi_handoff_take(server, state, fds):
    if "sock" in fds:
        CHANNEL["sock"] = socket.socket(fileno=fds["sock"])
        CHANNEL["pings"] = int(state.get("pings", 0))


@hookimpl
def uwsgi_master_watch(master):
    address = master.settings.udp_control
    if not address:
        return None
    sock = CHANNEL["sock"]
    if sock is None:                       # first start: open it here, the master owns it
        host, _, port = address.rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host or "127.0.0.1", int(port)))
        CHANNEL["sock"] = sock
    sock.setblocking(False)
    view = MasterView(master)
    host, port = sock.getsockname()
    log_line(LISTENING.format(host=host, port=port, generation=view.generation))

    def readable():
        while True:
            try:
                data = sock.recv(512)
            except BlockingIOError:
                return
            command = data.strip()
            if command == b"ping":
                CHANNEL["pings"] += 1
            elif command == b"count":
                log_line(COUNT.format(pings=CHANNEL["pings"], generation=view.generation))
            elif command == b"reload":
                view.request("graceful_reload")

    return [Watch(sock.fileno(), readable)]


@hookimpl
def uwsgi_master_cleanup(master, reason):
    sock = CHANNEL["sock"]
    if sock is None:
        return
    master.unwatch(sock.fileno())
    if reason == "exit":
        sock.close()
        CHANNEL["sock"] = None


@hookimpl
def uwsgi_handoff_give(master):
    sock = CHANNEL["sock"]
    if sock is None:
        return None
    # pings that arrived after the last callback are still in the buffer: the next image reads them
    return {"state": {"pings": CHANNEL["pings"]}, "fds": {"sock": sock.fileno()}}
