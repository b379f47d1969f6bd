#!/usr/bin/env bash
# The compiled request path (README, "Compiled request path"): build it in place with mypyc,
# run the request-parsing and serving tests on it, then go back to the pure build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q 'mypy>=1.10'
UWSGI_PY_COMPILE=1 python3 -m pip install -q --no-build-isolation -e '.[test,fifo,inetd,ruby,stats,logging,procname]'
trap 'rm -rf core/*.so build' EXIT   # back to the pure build; build/: mypyc's C files
if [ -d .ci/tools/usr/sbin ]; then export PATH="$PWD/.ci/tools/usr/sbin:$PATH"; fi
EXPECT_COMPILED=1 python3 -m pytest -n 2 --timeout 180 \
    tests/unit/test_hotpath.py tests/unit/test_proto.py tests/unit/test_http_corpus.py \
    tests/unit/test_h11_differential.py tests/unit/test_fuzz.py \
    tests/integration/test_compiled.py tests/integration/test_http_strict.py \
    tests/integration/test_core.py tests/integration/test_threads.py "$@"
