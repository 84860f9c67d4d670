#!/bin/bash
# Where the put path's time goes: the same put runs against kvd binaries
# that differ only in how the state machine (LMDB) syncs, alternated over
# fresh clusters. Usage: bench/sync-variants.sh NAME=KVD_BINARY[:FLAGS] ...
# e.g. default=build/bin/kvd nosync=build/bin/kvd:--unsafe-no-sync
# Environment: REPS (default 2), DURATION (default 5s), CELLS (put cells,
# "clients/conns ...", default "1/1 64/8"). Output: one report line per run
# on stdout, prefixed with the variant name and the load average.
set -u
cd "$(dirname "$0")/.." || exit 1
REPS=${REPS:-2}
DURATION=${DURATION:-5s}
CELLS=${CELLS:-1/1 64/8}
BUILD=${BUILD:-build}
trap 'bench/kvd-cluster.sh stop >/dev/null 2>&1' EXIT
for ((rep = 1; rep <= REPS; rep++)); do
	for v in "$@"; do
		name=${v%%=*} spec=${v#*=}
		bin=${spec%%:*} flags=
		[ "$spec" != "$bin" ] && flags=${spec#*:}
		KVD=$bin KVD_EXTRA=$flags bench/kvd-cluster.sh start >/dev/null ||
			exit 1
		eps=$(bench/kvd-cluster.sh eps)
		for cell in $CELLS; do
			cl=${cell%/*} co=${cell#*/} lead=
			[ "$cl" = 1 ] && lead=-target-leader
			printf '%s\tload=%s\t' "$name" "$(cut -d' ' -f1 /proc/loadavg)"
			"$BUILD/bin/kvbench" -endpoints="$eps" -quiet \
				-duration="$DURATION" -conns="$co" -clients="$cl" \
				$lead put -seq -val-size=256
		done
		bench/kvd-cluster.sh stop >/dev/null
	done
done
