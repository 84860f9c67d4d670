#!/bin/bash
# A throw-away kvd cluster for benchmarks, apart from `make cluster`.
#
#   bench/kvd-cluster.sh start   wipe BASE, start N nodes, wait for a leader
#   bench/kvd-cluster.sh stop    SIGTERM each node by pid, SIGKILL after 20 s
#   bench/kvd-cluster.sh eps     print the client endpoints
#   bench/kvd-cluster.sh pids    print the node pids, one a line
#
# Node K: clients on 127.0.0.1:2500K, peers on 127.0.0.1:2510K (bases
# KVD_BENCH_CLIENT_PORT, KVD_BENCH_PEER_PORT), data in
# BASE/nodeK, log BASE/nodeK.log, pid BASE/nodeK.pid. Environment: BUILD
# (default build), N (3 or 5), KVD_BENCH_BASE (default /var/tmp/kvd-bench:
# keep it on a real disk, not tmpfs), KVD (the kvd binary, default
# BUILD/bin/kvd), KVD_EXTRA (more kvd flags).
set -u
cd "$(dirname "$0")/.." || exit 1

BUILD=${BUILD:-build}
N=${N:-3}
BASE=${KVD_BENCH_BASE:-/var/tmp/kvd-bench}
KVD=${KVD:-$BUILD/bin/kvd}
CLIENT_PORT=${KVD_BENCH_CLIENT_PORT:-25000}
PEER_PORT=${KVD_BENCH_PEER_PORT:-25100}

peers() {
	local k list=""
	for ((k = 1; k <= N; k++)); do
		list+="${list:+,}$k=127.0.0.1:$((PEER_PORT + k))"
	done
	echo "$list"
}

eps() {
	local k list=""
	for ((k = 1; k <= N; k++)); do
		list+="${list:+,}127.0.0.1:$((CLIENT_PORT + k))"
	done
	echo "$list"
}

alive() {
	[ -d "/proc/$1" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null
}

stop() {
	local f pid pids=() left t
	for f in "$BASE"/node*.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
		rm -f "$f"
	done
	for ((t = 0; t < 200; t++)); do
		left=()
		for pid in "${pids[@]}"; do alive "$pid" && left+=("$pid"); done
		[ ${#left[@]} -eq 0 ] && return 0
		sleep 0.1
	done
	for pid in "${left[@]}"; do
		echo "kvd-cluster: pid $pid ignored SIGTERM; killing it" >&2
		kill -KILL "$pid" 2>/dev/null
	done
}

start() {
	local k t
	case $N in
	3 | 5) ;;
	*)
		echo "kvd-cluster: N must be 3 or 5" >&2
		exit 2
		;;
	esac
	stop
	rm -rf "$BASE"
	mkdir -p "$BASE"
	for ((k = 1; k <= N; k++)); do
		# shellcheck disable=SC2086 # KVD_EXTRA is a list of flags
		setsid "$KVD" --id "$k" --data-dir "$BASE/node$k" \
			--client-addr "127.0.0.1:$((CLIENT_PORT + k))" \
			--peers "$(peers)" --log-level warn ${KVD_EXTRA:-} \
			>"$BASE/node$k.log" 2>&1 </dev/null &
		echo $! >"$BASE/node$k.pid"
	done
	for ((t = 0; t < 100; t++)); do
		if "$BUILD/bin/kvctl" --endpoints "$(eps)" --timeout 1s \
			status >/dev/null 2>&1; then
			echo "kvd cluster of $N ready after ~$((t / 5)) s"
			return 0
		fi
		sleep 0.2
	done
	echo "kvd-cluster: no leader after 20 s; logs in $BASE" >&2
	stop
	exit 1
}

case ${1:-} in
start) start ;;
stop) stop ;;
eps) eps ;;
pids) cat "$BASE"/node*.pid 2>/dev/null ;;
*)
	echo "usage: $0 start|stop|eps|pids   (env: BUILD, N, KVD_BENCH_BASE)" >&2
	exit 2
	;;
esac
