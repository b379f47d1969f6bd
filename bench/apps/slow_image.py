"""The 50 ms app of ``slow.py`` after importing what uwsgi-py's master holds when it forks
(pluggy, the core, every installed plugin, registered, and the option registry): under
uWSGI, the worker memory (PSS per worker) of uwsgi-py's image with uWSGI's C worker loop."""
import os
import sys

from uwsgi_py import cli, plugins

MANAGER = plugins.build()
REGISTRY = cli.build_registry(MANAGER)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from slow import application  # noqa: E402,F401
