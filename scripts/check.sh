#!/usr/bin/env bash
# scripts/check.sh — the whole test suite (README's second command; CI runs
# it), in stages that also run on their own:
#
#   scripts/check.sh [release|asan|tsan|fuzz|dist|all]...   (default: all)
#
# Installs what is missing (scripts/deps.sh), then per stage:
#   release  gcc build, -Werror (build/release): make check — unit tests,
#            fuzz corpus replay, the Key Vault test server's tests, every
#            mount test; then valgrind memcheck over every unit test.
#   asan     one clang build (build/clang: -Werror, --enable-sanitizers
#            --enable-fuzzing, i.e. ASan+UBSan and libFuzzer coverage); the
#            build counts as the clang warning check; then the same make
#            check as release, daemon included, under the sanitizers.
#   tsan     ThreadSanitizer build (build/tsan) of cmkfs and the stress
#            program only: t_stress and t_rekey, any TSan report fails.
#   fuzz     the libFuzzer build of every target of build/clang (made if
#            missing) for FUZZ_SECONDS each (default 20; was 30 when each
#            target ran alone, now two run at a time).
#   dist     checksrc (banned functions), the layering check
#            (scripts/layering.py), make install, the README demo.
# Tests run SHARED_JOBS (default 3) at a time in make check, everything but
# MOUNT_TESTS_ALONE (Makefile.am: tests that count requests, kill at timed
# points, or load the whole machine), which then run one at a time; the
# valgrind runs and the fuzzers JOBS (default 2) at a time.
# When release runs with later stages (all), the clang and tsan builds and
# the fuzzers (then one at a time) run in the background during release's
# shared tests, which are mostly idle and tolerate load; the lone tests
# start only once that is done. OVERLAP=0 runs everything in order.
#
# Ends with the ten slowest tests and one line
# "check: N passed, M failed, K skipped"; exits 1 on any failure.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

stages=()
for a in "${@:-all}"; do
	case $a in
	all) stages+=(release asan tsan fuzz dist) ;;
	release | asan | tsan | fuzz | dist) stages+=("$a") ;;
	*)
		echo "usage: scripts/check.sh [release|asan|tsan|fuzz|dist|all]..." >&2
		exit 2
		;;
	esac
done

bash scripts/deps.sh || exit 1
jobs=${JOBS:-2}
# Shared mount tests mostly wait (key-check intervals, fsync, the Key Vault
# test server): three at a time keep two cores busy (measured: a run at two
# used 36 % of the CPU time it had).
shared_jobs=${SHARED_JOBS:-3}
fuzz_seconds=${FUZZ_SECONDS:-20}
pass=0 fail=0 skip=0
failed=()
mkdir -p build
times=build/check.times
: >"$times"

note() { printf '\n=== %s\n' "$*"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
took() { # label start-ms: one line of the slowest-tests table
	echo "$(($(now_ms) - $2)) $1" >>"$times"
}

# build DIR [configure-args...] [-- make-targets...]: configure (again only
# when the arguments changed) and make.
build() {
	local d=$1 args cur
	shift
	local -a conf=() targets=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do conf+=("$1"); shift; done
	[ $# -gt 0 ] && shift && targets=("$@")
	mkdir -p "$d"
	args="--enable-werror ${conf[*]}"
	cur=$(cat "$d/.check-conf" 2>/dev/null)
	(
		cd "$d" || exit 1
		if [ ! -f Makefile ] || [ "$cur" != "$args" ]; then
			rm -f .check-conf
			"$top/configure" -q --enable-werror "${conf[@]}" || exit 1
			echo "$args" >.check-conf
		fi
		make -s -j"$jobs" "${targets[@]}"
	) >"$d.build.log" 2>&1 || { tail -n 60 "$d.build.log"; return 1; }
}

declare -A built=()
ensure() { # release|clang|tsan: build once per run; a failed build counts once
	local what=$1 ok=0
	[ -n "${built[$what]:-}" ] && { [ "${built[$what]}" = ok ]; return; }
	local t0
	t0=$(now_ms)
	case $what in
	release) build build/release && ok=1 ;;
	clang)
		if ! command -v clang >/dev/null; then
			skip=$((skip + 1)); echo "[clang] SKIP: clang not installed"
			built[$what]=no; return 1
		fi
		build build/clang CC=clang --enable-sanitizers --enable-fuzzing && ok=1
		;;
	tsan) build build/tsan --enable-tsan -- all tests/mount/stress && ok=1 ;;
	esac
	echo "[build] $what: $((($(now_ms) - t0) / 1000)) s"
	if [ $ok = 1 ]; then
		built[$what]=ok
		# The clang build is the warning check for clang (-Werror).
		[ "$what" = clang ] && { pass=$((pass + 1)); echo "[clang] PASS: warning-free build (-Werror)"; }
		return 0
	fi
	built[$what]=no
	fail=$((fail + 1)); failed+=("$what:build")
	return 1
}

