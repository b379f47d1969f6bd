"""The option registry: every option is declared once, here or by a plugin.

The registry feeds the click command (``cli.py``), TOML/ini/env validation
(``config.py``), the in-app ``uwsgi.opt`` dict and ``--help``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable


class OptionError(Exception):
    """A bad option or value; the message is the one line the user sees."""


# ---- converters: raw text (or TOML value) -> python value -----------------

def _text(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


def string(raw: Any) -> str:
    return _text(raw)


def positive_int(raw: Any) -> int:
    value = integer(raw, "a positive integer")
    if value < 1:
        raise ValueError("is not a positive integer")
    return value


def non_negative_int(raw: Any) -> int:
    value = integer(raw, "a non-negative integer")
    if value < 0:
        raise ValueError("is not a non-negative integer")
    return value


def integer(raw: Any, what: str = "an integer") -> int:
    if isinstance(raw, bool):
        raise ValueError(f"is not {what}")
    if isinstance(raw, int):
        return raw
    try:
        return int(str(raw).strip(), 0)
    except ValueError:
        raise ValueError(f"is not {what}") from None


def octal_mode(raw: Any) -> int:
    text = _text(raw).strip()
    if text in ("", "1", "true"):
        return 0o666
    try:
        return int(text, 8)
    except ValueError:
        raise ValueError("is not an octal mode (like 660)") from None


_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = _text(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("is not a boolean (true/false/1/0)")


def key_value(raw: Any) -> str:
    text = _text(raw)
    if "=" not in text:
        raise ValueError("is not KEY=VALUE")
    return text


def choice(*choices: str) -> Callable[[Any], str]:
    def convert(raw: Any) -> str:
        text = _text(raw).strip()
        if text not in choices:
            raise ValueError("is not one of " + ", ".join(choices))
        return text
    convert.__name__ = "choice"
    return convert


def suggest(name: str, names: Iterable[str]) -> str:
    """``; did you mean --NAME?`` for a misspelled option name, else an empty string."""
    import difflib  # only for a misspelled option: not at every start
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f"; did you mean --{close[0]}?" if close else ""


@dataclass
class Option:
    """One option, spelled as uWSGI spells it.

    ``flag`` options take no value on the command line; in files they accept
    true/false/1/0. ``multiple`` options accumulate every value, in source
    order. ``immediate`` options act and exit while parsing (``--stop``).
    ``master`` options imply ``--master`` (MASTER-1).
    """

    name: str
    help: str
    convert: Callable[[Any], Any] = string
    default: Any = None
    short: str | None = None
    aliases: tuple[str, ...] = ()
    flag: bool = False
    multiple: bool = False
    immediate: Callable[[Any], int] | None = None
    master: bool = False
    metavar: str | None = None
    group: str = "core"

    @property
    def attr(self) -> str:
        return self.name.replace("-", "_")

    def initial(self) -> Any:
        if self.multiple:
            return list(self.default or ())
        if self.flag:
            return bool(self.default)
        return self.default

    def parse(self, raw: Any) -> Any:
        if self.flag:
            return boolean(raw)
        return self.convert(raw)


@dataclass
class Registry:
    """All options, by name and alias. Two owners of one name is an error."""

    options: dict[str, Option] = field(default_factory=dict)
    names: dict[str, Option] = field(default_factory=dict)

    def add(self, *options: Option, group: str | None = None) -> None:
        for opt in options:
            if group is not None:
                opt.group = group
            for name in (opt.name, *opt.aliases):
                other = self.names.get(name)
                if other is not None:
                    raise OptionError(
                        f"option --{name} is declared twice: by {other.group} and by {opt.group}")
                self.names[name] = opt
            self.options[opt.name] = opt

    def lookup(self, name: str, origin: str) -> Option:
        key = name.strip().lower().replace("_", "-")
        opt = self.names.get(key)
        if opt is None:
            raise OptionError(f"unknown option {name!r} ({origin}){self.suggest(key)}")
        return opt

    def suggest(self, name: str) -> str:
        return suggest(name, self.names)

    def __iter__(self) -> Iterable[Option]:
        return iter(self.options.values())

    def groups(self) -> dict[str, list[Option]]:
        out: dict[str, list[Option]] = {}
        for opt in self.options.values():
            out.setdefault(opt.group, []).append(opt)
        return out


def default_listen() -> int:
    """The listen backlog: as large as the kernel allows (somaxconn), at least 100."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return max(100, int(f.read().strip()))
    except (OSError, ValueError):
        return 1024


