#!/usr/bin/env bash
# Bring Vigil up on this host: a console with its private PostgreSQL and a
# defender connected to it over mutual TLS.  Run as root on Debian 12.
#
#   deploy/quickstart.sh          install what is missing, build, start (reuses what exists)
#   deploy/quickstart.sh stop     stop the console and defender it started
#
# State lives in $VIGIL_HOME (default /var/lib/vigil): console/ (database, API
# token, PKI), defender/ and the daemons' logs and pid files.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)

home=${VIGIL_HOME:-/var/lib/vigil}
console_state=$home/console
pki=$console_state/pki
link_port=${VIGIL_LINK_PORT:-7443}
api_port=${VIGIL_API_PORT:-8443}
# vigilctl (below, and in what this prints) finds the API here.
export VIGIL_API="https://127.0.0.1:$api_port"
build=$src/build
vigilctl=$build/console/vigilctl

die() { echo "quickstart: $*" >&2; exit 1; }

running() { # pidfile
	[ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

stop_one() { # name pidfile
	if running "$2"; then
		local pid; pid=$(cat "$2")
		kill -TERM "$pid"
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		echo "quickstart: stopped $1 (pid $pid)"
	fi
	rm -f "$2"
}

if [ "${1:-}" = "stop" ]; then
	stop_one vigil-defender "$home/defender.pid"
	stop_one vigil-console "$home/console.pid"
	exit 0
fi
[ $# -eq 0 ] || die "usage: deploy/quickstart.sh [stop]"
[ "$(id -u)" -eq 0 ] || die "run as root: the defender loads BPF programs and the console runs PostgreSQL as the vigil-pg user"

deploy/install-deps.sh
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" --buildtype=release -Dtests=disabled >/dev/null
fi
ninja -C "$build" >/dev/null

mkdir -p "$home" && chmod 0755 "$home"
# 0711: the private PostgreSQL runs as the vigil-pg user and must reach its directory.
mkdir -p "$console_state" && chmod 0711 "$console_state"

# Host identity is the certificate's CN: this host's name, made safe for a CN.
host_id=$(hostname | tr -c 'A-Za-z0-9._\n-' '-' | cut -c1-64)

# Development PKI: a CA and the console's certificate.  This host's defender
# enrolls with a join token (docs/operations.md, "Enrolling hosts"): its key is
# made by the defender and never leaves its state directory.
[ -f "$pki/ca.crt" ] || "$vigilctl" pki init --dir "$pki" --cn "Vigil dev CA $host_id"
[ -f "$pki/console.crt" ] || "$vigilctl" pki issue --dir "$pki" --server --cn console \
	--dns localhost --dns "$(hostname)" --ip 127.0.0.1 --ip ::1

conf=$home/defender.conf
if [ ! -f "$conf" ]; then
	cat >"$conf" <<CONF
# vigil-defender configuration written by deploy/quickstart.sh
console = tls+tcp://127.0.0.1:$link_port
ca = $pki/ca.crt
cert = $home/defender/identity/host.crt
key = $home/defender/identity/host.key
state_dir = $home/defender
label = env=dev
label = via=quickstart
# Each service's model learns this long, then what it lacks becomes an audit (docs/learning.md).
learn_window = 24h
CONF
fi

if running "$home/console.pid"; then
	echo "quickstart: vigil-console already running (pid $(cat "$home/console.pid"))"
else
	setsid "$build/console/vigil-console" --state-dir "$console_state" \
		--listen "tls+tcp://0.0.0.0:$link_port" --api "https://127.0.0.1:$api_port" \
		--enroll-ca-dir "$pki" </dev/null >>"$home/console.log" 2>&1 &
	echo $! >"$home/console.pid"
	echo "quickstart: started vigil-console (pid $!), log $home/console.log"
fi

# Wait for the API: the first start runs initdb, which takes a few seconds.
for _ in $(seq 600); do
	if "$vigilctl" hosts >/dev/null 2>&1; then break; fi
	running "$home/console.pid" || { tail -n 20 "$home/console.log" >&2; die "vigil-console exited; see $home/console.log"; }
	sleep 0.1
done
"$vigilctl" hosts >/dev/null || die "the console API does not answer; see $home/console.log"

# The identity the configuration names; missing on a first start: enroll.
conf_value() { sed -n "s/^$1 = //p" "$conf" | head -n 1; }
token_file=$home/join-token
if running "$home/defender.pid"; then
	echo "quickstart: vigil-defender already running (pid $(cat "$home/defender.pid"))"
else
	defender_args=(--config "$conf")
	if [ ! -f "$(conf_value cert)" ] || [ ! -f "$(conf_value key)" ]; then
		(umask 077 && "$vigilctl" enroll token create --expires 10m --json >"$token_file.json") ||
			die "cannot make a join token (a console from an older quick start? deploy/quickstart.sh stop, then again)"
		(umask 077 && sed -n 's/^  "token": "\([0-9a-f.]*\)",*$/\1/p' "$token_file.json" >"$token_file")
		rm -f "$token_file.json"
		[ -s "$token_file" ] || die "vigilctl printed no join token"
		defender_args+=(--enroll-token-file "$token_file" --console "127.0.0.1:$api_port"
			--ca "$pki/ca.crt" --name "$host_id")
	fi
	setsid "$build/defender/vigil-defender" "${defender_args[@]}" \
		</dev/null >>"$home/defender.log" 2>&1 &
	echo $! >"$home/defender.pid"
	echo "quickstart: started vigil-defender (pid $!), log $home/defender.log"
fi

# Until this defender has said hello (an old row of this host would list it at once).
defender_pid=$(cat "$home/defender.pid")
for _ in $(seq 100); do
	grep -q "vigil-defender\[$defender_pid\] info: registered with the console" \
		"$home/defender.log" 2>/dev/null && break
	running "$home/defender.pid" || { tail -n 20 "$home/defender.log" >&2; rm -f "$token_file"; die "vigil-defender exited; see $home/defender.log"; }
	sleep 0.1
done
# Used (or not needed): a join token is not left lying around.
rm -f "$token_file"

cat <<MSG

Vigil is up on this host.
  Web UI:     https://127.0.0.1:$api_port/  (CA $pki/ca.crt; sign in with the API token, or
              add a user: $vigilctl users add NAME --role admin)
  API:        https://127.0.0.1:$api_port/api/v1/hosts  (CA $pki/ca.crt)
  API token:  $console_state/api-token  (send as "Authorization: Bearer <token>")
  Defenders:  tls+tcp://<this host>:$link_port; to add a host: $vigilctl enroll token create
              (prints the command to run on it; the API must be reachable from it)
  Logs:       $home/console.log, $home/defender.log

Try (with VIGIL_API=$VIGIL_API when the port is not 8443):
  $vigilctl hosts
  $vigilctl models      # one model per service on this host, learning for 24 h, then active
  $vigilctl activity    # what people did in interactive sessions (ssh, consoles, sudo)
  $vigilctl audits      # deviations from the models, losses, silent defenders

MSG
"$vigilctl" hosts || true