mkvar() { make -s --no-print-directory -C "$1" "print-$2"; }

# tally DIR LABEL TESTS...: count automake's results; a test without a
# result (its program did not build) is a failure.
tally() {
	local d=$1 label=$2 t b r
	shift 2
	for t in "$@"; do
		b=$d/${t%.*}
		case $t in *.sh | *.py) ;; *) b=$d/$t ;; esac
		r=$(sed -n 's/^:test-result: //p' "$b.trs" 2>/dev/null | head -n1)
		case $r in
		PASS) pass=$((pass + 1)) ;;
		SKIP) skip=$((skip + 1)) ;;
		*)
			fail=$((fail + 1)); failed+=("$label:$t")
			if [ -f "$b.log" ]; then
				note "$label: $t ${r:-no result} (last 40 lines)"
				tail -n 40 "$b.log"
			else
				echo "[$label] NO RESULT: $t"
			fi
			;;
		esac
		[ -f "$b.log" ] && sed -n 's/^# time: \([0-9.]*\) s$/\1/p' "$b.log" | tail -n1 |
			awk -v l="$label:$t" '{ printf "%d %s\n", $1 * 1000, l }' >>"$times"
	done
}

# run_tests DIR LABEL [HOOK]: make check, the shared tests SHARED_JOBS at a time,
# then HOOK, then the lone ones one at a time.
run_tests() {
	local d=$1 label=$2 hook=${3:-true} shared alone
	shared=$(mkvar "$d" tests-shared) && alone=$(mkvar "$d" tests-alone) ||
		{ fail=$((fail + 1)); failed+=("$label:test-lists"); return; }
	find "$d/tests" -name '*.trs' -delete 2>/dev/null
	(cd "$d" && make -s -j"$shared_jobs" check TESTS="$shared") >"$d.check.log" 2>&1
	"$hook"
	(cd "$d" && make -s -j1 check TESTS="$alone") >>"$d.check.log" 2>&1
	grep -E '^(PASS|FAIL|SKIP|ERROR|XFAIL|XPASS):' "$d.check.log" | sed "s/^/[$label] /"
	# shellcheck disable=SC2086 # lists of paths without spaces
	tally "$d" "$label" $shared $alone
}

# run_pool LABEL FN N ITEMS...: FN ITEM for each item, N at a time;
# output and status in build/LABEL/ITEM.{log,rc}.
run_pool() {
	local label=$1 fn=$2 n=$3 item
	shift 3
	local dir=build/$label
	rm -rf "$dir" && mkdir -p "$dir"
	for item in "$@"; do
		while [ "$(jobs -rp | wc -l)" -ge "$n" ]; do wait -n; done
		(
			s=$(now_ms)
			"$fn" "$item" >"$dir/$item.log" 2>&1
			echo "$? $(($(now_ms) - s))" >"$dir/$item.rc"
		) &
	done
	wait
}
# pool LABEL FN ITEMS...: run_pool JOBS at a time (unless ran is set),
# then count each item as a check.
pool() {
	local label=$1 fn=$2 item rc ms
	shift 2
	local dir=build/$label
	[ -n "${ran:-}" ] || run_pool "$label" "$fn" "$jobs" "$@"
	for item in "$@"; do
		read -r rc ms <"$dir/$item.rc" 2>/dev/null || rc=1 ms=0
		echo "$ms $label:$item" >>"$times"
		if [ "$rc" = 0 ]; then
			pass=$((pass + 1)); echo "[$label] PASS: $item"
		else
			fail=$((fail + 1)); failed+=("$label:$item")
			echo "[$label] FAIL: $item"; tail -n 30 "$dir/$item.log"
		fi
	done
}

step() { # label command...: one counted check
	local label=$1 t0
	shift
	t0=$(now_ms)
	if "$@" >"build/$label.log" 2>&1; then
		pass=$((pass + 1)); echo "[$label] PASS"
	else
		fail=$((fail + 1)); failed+=("$label")
		echo "[$label] FAIL"; tail -n 30 "build/$label.log"
	fi
	took "$label" "$t0"
}

