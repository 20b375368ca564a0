#!/usr/bin/env bash
# What the Kubernetes manifests' offline check needs, when missing: a Node.js
# with npm (the machine's, or Debian's) and the checker's npm packages
# (kubernetes-types with TypeScript, kubernetes-models, yaml; pinned in
# package-lock.json) under tests/deploy/k8s/node_modules.  tests/run.sh runs
# it; production hosts need none of it.  Needs root to install packages.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "tests/deploy/k8s/install.sh: missing ${missing[*]}; run as root to install" >&2
		exit 1
	fi
	echo "tests/deploy/k8s/install.sh: installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

# The lock file pins every package; ci installs exactly it, again only when it changed.
if [ ! -d node_modules/kubernetes-types ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	npm ci --no-audit --no-fund --loglevel=error
fi
