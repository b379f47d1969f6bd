"""An app that takes as long to load as the test wants: its import waits for the file
``go`` in the working directory (at most 60 s), the way a slow import or warm-up would."""
import os
import time

_deadline = time.monotonic() + 60
while not os.path.exists("go") and time.monotonic() < _deadline:
    time.sleep(0.05)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"loaded\n"]
