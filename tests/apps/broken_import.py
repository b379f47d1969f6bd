"""An app whose import fails: a clear error, once, and the exit status (SHUT-5)."""
import this_module_does_not_exist  # noqa: F401


def application(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b""]
