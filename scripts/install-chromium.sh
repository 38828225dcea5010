#!/bin/sh
# Install Debian's Chromium for the headless-browser tests (driven by Playwright with
# executable_path=/usr/bin/chromium). Never downloads a browser build: the distribution package only.
# Idempotent: does nothing when /usr/bin/chromium is already there.
set -eu

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-chromium.sh: /usr/bin/chromium is missing and neither root nor sudo is available;" >&2
    echo "install it with: apt-get install -y --no-install-recommends chromium" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium
