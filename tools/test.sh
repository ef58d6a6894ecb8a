#!/usr/bin/env bash
# Set everything up on a fresh machine and run the linters, the docs build and the whole test suite.
# Usage: bash tools/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")/.."
# Playwright drives Debian's Chromium (the tests point it there); it must never fetch a browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
bash tools/setup.sh dev,pygame,arcade,docs,cluster,browser,fast
if [ -f tools/cluster-deps.sh ]; then
  # redis-server and Chromium for the cluster tests, from Debian's packages when missing.
  bash tools/cluster-deps.sh
fi
if [ -f .ci/display.sh ]; then
  # pygame on SDL's dummy driver; arcade headless through EGL and Mesa's software OpenGL.
  source .ci/display.sh
fi
.venv/bin/ruff check pygase_core pygase_pygame pygase_arcade examples tests docs
.venv/bin/mypy
# The docs site, built where it leaves nothing behind; --strict fails on any warning.
docs_site="$(mktemp -d)"
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir "$docs_site"
rm -rf "$docs_site"
.venv/bin/python -m pytest "$@"
