"""Request and server logging as uWSGI 2.0 configures it (docs/logging.md).

- ``--log-format`` with uWSGI's variables and the app's logvars (``logformat.py``),
  conditional logging (``--log-4xx``, ``--log-5xx``, ``--log-slow``, ``--log-big``,
  ``--log-zero``, ``--log-sendfile``, ``--log-ioerror`` with ``--disable-logging``),
  ``--log-x-forwarded-for``, ``--log-micros``;
- loggers (``--logger``, ``--req-logger``: ``targets.py``), encoders
  (``encoders.py``) and routes, written by the master (``relay.py``), which
  also rotates their files (``--log-maxsize``, ``maxsize=``, FIFO ``L``), and drops or
  keeps server lines (``--log-drain``, ``--log-filter``).

Workers get their request logger once (``uwsgi_request_logger``); without any
of these options the plugin returns None and the core's line costs nothing more.
"""
from __future__ import annotations

import os

from uwsgi_py import (Instance, Option, OptionError, Watch, boolean, choice, hookimpl, log_line,
                      non_negative_int, positive_int, redirect_stdio, set_log_writer)

# a longer message on a log pipe is cut (--log-master-bufsize); here, not in relay.py, so
# that declaring the option does not load the relay
READ_SIZE = 65536


def _options():
    O = Option
    return [
        O("log-format", "format of request lines, with uWSGI's %(var) variables (docs/logging.md)",
          aliases=("logformat",), metavar="FORMAT"),
        O("logformat-strftime", "%(ftime) uses --log-date's strftime format",
          aliases=("log-format-strftime",), flag=True),
        O("log-format-escape", "JSON-escape every variable of --log-format: json, none, or auto "
          "(json when the format starts with '{')", convert=choice("auto", "json", "none"),
          default="auto", metavar="MODE"),
        O("log-x-forwarded-for", "log the X-Forwarded-For header instead of REMOTE_ADDR", flag=True),
        O("log-micros", "request lines give the time in microseconds", flag=True),
        O("log-4xx", "log requests with a 4xx response (with --disable-logging)", flag=True),
        O("log-5xx", "log requests with a 5xx response (with --disable-logging)", flag=True),
        O("log-zero", "log responses without a body (with --disable-logging)", flag=True),
        O("log-slow", "log requests slower than MS milliseconds (with --disable-logging)",
          convert=non_negative_int, default=0, metavar="MS"),
        O("log-big", "log responses of at least BYTES bytes of body (with --disable-logging)",
          convert=non_negative_int, default=0, metavar="BYTES"),
        # uWSGI 2.0 declares these two with a required value that it ignores: both spellings work
        O("log-sendfile", "log requests whose body was sent with sendfile() (wsgi.file_wrapper, "
          "static files) (with --disable-logging)", convert=boolean, flag_value="1",
          metavar="[BOOL]"),
        O("log-ioerror", "log requests that met a read or write error, such as a client gone "
          "mid-response (with --disable-logging)", convert=boolean, flag_value="1",
          metavar="[BOOL]"),
        O("logger", "add a logger for the server log: file:PATH, stdio, fd:N, socket:ADDR, "
          "syslog[:IDENT[,FACILITY]], rsyslog:ADDR[,PREFIX[,PRI]]; 'NAME KIND:ARG' names it",
          multiple=True, master=True, metavar="[NAME ]KIND[:ARG]"),
        O("req-logger", "add a logger for request lines (same kinds as --logger)",
          aliases=("logger-req",), multiple=True, master=True, metavar="[NAME ]KIND[:ARG]"),
        O("log-master", "workers' output (fds 1 and 2) goes through the master to the loggers",
          flag=True, master=True),
        O("log-master-bufsize", "the longest message the master reads from the log pipes "
          "(longer ones are cut), and the least socket buffer asked for them",
          convert=positive_int, default=READ_SIZE, metavar="BYTES"),
        O("log-master-stream", "make the workers' log pipe a byte stream (SOCK_STREAM): lines "
          "are no longer one message each", flag=True),
        O("log-master-req-stream", "make the request log pipe (--req-logger) a byte stream",
          flag=True),
        O("log-drain", "drop server log lines that match REGEXP (repeatable; with the master's "
          "loggers)", multiple=True, master=True, metavar="REGEXP"),
        O("log-filter", "keep only the server log lines that match one REGEXP (repeatable; with "
          "the master's loggers)", multiple=True, master=True, metavar="REGEXP"),
        O("log-encoder", "add an encoder for server log lines: prefix, suffix, nl, format, json "
          "(NAME[:LOGGER] [ARGS])", multiple=True, master=True, metavar="SPEC"),
        O("log-req-encoder", "add an encoder for request lines sent to --req-logger",
          multiple=True, master=True, metavar="SPEC"),
        O("log-route", "send server log lines matching REGEXP to the logger named NAME",
          multiple=True, master=True, metavar="NAME REGEXP"),
        O("log-req-route", "send request lines matching REGEXP to the request logger named NAME",
          multiple=True, master=True, metavar="NAME REGEXP"),
        O("log-syslog", "log to syslog (same as --logger syslog[:IDENT])", master=True,
          flag_value="", metavar="[IDENT]"),
        O("log-socket", "log to a datagram socket (same as --logger socket:ADDR)", master=True,
          metavar="ADDR"),
        O("syslog-socket", "the local syslog socket of syslog loggers (uwsgi-py)",
          default="/dev/log", metavar="PATH"),
    ]


