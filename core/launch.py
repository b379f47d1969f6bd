"""The plugin API of launch modes (docs/plugins.md, "A launch mode"): serving on sockets
someone else opened (inetd's fd 0, systemd's fds) and carrying on in a forked process.

- ``adopt_listener``: an inherited listening fd as a socket the core serves, for
  ``uwsgi_adopt_sockets``; the core keeps it across exec reloads;
- ``write_pidfile``: a pidfile written as the core writes ``--pidfile``;
- ``daemonized``: the instance now runs in this (forked) process: its pid is the
  master's, and the pidfiles say so.
"""
from __future__ import annotations

import os

from . import pidfile, sockets


def adopt_listener(fd: int, proto: str, activated: bool = False):
    """A listener for ``fd`` if it is a listening stream socket, else None. ``proto`` is
    ``http`` or ``uwsgi`` (``settings.protocol`` for uWSGI's default); ``activated``: the
    fd came from socket activation (the start-up line says "attached", not "inherited").
    Return it from ``uwsgi_adopt_sockets``; read its ``fd``, ``name`` (the bound address)
    and ``unix_path`` (a unix socket's file, else None). A listener bound where a
    configured socket would bind becomes that socket; the others are served in addition."""
    listener = sockets.adopt("extra", f"fd://{fd}", proto, fd)
    if listener is None:
        return None
    listener.name = listener.address()
    if activated:
        listener.extra["activated"] = True
    return listener


def write_pidfile(path: str, option: str = "pidfile") -> None:
    """Log ``writing pidfile to PATH`` and write this process's pid there atomically; an
    ``OptionError`` naming ``--option`` and the path if it cannot be written."""
    pidfile.write_for(option, path)


def daemonized(server) -> None:
    """A launch hook forked and this process carries on as the instance (its parent
    exited): with a master, this process is it now (workers and ``Instance.master_pid``
    see its pid), and ``--pidfile``/``--pidfile2`` are written again with its pid."""
    if server.master_pid:
        server.master_pid = os.getpid()
    for option, path in (("pidfile", server.settings.pidfile),
                         ("pidfile2", server.settings.pidfile2)):
        if path:
            write_pidfile(path, option)
