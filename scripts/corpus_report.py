#!/usr/bin/env python3
"""How many corpus configs start and serve: real uWSGI 2.0 against uwsgi-py.

    python scripts/corpus_report.py [--jobs N] [NAME ...]

Each file in tests/corpus/ini is started by both servers in a sandbox
(tests/corpus/harness.py: the file as published, with the corpus app and a loopback
HTTP socket given on the command line), and served means GET / returned the corpus
app's body. Prints both counts and how many files uwsgi-py parses, and writes the
per-file outcome to tests/corpus/starts.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "corpus"))

import harness  # noqa: E402
import sandbox  # noqa: E402


def parses(name: str, registry) -> str | None:
    """None when uwsgi-py reads the file without error, else the error."""
    from uwsgi_py import config
    from uwsgi_py.options import OptionError
    cwd = os.getcwd()
    try:
        os.chdir(harness.CORPUS)
        items, referenced, _ = config.gather([name], dict(sandbox.ENV))
        config.settle(registry, items, referenced)
        return None
    except OptionError as e:
        return str(e)
    finally:
        os.chdir(cwd)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("names", nargs="*")
    args = ap.parse_args(argv)
    reason = sandbox.available()
    binary = sandbox.uwsgi_binary()
    if reason or not binary:
        print(f"cannot run: {reason or 'uwsgi is not installed'}", file=sys.stderr)
        return 1
    from uwsgi_py import cli, plugins
    registry = cli.build_registry(plugins.build())
    names = args.names or sorted(p.name for p in harness.CORPUS.glob("*.ini"))

    def one(name: str) -> tuple[str, dict]:
        real = harness.start(name, "uwsgi", uwsgi_bin=binary)
        ours = harness.start(name, "uwsgi-py", registry=registry)
        refused = next((line for line in ours.get("log", []) if "error:" in line), "")
        return name, {"uwsgi": bool(real.get("served")), "uwsgi_py": bool(ours.get("served")),
                      "uwsgi_py_parse_error": parses(name, registry), "uwsgi_py_error": refused}

    out: dict[str, dict] = {}
    with ThreadPoolExecutor(args.jobs) as pool:
        for i, (name, res) in enumerate(pool.map(one, names), 1):
            out[name] = res
            print(f"[{i}/{len(names)}] {name}: uWSGI {'serves' if res['uwsgi'] else '-'}, "
                  f"uwsgi-py {'serves' if res['uwsgi_py'] else res['uwsgi_py_error'][:100] or '-'}")
    if not args.names:
        (ROOT / "tests" / "corpus" / "starts.json").write_text(json.dumps(out, indent=1) + "\n")
    n = len(out)
    parsed = sum(r["uwsgi_py_parse_error"] is None for r in out.values())
    real = sum(r["uwsgi"] for r in out.values())
    ours = sum(r["uwsgi_py"] for r in out.values())
    print(f"\n{n} files: uwsgi-py parses {parsed} ({100 * parsed / n:.1f} %)")
    print(f"start and serve: real uWSGI 2.0 {real} ({100 * real / n:.1f} %), "
          f"uwsgi-py {ours} ({100 * ours / n:.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