valgrind_one() { # unit test name (run from the top: tests find their data there)
	TOP_SRCDIR=$PWD valgrind -q --error-exitcode=1 --leak-check=full \
		--errors-for-leak-kinds=definite "build/release/tests/unit/$1"
}
fuzz_one() { # target name
	local c rc
	c=$(mktemp -d)
	cp "tests/fuzz/corpus/$1"/* "$c"/
	"build/clang/tests/fuzz/fuzz_$1_lf" -max_total_time="$fuzz_seconds" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 "$c"
	rc=$?
	rm -rf "$c"
	return $rc
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

want() { [[ " ${stages[*]} " == *" $1 "* ]]; }
fuzz_names() { mapfile -t names < <(mkvar build/clang fuzz-names); }

# Work of later stages done while release's shared tests run: the builds,
# then the fuzzers one at a time. Each stage counts its part later.
background() {
	local clang=0
	rm -rf build/fuzz
	command -v clang >/dev/null && { want asan || want fuzz; } &&
		build build/clang CC=clang --enable-sanitizers --enable-fuzzing && clang=1
	want tsan && build build/tsan --enable-tsan -- all tests/mount/stress
	[ $clang = 1 ] && want fuzz &&
		make -s -C build/clang -j"$jobs" fuzz >build/fuzz.build.log 2>&1 &&
		fuzz_names && [ ${#names[@]} -gt 0 ] &&
		run_pool fuzz fuzz_one 1 "${names[@]}" && touch build/fuzz/.ran
	return 0
}
bg_pid="" bg_ran=""
wait_background() {
	[ -n "$bg_pid" ] || return 0
	local t0
	t0=$(now_ms)
	wait "$bg_pid"
	bg_pid=
	echo "[background] waited $((($(now_ms) - t0) / 1000)) s for builds and fuzzers"
}

stage_release() {
	note "release: gcc build, make check"
	ensure release || return
	if [ "${OVERLAP:-1}" = 1 ] && { want asan || want tsan || want fuzz; }; then
		background >build/background.log 2>&1 &
		bg_pid=$! bg_ran=1
	fi
	run_tests build/release release wait_background
	wait_background
	note "release: valgrind memcheck over the unit tests"
	if ! command -v valgrind >/dev/null; then
		skip=$((skip + 1)); echo "[valgrind] SKIP: valgrind not installed"; return
	fi
	local -a units
	read -r -a units <<<"$(mkvar build/release unit-tests)"
	if [ ${#units[@]} -eq 0 ]; then # no list: a failure, not zero tests
		fail=$((fail + 1)); failed+=("valgrind:no-unit-test-list"); return
	fi
	pool valgrind valgrind_one "${units[@]##*/}"
}

stage_asan() {
	note "asan: clang build (ASan+UBSan, -Werror), make check"
	ensure clang || return
	run_tests build/clang asan
}

stage_tsan() {
	note "tsan: ThreadSanitizer build, t_stress and t_rekey"
	ensure tsan || return
	local r=$top/build/tsan/reports tests="tests/mount/t_stress.sh tests/mount/t_rekey.sh"
	rm -rf "$r" && mkdir -p "$r"
	find build/tsan/tests -name '*.trs' -delete 2>/dev/null
	(cd build/tsan && TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$r/tsan" \
		make -s -j1 check TESTS="$tests" check_PROGRAMS=tests/mount/stress) >build/tsan.check.log 2>&1
	grep -E '^(PASS|FAIL|SKIP|ERROR):' build/tsan.check.log | sed 's/^/[tsan] /'
	# shellcheck disable=SC2086
	tally build/tsan tsan $tests
	if ls "$r"/tsan.* >/dev/null 2>&1; then
		fail=$((fail + 1)); failed+=("tsan:reports"); head -n 60 "$r"/tsan.*
	fi
}

stage_fuzz() {
	note "fuzz: libFuzzer, $fuzz_seconds s per target"
	ensure clang || return
	local -a names=()
	local ran=
	if [ -f build/fuzz/.ran ] && [ -n "$bg_ran" ]; then
		ran=1 && fuzz_names
		echo "(ran one at a time in the background during release's shared tests)"
	else
		make -s -C build/clang -j"$jobs" fuzz >build/fuzz.build.log 2>&1 && fuzz_names
	fi
	if [ ${#names[@]} -eq 0 ]; then
		fail=$((fail + 1)); failed+=("fuzz:build"); tail -n 30 build/fuzz.build.log; return
	fi
	pool fuzz fuzz_one "${names[@]}"
}

stage_dist() {
	note "dist: checksrc, layering, make install, README demo"
	step checksrc bash scripts/checksrc.sh
	step layering python3 scripts/layering.py
	ensure release || return
	step install install_check
	step demo demo_check
}

[ -x configure ] || autoreconf -fi >/dev/null 2>&1 || { echo "autoreconf failed"; exit 1; }

for s in "${stages[@]}"; do
	t0=$(now_ms)
	"stage_$s"
	echo "[$s] stage took $((($(now_ms) - t0) / 1000)) s"
done

note "slowest tests (s)"
sort -rn "$times" | head -n 10 | awk '{ printf "%7.1f  %s\n", $1 / 1000, $2 }'
echo
[ ${#failed[@]} -eq 0 ] || printf 'failed: %s\n' "${failed[@]}"
echo "check: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
