#!/bin/bash
# kvbench against a 3-node loopback cluster: each workload completes with
# every request counted, the report line has the etcd tool's fields, --json
# parses, bad flags exit 2 and an unreachable cluster exits 3.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

KVBENCH=$BUILD/bin/kvbench

# The benchmark's ports: peers 25101-25103, clients 25001-25003.
client_addr() {
	echo "127.0.0.1:$((25000 + $1))"
}

it_init kvbench 25100 3
if [ ! -x "$KVBENCH" ]; then
	echo "kvbench: $KVBENCH not built"
	echo "0 passed, 1 failed"
	exit 1
fi

bench() {
	"$KVBENCH" -endpoints="$IT_EPS" -quiet "$@"
}

# The line's field VALUE for KEY=VALUE.
field() {
	tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"
}

# Bad flags are refused before anything connects.
check_rc "no workload exits 2" 2 "$KVBENCH"
check_rc "an unknown workload exits 2" 2 "$KVBENCH" frob
check_rc "an unknown flag exits 2" 2 "$KVBENCH" --frob put
check_rc "--clients 0 exits 2" 2 "$KVBENCH" --clients 0 put
check_rc "--total with --duration exits 2" 2 "$KVBENCH" --total 5 \
	--duration 1s put
check_rc "more connections than clients exits 2" 2 "$KVBENCH" --conns 4 \
	--clients 2 put
check_rc "--val-size above the server's limit exits 2" 2 "$KVBENCH" \
	--val-size 2000000 put
check_rc "--consistency x exits 2" 2 "$KVBENCH" -consistency=x range
check_rc "--help exits 0" 0 "$KVBENCH" --help

# Nothing listening: the warm-up cannot finish.
check_rc "an unreachable cluster exits 3" 3 "$KVBENCH" \
	-endpoints=127.0.0.1:25009 --timeout 1s put

for k in 1 2 3; do start_node "$k"; done
check "a leader is elected" wait_for 10 have_leader

line=$(bench -conns=2 -clients=8 -total=300 put -seq -val-size=100)
check "put: every request of --total succeeds" \
	[ "$(field "$line" n)" = 300 -a "$(field "$line" errors)" = 0 ]
check "put: the line has the etcd tool's fields" \
	grep -qE '^put conns=2 clients=8 key=8B val=100B consistency=l leaderOnly=false n=300 errors=0 time=[0-9.]+s  QPS=[0-9]+  lat\(ms\): mean=[0-9.]+ sd=[0-9.]+ min=[0-9.]+ p50=[0-9.]+ p90=[0-9.]+ p99=[0-9.]+ p99\.9=[0-9.]+ max=[0-9.]+$' \
	<<<"$line"

line=$(bench -target-leader -total=50 put)
check "put to the leader only succeeds" \
	[ "$(field "$line" leaderOnly)" = true -a "$(field "$line" n)" = 50 ]

line=$(bench -clients=4 -total=200 range -consistency=l)
check "linearizable get succeeds" [ "$(field "$line" n)" = 200 ]
line=$(bench -clients=4 -total=200 get --serializable)
check "serializable get succeeds" [ "$(field "$line" consistency)" = s ]

json=$(bench -clients=4 -total=100 --json get)
check "--json prints the figures as JSON" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["n"] == 100 and d["errors"] == 0
assert 0 < d["lat_ms"]["p50"] <= d["lat_ms"]["p99"] <= d["lat_ms"]["max"]
' "$json"

line=$(bench -clients=4 -duration=1s mixed -key-space=50 -read-ratio=0.5)
check "mixed runs for --duration and counts reads of missing keys" \
	grep -qE 'errors=0 time=1\.[0-9]+s .* readRatio=0\.50 notFound=[0-9]+$' \
	<<<"$line"

# The value written for get has --val-size bytes.
bench -total=1 -val-size=7 get >/dev/null
check_out "get writes its key with a --val-size value first" vvvvvvv \
	kvctl get k

it_finish
