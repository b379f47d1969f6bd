"""The option registry: every option is declared once, here or by a plugin.

The registry feeds the click command (``cli.py``), TOML/ini/env validation
(``config.py``), the in-app ``uwsgi.opt`` dict and ``--help``.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from .errors import OptionError


# ---- converters: raw text (or TOML value) -> python value -----------------
# Values are read as uWSGI reads them: numbers by their leading digits (atoi),
# flags true unless false/off/no/0. Where that reading is probably not what the
# writer meant, a converter raises ReadAs: the value is used, with a warning.

class ReadAs(ValueError):
    """The raw value is read as ``value`` (as uWSGI would read it), but probably
    not as meant: ``why`` says so in the warning."""

    def __init__(self, value: Any, why: str):
        super().__init__(why)
        self.value = value
        self.why = why


def _text(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


def string(raw: Any) -> str:
    return _text(raw)


_LEADING = re.compile(r"\s*([+-]?[0-9]+)(.*)", re.S)
# What may follow the digits without changing what was meant: an inline comment
# (uWSGI's atoi stops before it) or a seconds unit.
_HARMLESS_TAIL = re.compile(r"\s*(|[#;].*|s|secs?|seconds)\s*$", re.S | re.I)


def _leading_int(raw: Any, what: str) -> tuple[int | None, Any]:
    """(number, None), (number, ReadAs to raise) or (None, None) when no digits lead."""
    if isinstance(raw, bool):
        raise ValueError(f"is not {what}")
    if isinstance(raw, int):
        return raw, None
    m = _LEADING.match(_text(raw))
    if not m:
        return None, None
    value, tail = int(m.group(1)), m.group(2)
    if _HARMLESS_TAIL.match(tail):
        return value, None
    return value, ReadAs(value, f"uWSGI reads the leading number and ignores {tail.strip()!r}")


def integer(raw: Any, what: str = "an integer") -> int:
    value, note = _leading_int(raw, what)
    if value is None:
        raise ValueError(f"is not {what}")
    if note:
        raise note
    return value


def positive_int(raw: Any) -> int:
    value, note = _leading_int(raw, "a positive integer")
    if value is None or value < 1:
        raise ValueError("is not a positive integer")
    if note:
        raise note
    return value


def thread_count(raw: Any) -> int:
    """--threads: uWSGI reads a value without digits (``threads = true``) as 0, and runs
    one thread for 0."""
    try:
        return max(1, non_negative_int(raw))
    except ReadAs as e:
        raise ReadAs(max(1, e.value), f"{e.why}: one thread per worker") from None


def non_negative_int(raw: Any) -> int:
    value, note = _leading_int(raw, "a non-negative integer")
    if value is None:
        if _text(raw).strip() == "":
            return 0          # `max-requests =`: uWSGI reads 0, which is what an empty value says
        raise ReadAs(0, "uWSGI reads a value without leading digits as 0")
    if value < 0:
        raise ValueError("is not a non-negative integer")
    if note:
        raise note
    return value


def octal_mode(raw: Any) -> int:
    text = _text(raw).strip()
    if text in ("", "1", "true"):
        return 0o666
    token = text.split()[0]
    try:
        mode = int(token, 8)
    except ValueError:
        raise ValueError("is not an octal mode (like 660)") from None
    if token != text and not _HARMLESS_TAIL.match(text[len(token):]):
        raise ValueError("is not an octal mode (like 660)")
    return mode


_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"false", "off", "no"}       # and "0": uWSGI's uwsgi_opt_true
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]*)?$")


def read_bool(raw: Any) -> bool:
    """uWSGI's reading of a flag's value: true unless false/off/no (any case) or 0."""
    if isinstance(raw, bool):
        return raw
    text = _text(raw).strip()
    return not (text.lower() in _FALSE or text == "0")


def boolean(raw: Any) -> bool:
    value = read_bool(raw)
    if isinstance(raw, bool):
        return value
    text = _text(raw).strip().lower()
    if not value or text in _TRUE or text == "":
        return value
    if _NUMBER.match(text) and float(text) != 0:
        return value          # `http-keepalive = 75`: any other number is true, as meant
    raise ReadAs(True, "uWSGI reads any value but false/off/no/0 as true")


def keepalive_value(raw: Any) -> int:
    """``--http-keepalive``: a flag (1) or, as uWSGI's router takes it, a number of seconds."""
    if isinstance(raw, bool):
        return int(raw)
    text = _text(raw).strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE or text == "":    # an empty value reads as 0, as uWSGI's atoi does
        return 0
    try:
        value = int(text)
    except ValueError:
        raise ValueError("is not a boolean or a number of seconds") from None
    if value < 0:
        raise ValueError("is not a boolean or a number of seconds")
    return value


def header_value(raw: Any) -> str:
    text = _text(raw).strip()
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c in text for c in "\r\n\0") \
            or any(c in name.strip() for c in " \t"):
        raise ValueError("is not an HTTP header 'Name: value'")
    return f"{name.strip()}: {value.strip()}"


