#!/usr/bin/env bash
# Print the podman options (for `podman run` and `podman build`) that make a
# container start on this host: none on most hosts.  Some need another OCI
# runtime (crun refuses a hybrid cgroup v1/v2 tree: "cgroups in hybrid mode
# not supported") or limits within the host's hard ones (podman asks for
# more open files than a sandbox allows: "setrlimit RLIMIT_NOFILE: Operation
# not permitted").  Each candidate is tried on IMAGE (default the base image)
# with `true`; exits 1 when none works.
#   deploy/containers/podman-opts.sh [IMAGE]
set -uo pipefail
image=${1:-${VIGIL_IMAGE_PREFIX:-localhost/vigil-}base:bookworm}
# The host's own hard limit on open files (at most 65536), and a modest one on processes.
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ] && nofile=65536
limits="--ulimit nofile=$nofile:$nofile --ulimit nproc=4096:4096"
for opts in "" "--runtime runc" "$limits" "--runtime runc $limits"; do
	# shellcheck disable=SC2086
	if podman run --rm --network=none $opts "$image" true >/dev/null 2>&1; then
		echo "$opts"
		exit 0
	fi
done
echo "podman-opts.sh: no podman options start a container of $image here:" >&2
podman run --rm --network=none "$image" true >&2
exit 1
