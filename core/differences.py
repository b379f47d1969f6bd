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
    "harakiri-graceful-timeout": "accepted with no effect: a harakiri kills at once",
    "buffer-size": "a head over it gets 431 (414 for the request line alone) and one log line",
}
