#!/bin/bash
# Where the put path's time goes: the same runs against kvd binaries that
# differ in one respect (how the state machine syncs, how answers are
# written), alternated over fresh clusters, so that a difference between
# them shows against the noise of a shared machine.
# Usage: bench/sync-variants.sh NAME=KVD_BINARY[:FLAGS] ...
# e.g. default=build/bin/kvd nosync=build/bin/kvd:--unsafe-no-sync
# Environment: REPS (default 2), DURATION (default 5s), CELLS (put cells,
# "clients/conns ...", default "1/1 64/8"), OP (the workload and its flags,
# default "put -seq -val-size=256"). Output: one report line per run
# on stdout, prefixed with the variant name and the load average.
set -u
cd "$(dirname "$0")/.." || exit 1
REPS=${REPS:-2}
DURATION=${DURATION:-5s}
CELLS=${CELLS:-1/1 64/8}
OP=${OP:-put -seq -val-size=256}
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
			# shellcheck disable=SC2086 # lists of flags
			"$BUILD/bin/kvbench" -endpoints="$eps" -quiet \
				-duration="$DURATION" -conns="$co" -clients="$cl" \
				$lead $OP
		done
		bench/kvd-cluster.sh stop >/dev/null
	done
done
