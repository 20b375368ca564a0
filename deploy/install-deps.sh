#!/usr/bin/env bash
# Install the Debian 12 packages Vigil builds, runs and tests with, when missing.
# Idempotent and quiet when everything is present.  Needs root to install.
set -euo pipefail

packages=(
	meson ninja-build pkg-config gcc clang llvm
	libbpf-dev bpftool libelf-dev zlib1g-dev
	libmbedtls-dev
	cmake dpkg-dev # deploy/nng/build-nng.sh builds Vigil's libnng (Debian's nng source + a fix)
	protobuf-c-compiler libprotobuf-c-dev
	libpq-dev libjansson-dev libcriterion-dev
	libyaml-dev # vigilctl reads and writes rule files in YAML
	libargon2-dev # the console hashes its users' passwords with argon2id
	liblz4-dev # batches travel LZ4-compressed between defender and console
	postgresql-15 postgresql-client-15
	iproute2 procps
	clang-format # tests/run.sh checks the house format
	libclang-rt-14-dev # libFuzzer, for tests/fuzz
	rsyslog rsyslog-gnutls python3-prometheus-client # tests/e2e/test_outputs.c: real receivers, a real parser
	systemd # systemd-analyze: tests/deploy/test_install.py verifies the units offline
	debootstrap # deploy/containers/build.sh makes a local Debian 12 base (podman: below); tests/e2e/test_container_deploy.c
	podman crun runc conmon busybox-static # tests/e2e/test_containers.c: real containers of images built here
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
# The console's private PostgreSQL runs as its own system user, not the
# distribution's shared postgres user (console/pg/pgembed.h).
ensure_pg_user() {
	getent passwd vigil-pg >/dev/null && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: there is no vigil-pg user; run as root to create it" >&2
		return 1
	fi
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin vigil-pg
	echo "install-deps: created system user vigil-pg (runs the console's private PostgreSQL)"
}

# nng 1.5.2 from Debian's source package with deploy/nng's fix, in a private
# prefix (/opt/vigil/nng; VIGIL_NNG_PREFIX): meson refuses an nng without it.
# Fast when the stamp there says it is built.
build_nng() {
	"$(dirname "$0")/nng/build-nng.sh"
}

if [ ${#missing[@]} -eq 0 ]; then
	ensure_pg_user
	build_nng
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}; run as root to install them" >&2
	exit 1
fi

# Vigil runs its own private PostgreSQL clusters; don't let the package create
# and start a system-wide one on port 5432.
if [[ " ${missing[*]} " == *" postgresql-15 "* ]] && [ ! -e /etc/postgresql-common/createcluster.conf ]; then
	mkdir -p /etc/postgresql-common
	echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
ensure_pg_user
build_nng
