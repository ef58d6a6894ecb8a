#!/usr/bin/env bash
# Set everything up and run the demo: a Backend and three headless bot clients on localhost.
# Usage: bash tools/demo.sh [pygase demo options, e.g. --clients 5 --seconds 0]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh dev
exec .venv/bin/pygase demo "$@"
