#!/usr/bin/env bash
# The test command: install what is missing, build with ASan+UBSan, run every
# test (unit, integration against the real kernel, real TLS and real
# PostgreSQL clusters the tests start themselves), and print a summary.
# Run as root on Debian 12: the BPF and private-PostgreSQL tests need it.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
tests/ui/install.sh # Chromium and playwright-core, for the web UI's browser test
tests/deploy/k8s/install.sh # the Kubernetes manifests' offline checker (npm, pinned)
tests/e2e/install-docker.sh # Docker, for the container tests' Docker case

builddir=build-asan
if [ ! -f "$builddir/build.ninja" ]; then
	meson setup "$builddir" --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false \
		-Dbpf=enabled -Dtests=enabled
fi
ninja -C "$builddir"

# The optimized build the quick start runs: the compiler's optimizer finds
# warnings (errors here) that the -O0 sanitizer build does not.
if [ ! -f build/build.ninja ]; then
	meson setup build --buildtype=release -Dtests=disabled
fi
ninja -C build

status=0

# The house format (root .clang-format) for user space and bpf/ alike: a file
# that differs fails the run, after the tests, with the names and the fix.
unformatted=()
while IFS= read -r -d '' f; do
	clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || unformatted+=("$f")
done < <(find bpf common console defender proto tests -name '*.[ch]' -print0 | sort -z)

meson test -C "$builddir" --print-errorlogs --num-processes 2 "$@" || status=$?

# The fuzz targets (docs/reliability.md): replay every input that once failed
# and the seeds, then 5 s of fuzzing per target.  A failure fails the run
# after the rest has run; it comes before the summary, which stays last.
tests/fuzz/run.sh 5 || status=1

# One line a person (and CI) can read: the criterion tests across all suites.
# Criterion leaves skipped tests out of "Tested"; they are counted from --verbose [SKIP] lines.
log="$builddir/meson-logs/testlog.txt"
if [ -f "$log" ]; then
	awk '
		/Synthesis: Tested:/ {
			for (i = 1; i <= NF; i++) {
				if ($i == "Tested:") tested += $(i + 1)
				if ($i == "Passing:") passed += $(i + 1)
				if ($i == "Failing:") failed += $(i + 1)
				if ($i == "Crashing:") failed += $(i + 1)
			}
		}
		/^\[SKIP\]/ { skipped++; sub(/^\[SKIP\] /, ""); skips[skipped] = $0 }
		END {
			# Every skip by name, with the reason the test gave: none may pass unseen.
			for (i = 1; i <= skipped; i++) printf "vigil: skipped %s\n", skips[i]
			printf "vigil: %d passed, %d failed, %d skipped\n", passed, failed, skipped
		}' "$log"
fi
if [ ${#unformatted[@]} -gt 0 ]; then
	echo "vigil: ${#unformatted[@]} file(s) differ from .clang-format (run clang-format -i on them):"
	printf '  %s\n' "${unformatted[@]}"
	status=1
fi
exit $status
