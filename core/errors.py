"""The error every start-up problem is reported with, in one line.

Here, below every other module, so that the modules the option catalog uses
(``pidfile``, ``signals``) can raise it without importing ``options``.
"""
from __future__ import annotations


class OptionError(Exception):
    """A bad option or value; the message is the one line the user sees."""
