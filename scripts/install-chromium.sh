#!/usr/bin/env bash
# Installs Debian's chromium, which the tests use to render report.html headless (tests/report.rs).
# Fast when it is already there. Needs root or sudo, and the Debian package mirrors.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-chromium: need root or sudo to install Debian's chromium" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-chromium: installing Debian's chromium (renders report.html in the tests)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null || { echo "install-chromium: chromium did not install" >&2; exit 1; }
