"""An app whose atexit handler appends ``atexit PID`` to $ATEXIT_FILE: what an
error-reporting or tracing SDK does to send its last events."""
import atexit
import os
import time


def _goodbye():
    with open(os.environ["ATEXIT_FILE"], "a") as f:
        f.write(f"atexit {os.getpid()}\n")


atexit.register(_goodbye)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/slow/"):
        os.write(2, f"slow-started {path} in {os.getpid()}\n".encode())
        time.sleep(float(path[6:]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
