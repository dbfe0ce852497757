#!/usr/bin/env bash
# Make Debian's chromium available for the browser tests (Playwright drives /usr/bin/chromium;
# we never run `playwright install`). Idempotent, quiet, and instant when already installed.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "ensure-chromium: apt-get not available; browser tests will be skipped" >&2
  exit 0
fi
# A failed install must not fail `make test`: the browser tests skip with a reason instead.
export DEBIAN_FRONTEND=noninteractive
if { [ -n "${CW_APT_UPDATED:-}" ] || apt-get update -qq >/dev/null; } \
  && apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
  echo "ensure-chromium: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
else
  echo "ensure-chromium: could not install chromium; browser tests will be skipped" >&2
fi
