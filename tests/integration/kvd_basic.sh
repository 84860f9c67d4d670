#!/bin/bash
# kvd and kvctl on a 3-node loopback cluster: reads and writes through any
# node, binary and large values, limits, exit codes, the config file, flag
# errors and a clean shutdown.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

it_init basic 23000 3

# Flags that cannot work are refused with exit 2 before anything starts.
check_rc "kvd without --id exits 2" 2 "$KVD" --data-dir "$IT_TMP/x"
check_rc "kvd with an unknown flag exits 2" 2 "$KVD" --frobnicate
check_rc "kvd with an id outside --peers exits 2" 2 "$KVD" --id 9 \
	--data-dir "$IT_TMP/x" --client-addr 127.0.0.1:1 --peers "$IT_PEERS"
check_rc "kvd --help exits 0" 0 "$KVD" --help
printf 'id = 1\nfrobnicate = yes\n' >"$IT_TMP/bad.ini"
check_rc "kvd with an unknown key in its config file exits 2" 2 \
	"$KVD" --config "$IT_TMP/bad.ini"
check_rc "kvd with a config file that does not exist exits 2" 2 \
	"$KVD" --config "$IT_TMP/missing.ini"
check_rc "kvd with --heartbeat-ticks not below --election-ticks exits 2" 2 \
	"$KVD" --id 1 --data-dir "$IT_TMP/x" --client-addr 127.0.0.1:1 \
	--peers "$IT_PEERS" --election-ticks 5 --heartbeat-ticks 5
check_rc "kvctl with an unknown command exits 2" 2 "$KVCTL" frob
check_rc "kvctl get without a key exits 2" 2 "$KVCTL" get
check_rc "kvctl --timeout 0 exits 2" 2 "$KVCTL" --timeout 0 get k
check_rc "kvctl --timeout 5h exits 2" 2 "$KVCTL" --timeout 5h get k
check_rc "kvctl --endpoints with an empty entry exits 2" 2 \
	"$KVCTL" --endpoints 127.0.0.1:1,,127.0.0.1:2 get k
check_rc "kvctl --endpoints without a port exits 2" 2 \
	"$KVCTL" --endpoints localhost get k
check_rc "kvctl --endpoints with port 99999 exits 2" 2 \
	"$KVCTL" --endpoints 127.0.0.1:99999 get k
check_rc "kvctl --endpoints with an empty port exits 2" 2 \
	"$KVCTL" --endpoints 127.0.0.1: get k
check_rc "kvctl --endpoints with an empty host exits 2" 2 \
	"$KVCTL" --endpoints :6001 get k
check "a bad KVCTL_ENDPOINTS is named as such, not as --endpoints" \
	bash -c 'KVCTL_ENDPOINTS=garbage "$1" get k 2>&1 | grep -q "^kvctl: KVCTL_ENDPOINTS '"'"'garbage'"'"'"' _ "$KVCTL"
check_rc "kvctl --serializable put exits 2" 2 "$KVCTL" --serializable put k v
check_rc "kvctl --serializable del exits 2" 2 "$KVCTL" --serializable del k
check "kvctl --help says exit 5 covers the client's own checks" \
	sh -c "'$KVCTL' --help | grep -qF \"rejected (by the server, or by the client's own limit checks)\""
check "kvctl --help says usage errors go to stderr under --json" \
	sh -c "'$KVCTL' --help | grep -qF 'usage errors go to stderr'"

# Node 1 reads its settings from a config file; the others from flags.
cat >"$IT_TMP/node1.ini" <<EOF
; kvd configuration
id = 1
data-dir = $IT_TMP/node1
client_addr = $(client_addr 1)
peers = $IT_PEERS
[kvd]
tick-ms = 50
log-level = info
EOF
start_proc 1 "$KVD" --config "$IT_TMP/node1.ini" --log-level debug
start_node 2
start_node 3 --follower-reads
leader=$(wait_leader 10)
check "a leader is elected" [ -n "$leader" ]
check_rc "the node started from a config file answers status" 0 \
	kvctl_at 1 --timeout 2s status
check "a flag overrides the file (--log-level debug over info)" \
	grep -q 'level=debug msg="client connected"' "$(log_of 1)"

# Writes through one node are read through every other.
check_rc "put through node 2" 0 kvctl_at 2 put greeting hello
for k in 1 2 3; do
	check_out "linearizable get through node $k" hello \
		kvctl_at "$k" get greeting
done
check_out "serializable get through node 3 (after a linearizable one)" \
	hello kvctl_at 3 --serializable get greeting
# shellcheck disable=SC2317 # called through check_out
answered_by() {
	"$KVCTL" --endpoints "$(client_addr "$1")" --json get greeting |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["endpoint"])'
}
follower=1
[ "$leader" = 1 ] && follower=2
check_out "a follower redirects a linearizable read to the leader" \
	"$(client_addr "$leader")" answered_by "$follower"