def core_options() -> list[Option]:
    """Options of the core: sockets, processes, reload/stop management, logging."""
    from . import pidfile

    O = Option
    return [
        # sockets
        O("socket", "bind to the specified socket with the uwsgi protocol (repeatable)",
          short="s", aliases=("uwsgi-socket",), multiple=True, metavar="ADDR"),
        O("http-socket", "bind to the specified socket with the HTTP protocol (repeatable)",
          multiple=True, metavar="ADDR"),
        O("protocol", "default protocol of sockets that have none (fd 0, activated sockets)",
          aliases=("socket-protocol",), convert=choice("uwsgi", "http"), default="uwsgi"),
        O("listen", "listen queue (backlog) size; default: the kernel's somaxconn",
          short="l", convert=positive_int, metavar="N"),
        O("chmod-socket", "chmod unix sockets (default 666 when given without a value); "
          "without it unix sockets are created 0600", convert=octal_mode, metavar="MODE"),
        O("chown-socket", "chown unix sockets to USER[:GROUP] (keeps root until they are bound)",
          metavar="USER[:GROUP]"),
        O("http-keepalive", "keep HTTP/1.1 connections open between requests", flag=True,
          aliases=("http11-socket-keepalive",)),
        O("http-socket-modifier1", "modifier1 for requests on HTTP sockets", convert=non_negative_int,
          metavar="N"),
        O("buffer-size", "maximum size of request headers / uwsgi packet", convert=positive_int,
          default=4096, short="b", metavar="BYTES"),
        O("limit-request-fields", "refuse (431) an HTTP request with more than N header lines "
          "(0 = no limit but --buffer-size)", convert=non_negative_int, default=100, metavar="N"),
        O("limit-request-line", "refuse (414) an HTTP request line longer than BYTES "
          "(0 = --buffer-size)", convert=non_negative_int, default=0, metavar="BYTES"),
        O("http-allow-underscore-headers", "pass HTTP header names containing '_' to the app "
          "(dropped by default: 'X_Forwarded_For' would pose as X-Forwarded-For)", flag=True),
        O("socket-timeout", "seconds a client may stall while sending or receiving; a request "
          "head must arrive within it", convert=positive_int, default=4, short="z", metavar="SECS"),
        O("socket-min-bytes", "bytes a client sending a body or reading a response must move in "
          "each --socket-timeout window (0 = only a full stall times out)",
          convert=non_negative_int, default=1024, metavar="BYTES"),
        O("limit-post", "limit request body size (bytes, 0 = no limit)", convert=non_negative_int,
          default=0, metavar="BYTES"),
        O("no-defer-accept", "do not set TCP_DEFER_ACCEPT on TCP sockets (by default accept() "
          "waits up to --socket-timeout for a connection's first bytes)", flag=True),
        O("skip-zero", "do not check fd 0 for an inherited socket", flag=True),
        # processes
        O("master", "enable the master process", short="M", flag=True),
        O("processes", "spawn N worker processes", short="p", aliases=("workers",),
          convert=positive_int, default=1, metavar="N"),
        O("lazy-apps", "load apps in each worker instead of the master", flag=True),
        O("lazy", "load apps in workers; reloads only reload workers (discouraged)", flag=True),
        O("need-app", "exit if no app can be loaded", flag=True),
        O("chdir", "chdir to DIR before loading apps", metavar="DIR"),
        O("env", "set an environment variable KEY=VALUE (repeatable)", convert=key_value,
          multiple=True, metavar="KEY=VALUE"),
        O("worker-reload-mercy", "seconds a worker may take to stop when asked (reload, shutdown)",
          convert=non_negative_int, default=60, aliases=("mercy",), metavar="SECS"),
        O("reload-mercy", "upper bound on a whole reload or shutdown wait (seconds)",
          convert=non_negative_int, metavar="SECS"),
        O("die-on-term", "SIGTERM shuts down, SIGQUIT brutally reloads", flag=True),
        O("exit-on-reload", "exit instead of reloading", flag=True),
        O("no-reload-check", "do not load the new code in a throwaway process before a reload",
          flag=True),
        O("forkbomb-delay", "seconds to wait when workers respawn too fast", convert=non_negative_int,
          default=2, metavar="SECS"),
        O("no-orphans", "kill workers at once when the master dies", flag=True),
        O("max-requests", "reload a worker after N requests", short="R", convert=non_negative_int,
          default=0, metavar="N"),
        O("harakiri", "kill a worker whose request runs longer than SECS", short="t",
          convert=non_negative_int, default=0, metavar="SECS"),
        O("max-requests-delta", "add (worker id - 1) * N to --max-requests for each worker",
          convert=non_negative_int, default=0, metavar="N"),
        O("min-worker-lifetime", "seconds a worker runs before --max-requests or --reload-on-rss "
          "may recycle it", convert=non_negative_int, default=10, metavar="SECS"),
        O("max-worker-lifetime", "the master recycles a worker after SECS (it finishes its request)",
          convert=non_negative_int, default=0, metavar="SECS"),
        O("reload-on-rss", "recycle a worker (after its request) whose RSS is above MB megabytes",
          convert=non_negative_int, default=0, metavar="MB"),
        O("evil-reload-on-rss", "the master SIGKILLs a worker whose RSS is above MB megabytes",
          convert=non_negative_int, default=0, master=True, metavar="MB"),
        O("max-boot-failures", "stop the instance (exit 1) after N consecutive workers died before "
          "accepting; 0 = keep respawning, throttled by --forkbomb-delay",
          convert=non_negative_int, default=0, metavar="N"),
        # privileges (MASTER-2 step 4)
        O("uid", "setuid to USER (name or number) before binding sockets", metavar="USER"),
        O("gid", "setgid to GROUP (name or number) before binding sockets", metavar="GROUP"),
        O("master-as-root", "keep the master as root; only the workers drop to --uid/--gid",
          flag=True),
        # pidfiles and client commands
        O("pidfile", "write the master pid to FILE early", metavar="FILE"),
        O("pidfile2", "write the master pid to FILE after privilege drop", metavar="FILE"),
        O("safe-pidfile", "write the master pid to FILE once the workers are up", metavar="FILE"),
        O("safe-pidfile2", "like --safe-pidfile", metavar="FILE"),
        O("vacuum", "remove pidfiles and unix sockets at exit", flag=True),
        O("reload", "gracefully reload the instance whose pid is in PIDFILE", metavar="PIDFILE",
          immediate=pidfile.signal_command("reload")),
        O("stop", "stop the instance whose pid is in PIDFILE", metavar="PIDFILE",
          immediate=pidfile.signal_command("stop")),
        O("pause", "pause/resume the instance whose pid is in PIDFILE", metavar="PIDFILE",
          immediate=pidfile.signal_command("pause")),
        O("suspend", "same as --pause", metavar="PIDFILE",
          immediate=pidfile.signal_command("pause")),
        O("resume", "same as --pause (it toggles)", metavar="PIDFILE",
          immediate=pidfile.signal_command("pause")),
        # logging
        O("logto", "log to FILE", metavar="FILE", aliases=("logto2",)),
        O("log-reopen", "reopen the log after a reload", flag=True),
        O("disable-logging", "disable request logging", short="L", flag=True),
        O("plugin", "check that plugin NAME is loaded (repeatable, comma separated)",
          aliases=("plugins",), multiple=True, metavar="NAME"),
        O("disable-plugin", "do not load plugin NAME (repeatable)", multiple=True, metavar="NAME"),
    ]


def env_name(option: str) -> str:
    return "UWSGI_" + option.upper().replace("-", "_")


def python_value(opt: Option, value: Any) -> Any:
    """``uwsgi.opt`` shape: flags True, values bytes, repeated options lists."""
    if opt.flag:
        return True
    if opt.multiple:
        return [str(v).encode() for v in value]
    return str(value).encode()


def getenv_bool(name: str) -> bool:
    return os.environ.get(name, "").lower() in _TRUE
