#!/bin/sh
# The simulation must catch broken cores: for each mutant of
# tests/sim/mutants.sh, run the simulation over the CI seed budget
# (SIM_SEEDS, default 2000) and count the mutant as caught when at least
# one seed reports a violation. Passes only if every mutant is caught.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
SEEDS=${SIM_SEEDS:-2000}
mutants="1 2 3 4 5"
# shellcheck disable=SC2086
tests/sim/mutants.sh $mutants >/dev/null || {
	echo "sim_mutants: cannot build the mutants"
	echo "0 passed, 5 failed"
	exit 1
}
caught=0
missed=0
for m in $mutants; do
	out=$("$BUILD/mutants/sim-m$m" --seeds "$SEEDS" --stop-on-failure 2>&1)
	first=$(printf '%s\n' "$out" | grep -m1 'FAILED' | sed 's/^seed \([0-9]*\) FAILED: \(.*\)/seed \1: \2/')
	if [ -n "$first" ]; then
		caught=$((caught + 1))
		echo "mutant $m caught: $first"
	else
		missed=$((missed + 1))
		echo "mutant $m NOT caught in $SEEDS seeds"
	fi
done
echo "$caught passed, $missed failed"
[ "$missed" = 0 ]
