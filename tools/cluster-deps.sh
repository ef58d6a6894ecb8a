#!/usr/bin/env bash
# The system programs the cluster tests run for real: redis-server, and Chromium with its
# driver for the monitor page. Installed from Debian's packages when missing (needs root or
# sudo); a machine that has them is left alone.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q "${missing[@]}"
# The package starts a redis-server of its own on port 6379; the tests start theirs on free ports.
if command -v systemctl >/dev/null 2>&1; then
  $sudo systemctl stop redis-server >/dev/null 2>&1 || true
fi
