"""The 50 ms app of ``slow.py`` after ``import pluggy``: under uWSGI, what importing
uwsgi-py's fixed dependency alone adds to a worker's memory (PSS per worker)."""
import os
import sys

import pluggy  # noqa: F401  imported for its memory, before the fork like any app import

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from slow import application  # noqa: F401
