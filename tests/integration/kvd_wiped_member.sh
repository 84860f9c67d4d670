#!/bin/bash
# A follower whose data directory is wiped while it is down, and which is
# started again with the same id and an empty directory, has lost entries
# it had acknowledged. The leader must notice, log it once and send it the
# log again; once caught up, it makes a quorum with the leader.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

it_init wiped 23700 3
for k in 1 2 3; do start_node "$k"; done
leader=$(wait_leader 10)
check "a leader is elected" [ -n "$leader" ]
victim=""
other=""
for k in 1 2 3; do
	if [ "$k" = "$leader" ]; then
		continue
	elif [ -z "$victim" ]; then
		victim=$k
	else
		other=$k
	fi
done

# serializable_is K KEY VALUE: node K alone answers KEY with VALUE.
# shellcheck disable=SC2317 # called through wait_for
serializable_is() {
	[ "$(kvctl_at "$1" --serializable --timeout 1s get "$2" 2>/dev/null)" = "$3" ]
}
# loss_lines: the leader's warnings about the victim since its restart.
loss_lines() {
	tail -n +"$((seen + 1))" "$(log_of "$leader")" |
		grep -F 'level=warn msg="member lost acknowledged log entries"' |
		grep -F " peer=$victim "
}
# shellcheck disable=SC2317 # called through check_out
loss_count() {
	loss_lines | wc -l
}
# shellcheck disable=SC2317 # called through check
loss_names_log_end_0() {
	loss_lines | grep -qE " acknowledged=[1-9][0-9]* log_ends=0( |$)"
}

bad=0
for i in $(seq 1 50); do
	kvctl --timeout 3s put "k$i" "v$i" >/dev/null 2>&1 || bad=$((bad + 1))
done
check "50 writes are acknowledged" [ "$bad" = 0 ]
check "node $victim holds them" wait_for 10 serializable_is "$victim" k50 v50

stop_node "$victim" KILL
rm -rf "$IT_TMP/node$victim"
seen=$(wc -l <"$(log_of "$leader")")
start_node "$victim"
check "node $victim, started with an empty data directory, catches up (serializable read of a key written before)" \
	wait_for 10 serializable_is "$victim" k50 v50
check_out "... from the first entry on" v1 \
	kvctl_at "$victim" --serializable --timeout 1s get k1
check "the leader warned that node $victim lost acknowledged entries" \
	wait_for 5 loss_lines
check "... and that its log ended at 0" loss_names_log_end_0
# Heartbeats go every 50 ms: a second of them must not repeat the warning.
sleep 1
check_out "... once" 1 loss_count

# With the other follower down, the leader and the wiped member are the
# quorum.
stop_node "$other" TERM
check "with node $other down, writes are still acknowledged" \
	kvctl --timeout 5s put after-wipe yes
check "node $victim has the new write" \
	wait_for 10 serializable_is "$victim" after-wipe yes
start_node "$other"
check "node $other catches up too" \
	wait_for 10 serializable_is "$other" after-wipe yes

it_finish
