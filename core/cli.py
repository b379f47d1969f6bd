"""The ``uwsgi-py`` command: options into Settings, then the master (or a lone worker).

Start order follows MASTER-2: parse (immediate options act and exit), launch
modes, pidfile, chdir, sockets, apps, master, workers.
"""
from __future__ import annotations

import faulthandler
import os
import signal
import sys

from . import api, config, handoff, hooks, hotpath, log, pidfile, plugins, privileges, signals
from .argv import META, PATH_METAVARS, Unsure, read_argv
from .completion import COMPLETE_VAR
from .declared import core_options
from .options import Option, OptionError, Registry, suggest
from .scoreboard import Scoreboard
from .server import EXIT_APP_LOAD, Server
from .version import UWSGI_VERSION, __version__


def cli_options() -> list[Option]:
    """The command line's own options (``cli_only``): ``run`` acts on them."""
    return [
        Option("help", "list the options of the loaded plugins, and exit", short="h", flag=True,
               cli_only=True),
        Option("version", "print the version, and exit", flag=True, cli_only=True),
        Option("plugins-list", "list the loaded plugins and their hooks, and exit", flag=True,
               cli_only=True),
        Option("ini", "load an ini file's [uwsgi] section (FILE:SECTION for another one)",
               multiple=True, metavar="FILE", cli_only=True),
        Option("toml", "load the [uwsgi] table of a TOML file", multiple=True, metavar="FILE",
               cli_only=True),
    ]


def build_registry(pm) -> Registry:
    registry = Registry()
    registry.add(*cli_options(), *core_options(), *config.config_options(), group="core")
    for impl in reversed(pm.hook.uwsgi_add_options.get_hookimpls()):
        scoped = _ScopedRegistry(registry, impl.plugin_name)
        try:
            impl.function(registry=scoped)
        except OptionError:
            raise
        except Exception as e:  # noqa: BLE001 - one line naming the plugin, not a traceback
            raise plugins.plugin_error(pm, impl.plugin_name, "uwsgi_add_options", e) from None
    return registry


class _ScopedRegistry:
    """What a plugin's ``uwsgi_add_options`` sees: options land in its group."""

    def __init__(self, registry: Registry, group: str):
        self._registry = registry
        self._group = group

    def add(self, *options: Option) -> None:
        self._registry.add(*options, group=self._group)


def build_command(options):
    """The click command for ``options``: the reference the command line is read by
    (``argv.py`` reads it the same way), and shell completion's command."""
    import click
    params: list[click.Parameter] = []
    for opt in options:
        decls = [f"--{opt.name}", *(f"--{a}" for a in opt.aliases)]
        if opt.short:
            decls.append(f"-{opt.short}")
        decls.append(opt.attr)
        kind = click.Path() if opt.metavar in PATH_METAVARS else None   # completes file names
        if opt.flag:
            params.append(click.Option(decls, is_flag=True, default=False, help=opt.help))
        elif opt.flag_value is not None:    # a value is optional: --log-date or --log-date=FMT
            params.append(click.Option(decls, is_flag=False, flag_value=opt.flag_value,
                                       default=None, help=opt.help, metavar=opt.metavar or "VALUE"))
        else:
            params.append(click.Option(decls, multiple=opt.multiple, default=None, help=opt.help,
                                       metavar=opt.metavar or "VALUE", type=kind))
    params.append(click.Argument(["config_files"], nargs=-1, type=click.Path()))
    return click.Command("uwsgi-py", params=params, add_help_option=False)


class CommandLine:
    """The parsed command line: ``meta`` (help, version, plugins_list, ini, toml,
    config_files) and ``given``, option name -> value for the options it set."""

    def __init__(self, meta: dict, given: dict):
        self.meta = meta
        self.given = given


def parse_cli(registry: Registry, argv: list[str]) -> CommandLine:
    """``argv`` read by ``argv.py`` (no click: start-up time, the master's memory); by click
    (``parse_here``) if that is not sure, which it never is of a valid command line but
    is of every error: click words the error."""
    try:
        meta, given = read_argv(list(registry), argv)
    except Unsure:
        return parse_here(registry, argv)
    return CommandLine(meta, given)


def parse_here(registry: Registry, argv: list[str]) -> CommandLine:
    """click parses ``argv`` against a command built from the registry."""
    import click
    options, names = list(registry), registry.names
    command = build_command(options)
    try:
        ctx = command.make_context("uwsgi-py", list(argv), resilient_parsing=False)
    except click.NoSuchOption as e:
        raise OptionError(f"unknown option {e.option_name} (command line)"
                          f"{suggest(e.option_name.lstrip('-'), names)}") from None
    except click.ClickException as e:
        raise OptionError(f"{e.format_message()} (command line)") from None
    given = {}
    for opt in options:
        if ctx.get_parameter_source(opt.attr) == click.core.ParameterSource.COMMANDLINE:
            value = ctx.params[opt.attr]
            given[opt.name] = list(value) if opt.multiple else value
    meta = {key: list(value) if isinstance(value, tuple) else value
            for key, value in ctx.params.items() if key in META}
    return CommandLine(meta, given)


