#!/usr/bin/env bash
# Set up a virtual environment in .venv with pygase and the given extras (default: dev).
# Usage: bash tools/setup.sh [EXTRAS]   e.g. bash tools/setup.sh dev,pygame,arcade
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${extras}]"
