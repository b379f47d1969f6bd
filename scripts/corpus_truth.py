#!/usr/bin/env python3
"""Record what real uWSGI 2.0 makes of each corpus config: tests/corpus/truth.json.

    python scripts/corpus_truth.py [NAME ...]     # all files, or only those named

For each file in tests/corpus/ini, real uWSGI runs in a sandbox (tests/corpus/sandbox.py:
its own mount, network and PID namespaces over a throwaway overlay of /), never serving:

- ``uwsgi_unknown``: the keys uWSGI does not know, in order (``--strict`` stops at the
  first; the script comments it out of a copy and asks again);
- ``uwsgi_parses``: whether uWSGI's config stage accepts the file (``--get`` exits right
  after it), with the last line it logged if not; users and groups the config names
  are created in the sandbox first, as a deployment has them;
- ``uwsgi_values``: the value uWSGI reads for each key written in the file (first
  occurrence, ``--get``), the run directory written ``{DIR}``.

tests/integration/test_corpus.py compares uwsgi-py with this record. Rerun after adding
files to the corpus, or against another uWSGI (``UWSGI_BIN=/path/to/uwsgi``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
sys.path.insert(0, str(CORPUS))

import sandbox  # noqa: E402


def main(argv: list[str]) -> int:
    reason = sandbox.available()
    binary = sandbox.uwsgi_binary()
    if reason or not binary:
        print(f"cannot run: {reason or 'uwsgi is not installed'}", file=sys.stderr)
        return 1
    out = CORPUS / "truth.json"
    truth = json.loads(out.read_text()) if out.exists() else {}
    names = argv or sorted(p.name for p in (CORPUS / "ini").glob("*.ini"))
    for i, name in enumerate(names, 1):
        result = sandbox.run({"job": "truth", "uwsgi": binary, "file": str(CORPUS / "ini" / name)},
                             timeout=120)
        if "error" in result:
            print(f"{name}: sandbox error: {result['error']}", file=sys.stderr)
            return 1
        truth[name] = result
        print(f"[{i}/{len(names)}] {name}: parses={result['uwsgi_parses']} "
              f"unknown={result['uwsgi_unknown']}")
    truth = dict(sorted(truth.items()))
    out.write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n")
    parsed = sum(t["uwsgi_parses"] for t in truth.values())
    print(f"wrote {out}: uWSGI's config stage accepts {parsed}/{len(truth)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
