#!/usr/bin/env bash
# Set up and pass the tests: install uwsgi-py with its test extras, then run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e '.[test,fifo,inetd,ruby,stats,logging,procname]'
if [ -d .ci/tools/usr/sbin ]; then export PATH="$PWD/.ci/tools/usr/sbin:$PATH"; fi
python3 -m pytest -n 2 --timeout 180 "$@"
