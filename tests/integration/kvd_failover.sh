#!/bin/bash
# Failover on a 3-node cluster: kill -9 the leader under a stream of writes
# (prints the failover time), check that every acknowledged write survived,
# restart the old leader and watch it catch up; then lose the quorum and
# check what clients see, and get it back.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

it_init failover 23100 3
for k in 1 2 3; do start_node "$k"; done
old=$(wait_leader 10)
check "a leader is elected" [ -n "$old" ]

# A writer that puts w1, w2, ... one at a time and records each exit code.
writer() {
	local i=0
	while [ ! -e "$IT_TMP/stop-writer" ]; do
		i=$((i + 1))
		"$KVCTL" --endpoints "$IT_EPS" --timeout 3s put "w$i" "v$i" \
			>/dev/null 2>>"$IT_TMP/writer.err"
		echo "$i $?" >>"$IT_TMP/writes"
	done
}
acked() {
	grep -c ' 0$' "$IT_TMP/writes" 2>/dev/null
}
# shellcheck disable=SC2317 # called through wait_for
acked_at_least() {
	[ "$(acked)" -ge "$1" ]
}
# shellcheck disable=SC2317 # called through check
new_leader_differs() {
	[ -n "$new" ] && [ "$new" != "$old" ]
}
touch "$IT_TMP/writes"
writer &
writer_pid=$!
check "writes are acknowledged before the kill" \
	wait_for 10 acked_at_least 20

# kill -9 the leader; failover time is from the kill until the next write
# through the cluster succeeds.
t0=$(now_ms)
stop_node "$old" KILL
until kvctl --timeout 2s put probe after-failover >/dev/null 2>&1; do
	if (($(now_ms) - t0 > 15000)); then break; fi
done
t1=$(now_ms)
echo "failover: $((t1 - t0)) ms from kill -9 of leader $old until the next write succeeded"
new=$(wait_leader 10)
check "a new leader is elected" new_leader_differs
check "the new leader takes writes" kvctl --timeout 3s put after-kill yes

before=$(acked)
check "writes go on being acknowledged after the failover" \
	wait_for 10 acked_at_least $((before + 20))
touch "$IT_TMP/stop-writer"
wait "$writer_pid"

# Every acknowledged write is there with its value; exit 4 (unknown) may
# or may not have been applied; nothing else is expected.
lost=0
while read -r i rc; do
	if [ "$rc" = 0 ]; then
		got=$(kvctl --timeout 3s get "w$i" 2>/dev/null)
		[ "$got" = "v$i" ] || lost=$((lost + 1))
	fi
done <"$IT_TMP/writes"
n_ack=$(grep -c ' 0$' "$IT_TMP/writes")
n_unknown=$(grep -c ' 4$' "$IT_TMP/writes")
n_other=$(grep -vcE ' (0|4)$' "$IT_TMP/writes")
echo "writer: $n_ack acknowledged, $n_unknown unknown (exit 4), $n_other other"
check "all $n_ack acknowledged writes are readable after the failover" \
	[ "$lost" = 0 ]
check "no write failed except as unknown" [ "$n_other" = 0 ]

# The old leader comes back as a follower and catches up.
start_node "$old"
check "the restarted node catches up (serializable read of a write made while it was down)" \
	wait_for 10 sh -c "[ \"\$('$KVCTL' --endpoints $(client_addr "$old") \
		--serializable --timeout 1s get after-kill)\" = yes ]"
check_out "it serves linearizable reads again" after-failover \
	kvctl_at "$old" --timeout 3s get probe
leader=$(wait_leader 10)
check "one leader agreed on after the restart" [ -n "$leader" ]

# A clean stop of the leader (SIGTERM) under the same stream of writes:
# writes carry on; those in flight at the stop may be unknown.
rm -f "$IT_TMP/stop-writer"
: >"$IT_TMP/writes"
writer &
writer_pid=$!
check "writes are acknowledged before the stop" wait_for 10 acked_at_least 10
t0=$(now_ms)
stop_node "$leader" TERM
check "the stopped leader exited 0" [ "$STOP_RC" = 0 ]
before=$(acked)
wait_for 10 acked_at_least $((before + 1))
echo "leader stop: the next write was acknowledged $(($(now_ms) - t0)) ms after SIGTERM to leader $leader (polled every 100 ms)"
check "writes carry on after the leader stopped" \
	wait_for 10 acked_at_least $((before + 10))
touch "$IT_TMP/stop-writer"
wait "$writer_pid"
n_other=$(grep -vcE ' (0|4)$' "$IT_TMP/writes")
check "no write failed except as unknown during the stop" [ "$n_other" = 0 ]
start_node "$leader"
leader=$(wait_leader 10)
check "a leader is agreed on after the stopped node is back" [ -n "$leader" ]

# Lose the quorum: stop the leader and one follower at once.
survivor=""
others=()
for k in 1 2 3; do
	if [ "$k" != "$leader" ] && [ -z "$survivor" ]; then
		survivor=$k
	else
		others+=("$k")
	fi
done
for k in "${others[@]}"; do kill -TERM "$(node_pid "$k")"; done
for k in "${others[@]}"; do wait_exit "$k"; done

t0=$(now_ms)
check_rc "without a quorum a write fails with exit 3" 3 \
	kvctl --timeout 2s put noquorum x
t1=$(now_ms)
echo "write without quorum: gave up after $((t1 - t0)) ms (timeout 2000 ms)"
check "... within the timeout (plus 1 s of slack)" [ $((t1 - t0)) -lt 3000 ]
t0=$(now_ms)
check_rc "without a quorum a linearizable read fails with exit 3" 3 \
	kvctl --timeout 2s get probe
t1=$(now_ms)
check "... within the timeout (plus 1 s of slack)" [ $((t1 - t0)) -lt 3000 ]
check_out "without a quorum a serializable read still answers" \
	after-failover kvctl_at "$survivor" --serializable --timeout 2s get probe
check_rc "the failed write was not applied" 1 \
	kvctl_at "$survivor" --serializable get noquorum

# Bring the two back: service resumes with everything in place.
for k in "${others[@]}"; do start_node "$k"; done
check "a leader is elected again" wait_for 10 have_leader
check "writes are accepted again" kvctl --timeout 5s put resumed yes
check_out "and earlier writes are all there" after-failover \
	kvctl --timeout 3s get probe

it_finish
