"""An app that kills the process loading it (with --lazy-apps: every worker, at boot)."""
import os

os._exit(3)


def application(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b""]
