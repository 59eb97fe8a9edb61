#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the browser tier (Playwright is pointed
# at it with executable_path; `playwright install` downloads a browser and is never used).
set -euo pipefail

if [[ ! -x /usr/bin/chromium ]]; then
  echo "ensure_chromium: /usr/bin/chromium is missing; installing Debian's chromium"
  sudo=$([[ $(id -u) -eq 0 ]] || echo sudo)
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
if [[ ! -x /usr/bin/chromium ]]; then
  echo "ensure_chromium: /usr/bin/chromium is still missing after apt-get install chromium" >&2
  exit 1
fi
/usr/bin/chromium --version
