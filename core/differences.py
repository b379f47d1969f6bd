"""How options that uWSGI 2.0 also has differ here (docs/options.md's "uWSGI 2.0" column).

An option of uWSGI's name that is not in this table means what uWSGI's does; an option
uWSGI does not have is uwsgi-py's own. A test keeps every key a declared uWSGI option.
"""
from __future__ import annotations

DIFFERS: dict[str, str] = {
    "listen": "defaults to the kernel's somaxconn (uWSGI: 100)",
    "chmod-socket": "without it unix sockets are 0600 whatever the umask (uWSGI follows the umask)",
    "socket-timeout": "bounds a whole slow transfer (with --socket-min-bytes), not each system call",
    "http": "no router process: the workers serve the address themselves, with keep-alive",
    "http-keepalive": "also a flag for --http-socket; a number is the idle wait, as for uWSGI's router",
    "http-timeout": "the idle keep-alive wait on --http sockets (there is no router to time)",
    "reload": "refuses a garbage or recycled pid; waits for the outcome and exits 2 if it was refused",
    "stop": "refuses a garbage or recycled pid instead of signalling the caller's process group",
    "pause": "refuses a garbage or recycled pid instead of signalling the caller's process group",
    "static-map": "a path stays under its root by directory, not by string prefix; ETag and ranges "
                  "always on",
    "log-format": "%(size), %(hsize) and %(headers) count the Content-Length and Connection headers "
                  "uwsgi-py adds",
    "log-ioerror": "logs a request with a read or a write error (a client gone mid-response); "
                   "uWSGI 2.0 needs both",
    "log-sendfile": "also a flag without a value (uWSGI requires one and ignores it)",
    "log-date": "--log-prefix is one of its names, as in uWSGI 2.0 (its text goes through "
                "strftime, then ' - ')",
    "harakiri-graceful-timeout": "accepted with no effect: a harakiri kills at once",
    "buffer-size": "a head over it gets 431 (414 for the request line alone) and one log line",
}
