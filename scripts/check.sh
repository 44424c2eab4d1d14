#!/usr/bin/env bash
# scripts/check.sh — the whole test suite (README's second command; CI runs
# it). Installs what is missing, then:
#   1. release build (gcc, -Werror): unit tests + mount tests (make check)
#   2. ASan+UBSan build: the same suite again, daemon included
#   2b. ThreadSanitizer build: t_stress and t_rekey with the daemon under TSan
#   3. valgrind memcheck over every unit test
#   4. clang build, warning-free (-Werror), compile only
#   5. libFuzzer: every parser target for FUZZ_SECONDS (default 30) each
#   6. checksrc (banned functions), make install, and the README demo
# Ends with one line "check: N passed, M failed, K skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/deps.sh || exit 1
jobs=$(nproc)
pass=0 fail=0 skip=0
failed=()

note() { printf '\n=== %s\n' "$*"; }
tally() { # dir label: add up automake's .trs results
	local d=$1 label=$2 f r
	while IFS= read -r f; do
		r=$(sed -n 's/^:test-result: //p' "$f" | head -n1)
		case $r in
		PASS) pass=$((pass + 1)) ;;
		SKIP) skip=$((skip + 1)) ;;
		*) fail=$((fail + 1)); failed+=("$label:${f#"$d"/}") ;;
		esac
	done < <(find "$d/tests" -name '*.trs' | sort)
}
build() { # dir configure-args...
	local d=$1
	shift
	mkdir -p "$d"
	(cd "$d" && "$top/configure" -q --enable-werror "$@" && make -s -j"$jobs") >"$d.build.log" 2>&1 ||
		{ cat "$d.build.log"; return 1; }
}
run_check() { # dir label
	local d=$1 label=$2
	find "$d/tests" -name '*.trs' -delete 2>/dev/null
	(cd "$d" && make -s -j1 check) >"$d.check.log" 2>&1
	tally "$d" "$label"
	grep -E '^(PASS|FAIL|SKIP|ERROR|XFAIL|XPASS):' "$d.check.log" | sed "s/^/[$label] /"
	for f in "$d"/tests/*/*.log; do
		[ -f "$f" ] || continue
		grep -q '^:test-result: \(FAIL\|ERROR\)' "${f%.log}.trs" 2>/dev/null || continue
		note "$label: ${f#"$d"/} (last 40 lines)"
		tail -n 40 "$f"
	done
}

[ -x configure ] || autoreconf -fi >/dev/null 2>&1 || { echo "autoreconf failed"; exit 1; }

note "release build (gcc)"
if build build/release; then
	run_check build/release release
else
	fail=$((fail + 1)); failed+=("release:build")
fi

note "ASan + UBSan build"
if build build/asan --enable-sanitizers; then
	run_check build/asan asan
else
	fail=$((fail + 1)); failed+=("asan:build")
fi

note "ThreadSanitizer build: concurrency tests"
if build build/tsan --enable-tsan; then
	rm -rf build/tsan/reports && mkdir -p build/tsan/reports
	find build/tsan/tests -name '*.trs' -delete 2>/dev/null
	(cd build/tsan && TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$top/build/tsan/reports/tsan" \
		make -s -j1 check TESTS="tests/mount/t_stress.sh tests/mount/t_rekey.sh") >build/tsan.check.log 2>&1
	tally build/tsan tsan
	grep -E '^(PASS|FAIL|SKIP|ERROR):' build/tsan.check.log | sed 's/^/[tsan] /'
	if ls build/tsan/reports/tsan.* >/dev/null 2>&1; then
		fail=$((fail + 1)); failed+=("tsan:reports"); head -n 60 build/tsan/reports/tsan.*
	fi
else
	fail=$((fail + 1)); failed+=("tsan:build")
fi

note "valgrind memcheck: unit tests"
if command -v valgrind >/dev/null && [ -x build/release/tests/unit/test_rdwr ]; then
	for t in build/release/tests/unit/test_*; do
		[ -x "$t" ] || continue
		case $t in *.o | *.log | *.trs) continue ;; esac
		if valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
			"$t" >"$t.vg.log" 2>&1; then
			pass=$((pass + 1)); echo "[valgrind] PASS: ${t##*/}"
		else
			fail=$((fail + 1)); failed+=("valgrind:${t##*/}")
			echo "[valgrind] FAIL: ${t##*/}"; tail -n 30 "$t.vg.log"
		fi
	done
else
	skip=$((skip + 1)); echo "[valgrind] SKIP: valgrind or release build missing"
fi

note "clang build, -Werror"
if command -v clang >/dev/null; then
	if build build/clang CC=clang; then
		pass=$((pass + 1)); echo "[clang] PASS: warning-free build"
	else
		fail=$((fail + 1)); failed+=("clang:build")
	fi
else
	skip=$((skip + 1)); echo "[clang] SKIP: clang not installed"
fi

step() { # label command...: one counted check
	local label=$1
	shift
	if "$@" >"build/$label.log" 2>&1; then
		pass=$((pass + 1)); echo "[$label] PASS"
	else
		fail=$((fail + 1)); failed+=("$label")
		echo "[$label] FAIL"; tail -n 30 "build/$label.log"
	fi
}
install_check() {
	local d
	d=$(mktemp -d)
	make -s -C build/release install DESTDIR="$d" &&
		[ -x "$d/usr/local/bin/cmkfs" ] &&
		[ -f "$d/usr/local/share/man/man1/cmkfs.1" ] &&
		[ -f "$d/usr/local/share/man/man1/cmkfs-mount.1" ] &&
		[ -f "$d/usr/local/share/bash-completion/completions/cmkfs" ] &&
		[ -L "$d/usr/local/sbin/mount.fuse.cmkfs" ] &&
		grep -q "^\.TH CMKFS 1" "$d/usr/local/share/man/man1/cmkfs.1" || { rm -rf "$d"; return 1; }
	rm -rf "$d"
}
demo_check() {
	local d
	d=$(mktemp -d)
	DEMO_DIR=$d bash scripts/demo.sh &&
		grep -qs " $d/mnt fuse.cmkfs " /proc/self/mounts &&
		CMKFS_RUNTIME_DIR=$d/run build/release/src/cmkfs umount "$d/mnt" &&
		kill "$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$d/kv/server.json")" &&
		rm -rf "$d"
}
note "libFuzzer (clang, ASan+UBSan), ${FUZZ_SECONDS:-30} s per target"
fuzz_run() { # target
	local c
	c=$(mktemp -d)
	cp tests/fuzz/corpus/"$1"/* "$c"/
	build/fuzz/tests/fuzz/lf_"$1" -max_total_time="${FUZZ_SECONDS:-30}" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 "$c"
	local rc=$?
	rm -rf "$c"
	return $rc
}
if command -v clang >/dev/null && build build/fuzz CC=clang --enable-fuzzing &&
	make -s -C build/fuzz fuzz >build/fuzz.build.log 2>&1; then
	for t in header volume names block json azure token kv cli; do
		step "fuzz_$t" fuzz_run "$t"
	done
else
	fail=$((fail + 1)); failed+=("fuzz:build")
	tail -n 30 build/fuzz.build.log 2>/dev/null
fi

note "checksrc, make install, README demo"
step checksrc bash scripts/checksrc.sh
step install install_check
step demo demo_check

echo
[ ${#failed[@]} -eq 0 ] || printf 'failed: %s\n' "${failed[@]}"
echo "check: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
