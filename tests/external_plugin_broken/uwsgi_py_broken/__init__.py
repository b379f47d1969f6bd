"""A plugin whose import fails, as a plugin with a missing setting or dependency would."""
from uwsgi_py import hookimpl  # noqa: F401

raise RuntimeError("hello-broken needs HELLO_BROKEN_TOKEN to be set")
