"""Log encoders (``--log-encoder``/``--log-req-encoder``), uWSGI's embedded ones.

A chain of functions over each message before a logger writes it, in option
order. A spec is ``NAME[:LOGGER] [ARGS]``: with ``:LOGGER`` the encoder applies
only to the logger of that name.

- ``prefix ARGS``/``suffix ARGS``: add text; ``nl``: add a newline
- ``format TEMPLATE``: ``${msg}`` (the message without its newline), ``${msgnl}``,
  ``${unix}``, ``${micros}``, ``${millis}``, ``${strftime:FORMAT}``
- ``json TEMPLATE``: the same, with ``${msg}``/``${msgnl}``/``${strftime:...}``
  JSON-escaped. uWSGI's json with no template writes nothing; uwsgi-py's writes
  ``{"unix":${unix},"msg":"${msg}"}`` and a newline, so that ``--log-encoder json``
  alone makes JSON lines.
"""
from __future__ import annotations

import json
import re
import time
from typing import Callable

Encoder = Callable[[bytes], bytes]
TEMPLATE_VAR = re.compile(r"\$\{([^}]*)\}")
JSON_DEFAULT = '{"unix":${unix},"msg":"${msg}"}\n'


class EncoderError(ValueError):
    pass


def _escape(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _template(args: str, escape: bool) -> Encoder:
    parts: list = []
    pos = 0
    for match in TEMPLATE_VAR.finditer(args):
        parts.append(args[pos:match.start()])
        parts.append((match.group(1),))
        pos = match.end()
    parts.append(args[pos:])
    esc = _escape if escape else (lambda s: s)

    def encode(msg: bytes) -> bytes:
        text = msg.decode("utf-8", "backslashreplace")
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
                continue
            var = part[0]
            if var == "msg":
                out.append(esc(text[:-1] if text.endswith("\n") else text))
            elif var == "msgnl":
                out.append(esc(text))
            elif var == "unix":
                out.append(str(int(time.time())))
            elif var == "micros":
                out.append(str(time.time_ns() // 1000))
            elif var == "millis":
                out.append(str(time.time_ns() // 1_000_000))
            elif var.startswith("strftime:"):
                out.append(esc(time.strftime(var[9:])))
        return "".join(out).encode("utf-8", "backslashreplace")
    return encode


def build(name: str, args: str) -> Encoder:
    if name == "prefix":
        data = args.encode()
        return lambda msg: data + msg
    if name == "suffix":
        data = args.encode()
        return lambda msg: msg + data
    if name == "nl":
        return lambda msg: msg + b"\n"
    if name == "format":
        return _template(args, escape=False)
    if name == "json":
        return _template(args or JSON_DEFAULT, escape=True)
    raise EncoderError(f"log encoder {name!r} not found (uwsgi-py has: prefix, suffix, nl, format, json)")


class Chain:
    """The encoders of one option, in order, each limited to a logger name or not."""

    def __init__(self, specs: list[str]):
        self.steps: list[tuple[str | None, Encoder]] = []
        for spec in specs:
            head, _, args = spec.partition(" ")
            name, colon, use_for = head.partition(":")
            self.steps.append((use_for if colon else None, build(name, args)))
        self.scoped = any(use_for for use_for, _ in self.steps)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def encode(self, msg: bytes, logger: str = "") -> bytes:
        for use_for, encoder in self.steps:
            if use_for is not None and use_for != logger:
                continue
            msg = encoder(msg)
        return msg
