#!/usr/bin/env bash
# What the web UI's browser test needs, when missing: Debian's Chromium, a
# Node.js with npm (the machine's, or Debian's), and the test's own npm
# packages (playwright-core, pinned in package-lock.json) under
# tests/ui/node_modules.  Not part of deploy/install-deps.sh: the quick start
# and production hosts need no browser.  Needs root to install packages.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "tests/ui/install.sh: missing ${missing[*]}; run as root to install" >&2
		exit 1
	fi
	echo "tests/ui/install.sh: installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

# The lock file pins every package; ci installs exactly it, again only when it changed.
if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	npm ci --no-audit --no-fund --loglevel=error
fi
