#!/usr/bin/env bash
# Build the Vigil container images with podman, from this tree, with no
# registry: the Debian 12 base is made here with debootstrap from the Debian
# mirror apt uses, imported as an image, and kept until its inputs change.
#
#   deploy/containers/build.sh            # localhost/vigil-defender, localhost/vigil-console
#
# Environment:
#   VIGIL_BUILD_DIR        a release meson build dir of this tree (default: build,
#                          the one tests/run.sh and the quick start make; set up
#                          and built here when missing)
#   VIGIL_IMAGE_PREFIX     image names' prefix (default localhost/vigil-): the images
#                          are PREFIXbase:bookworm, PREFIXdefender:VERSION, PREFIXconsole:VERSION,
#                          each also tagged :latest
#   VIGIL_DEBIAN_MIRROR    default: the first Debian archive in apt's sources
#   VIGIL_REBUILD_BASE=1   make the base again (security updates)
#   PODMAN_OPTS            options for podman build (default: what podman-opts.sh finds
#                          makes a container start on this host; usually none)
#
# What the images need to run (capabilities, mounts) is in docs/deploy.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${VIGIL_BUILD_DIR:-$src/build}
prefix=${VIGIL_IMAGE_PREFIX:-localhost/vigil-}
suite=bookworm
nng_lib=${VIGIL_NNG_PREFIX:-/opt/vigil/nng}/lib

die() {
	echo "containers/build.sh: $*" >&2
	exit 1
}

command -v podman >/dev/null || die "podman is not installed (deploy/install-deps.sh installs it)"

# The Debian archive apt already reaches (deb822 "URIs:" or one-line "deb URL bookworm").
mirror() {
	local f u
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		u=$(awk '
			/^URIs:/ && $2 ~ /\/debian\/?$/ { print $2; exit }
			/^deb / && $3 ~ /^bookworm$/ && $2 ~ /\/debian\/?$/ { print $2; exit }' "$f")
		if [ -n "$u" ]; then
			echo "$u"
			return
		fi
	done
	echo http://deb.debian.org/debian
}

# ---- the base: debootstrap'ed Debian 12, minimal -----------------------------
base=${prefix}base:$suite
mirror_url=${VIGIL_DEBIAN_MIRROR:-$(mirror)}
# What the base is made from: a change here makes it again.
base_inputs=$(printf 'v1 %s minbase %s %s\n' "$suite" "$mirror_url" "$(dpkg --print-architecture)" | sha256sum | cut -c1-16)
have=$(podman image inspect --format '{{index .Labels "org.vigil.base-inputs"}}' "$base" 2>/dev/null || true)
if [ "${VIGIL_REBUILD_BASE:-0}" = 1 ] || [ "$have" != "$base_inputs" ]; then
	command -v debootstrap >/dev/null || die "debootstrap is not installed (deploy/install-deps.sh installs it)"
	[ "$(id -u)" -eq 0 ] || die "making the base image needs root (debootstrap)"
	rootfs=$(mktemp -d /var/tmp/vigil-base.XXXXXX)
	trap 'rm -rf "$rootfs"' EXIT
	echo "containers: making $base with debootstrap from $mirror_url"
	debootstrap --variant=minbase "$suite" "$rootfs" "$mirror_url" >"$rootfs.log" 2>&1 ||
		die "debootstrap failed; its log: $rootfs.log"
	rm -f "$rootfs.log"
	# apt inside the images uses the same mirror; no caches or logs in the layer.
	echo "deb $mirror_url $suite main" >"$rootfs/etc/apt/sources.list"
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*
	tar -C "$rootfs" --numeric-owner -c . |
		podman import --change "LABEL org.vigil.base-inputs=$base_inputs" \
			--change 'CMD ["/bin/bash"]' - "$base" >/dev/null
	rm -rf "$rootfs"
	trap - EXIT
fi

# ---- the binaries: a release build, installed into a staging tree ------------
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" "$src" --buildtype=release -Dtests=disabled >/dev/null
fi
ninja -C "$build" >/dev/null
ctx=$build/containers-context
rm -rf "$ctx"
mkdir -p "$ctx/stage" "$ctx/nng"
meson install -C "$build" --destdir "$ctx/stage" --no-rebuild --quiet >/dev/null
bindir=$(cd "$ctx/stage" && find . -path '*/bin/vigil-defender' -printf '%h\n' | head -1)
[ -n "$bindir" ] || die "meson install put no vigil-defender in $ctx/stage"
mkdir -p "$ctx/bin"
cp "$ctx/stage/$bindir/vigil-defender" "$ctx/stage/$bindir/vigil-console" \
	"$ctx/stage/$bindir/vigilctl" "$ctx/bin/"
cp "$src/deploy/defender.conf.example" "$ctx/"
# Vigil's patched libnng (docs/operations.md): the binaries' RUNPATH names its prefix.
cp -a "$nng_lib"/libnng.so* "$ctx/nng/" || die "no libnng in $nng_lib (deploy/nng/build-nng.sh)"
rm -rf "$ctx/stage"

opts=${PODMAN_OPTS-$("$here/podman-opts.sh" "$base")} || die "podman cannot start containers here"
version=$("$ctx/bin/vigil-defender" --version | awk '{print $2}')
revision=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
for image in defender console; do
	name=${prefix}$image
	echo "containers: building $name:$version"
	# --network=host: the image's apt-get reaches the mirror the host reaches,
	# whatever podman's own network can do on this host.
	# shellcheck disable=SC2086
	podman build --network=host $opts \
		--build-arg "BASE=$base" --build-arg "VERSION=$version" \
		--build-arg "REVISION=$revision" \
		-f "$here/$image.Containerfile" -t "$name:$version" -t "$name:latest" "$ctx" >"$ctx/$image.log" 2>&1 ||
		die "podman build of $name failed; its log: $ctx/$image.log"
done
echo "containers: ${prefix}defender:$version and ${prefix}console:$version built (docs/deploy.md runs them)"
