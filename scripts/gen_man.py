#!/usr/bin/env python3
"""Generate the man page docs/uwsgi-py.1 from the option registry (the core's options and
those of every plugin shipped in the uwsgi-py distribution).

    python scripts/gen_man.py           # rewrite docs/uwsgi-py.1
    python scripts/gen_man.py --check   # exit 1 when docs/uwsgi-py.1 is stale

tests/unit/test_docs.py fails when the committed page differs from this output; the sdist
ships it (MANIFEST.in). Read it with ``man -l docs/uwsgi-py.1``.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from uwsgi_py import __version__
from uwsgi_py.options import env_name

PAGE = Path(__file__).resolve().parent.parent / "docs" / "uwsgi-py.1"
HERE = Path(__file__).resolve().parent


def _options_doc():
    spec = importlib.util.spec_from_file_location("gen_options_doc", HERE / "gen_options_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def esc(text: str) -> str:
    """roff-safe text: backslashes, and a leading dot or quote."""
    text = str(text).replace("\\", "\\e").replace("-", "\\-")
    if text[:1] in (".", "'"):
        text = "\\&" + text
    return text


HEAD = r""".TH UWSGI\-PY 1 "" "uwsgi\-py {version}" "User Commands"
.SH NAME
uwsgi\-py \- uWSGI's master/worker application server, in Python
.SH SYNOPSIS
.B uwsgi\-py
[\fIOPTIONS\fR] [\fICONFIG.toml\fR|\fICONFIG.ini\fR]
.SH DESCRIPTION
uwsgi\-py serves WSGI (and Rack) applications with uWSGI 2.0's master process, workers,
signals, master FIFO, stats server and command line. Every option is uWSGI's spelling and
meaning; each is also a key of the
.B [uwsgi]
section of an ini or TOML file and a
.BI UWSGI_ NAME
environment variable (lowest precedence first: files, environment, command line).
.PP
.B \-\-help
lists the options of the plugins that are loaded;
.B \-\-plugins\-list
lists the plugins.
.SH SHELL COMPLETION
.nf
eval "$(_UWSGI_PY_COMPLETE=bash_source uwsgi\-py)"    # bash
eval "$(_UWSGI_PY_COMPLETE=zsh_source uwsgi\-py)"     # zsh
_UWSGI_PY_COMPLETE=fish_source uwsgi\-py | source     # fish
.fi
.SH EXIT STATUS
The server exits 0 after a stop, 1 on a configuration error, 22 when
.B \-\-need\-app
finds no app.
.B \-\-reload
.I PIDFILE
exits 0 once the new code serves, 2 when the reload was refused, 3 when no outcome came in
time;
.B \-\-status
.I PIDFILE
exits 0 when the instance takes traffic.
"""


def render() -> str:
    gen = _options_doc()
    pm, registry = gen.build()
    dists = getattr(pm, "_uwsgi_dists", {})
    groups = registry.groups()
    order = ["core"] + sorted(g for g in groups if g != "core"
                              and dists.get(g, ("",))[0] == gen.DISTRIBUTION)
    out = [HEAD.format(version=__version__).rstrip("\n")]
    for group in order:
        out.append(".SH " + ("OPTIONS" if group == "core" else f"OPTIONS OF THE {group.upper()} PLUGIN"))
        for opt in groups.get(group, ()):
            names = [f"\\fB\\-\\-{esc(opt.name)}\\fR"]
            if opt.short:
                names.insert(0, f"\\fB\\-{esc(opt.short)}\\fR")
            names += [f"\\fB\\-\\-{esc(a)}\\fR" for a in opt.aliases]
            value = "" if opt.flag else f" \\fI{esc(opt.metavar or 'VALUE')}\\fR"
            out.append(".TP")
            out.append(", ".join(names) + value)
            notes = []
            if opt.multiple:
                notes.append("repeatable")
            if opt.master:
                notes.append("implies \\-\\-master")
            if opt.default not in (None, False, "", (), []):
                notes.append(f"default {esc(opt.default)}")
            notes.append("command line only" if opt.cli_only
                         else f"environment {esc(env_name(opt.name))}")
            out.append(esc(opt.help) + " (" + "; ".join(notes) + ").")
    out.append(".SH SEE ALSO")
    out.append("docs/options.md, docs/logging.md, docs/health.md and docs/stats.md in the "
               "uwsgi\\-py distribution; uWSGI's documentation.")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE} is stale: run python scripts/gen_man.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
