#!/usr/bin/env bash
# Install Debian's Chromium for tests/test_browser.py (idempotent; needs root).
# Playwright drives this system browser; it never downloads one of its own.
# (DejaVu: without recommends, a bare image may have no font to render pages with.)
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core \
        >/dev/null
fi
# Debian's /etc/chromium.d/dev-shm check can print a harmless shell warning; show
# stderr only when the browser itself fails.
/usr/bin/chromium --version 2>/dev/null || /usr/bin/chromium --version
