#!/usr/bin/env bash
# The fuzz targets (docs/reliability.md): build them, replay every input that
# once failed (regressions/) and the seed corpus, then fuzz each target.
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET]   default 10; 0 replays only
#   tests/fuzz/run.sh --hours H              H hours split across the targets;
#                                            new corpus entries are kept in a
#                                            scratch directory (printed), never
#                                            written into the tree
#   FUZZ_TARGETS="event spool" tests/fuzz/run.sh ...   only these targets
#   VIGIL_FUZZ_KNOWN=id,id tests/fuzz/run.sh --hours H  step around known,
#                                            unfixed findings (their ids are in
#                                            docs/reliability.md) to find others
#
# Exits non-zero when any target fails, naming the target and the input (the
# failing input is kept under the printed scratch directory).  Needs clang
# (14 or later) with its libFuzzer runtime; sets up its own build directory,
# build-fuzz: ASan+UBSan (UBSan fatal), coverage in the product libraries.
set -euo pipefail
cd "$(dirname "$0")/../.."

usage() {
	echo "usage: $0 [SECONDS_PER_TARGET] | --hours H" >&2
	exit 2
}

seconds=10
hours=""
case "${1:-}" in
"") ;;
--hours)
	[ $# -eq 2 ] || usage
	hours=$2
	;;
*[!0-9]*) usage ;;
*) seconds=$1 ;;
esac

targets=(envelope batch_frame event api_query kvconf defender_config model_file spool rule output_conf container_state enroll_request json_check)
if [ -n "${FUZZ_TARGETS:-}" ]; then
	read -r -a targets <<<"$FUZZ_TARGETS"
fi
if [ -n "$hours" ]; then
	seconds=$(awk -v h="$hours" -v n="${#targets[@]}" 'BEGIN { s = int(h * 3600 / n); print (s > 0 ? s : 1) }')
fi

long_args=()
[ -z "$hours" ] || long_args=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)

# clang's libFuzzer runtime: Debian ships it in libclang-rt-<major>-dev, which
# clang only recommends (deploy/install-deps.sh installs without recommends).
fuzzer_rt="$(clang -print-resource-dir 2>/dev/null)/lib/linux/libclang_rt.fuzzer-$(uname -m).a"
if [ ! -f "$fuzzer_rt" ]; then
	major=$(clang -dumpversion 2>/dev/null | cut -d. -f1)
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null && [ -n "$major" ]; then
		echo "fuzz: installing libclang-rt-$major-dev (clang's libFuzzer runtime)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"libclang-rt-$major-dev" >/dev/null
	fi
	if [ ! -f "$fuzzer_rt" ]; then
		echo "fuzz: clang with its libFuzzer runtime is needed (Debian: clang, libclang-rt-<major>-dev)"
		exit 1
	fi
fi

builddir=build-fuzz
if [ ! -f "$builddir/build.ninja" ]; then
	CC=clang meson setup "$builddir" --buildtype=debugoptimized \
		-Dfuzz=enabled -Dtests=disabled -Dbpf=disabled \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args="-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined" >/dev/null
fi
if ! out=$(ninja -C "$builddir" $(printf "tests/fuzz/fuzz_%s " "${targets[@]}") 2>&1); then
	printf '%s\n' "$out" | tail -40
	echo "fuzz: the fuzz targets do not build"
	exit 1
fi

# Scratch: the harnesses' temporary files on tmpfs, and (outside the tree)
# new corpus entries, failing inputs and logs.
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm=${TMPDIR:-/tmp}
export VIGIL_FUZZ_TMP
VIGIL_FUZZ_TMP=$(mktemp -d "$shm/vigil-fuzz-files.XXXXXX")
scratch=$(mktemp -d "${TMPDIR:-/tmp}/vigil-fuzz.XXXXXX")
keep=0
cleanup() {
	rm -rf "$VIGIL_FUZZ_TMP"
	[ "$keep" = 1 ] || rm -rf "$scratch"
}
trap cleanup EXIT

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

status=0
failed() { # target, what, log
	echo "fuzz: $1: FAILED: $2"
	echo "fuzz: $1: log $3; its end:"
	grep -E 'ERROR|SUMMARY|runtime error|fuzz property failed|#[0-9]+ 0x' "$3" | head -40 | sed 's/^/    /' || true
	status=1
	keep=1
}

for t in "${targets[@]}"; do
	exe="$builddir/tests/fuzz/fuzz_$t"
	log="$scratch/$t.log"
	mkdir -p "$scratch/corpus/$t" "$scratch/crashes/$t"

	# Replay: each regression and seed once, by name, so a failure names its file.
	inputs=()
	while IFS= read -r -d '' f; do
		inputs+=("$f")
	done < <(find "tests/fuzz/regressions/$t" "tests/fuzz/corpus/$t" -type f -print0 2>/dev/null | sort -z)
	if [ ${#inputs[@]} -gt 0 ] && ! "$exe" -timeout=20 "${inputs[@]}" >"$log" 2>&1; then
		input=$(grep -o '^Running: .*' "$log" | tail -1 | cut -d' ' -f2- || true)
		failed "$t" "replaying ${input:-the corpus}" "$log"
		# A short run stops there; a long one fuzzes on for other failures.
		[ -n "$hours" ] || continue
	fi
	[ "$seconds" -gt 0 ] || {
		echo "fuzz: $t: ${#inputs[@]} inputs replayed"
		continue
	}

	# Fuzz: new entries go to the scratch corpus (first directory), seeds are read only.
	# A long run goes on past a failure (one process, -fork=1) to find the others too.
	"$exe" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$scratch/crashes/$t/" "${long_args[@]}" \
		"$scratch/corpus/$t" "tests/fuzz/corpus/$t" >>"$log" 2>&1 || rc=$?
	found=$(find "$scratch/crashes/$t" -type f | sort)
	if [ "${rc:-0}" != 0 ] || [ -n "$found" ]; then
		failed "$t" "input ${found:-(none written, exit ${rc:-0})}" "$log"
		unset rc
		continue
	fi
	runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
	echo "fuzz: $t: ${#inputs[@]} inputs replayed, ${runs:-?} runs in ${seconds}s, coverage ${cov:-?}: ok"
done

if [ -n "$hours" ]; then
	keep=1
	echo "fuzz: new corpus entries in $scratch/corpus/<target>; to keep the useful ones:"
	echo "  $builddir/tests/fuzz/fuzz_<target> -merge=1 tests/fuzz/corpus/<target> $scratch/corpus/<target>"
fi
[ "$status" = 0 ] || echo "fuzz: failing inputs and logs are in $scratch (copy each into tests/fuzz/regressions/<target>/)"
exit $status
