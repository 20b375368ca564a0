#!/usr/bin/env bash
# Build Vigil's libnng: Debian 12's own nng 1.5.2-2 source package, with
# Debian's patches, plus deploy/nng/0001-tls-transport-closed-pipe.patch (a
# TLS transport bug that wedges nng's reaper thread; see the patch header and
# docs/operations.md), into a private prefix that Vigil's binaries find by
# rpath.  Needs only Debian's package archive (apt), not GitHub.
#
#   deploy/nng/build-nng.sh            build into $VIGIL_NNG_PREFIX unless the
#                                      stamp there says it is already built
#   VIGIL_NNG_PREFIX=/some/dir ...     another prefix (default /opt/vigil/nng;
#                                      then: meson setup -Dnng_prefix=/some/dir)
#
# Idempotent: the prefix holds a stamp naming the source version and the
# hashes of the patch and of this script; when they match nothing is done.
# deb-src is not needed in the system's sources: apt is pointed at a private
# sources file and lists directory, and checks the .dsc and its files against
# the signed archive index as usual.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

version=1.5.2-2
prefix=${VIGIL_NNG_PREFIX:-/opt/vigil/nng}
patch=$here/0001-tls-transport-closed-pipe.patch
stamp=$prefix/.vigil-nng-stamp

die() { echo "build-nng: $*" >&2; exit 1; }

want="nng $version patch $(sha256sum <"$patch" | cut -d' ' -f1) script $(sha256sum <"$0" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -e "$prefix/lib/libnng.so.1" ]; then
	exit 0
fi

# What the build needs (Debian's Build-Depends for the library: cmake,
# libmbedtls-dev; dpkg-dev for dpkg-source and dpkg-buildflags).
need=()
for p in cmake make gcc libmbedtls-dev dpkg-dev debian-archive-keyring; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || die "missing packages: ${need[*]}; run as root to install them"
	echo "build-nng: installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
mkdir -p "$prefix" 2>/dev/null && [ -w "$prefix" ] ||
	die "cannot write $prefix; run as root, or set VIGIL_NNG_PREFIX to a directory you own"

echo "build-nng: building nng $version with $(basename "$patch") into $prefix"
work=$(mktemp -d "${TMPDIR:-/tmp}/vigil-nng.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt downloads as the unprivileged _apt user when it can.
chmod 0755 "$work"

# Debian's source package, through a private apt configuration.
mkdir -p "$work/apt/lists/partial" "$work/src"
cat >"$work/apt/deb-src.sources" <<EOF
Types: deb-src
URIs: ${VIGIL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt_opts=(
	-o "Dir::Etc::sourcelist=$work/apt/deb-src.sources"
	-o Dir::Etc::sourceparts=/nonexistent
	-o "Dir::State::Lists=$work/apt/lists"
)
apt-get "${apt_opts[@]}" update -qq >/dev/null || die "apt-get update of the bookworm deb-src index failed"
chown _apt "$work/src" 2>/dev/null || true
(cd "$work/src" && apt-get "${apt_opts[@]}" source --download-only -qq "nng=$version" >/dev/null) ||
	die "cannot fetch Debian's nng source $version (is it still in bookworm?)"
dsc=$work/src/nng_$version.dsc
[ -f "$dsc" ] || die "apt fetched no $(basename "$dsc")"
got=$(sed -n 's/^Version: //p' "$dsc")
[ "$got" = "$version" ] || die "source package is $got, not $version"

# Unpack with Debian's patches (debian/patches/series), then ours.
# dpkg-source cannot check the maintainer's signature without debian-keyring
# and says so; the files were already checked against the signed index.
dpkg-source -q -x "$dsc" "$work/nng" >"$work/dpkg-source.log" 2>&1 ||
	{ cat "$work/dpkg-source.log" >&2; die "dpkg-source -x failed"; }
[ "$(dpkg-parsechangelog -l "$work/nng/debian/changelog" -S Version)" = "$version" ] ||
	die "unpacked tree is not nng $version"
patch -d "$work/nng" -p1 --forward --quiet <"$patch" || die "$(basename "$patch") does not apply"

# Debian's options (debian/rules: the shared build, -DNNG_ENABLE_TLS=ON
# -DBUILD_SHARED_LIBS=ON; debhelper's CMAKE_BUILD_TYPE=None and the
# distribution's dpkg-buildflags), minus the tests and nngcat, which are not
# part of the library.
eval "$(dpkg-buildflags --export=sh)"
export CFLAGS="$CFLAGS $CPPFLAGS"
cmake -S "$work/nng" -B "$work/build" -DCMAKE_BUILD_TYPE=None \
	-DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
	-DNNG_ENABLE_TLS=ON -DBUILD_SHARED_LIBS=ON -DNNG_TESTS=OFF -DNNG_TOOLS=OFF \
	-DCMAKE_EXPORT_NO_PACKAGE_REGISTRY=ON -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
	>"$work/cmake.log" 2>&1 || { tail -n 30 "$work/cmake.log" >&2; die "cmake configure failed"; }
cmake --build "$work/build" -j "$(nproc)" >"$work/build.log" 2>&1 ||
	{ tail -n 30 "$work/build.log" >&2; die "build failed"; }

# Replace what was there only once the new library is built.
rm -f "$stamp"
rm -rf "$prefix/lib" "$prefix/include"
cmake --install "$work/build" >/dev/null
nm -D --defined-only "$prefix/lib/libnng.so.1" | grep -q ' nng_vigil_tlstran_closed_fix$' ||
	die "the built libnng lacks the fix's marker symbol"
echo "$want" >"$stamp"
echo "build-nng: installed $prefix/lib/libnng.so.1"
