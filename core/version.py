"""The version of uwsgi-py, and of the uWSGI release whose behaviour and APIs it mirrors.

The one place each is spelled: ``pyproject.toml`` reads ``__version__`` from
here, ``uwsgi_py`` re-exports both, and the core modules import them from
here (not from the package, which imports them: that would be a cycle).
"""
__version__ = "0.1.0"
UWSGI_VERSION = "2.0.31"
