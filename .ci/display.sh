#!/usr/bin/env bash
# Make the pygame and arcade tests runnable on a machine with no screen and no GPU.
#
# pygame runs on SDL's dummy video driver, which needs nothing installed. arcade runs in its
# headless mode: an offscreen OpenGL context through EGL, rendered in software by Mesa, so no
# X server (and no Xvfb) is needed, only the EGL and Mesa libraries, which this installs from
# Debian's packages when they are missing. It is idempotent: with everything present it only
# checks and exports.
#
# Source it (it exports the variables below into the calling shell) or run it with bash.
# Works under `set -euo pipefail`.

_pygase_display_packages="libegl1 libegl-mesa0 libgl1-mesa-dri"
_pygase_display_missing=""
if command -v dpkg-query >/dev/null 2>&1; then
  for _pygase_display_package in $_pygase_display_packages; do
    if ! dpkg-query -W -f='${Status}' "$_pygase_display_package" 2>/dev/null \
        | grep -q "install ok installed"; then
      _pygase_display_missing="$_pygase_display_missing $_pygase_display_package"
    fi
  done
  if [ -n "$_pygase_display_missing" ]; then
    echo "display.sh: installing${_pygase_display_missing}" >&2
    _pygase_display_sudo=""
    if [ "$(id -u)" -ne 0 ]; then
      _pygase_display_sudo="sudo"
    fi
    $_pygase_display_sudo apt-get update -qq
    # shellcheck disable=SC2086  # the package list is meant to split into words
    DEBIAN_FRONTEND=noninteractive $_pygase_display_sudo apt-get install -y -qq \
      --no-install-recommends $_pygase_display_missing >/dev/null
  fi
else
  echo "display.sh: not a Debian system; make sure EGL and Mesa's OpenGL drivers are installed" >&2
fi
unset _pygase_display_packages _pygase_display_missing _pygase_display_package _pygase_display_sudo

# arcade: render offscreen through EGL. pygame: SDL's dummy video and audio drivers.
export ARCADE_HEADLESS=1
export SDL_VIDEODRIVER=dummy
export SDL_AUDIODRIVER=dummy
