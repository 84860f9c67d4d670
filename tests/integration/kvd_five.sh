#!/bin/bash
# A 5-node cluster survives two crashes (kill -9 of a leader, then of the
# next one) with every acknowledged write intact, and refuses writes once a
# third node is gone.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

it_init five 23200 5
for k in 1 2 3 4 5; do start_node "$k"; done
first=$(wait_leader 10)
check "a leader is elected among five" [ -n "$first" ]
check "a write is accepted" kvctl --timeout 3s put k0 v0

stop_node "$first" KILL
check "after one kill a write is accepted" kvctl --timeout 5s put k1 v1
second=$(wait_leader 10)
check "a new leader is elected after one kill" [ -n "$second" ]

stop_node "$second" KILL
t0=$(now_ms)
check "after two kills a write is accepted" kvctl --timeout 5s put k2 v2
echo "failover: $(($(now_ms) - t0)) ms from the second kill -9 to the next acknowledged write"
for i in 0 1 2; do
	check_out "k$i is readable with three of five nodes" "v$i" \
		kvctl --timeout 3s get "k$i"
done

# Three of five down: no quorum; writes fail as unavailable.
third=$(wait_leader 10)
stop_node "$third" KILL
check_rc "after three kills a write fails with exit 3" 3 \
	kvctl --timeout 2s put k3 v3

it_finish
