"""Whether this interpreter runs the request path compiled (README, "Compiled request path").

``UWSGI_PY_COMPILE=1`` at install time (setup.py) compiles the request path's modules with
mypyc, each into an extension module beside its .py; Python imports the extension first,
and the .py when there is none built for this interpreter.
"""
from __future__ import annotations

import os
from importlib.machinery import EXTENSION_SUFFIXES

SHARED = "hotpath__mypyc"   # the compiled modules' common library (setup.py's group_name)
HERE = os.path.dirname(os.path.abspath(__file__))


def compiled() -> list[str]:
    """The modules of this package that this interpreter imports compiled."""
    suffix = EXTENSION_SUFFIXES[0]   # this interpreter's tag: another Python's build is ignored
    return sorted(name[:-len(suffix)] for name in os.listdir(HERE)
                  if name.endswith(suffix) and name != SHARED + suffix)


def stale(names: list[str]) -> list[str]:
    """Those of ``names`` whose .py changed after they were compiled in place, in a checkout
    (setup.py beside core/): an installed package's files all carry the install's times."""
    if not os.path.exists(os.path.join(HERE, os.pardir, "setup.py")):
        return []
    suffix = EXTENSION_SUFFIXES[0]
    return [name for name in names
            if os.path.getmtime(os.path.join(HERE, name + ".py"))
            > os.path.getmtime(os.path.join(HERE, name + suffix))]
