"""Shell completion: click's, over a command built from the option registry.

``eval "$(_UWSGI_PY_COMPLETE=bash_source uwsgi-py)"`` (``zsh_source``, ``fish_source``)
installs it; the shell then runs ``uwsgi-py`` with ``_UWSGI_PY_COMPLETE=bash_complete``
and the words typed so far. Every option of the loaded plugins completes; options whose
value is a file (``--reload PIDFILE``, ``--logto FILE``) complete file names. Nothing is
started: ``cli.main`` hands over to ``complete()`` before parsing.
"""
from __future__ import annotations

from typing import Any, Callable

from .errors import OptionError

COMPLETE_VAR = "_UWSGI_PY_COMPLETE"    # click's shell completion variable


def complete(build_command: Callable[[], Any]) -> int:
    """``build_command()``: the click command of every loaded option (``cli``)."""
    try:
        command = build_command()
    except OptionError:
        return 1
    try:
        command.main(args=[], prog_name="uwsgi-py", complete_var=COMPLETE_VAR)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0
    return 0
