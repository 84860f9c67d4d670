#!/bin/bash
# scripts/cluster.sh (`make cluster`): a node that crashed is started again
# by the next start, and the size of a running cluster cannot be changed.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

it_init cluster_script 23500 3
export CLUSTER_DIR=$IT_TMP PEER_BASE=23500 CLIENT_BASE=23550 BUILD
export START_DEADLINE=10
trap 'scripts/cluster.sh stop >/dev/null 2>&1; it_cleanup' EXIT

run_script() {
	N=${N:-} scripts/cluster.sh "$@" >"$IT_TMP/out" 2>&1
}

says() {
	grep -qF -- "$1" "$IT_TMP/out" || {
		echo "  no '$1' in:"
		cat "$IT_TMP/out"
		return 1
	}
}

check "start brings up 3 nodes" run_script start
kill -KILL "$(cat "$CLUSTER_DIR/node2.pid")"
wait_for 5 bash -c "! kill -0 $(cat "$CLUSTER_DIR/node2.pid")"
check "start with node 2 killed succeeds" run_script start
check "... says it starts the missing node" says "starting the missing node(s): 2"
check "... and node 2 answers again" wait_for 5 "$KVCTL" --endpoints 127.0.0.1:23552 \
	--timeout 2s status
check "... with its data" [ "$("$KVCTL" --endpoints 127.0.0.1:23552 \
	--timeout 2s get hello)" = world ]
check "start with every node running says so" run_script start
check "... (already running)" says "already running"
check_rc "N=5 start on a running 3-node cluster fails" 1 \
	env N=5 scripts/cluster.sh start
N=5 run_script start
check "... saying the size of a running cluster cannot change" \
	says "cannot change the size of a running cluster"
check "stop stops them" run_script stop
check "... all" says "stopped 3 node(s)"

it_finish
