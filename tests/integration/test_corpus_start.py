"""A sample of the public uWSGI configs (tests/corpus) starts and serves, unmodified.

Each file runs as published, with only the app and a loopback socket given on the
command line (tests/corpus/harness.py), in a sandbox with its own mount, network and
PID namespaces over a throwaway overlay of / (tests/corpus/sandbox.py): its sockets on
:8000 or /run/uwsgi, its pidfiles and logs, its daemonizing and its uid drop stay in
there. ``python scripts/corpus_report.py`` runs the whole corpus with both servers.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from conftest import IN_CI

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))
import harness  # noqa: E402
import sandbox  # noqa: E402

pytestmark = pytest.mark.timeout(120)

SAMPLE = [
    "BITNP__interview_django__deploy_uwsgi.ini",            # ini = :base, a unix socket in /usr/src
    "Akado2009__fbb_site__deploy_uwsgi.ini",                # %(project) placeholder, daemonize
    "CAVEconnectome__AnnotationEngine__docker_uwsgi.ini",   # %(%k + 1), cheaper, chown-socket
    "RunestoneInteractive__BookServer__deployment_uwsgi.ini",  # uid www-data, master-fifo, logto
    "dbcls__pubcasefinder__uwsgi_uwsgi.ini",                # placeholders, daemonize, %% in log-date
    "JGrubb__django-blog__conf_uwsgi.ini",                  # socket = $(SOCKET) unset, protocol http
    "MikroWizard__mikroman__conf_uwsgi.ini",                # no [uwsgi] section at all
    "Reecepbcups__cosmos-cache__docker_uwsgi.ini",          # a typo (chmod-sock), uid www-data
    "SEED-platform__seed__docker_uwsgi.ini",                # ini = :base, bare flags, uid 1000
    "lukin0110__docker-django-boilerplate__deployment_uwsgi.ini",  # cheaper, uid root, pidfile
    "1frag__product-api__uwsgi.ini",                        # http-socket = :$(PORT), PORT unset
    "agateau__tmc2__docker_uwsgi.ini",                      # a --mount that fails beside the app
    "CloudyneS__healthchecks__docker_uwsgi.ini",            # hook-pre-app exec: that fails
    "CERT-Polska__mwdb-core__docker_uwsgi.ini",             # http11-socket
]


@pytest.fixture(scope="module")
def registry():
    reason = sandbox.available()
    if reason:
        if IN_CI:
            pytest.fail(f"the corpus sandbox is required in CI: {reason}")
        pytest.skip(reason)
    from uwsgi_py import cli, plugins
    return cli.build_registry(plugins.build())


@pytest.mark.parametrize("name", SAMPLE)
def test_a_public_config_starts_and_serves(registry, name):
    result = harness.start(name, "uwsgi-py", registry=registry)
    assert result.get("served"), f"{name}: {result}"


def test_the_sandbox_keeps_what_a_config_does_inside(registry, tmp_path):
    # BITNP's config binds /usr/src/app/deploy/app.sock; it must not appear out here
    assert not os.path.exists("/usr/src/app/deploy/app.sock")
    result = harness.start(SAMPLE[0], "uwsgi-py", registry=registry)
    assert result.get("served")
    assert not os.path.exists("/usr/src/app/deploy/app.sock")
    assert not os.path.exists(sandbox.RUN_DIR)
