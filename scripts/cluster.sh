#!/bin/bash
# A local kvd cluster for trying things out: `make cluster`, `make
# cluster-stop`, `make cluster-wipe`.
#
#   scripts/cluster.sh start   start N nodes (N=3 or 5; default 3), wait for
#                              a leader, show a put and a get; when some
#                              nodes of ./cluster run and others do not (one
#                              crashed), start the missing ones
#   scripts/cluster.sh stop    SIGTERM every node and wait for it to exit
#   scripts/cluster.sh wipe    stop, then delete ./cluster
#   scripts/cluster.sh status  kvctl status against the running nodes
#
# Node K keeps its data in ./cluster/nodeK, logs to ./cluster/nodeK.log and
# its pid in ./cluster/nodeK.pid. Peers listen on 127.0.0.1:700K, clients
# on 127.0.0.1:600K. Environment: BUILD (build directory, default build),
# N (number of nodes; default: the size of ./cluster, else 3), PEER_BASE
# and CLIENT_BASE (default 7000 and 6000), CLUSTER_DIR (default ./cluster).
# The size of an existing cluster cannot be changed: wipe it first.
set -u
cd "$(dirname "$0")/.." || exit 1

BUILD=${BUILD:-build}
N=${N:-} # empty: the size of ./cluster, or 3 for a new one
DIR=${CLUSTER_DIR:-cluster}
PEER_BASE=${PEER_BASE:-7000}
CLIENT_BASE=${CLIENT_BASE:-6000}
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
		list+="${list:+,}$k=127.0.0.1:$((PEER_BASE + k))"
	done
	echo "$list"
}

endpoints() {
	local k list=""
	for ((k = 1; k <= $1; k++)); do
		list+="${list:+,}127.0.0.1:$((CLIENT_BASE + k))"
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
	if [ -n "$pid" ] && alive "$pid" && is_node "$pid" "$1"; then
		echo "$pid"
		return 0
	fi
	# A pid file whose process is gone, or whose pid now belongs to some
	# other program, is stale: never signal that process.
	rm -f "$f"
	return 1
}

# Whether process PID is kvd serving node K's data directory.
is_node() {
	local cmd
	cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
	case $cmd in
	*kvd\ *--data-dir\ "$DIR/node$2"\ *) return 0 ;;
	esac
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
	if [ -f "$DIR/size" ]; then cat "$DIR/size"; else echo "${N:-3}"; fi
}

# ready K...: a leader is known and nodes K... answer.
ready() {
	local k
	"$KVCTL" --endpoints "$(endpoints "$N")" --timeout 1s status \
		>/dev/null 2>&1 || return 1
	for k in "$@"; do
		"$KVCTL" --endpoints "127.0.0.1:$((CLIENT_BASE + k))" \
			--timeout 1s status >/dev/null 2>&1 || return 1
	done
}

# start_node K: node K, with the command line every start of it uses.
start_node() {
	local k=$1
	# setsid: a Ctrl-C in this terminal must not reach the nodes.
	setsid "$KVD" --id "$k" --data-dir "$DIR/node$k" \
		--client-addr "127.0.0.1:$((CLIENT_BASE + k))" \
		--peers "$(peers "$N")" >>"$DIR/node$k.log" 2>&1 </dev/null &
	echo $! >"$DIR/node$k.pid"
}

start() {
	local k pid running missing=() size="" deadline eps
	if [ -f "$DIR/size" ]; then
		size=$(cat "$DIR/size")
	fi
	running=$(running_nodes | tr '\n' ' ')
	if [ -n "$size" ] && [ -n "$N" ] && [ "$N" != "$size" ]; then
		if [ -n "$running" ]; then
			die "cannot change the size of a running cluster: ./$DIR holds a $size-node cluster (running: ${running% }); 'make cluster-wipe' first to start $N nodes"
		fi
		die "./$DIR holds a $size-node cluster; use N=$size, or 'make cluster-wipe' first"
	fi
	N=${size:-${N:-3}}
	case $N in
	3 | 5) ;;
	*) die "N must be 3 or 5, got '$N'" ;;
	esac
	if [ ! -x "$KVD" ] || [ ! -x "$KVCTL" ]; then
		die "$KVD or $KVCTL missing; run make first"
	fi
	for ((k = 1; k <= N; k++)); do
		node_pid "$k" >/dev/null || missing+=("$k")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		echo "cluster: already running (nodes: ${running% }); endpoints $(endpoints "$N")"
		echo "cluster: stop it with 'make cluster-stop', delete it with 'make cluster-wipe'"
		return 0
	fi
	mkdir -p "$DIR"
	echo "$N" >"$DIR/size"
	if [ -n "$running" ]; then
		echo "cluster: nodes ${running% } are running; starting the missing node(s): ${missing[*]}"
	fi
	for k in "${missing[@]}"; do
		start_node "$k"
	done
	eps=$(endpoints "$N")
	echo "cluster: started ${#missing[@]} of $N nodes; waiting for a leader (up to ${START_DEADLINE}s)"
	deadline=$((SECONDS + START_DEADLINE))
	until ready "${missing[@]}"; do
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
	if [ "$eps" != "$(CLIENT_BASE=6000 endpoints 3)" ]; then
		echo "\$ export KVCTL_ENDPOINTS=$eps"
	fi
	export KVCTL_ENDPOINTS=$eps
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