@hookimpl
def uwsgi_add_options(registry):
    registry.add(*_options())


class State:
    """This process's logging setup, built from the settings at configure time."""

    def __init__(self, settings):
        s = settings
        self.settings = s
        self.format = None
        if s.log_format:
            from . import logformat
            escape = logformat.escaping(s.log_format, s.log_format_escape)
            strftime = s.log_date if s.logformat_strftime and s.log_date else None
            try:
                self.format = logformat.compile_format(s.log_format, strftime,
                                                       s.log_x_forwarded_for, escape)
            except logformat.FormatError as e:
                raise OptionError(f"--log-format: {e}") from None
        loggers = list(s.logger)
        if s.log_syslog is not None:
            loggers.append("syslog" + (f":{s.log_syslog}" if s.log_syslog else ""))
        if s.log_socket:
            loggers.append(f"socket:{s.log_socket}")
        self.server_log = self.requests = None
        wants_master = (loggers or s.log_master or s.log_encoder or s.log_route or s.log_drain
                        or s.log_filter)
        if wants_master or s.req_logger:
            self._build_streams(loggers, wants_master)
        self.filtered = bool(s.log_4xx or s.log_5xx or s.log_zero or s.log_slow or s.log_big
                             or s.log_sendfile or s.log_ioerror)
        self.identity: dict[int, tuple] = {}

    def _build_streams(self, loggers: list[str], wants_master: bool) -> None:
        from . import relay     # sockets, regexps and encoders: only for the master's loggers
        from .encoders import EncoderError
        from .targets import TargetError
        s = self.settings
        pipe = relay.Pipe(s.log_master_bufsize, s.log_master_stream)
        try:
            if wants_master:
                self.server_log = relay.build_stream(loggers, s.log_encoder, s.log_route,
                                                     s.syslog_socket, "log-route", s.log_maxsize,
                                                     pipe)
                self.server_log.select(relay.regexps(s.log_drain, "log-drain"),
                                       relay.regexps(s.log_filter, "log-filter"))
            if s.req_logger:
                self.requests = relay.build_stream(
                    s.req_logger, s.log_req_encoder, s.log_req_route, s.syslog_socket,
                    "log-req-route", s.log_maxsize,
                    relay.Pipe(s.log_master_bufsize, s.log_master_req_stream))
        except (TargetError, EncoderError, ValueError) as e:
            raise OptionError(f"--logger: {e}") from None

    def wants_logger(self) -> bool:
        s = self.settings
        return bool(self.format or self.requests or s.log_micros or s.log_x_forwarded_for
                    or (s.disable_logging and self.filtered))

    def streams(self) -> list:
        return [stream for stream in (self.server_log, self.requests) if stream is not None]


_state: State | None = None   # one per process: built by uwsgi_configure
HANDED: dict[str, int] = {}   # the previous image's pipes (uwsgi_handoff_take)


@hookimpl
def uwsgi_configure(settings):
    global _state
    state = State(settings)
    _state = state
    if settings.log_format:
        from . import logformat
        for name, close in logformat.logvar_names(settings.log_format):
            hint = f"; did you mean %({close})?" if close else ""
            log_line(logformat.LOGVAR_NOTE.format(name=name, hint=hint))
    for kind, specs in (("log-encoder", settings.log_encoder),
                        ("log-req-encoder", settings.log_req_encoder)):
        for spec in specs:
            from .relay import ENCODER_REGISTERED
            log_line(ENCODER_REGISTERED.format(kind=kind, spec=spec))
    if state.server_log is not None:
        set_log_writer(state.server_log.dispatch)


