#!/bin/bash
# Run every test suite and print one summary line per suite, then a total.
#
# Suites: Check unit tests (build/tests/test_*), the core purity check, the
# deterministic simulation (SIM_SEEDS seeds), the jepsen-lite checker's own
# tests, and the integration scripts (tests/integration/*.sh). A suite
# passes when it exits 0. Logs of each suite go to $BUILD/test-logs/.
set -u
BUILD=${BUILD:-build}
# Fewer simulation seeds under the sanitizers, which run several times
# slower.
if [ "${SAN:-0}" = 1 ]; then
	SIM_SEEDS=${SIM_SEEDS:-500}
else
	SIM_SEEDS=${SIM_SEEDS:-2000}
fi
export SIM_SEEDS
export BUILD
LOGS=$BUILD/test-logs
mkdir -p "$LOGS"

total_pass=0
total_fail=0
failed_suites=()

# count SUITE LOGFILE RC: add the suite's own counts to the totals.
count() {
	local name=$1 log=$2 rc=$3 line p f
	line=$(grep -E 'Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" | tail -1)
	if [ -n "$line" ]; then
		local n fl er
		n=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
		fl=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
		er=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
		f=$((fl + er))
		p=$((n - f))
	else
		line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
		if [ -n "$line" ]; then
			p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+')
			f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')
		elif [ "$rc" = 0 ]; then
			p=1 f=0
		else
			p=0 f=1
		fi
	fi
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		f=1
	fi
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	if [ "$f" != 0 ]; then
		failed_suites+=("$name")
		printf '%-28s FAIL  %d passed, %d failed  (log: %s)\n' "$name" "$p" "$f" "$log"
		tail -20 "$log" | sed 's/^/    | /'
	else
		printf '%-28s ok    %d passed, %d failed\n' "$name" "$p" "$f"
	fi
}

run_suite() {
	local name=$1
	shift
	local log=$LOGS/$name.log
	mkdir -p "$(dirname "$log")"
	"$@" >"$log" 2>&1
	count "$name" "$log" $?
}

export CK_FORK=yes
for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	run_suite "unit/$(basename "$t")" "$t"
done

run_suite purity/core tests/check_core_purity.sh

if [ -x "$BUILD/tests/sim" ]; then
	run_suite sim "$BUILD/tests/sim" --seeds "$SIM_SEEDS"
fi

if [ -x jepsen-lite/test_checker.sh ]; then
	run_suite jepsen-lite/checker jepsen-lite/test_checker.sh
fi

for t in tests/integration/*.sh; do
	[ -x "$t" ] || continue
	run_suite "integration/$(basename "$t" .sh)" "$t"
done

echo
if [ ${#failed_suites[@]} -ne 0 ]; then
	echo "failed suites: ${failed_suites[*]}"
fi
echo "tests: $total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