def cli_entries(parsed: CommandLine, registry: Registry) -> list[config.Entry]:
    entries = []
    for opt in registry:
        if opt.name not in parsed.given or opt.cli_only:
            continue
        value = parsed.given[opt.name]
        if opt.multiple:
            entries.extend((opt.name, v, "command line") for v in value)
        else:
            entries.append((opt.name, value, "command line"))
    return entries


def render_help(registry: Registry) -> str:
    own = ", ".join(f"--{opt.name}" for opt in registry if opt.cli_only)
    lines = ["Usage: uwsgi-py [OPTIONS] [CONFIG.toml|CONFIG.ini]", "",
             "Options are uWSGI's; each is also a TOML/ini key and a UWSGI_<NAME> variable,",
             f"except the command line's own ({own}).", ""]
    for group, options in registry.groups().items():
        lines.append(f"{group}:")
        for opt in options:
            names = ", ".join([*(f"-{opt.short}" for _ in [0] if opt.short), f"--{opt.name}",
                               *(f"--{a}" for a in opt.aliases)])
            if not opt.flag:
                names += f" {opt.metavar or 'VALUE'}"
            lines.append(f"  {names:<38} {opt.help}")
        lines.append("")
    return "\n".join(lines)


def load_settings(registry: Registry, parsed: CommandLine, environ, *,
                  plugins: frozenset[str] = frozenset(), reload: bool = False) -> config.Settings:
    """Every source into Settings (config.py); warnings are in ``settings.notes``."""
    files = list(parsed.meta["ini"]) + list(parsed.meta["toml"])
    for extra in parsed.meta["config_files"]:
        if not extra.endswith((".toml", ".ini")) and ".ini:" not in extra:
            raise OptionError(f"unexpected argument {extra!r} (command line)")
        files.append(extra)
    items, referenced, warnings = config.gather(
        files, dict(environ), cli_entries(parsed, registry), plugins=plugins, reload=reload,
        strict=bool(parsed.given.get("strict")))
    settings = config.settle(registry, items, referenced)
    settings.notes[:0] = [log.CONFIG_WARNING.format(message=w) for w in warnings]
    settings.config_files = files
    return settings


def completion_command():
    """The click command shell completion runs: every option of the loaded plugins."""
    pm = plugins.build(plugins.disabled_from(sys.argv[1:]))
    return build_command(list(build_registry(pm)))


def main(argv: list[str] | None = None) -> int:
    if argv is None and os.environ.get(COMPLETE_VAR):
        from .completion import complete
        return complete(completion_command)
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(argv)
    except OptionError as e:
        log.log(log.ERROR.format(message=e))
        return 1
    except KeyboardInterrupt:
        return 130


def run(argv: list[str]) -> int:
    taken = handoff.take()
    faulthandler.enable()
    pm = plugins.build(plugins.disabled_from(argv))
    registry = build_registry(pm)
    parsed = parse_cli(registry, argv)
    if parsed.meta["help"]:
        print(render_help(registry))
        return 0
    if parsed.meta["version"]:
        print(__version__)
        return 0
    if parsed.meta["plugins_list"]:
        print("\n".join(plugins.describe(pm)))
        return 0
    for opt in registry:
        if opt.immediate and opt.name in parsed.given:
            return opt.immediate(parsed.given[opt.name])
    settings = load_settings(registry, parsed, os.environ, plugins=frozenset(plugins.loaded(pm)),
                             reload=bool(taken.generation))
    log.configure(settings.log_date)
    for line in settings.notes:
        log.log(line)
    config.refuse_unimplemented(settings)
    plugins.check_required(pm, settings.plugin)
    plugins.check_disabled(pm, settings.disable_plugin)
    guard = plugins.HookGuard(pm)
    guard.startup(pm.hook.uwsgi_configure, settings=settings)
    from . import actions   # the master's modules: not needed by immediate options
    signals.check_hooks(settings, actions.registry(guard.master(pm.hook.uwsgi_master_actions)))
    start_dir = taken.start_dir or os.getcwd()
    for item in settings.env:
        key, _, value = item.partition("=")
        os.environ[key] = value
    if not taken.preflight:
        hooks.run(settings, "asap")
    server = Server(settings, pm.hook, taken, start_dir, guard=guard)
    if taken.preflight:
        return preflight(server)
    return start(server)


