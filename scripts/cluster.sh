#!/bin/bash
# A local kvd cluster for trying things out: `make cluster`, `make
# cluster-stop`, `make cluster-wipe`.
#
#   scripts/cluster.sh start   start N nodes (N=3 or 5; default 3), wait for
#                              a leader, show a put and a get
#   scripts/cluster.sh stop    SIGTERM every node and wait for it to exit
#   scripts/cluster.sh wipe    stop, then delete ./cluster
#   scripts/cluster.sh status  kvctl status against the running nodes
#
# Node K keeps its data in ./cluster/nodeK, logs to ./cluster/nodeK.log and
# its pid in ./cluster/nodeK.pid. Peers listen on 127.0.0.1:700K, clients
# on 127.0.0.1:600K. Environment: BUILD (build directory, default build),
# N (number of nodes).
set -u
cd "$(dirname "$0")/.." || exit 1

BUILD=${BUILD:-build}
N=${N:-3}
DIR=cluster
KVD=$BUILD/bin/kvd
KVCTL=$BUILD/bin/kvctl
START_DEADLINE=${START_DEADLINE:-15}
STOP_DEADLINE=${STOP_DEADLINE:-15}

die() {
	echo "cluster: $*" >&2
	exit 1
}

peers() {
	local k list=""
	for ((k = 1; k <= $1; k++)); do
		list+="${list:+,}$k=127.0.0.1:$((7000 + k))"
	done
	echo "$list"
}

endpoints() {
	local k list=""
	for ((k = 1; k <= $1; k++)); do
		list+="${list:+,}127.0.0.1:$((6000 + k))"
	done
	echo "$list"
}

# Whether process PID runs. A node that has exited but was not reaped yet
# (its parent, this script, is gone) counts as exited.
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "${st#Z}" = "$st" ]
}

# The pid of node K if it is running, else nothing.
node_pid() {
	local f=$DIR/node$1.pid pid
	[ -f "$f" ] || return 1
	pid=$(cat "$f")
	if [ -n "$pid" ] && alive "$pid"; then
		echo "$pid"
		return 0
	fi
	return 1
}

running_nodes() {
	local f k
	for f in "$DIR"/node*.pid; do
		[ -f "$f" ] || continue
		k=${f#"$DIR"/node}
		k=${k%.pid}
		node_pid "$k" >/dev/null && echo "$k"
	done
}

cluster_size() {
	if [ -f "$DIR/size" ]; then cat "$DIR/size"; else echo "$N"; fi
}

start() {
	local k pid running size deadline eps
	case $N in
	3 | 5) ;;
	*) die "N must be 3 or 5, got '$N'" ;;
	esac
	if [ ! -x "$KVD" ] || [ ! -x "$KVCTL" ]; then
		die "$KVD or $KVCTL missing; run make first"
	fi
	running=$(running_nodes | tr '\n' ' ')
	if [ -n "$running" ]; then
		size=$(cluster_size)
		echo "cluster: already running (nodes: ${running% }); endpoints $(endpoints "$size")"
		echo "cluster: stop it with 'make cluster-stop', delete it with 'make cluster-wipe'"
		return 0
	fi
	if [ -f "$DIR/size" ] && [ "$(cat "$DIR/size")" != "$N" ]; then
		die "./$DIR holds a $(cat "$DIR/size")-node cluster; use N=$(cat "$DIR/size"), or 'make cluster-wipe' first"
	fi
	mkdir -p "$DIR"
	echo "$N" >"$DIR/size"
	for ((k = 1; k <= N; k++)); do
		# setsid: a Ctrl-C in this terminal must not reach the nodes.
		setsid "$KVD" --id "$k" --data-dir "$DIR/node$k" \
			--client-addr "127.0.0.1:$((6000 + k))" \
			--peers "$(peers "$N")" >>"$DIR/node$k.log" 2>&1 </dev/null &
		echo $! >"$DIR/node$k.pid"
	done
	eps=$(endpoints "$N")
	echo "cluster: started $N nodes; waiting for a leader (up to ${START_DEADLINE}s)"
	deadline=$((SECONDS + START_DEADLINE))
	until "$KVCTL" --endpoints "$eps" --timeout 1s status >/dev/null 2>&1; do
		for ((k = 1; k <= N; k++)); do
			if ! pid=$(node_pid "$k"); then
				echo "cluster: node $k exited; the end of $DIR/node$k.log:" >&2
				tail -5 "$DIR/node$k.log" >&2
				stop
				exit 1
			fi
		done
		if ((SECONDS >= deadline)); then
			echo "cluster: no leader after ${START_DEADLINE}s; logs in ./$DIR/node*.log" >&2
			"$KVCTL" --endpoints "$eps" --timeout 1s status >&2
			exit 1
		fi
		sleep 0.2
	done
	"$KVCTL" --endpoints "$eps" status
	echo
	echo "endpoints: $eps"
	if [ "$N" != 3 ]; then
		echo "\$ export KVCTL_ENDPOINTS=$eps"
		export KVCTL_ENDPOINTS=$eps
	fi
	echo "\$ $KVCTL put hello world"
	"$KVCTL" put hello world || exit 1
	echo "\$ $KVCTL get hello"
	"$KVCTL" get hello || exit 1
	echo
}

stop() {
	local k pid pids=() deadline
	for k in $(running_nodes); do
		pid=$(node_pid "$k") || continue
		kill -TERM "$pid" 2>/dev/null && pids+=("$k:$pid")
	done
	if [ ${#pids[@]} -eq 0 ]; then
		echo "cluster: not running"
		rm -f "$DIR"/node*.pid
		return 0
	fi
	deadline=$((SECONDS + STOP_DEADLINE))
	for entry in "${pids[@]}"; do
		k=${entry%%:*}
		pid=${entry#*:}
		while alive "$pid"; do
			if ((SECONDS >= deadline)); then
				echo "cluster: node $k (pid $pid) ignored SIGTERM for ${STOP_DEADLINE}s; killing it" >&2
				kill -KILL "$pid" 2>/dev/null
				break
			fi
			sleep 0.1
		done
		rm -f "$DIR/node$k.pid"
	done
	echo "cluster: stopped ${#pids[@]} node(s)"
}

case ${1:-} in
start) start ;;
stop) stop ;;
wipe)
	stop
	rm -rf "$DIR"
	echo "cluster: removed ./$DIR"
	;;
status)
	"$KVCTL" --endpoints "$(endpoints "$(cluster_size)")" status
	;;
*)
	echo "usage: $0 start|stop|wipe|status   (env: BUILD, N=3|5)" >&2
	exit 2
	;;
esac
