#!/usr/bin/env bash
# Docker for tests/e2e/test_containers.c (Debian's docker.io: dockerd, its
# containerd and runc), when missing.  Not part of deploy/install-deps.sh:
# the quick start and production hosts need no Docker.  The package would
# start a system daemon (with its bridge and iptables rules) on a host that
# lets packages start services; the test starts its own without them, so the
# install asks invoke-rc.d's policy (policy-rc.d) not to, unless the host has
# a policy of its own.  Needs root to install.
set -euo pipefail

[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "tests/e2e/install-docker.sh: docker.io is missing; run as root to install it" >&2
	exit 1
fi
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	trap 'rm -f "$policy"' EXIT
	printf '#!/bin/sh\n# tests/e2e/install-docker.sh: no service starts while it installs\nexit 101\n' >"$policy"
	chmod 755 "$policy"
fi
echo "tests/e2e/install-docker.sh: installing docker.io"
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io >/dev/null