@hookimpl
def uwsgi_post_apps(server):
    """Master, before fork: the pipes workers write to (adopted after an exec reload)."""
    inherited_log = inherited_req = None
    if HANDED:
        from . import relay
        inherited_log, inherited_req = relay.take_handoff(HANDED)
    HANDED.clear()
    state = _state
    wanted = {}
    if state is not None and server.settings.master:
        if state.server_log is not None:
            wanted["log"] = (state.server_log, inherited_log)
        if state.requests is not None:
            wanted["req"] = (state.requests, inherited_req)
    for key, pair in (("log", inherited_log), ("req", inherited_req)):
        if pair is not None and key not in wanted:
            for fd in pair:
                _close(fd)
    for stream, pair in wanted.values():
        stream.open_pipe(pair)
        state.identity[stream.r] = _identity(stream.r)
        state.identity[stream.w] = _identity(stream.w)


@hookimpl
def uwsgi_post_fork(worker):
    """Worker: fds 1 and 2 into the log pipe; close what only the master uses."""
    state = _state
    if state is None:
        return
    for stream in state.streams():
        if stream.r >= 0 and _identity(stream.r) == state.identity.get(stream.r):
            _close(stream.r)     # (a watched fd the core already closed may be reused by now)
        stream.r = -1
        for target in stream.loggers:
            target.close()
    pipe = state.server_log     # the server log's stream: workers write into its pipe
    if pipe is not None and pipe.w >= 0:
        if _identity(pipe.w) == state.identity.get(pipe.w):
            redirect_stdio(pipe.w, master_pipe=True)
        pipe.w = -1
    set_log_writer(None)


@hookimpl
def uwsgi_request_logger(worker):
    state = _state
    if state is None or not state.wants_logger():
        return None
    return request_logger(state)


def request_logger(state: State):
    s = state.settings
    render = state.format
    enabled = not s.disable_logging
    _4xx, _5xx, zero, slow, big = s.log_4xx, s.log_5xx, s.log_zero, s.log_slow, s.log_big
    sendfile, ioerror = s.log_sendfile, s.log_ioerror
    micros, xff = s.log_micros, s.log_x_forwarded_for
    fd = state.requests.w if state.requests is not None else -1
    if fd >= 0 and _identity(fd) != state.identity.get(fd):
        fd = -1

    def log_request(w, req, uri, started, us) -> None:
        if not enabled:   # uWSGI's log_request: the filters only add lines to a disabled log
            status, size = req.status, req.sent
            if not ((zero and size == 0) or (slow and us // 1000 >= slow)
                    or (_4xx and 400 <= status <= 499) or (_5xx and 500 <= status <= 599)
                    or (big and size >= big) or (sendfile and req.via)
                    or (ioerror and (req.conn.read_errors or req.conn.write_errors))):
                return
        try:
            if render is not None:
                line = render(w, req, uri, started, us)
            else:
                addr = req.vars.get("HTTP_X_FORWARDED_FOR", "") if xff else ""
                line = w.request_line(req, uri, started, us, addr, micros)
        except Exception as e:  # noqa: BLE001 - a logging bug must not fail the request
            line = f"--log-format: cannot render a line: {e!r}"
        if fd < 0:
            Instance.log(line)
            return
        try:
            os.write(fd, (line + "\n").encode("utf-8", "backslashreplace"))
        except OSError:
            pass
    return log_request


@hookimpl
def uwsgi_master_watch(master):
    state = _state
    if state is None:
        return None
    return [Watch(stream.r, stream.drain) for stream in state.streams() if stream.r >= 0] or None


@hookimpl
def uwsgi_master_cleanup(master, reason):
    state = _state
    if state is None:
        return
    if reason == "reload":
        return     # the pipes cross the exec (uwsgi_handoff_give)
    for stream in state.streams():
        if stream.r >= 0:
            stream.drain(limit=1 << 20)
    set_log_writer(None)
    for stream in state.streams():
        stream.close()


@hookimpl
def uwsgi_handoff_give():
    state = _state
    if state is None or not state.streams():
        return None
    from . import relay
    fds = relay.give_handoff(state.server_log, state.requests)
    return {"fds": fds} if fds else None


@hookimpl
def uwsgi_handoff_take(fds):
    HANDED.update(fds)


def _identity(fd: int):
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
