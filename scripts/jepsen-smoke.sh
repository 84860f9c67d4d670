#!/bin/bash
# A short jepsen-lite run for CI (root): one named test and a short mixed
# random fault schedule must pass on the real kvd, and each deliberately
# broken kvd build must be caught.
# Prints "N passed, M failed"; exits non-zero on any failure.
set -u
BUILD=${BUILD:-build}
T=${JEPSEN_SMOKE_TIME:-15}
RT=${JEPSEN_SMOKE_RANDOM_TIME:-30}
pass=0
fail=0

expect() {
	local want=$1 name=$2
	shift 2
	local out rc
	out=$(jepsen-lite/run --time "$T" "$@" 2>&1)
	rc=$?
	echo "$out" | tail -4 | sed 's/^/    /'
	if { [ "$want" = pass ] && [ $rc = 0 ]; } ||
		{ [ "$want" = fail ] && [ $rc = 1 ]; }; then
		echo "ok    $name"
		pass=$((pass + 1))
	else
		echo "FAIL  $name (exit $rc, wanted the run to $want)"
		fail=$((fail + 1))
	fi
}

make --no-print-directory -s kvd-bugs >/dev/null
expect pass "correct kvd survives kill -9 of the leader after acks" \
	kill-leader-after-ack --kvd "$BUILD/bin/kvd" --seed 1
expect pass "correct kvd survives a mixed random fault schedule" \
	random --kvd "$BUILD/bin/kvd" --seed 1 --time "$RT"
expect pass "reordered and duplicated peer messages break nothing" \
	reorder --kvd "$BUILD/bin/kvd" --kvd-faults "$BUILD/bugs/kvd-faults" \
	--seed 1
expect fail "reads without ReadIndex are caught as stale" \
	leader-follower-cut --kvd "$BUILD/bugs/kvd-local-reads" --seed 1
expect fail "acknowledging before commit is caught as a lost write" \
	kill-leader-after-ack --kvd "$BUILD/bugs/kvd-early-ack" --seed 1
jepsen-lite/run cleanup >/dev/null 2>&1
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
