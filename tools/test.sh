#!/usr/bin/env bash
# Set everything up on a fresh machine and run the whole test suite with the linters.
# Usage: bash tools/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh dev,pygame,arcade
if [ -f .ci/display.sh ]; then
  # pygame on SDL's dummy driver; arcade headless through EGL and Mesa's software OpenGL.
  source .ci/display.sh
fi
.venv/bin/ruff check pygase_core pygase_pygame pygase_arcade examples tests
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