def preflight(server: Server) -> int:
    """The throwaway reload check: load config and apps, report, exit."""
    s = server.settings
    if s.chdir:
        os.chdir(s.chdir)
    server.scoreboard = Scoreboard(s.processes, s.threads)
    server.master_pid = os.getppid() if s.master else 0   # apps check uwsgi.masterpid()
    loaded = server.load_apps()
    if server.app_error:
        return 1
    if s.need_app and not loaded:
        return EXIT_APP_LOAD
    return 0


def start(server: Server) -> int:
    s = server.settings
    if s.logto and (not server.is_reload or s.log_reopen):
        open_log(s)
    if not server.is_reload:
        server.guard.startup(server.hook.uwsgi_launch, server=server)
    if s.show_config:
        for line in s.show_config_lines():
            log.log(line)
    log.log(log.BANNER.format(version=__version__, compat=UWSGI_VERSION, date=log.now()))
    if compiled := hotpath.compiled():
        log.log(log.REQUEST_PATH_COMPILED.format(modules=" ".join(compiled)))
        if old := hotpath.stale(compiled):
            log.log(log.REQUEST_PATH_STALE.format(modules=" ".join(old)))
    else:
        log.log(log.REQUEST_PATH_PURE)
    if not server.is_reload:
        write_pidfile("pidfile", s.pidfile)             # PID-1: before the privilege drop
    keep_root = s.master_as_root and s.master           # only the workers drop (children.spawn)
    if not keep_root and not s.chown_socket:
        privileges.drop(s)                              # MASTER-2 step 4: before binding
    if s.refork and not server.is_reload:
        privileges.refork()
        try:
            write_pidfile("pidfile", s.pidfile)         # the parent's pid is gone
        except OptionError as e:                        # written as root, now another user
            log.log(log.CONFIG_WARNING.format(message=e))
    if not server.is_reload and not (s.chown_socket and not keep_root):
        write_pidfile("pidfile2", s.pidfile2)           # PID-2: right after the drop
    # relative to the start directory, and used again from --chdir's (vacuum, log reopen)
    s.logto, s.pidfile, s.pidfile2 = _anchored(s.logto), _anchored(s.pidfile), _anchored(s.pidfile2)
    if s.chdir:
        try:
            os.chdir(s.chdir)
        except OSError as e:
            raise OptionError(f"--chdir: {s.chdir!r}: {e.strerror}") from None
    server.setup_sockets()
    if server.handoff.plugins:
        api.take_handoffs(server)
    if s.chown_socket and not keep_root:
        privileges.drop(s)                              # --chown-socket needed root to bind
        if not server.is_reload:
            write_pidfile("pidfile2", s.pidfile2)
    if s.master:   # from here on (apps load) the master's signals wait for its loop
        server.wakeup = signals.catch_early(signals.master_table(s.die_on_term, s.hook_master_start),
                                            first_start=not server.is_reload)
    server.scoreboard = Scoreboard(s.processes, s.threads)
    server.master_pid = os.getpid() if s.master else 0
    if not (s.lazy_apps or s.lazy):
        if not server.load_apps():
            if s.need_app:
                log.log(log.NO_APP_FATAL)
                return EXIT_APP_LOAD
            log.log(log.NO_APP)
    server.guard.startup(server.hook.uwsgi_post_apps, server=server)
    if not s.master:
        return run_without_master(server)
    from . import actions
    from .master import Master
    log.log(log.MERCY.format(mercy=s.worker_reload_mercy))
    if server.is_reload:
        log.log(log.MASTER_RESPAWNED.format(pid=os.getpid()))
    else:
        log.log(log.MASTER_SPAWNED.format(pid=os.getpid()))
    return Master(server, actions.registry).run()


def _anchored(path: str | None) -> str | None:
    return os.path.abspath(path) if path else path


def open_log(s) -> None:
    """Point fds 1 and 2 at the log file (``--daemonize``'s, which the inetd plugin
    puts in ``logto``, or ``--logto``'s); one line naming the option if it cannot."""
    try:
        log.open_logfile(s.logto)
    except OSError as e:
        given = {opt.name for opt, value in s.written.values() if value == s.logto}
        option = "daemonize" if "daemonize" in given else "logto"
        raise OptionError(log.LOGFILE_FAILED.format(option=option, path=s.logto,
                                                    error=e.strerror)) from None


def write_pidfile(option: str, path: str | None) -> None:
    if path:
        pidfile.write_for(option, path)


def run_without_master(server: Server) -> int:
    """MASTER-5: the process is worker 1; workers 2..N are forked and never respawned."""
    from .workers import Worker
    log.log(log.NO_MASTER)
    for wid in range(2, server.settings.processes + 1):
        pid = os.fork()
        if pid == 0:
            Worker(server, wid, -1, -1).run()
        log.log(log.WORKER_SPAWNED.format(id=wid, pid=pid, cores=server.settings.threads))
    log.log(log.WORKER_ONLY.format(id=1, pid=os.getpid(), cores=server.settings.threads))
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    Worker(server, 1, -1, -1).run()
    return 0