def key_value(raw: Any) -> str:
    text = _text(raw)
    if "=" not in text:
        raise ValueError("is not KEY=VALUE")
    return text


def date_format(raw: Any) -> str | None:
    """``--log-date``: true/1/on/yes (or no value) is uWSGI's ctime (""), false/0/off/no is
    off (None), anything else a strftime format."""
    if isinstance(raw, bool):
        return "" if raw else None
    text = _text(raw)
    if text.strip().lower() in _TRUE | {""}:
        return ""
    if text.strip().lower() in _FALSE:
        return None
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


def normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-")


class Option:
    """One option, spelled as uWSGI spells it.

    ``flag`` options take no value on the command line; elsewhere any value but
    false/off/no/0 is true, as in uWSGI. ``multiple`` options accumulate every value, in source
    order. ``immediate`` options act and exit while parsing (``--stop``).
    ``master`` options imply ``--master`` (MASTER-1). A ``flag_value`` option takes an
    optional value on the command line (``--log-date`` or ``--log-date=%Y``): alone, it
    means ``flag_value``. ``cli_only`` options are the command line's own (``--help``,
    ``--ini``): ``cli.run`` acts on them; in a file or the environment their name means
    what it means to uWSGI's reader (``ini = FILE`` includes a file), never this option.
    """

    def __init__(self, name: str, help: str, convert: Callable[[Any], Any] = string,
                 default: Any = None, short: str | None = None, aliases: tuple[str, ...] = (),
                 flag: bool = False, multiple: bool = False,
                 immediate: Callable[[Any], int] | None = None, master: bool = False,
                 metavar: str | None = None, group: str = "core", flag_value: str | None = None,
                 cli_only: bool = False):
        self.name = name
        self.help = help
        self.convert = convert
        self.default = default
        self.short = short
        self.aliases = aliases
        self.flag = flag
        self.multiple = multiple
        self.immediate = immediate
        self.master = master
        self.metavar = metavar
        self.group = group
        self.flag_value = flag_value
        self.cli_only = cli_only

    def __repr__(self) -> str:
        return f"Option({self.name!r})"

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
            # a flag with its own converter also takes a value in files (--http-keepalive 75)
            return boolean(raw) if self.convert is string else self.convert(raw)
        return self.convert(raw)


