#!/usr/bin/env bash
# Make Debian's prometheus package (prometheus + promtool) available for the rules check and
# the scrape test. Idempotent, quiet, instant when installed. Never starts the daemon: the
# tests run their own short-lived prometheus on a temp config and stop it.
set -euo pipefail

if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "ensure-prometheus: apt-get not available; prometheus tests will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101 keeps the package's postinst from starting a system prometheus on :9090.
had_policy=0
[ -e /usr/sbin/policy-rc.d ] && had_policy=1
if [ "$had_policy" = 0 ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
fi
ok=0
if { [ -n "${CW_APT_UPDATED:-}" ] || apt-get update -qq >/dev/null; } \
  && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; then
  ok=1
fi
[ "$had_policy" = 0 ] && rm -f /usr/sbin/policy-rc.d
if [ "$ok" = 1 ]; then
  echo "ensure-prometheus: installed $(promtool --version 2>&1 | head -n1)"
else
  echo "ensure-prometheus: could not install prometheus; its tests will be skipped" >&2
fi
