#!/usr/bin/env bash
# Headless Chromium for tests/test_report.py (Debian's package; the report test opens report.html in it).
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi
chromium --version
