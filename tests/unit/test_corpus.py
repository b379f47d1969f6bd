"""Public uWSGI ini files (tests/corpus/ini) are read here as uWSGI 2.0.31 reads them.

The files are kept verbatim with their source (tests/corpus/sources.json); what real
uWSGI makes of each one is recorded in tests/corpus/truth.json by
scripts/corpus_truth.py (rerun it after adding files). Starting and serving a sample
is tests/integration/test_corpus_start.py.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from uwsgi_py import cli, config, plugins
from uwsgi_py.options import OptionError

pytestmark = pytest.mark.timeout(120)

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
SOURCES = json.loads((CORPUS / "sources.json").read_text())
TRUTH = json.loads((CORPUS / "truth.json").read_text())
FILES = sorted(p.name for p in (CORPUS / "ini").glob("*.ini"))
sys.path.insert(0, str(CORPUS))
from sandbox import ENV  # noqa: E402  the environment truth.json was recorded in

# Files uWSGI's config stage accepts and uwsgi-py refuses, each for the reason given
# (the substring of the one-line error).
REFUSED = {
    # $(VAR) unset in this environment: uWSGI reads processes = 0 and runs no worker at all
    "AjuntamentdeBarcelona__iris__docker_uwsgi.ini": "--processes: '$(UWSGI_PROCESSES)'",
    "Dispatcharr__Dispatcharr__docker_uwsgi.ini": "--processes: '$(UWSGI_WORKERS)'",
    "arXiv__arxiv-docs__deploy_uwsgi.ini": "--processes: '$(UWSGI_PROCESSES)'",
    # a template's placeholder left in: uWSGI reads 0 and runs no worker
    "ReutersMedia__pyword2vec__conf_uwsgi.ini": "--processes: '__NUM_PYTHON_PROCESSES__'",
    # @(exec://...) runs a command: config files are data here
    "ShandiLin__pymicro-flask__conf_uwsgi.ini": "@(exec://which pymicro_server)",
}
# uWSGI applies these when it reads the line, before %(...) is expanded; uwsgi-py expands.
READ_EARLY = {"listen", "umask"}
# Magic variables whose value depends on the machine, the time or the user.
VOLATILE = re.compile(r"%[kthTjiIJuUgGb]")
UNKNOWN = re.compile(r"unknown option '(.*)' \(")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """name -> (settings, items) or the OptionError text; read from a copy of the corpus."""
    registry = cli.build_registry(plugins.build())
    where = tmp_path_factory.mktemp("corpus")
    for name in FILES:
        shutil.copy(CORPUS / "ini" / name, where / name)
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(where)
        for name in FILES:
            try:
                items, referenced, warnings = config.gather([name], dict(ENV))
                settings = config.settle(registry, items, referenced)
                settings.notes[:0] = warnings
                out[name] = (settings, items)
            except OptionError as e:
                out[name] = str(e)
    return {"dir": str(where), "by_name": out}


def test_the_corpus_is_public_files_kept_with_their_source():
    by_file = {s["file"]: s for s in SOURCES}
    assert sorted(by_file) == FILES
    assert len(FILES) >= 150
    assert len({s["repo"] for s in SOURCES}) == len(SOURCES)
    for name in FILES:
        source = by_file[name]
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), name
        assert source["path"].endswith(".ini") and "/" in source["repo"], name
        data = (CORPUS / "ini" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == source["sha256"], f"{name} was edited"
    assert sorted(TRUTH) == FILES, "run scripts/corpus_truth.py for the new files"


def test_at_least_90_percent_of_the_corpus_parses(results):
    parsed = [n for n, r in results["by_name"].items() if not isinstance(r, str)]
    rate = len(parsed) / len(FILES)
    print(f"uwsgi-py parses {len(parsed)}/{len(FILES)} corpus files ({100 * rate:.1f} %)")
    assert rate >= 0.90


def test_every_file_uwsgi_accepts_parses_here_or_is_refused_for_a_stated_reason(results):
    for name in FILES:
        result = results["by_name"][name]
        if name in REFUSED:
            assert isinstance(result, str) and REFUSED[name] in result, (name, result)
        elif TRUTH[name]["uwsgi_parses"]:
            assert not isinstance(result, str), f"{name}: {result}"


# refused by the pip build of uWSGI only because it is built without PCRE, and accepted here
NEEDS_PCRE = {"MIT-LCP__physionet-build__docker_uwsgi.ini": "log-route"}


def test_files_uwsgi_refuses_are_refused_here_too(results):
    refused = [n for n in FILES if not TRUTH[n]["uwsgi_parses"]]
    assert refused, "truth.json records no file that uWSGI refuses"
    for name in refused:
        if name in NEEDS_PCRE:
            assert NEEDS_PCRE[name] in TRUTH[name]["uwsgi_error"]
            assert not isinstance(results["by_name"][name], str), results["by_name"][name]
            continue
        assert isinstance(results["by_name"][name], str), name


def test_no_unknown_key_warning_that_uwsgi_would_not_also_give(results):
    warned_total = 0
    for name, result in results["by_name"].items():
        if isinstance(result, str):
            continue
        settings, _ = result
        warned = {m.group(1) for note in settings.notes if (m := UNKNOWN.search(note))}
        warned_total += len(warned)
        extra = warned - set(TRUTH[name]["uwsgi_unknown"])
        assert not extra, f"{name}: warned about {extra}, which uWSGI knows"
    assert warned_total > 10    # the corpus has typos (chmod-sock, harakari, socker, ...)


def test_values_are_read_as_uwsgi_reads_them(results):
    compared = 0
    for name, result in results["by_name"].items():
        if isinstance(result, str):
            continue
        _, items = result
        text = (CORPUS / "ini" / name).read_text(errors="replace")
        first: dict[str, str] = {}
        for item in items:
            value = "true" if item.value is True else str(item.value)
            first.setdefault(item.key, value.replace(results["dir"], "{DIR}"))
        for key, expected in TRUTH[name]["uwsgi_values"].items():
            if key in READ_EARLY or (first.get(key) != expected and VOLATILE.search(text)):
                continue
            assert first.get(key) == expected, f"{name}: {key}"
            compared += 1
    assert compared > 1500