class Registry:
    """All options, by name and alias. Two owners of one name is an error."""

    def __init__(self) -> None:
        self.options: dict[str, Option] = {}
        self.names: dict[str, Option] = {}

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
        opt = self.get(name)
        if opt is None:
            raise OptionError(f"unknown option {name!r} ({origin}){self.suggest(normalize(name))}")
        return opt

    def get(self, name: str) -> Option | None:
        """The option spelled ``name`` (any case, ``_`` for ``-``), or None."""
        return self.names.get(normalize(name))

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
    from . import pidfile, signals

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
          "without it unix sockets are created 0600", convert=octal_mode, metavar="MODE",
          aliases=("chmod",)),
        O("chown-socket", "chown unix sockets to USER[:GROUP] (keeps root until they are bound)",
          metavar="USER[:GROUP]"),
        O("http", "serve HTTP on ADDR from the workers themselves, with keep-alive (uWSGI "
          "starts a separate HTTP router process there; uwsgi-py has none, and says so in the log)",
          aliases=("httprouter",), multiple=True, metavar="ADDR"),
        O("http-timeout", "seconds an idle keep-alive connection on an --http socket waits for "
          "its next request (uWSGI's router timeout; with no router, the app itself is not "
          "timed: use --harakiri)", convert=positive_int, default=60, metavar="SECS"),
        O("http-keepalive", "keep HTTP/1.1 connections open between requests; in files a number "
          "N > 1 is also accepted: the seconds an idle connection waits for its next request "
          "(as uWSGI's router reads it)", flag=True, convert=keepalive_value,
          aliases=("http11-socket-keepalive",)),
        O("http-auto-chunked", "accepted: a response without a length on a keep-alive HTTP/1.1 "
          "connection is always sent chunked", flag=True),
        O("http-websockets", "accepted: uwsgi-py has no websocket support (uwsgi.websocket_* "
          "raise NotImplementedError); an Upgrade request reaches the app as plain HTTP",
          flag=True),
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
        O("post-buffering", "read the whole request body before the app runs: in memory below "
          "BYTES, else in a temporary file (0 = off)", convert=non_negative_int, default=0,
          metavar="BYTES"),
        O("add-header", "add the header 'Name: value' to every response (repeatable)",
          convert=header_value, multiple=True, metavar="HEADER"),
        O("disable-write-exception", "a write to a client that went away raises nothing in the "
          "app (its write() calls do nothing more); the request still ends there", flag=True),
        O("ignore-write-errors", "do not log a client that went away while its response was "
          "being written", flag=True),
        O("ignore-sigpipe", "accepted: workers always ignore SIGPIPE (a write to a closed "
          "connection is an error, never a signal); see --ignore-write-errors", flag=True),
        O("no-defer-accept", "do not set TCP_DEFER_ACCEPT on TCP sockets (by default accept() "
          "waits up to --socket-timeout for a connection's first bytes)", flag=True),
        O("skip-zero", "do not check fd 0 for an inherited socket", flag=True),
        # processes
        O("master", "enable the master process", short="M", flag=True),
        O("processes", "spawn N worker processes", short="p", aliases=("workers",),
          convert=positive_int, default=1, metavar="N"),
        O("threads", "serve up to N requests at once in each worker, one per request thread; "
          "implies --enable-threads. Idle keep-alive connections wait in the worker's poller, "
          "not in a thread", convert=thread_count, default=1, metavar="N"),
        O("enable-threads", "accepted: threads the app starts always run here (uWSGI needs it "
          "to release the GIL); shown in uwsgi.opt", flag=True),
        O("threads-stacksize", "stack size of each request thread, in KiB (0 = the system's)",
          aliases=("threads-stack-size", "thread-stacksize", "thread-stack-size"),
          convert=non_negative_int, default=0, metavar="KIB"),
        O("lazy-apps", "load apps in each worker instead of the master", flag=True),
        O("lazy", "load apps in workers; reloads only reload workers (discouraged)", flag=True),
        O("need-app", "exit if no app can be loaded", flag=True),
        O("chdir", "chdir to DIR before loading apps", metavar="DIR"),
        O("chdir2", "chdir each worker to DIR once its apps are loaded", metavar="DIR"),
        O("env", "set an environment variable KEY=VALUE (repeatable)", convert=key_value,
          multiple=True, metavar="KEY=VALUE"),
        O("worker-reload-mercy", "seconds a worker may take to stop when asked (reload, shutdown)",
          convert=non_negative_int, default=60, aliases=("mercy",), metavar="SECS"),
        O("reload-mercy", "upper bound on a whole reload or shutdown wait (seconds)",
          convert=non_negative_int, metavar="SECS"),
        O("die-on-term", "SIGTERM shuts down, SIGQUIT brutally reloads", flag=True),
        O("exit-on-reload", "exit instead of reloading, once the workers have finished", flag=True),
        O("hook-master-start", "uWSGI's hook: 'unix_signal:N ACTION' gives signal N an action "
          "(gracefully_kill_them_all, kill_them_all, grace_them_all, reap_them_all, ...)",
          convert=signals.hook_value, multiple=True, metavar="unix_signal:N ACTION"),
        O("no-reload-check", "do not load the new code in a throwaway process before a reload",
          flag=True),
        O("forkbomb-delay", "seconds to wait when workers respawn too fast", convert=non_negative_int,
          default=2, metavar="SECS"),
        O("no-orphans", "kill workers at once when the master dies", flag=True),
        O("max-requests", "reload a worker after N requests", short="R", convert=non_negative_int,
          default=0, metavar="N"),
        O("harakiri", "kill a worker whose request runs longer than SECS", short="t",
          convert=non_negative_int, default=0, metavar="SECS"),
        O("harakiri-verbose", "on harakiri also log the worker's current syscall and wait "
          "channel (/proc/PID/syscall, /proc/PID/wchan)", flag=True),
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
        O("reload", "gracefully reload the instance whose pid is in PIDFILE and wait for the "
          "outcome: exit 0 when the new code serves, 2 when the reload was refused",
          metavar="PIDFILE", immediate=pidfile.signal_command("reload")),
        O("status", "print the readiness of the instance whose pid is in PIDFILE (one JSON "
          "line); exit 0 when it takes traffic", metavar="PIDFILE", immediate=pidfile.print_status),
        O("stop", "stop the instance whose pid is in PIDFILE", metavar="PIDFILE",
          immediate=pidfile.signal_command("stop")),
        O("pause", "pause/resume the instance whose pid is in PIDFILE (each one toggles)",
          metavar="PIDFILE", aliases=("suspend", "resume"),
          immediate=pidfile.signal_command("pause")),
        # logging
        O("logto", "log to FILE", metavar="FILE", aliases=("logto2",)),
        O("log-reopen", "reopen the log after a reload", flag=True),
        # uWSGI 2.0's --log-prefix is this option too: its text goes through strftime
        O("log-date", "prefix server log lines with the date (ctime), or with the strftime "
          "FORMAT given (--log-date=FORMAT, or --log-prefix='[app]'); request lines are never "
          "prefixed", aliases=("logdate", "log-prefix"), convert=date_format, flag_value="1",
          metavar="[FORMAT]"),
        O("log-maxsize", "rotate the --logto file (and file: loggers) when it grows beyond BYTES "
          "(0 = never); checked once a second", convert=non_negative_int, default=0,
          metavar="BYTES"),
        O("log-backupname", "name of the rotated --logto file (default: PATH.EPOCH)",
          metavar="PATH"),
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

