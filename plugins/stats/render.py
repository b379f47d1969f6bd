"""The stats document as text, laid out the way uWSGI 2.0's stats emitter lays it out.

Default: the document opens with ``{`` and a newline; every member sits on its
own line, indented with tabs by depth, written ``"key":value`` with no space;
members are separated by ``,`` and a newline. Objects inside lists are indented
like members; strings inside lists (a core's ``vars``) are not. A list opens on
its key's line; an object that is a member's value is indented once more after
its key (``"req_info":\\t\\t\\t\\t\\t{``), and an empty list or object still
gets a blank line. Minified (``--stats-minified``): the same tokens with no
whitespace at all.

Unlike uWSGI, every string is JSON-escaped, so the document is always valid JSON.
"""
from __future__ import annotations

import json

NL = "\n"
TAB = "\t"


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _scalar(value) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value))
    return _string(str(value))


class _Writer:
    def __init__(self, minified: bool):
        self.out: list[str] = []
        self.nl = "" if minified else NL
        self.tab = "" if minified else TAB
        self.depth = 0

    def indent(self) -> None:
        self.out.append(self.tab * self.depth)

    def members(self, obj: dict) -> None:
        """Open an object's body (the ``{`` is written by the caller), write it, close it."""
        self.depth += 1
        self.out.append(self.nl)
        first = True
        for key, value in obj.items():
            if not first:
                self.out.append("," + self.nl)
            first = False
            self.indent()
            self.out.append(_string(str(key)) + ":")
            self.value(value)
        self.close("}")

    def items(self, seq: list) -> None:
        self.depth += 1
        self.out.append(self.nl)
        first = True
        for item in seq:
            if not first:
                self.out.append("," + self.nl)
            first = False
            if isinstance(item, dict):
                self.indent()
                self.out.append("{")
                self.members(item)
            elif isinstance(item, (list, tuple)):
                self.out.append("[")
                self.items(list(item))
            else:
                self.out.append(_scalar(item))
        self.close("]")

    def close(self, symbol: str) -> None:
        self.out.append(self.nl)
        self.depth -= 1
        self.indent()
        self.out.append(symbol)

    def value(self, value) -> None:
        """A member's value, written right after ``"key":``."""
        if isinstance(value, dict):
            self.indent()  # uWSGI indents an object value after its key
            self.out.append("{")
            self.members(value)
        elif isinstance(value, (list, tuple)):
            self.out.append("[")
            self.items(list(value))
        else:
            self.out.append(_scalar(value))


def render(doc: dict, minified: bool = False) -> str:
    """``doc`` (a dict, key order kept) as uWSGI's stats server writes it."""
    writer = _Writer(minified)
    writer.out.append("{")
    writer.members(doc)
    return "".join(writer.out)
