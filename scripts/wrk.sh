#!/usr/bin/env bash
# Installs wrk (the HTTP load generator benchmarks/server.py drives) from Debian's packages.
set -euo pipefail
if command -v wrk >/dev/null; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends wrk >/dev/null
wrk --version 2>&1 | head -1 || true