check_out "a node with --follower-reads serves linearizable reads itself" \
	"$(client_addr 3)" answered_by 3

# Delete, and what a missing key looks like.
check_rc "del through node 3" 0 kvctl_at 3 del greeting
check_rc "get of a deleted key exits 1" 1 kvctl get greeting
check_rc "del of a missing key exits 1" 1 kvctl del greeting

# Binary-safe values, from stdin.
printf 'a\0b\0\377\n\0' >"$IT_TMP/bin"
check_rc "put a value with NUL bytes from stdin" 0 \
	kvctl put bin - <"$IT_TMP/bin"
kvctl_at 3 get bin >"$IT_TMP/bin.out"
check "the value comes back byte for byte" cmp -s "$IT_TMP/bin" \
	"$IT_TMP/bin.out"
check_out "--json gives the value in base64" \
	"YQBiAP8KAA==" sh -c "'$KVCTL' --endpoints $IT_EPS --json get bin |
		python3 -c 'import json,sys; print(json.load(sys.stdin)[\"value_base64\"])'"

# The largest value the store takes, and one byte more.
head -c 1048576 /dev/urandom >"$IT_TMP/big"
check_rc "put a 1 MiB value" 0 kvctl put big - <"$IT_TMP/big"
kvctl_at 2 get big >"$IT_TMP/big.out"
check "the 1 MiB value comes back intact" cmp -s "$IT_TMP/big" \
	"$IT_TMP/big.out"
head -c 1048577 /dev/urandom >"$IT_TMP/big1"
check_rc "a value over 1 MiB is rejected (exit 5)" 5 \
	kvctl put big1 - <"$IT_TMP/big1"
check_out "and the error says why, and that kvctl checked it" \
	"kvctl: put: rejected: the value on stdin is over the 1048576-byte limit (checked before sending)" \
	sh -c "'$KVCTL' --endpoints $IT_EPS put big1 - <'$IT_TMP/big1' 2>&1"
check_rc "a key over 511 bytes is rejected (exit 5)" 5 \
	kvctl put "$(head -c 512 /dev/zero | tr '\0' k)" v
check_out "... saying so" \
	"kvctl: put: rejected: key of 512 bytes is over the 511-byte limit (checked before sending)" \
	sh -c "'$KVCTL' --endpoints $IT_EPS put $(head -c 512 /dev/zero | tr '\0' k) v 2>&1"

# A key that is not UTF-8 comes back in base64 under --json.
check_rc "put a key that is not UTF-8" 0 kvctl put "$(printf 'k\377')" v
check_out "--json get gives that key in base64" "a/8= False" \
	sh -c "'$KVCTL' --endpoints $IT_EPS --json get \"\$(printf 'k\\377')\" |
		python3 -c 'import json,sys; d = json.load(sys.stdin); print(d[\"key_base64\"], \"key\" in d)'"
check_rc "the cluster still serves after the refusals" 0 kvctl put after ok

# Status: every node, one leader.
check_out "status --json lists three nodes and one leader" "3 1" \
	sh -c "'$KVCTL' --endpoints $IT_EPS --json status | python3 -c '
import json, sys
n = json.load(sys.stdin)
print(len([x for x in n if x[\"ok\"]]), len([x for x in n if x.get(\"role\") == \"leader\"]))'"

# The first thing a node does on SIGTERM is to close its client port: a
# client that connects once the node logged that it is shutting down is
# refused by the kernel before it sends anything, so a put through that
# node alone fails cleanly (exit 3, nothing changed), never as unknown
# (exit 4). A node that has already exited refuses the same way.
# shellcheck disable=SC2317 # called through check
shutting_down() { # poll often: the node may take only ~30 ms to stop
	local i
	for ((i = 0; i < 1000; i++)); do
		grep -q 'msg="shutting down"' "$(log_of "$1")" && return 0
		sleep 0.01
	done
	return 1
}
kill -TERM "$(node_pid "$leader")"
check "the stopping node logs that it is shutting down" \
	shutting_down "$leader"
check_rc "a put through the stopping node alone exits 3, not 4" 3 \
	kvctl_at "$leader" --timeout 1s put during-stop x
wait_exit "$leader"
check "no connection was accepted only to be closed for the shutdown" \
	bash -c "! grep -q 'refusing client connection.*shutting down' '$(log_of "$leader")'"

# SIGTERM: every node exits 0 and says so.
for k in 1 2 3; do
	if [ "$k" = "$leader" ]; then
		wait_exit "$k" # signalled above
	else
		stop_node "$k" TERM
	fi
	check "node $k exits 0 on SIGTERM" [ "$STOP_RC" = 0 ]
	check "node $k logged its shutdown" grep -q 'msg="stopped"' "$(log_of "$k")"
done

it_finish
