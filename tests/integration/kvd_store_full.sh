#!/bin/bash
# The state machine's file system fills up while the Raft log's does not:
# kvd stops with exit 1 and says the disk is full, naming the store's file
# and the space left, however LMDB saw it (here a short write, which LMDB
# reports as EIO); once restarted with room, every acknowledged put is
# there, replayed from the log.
#
# The store directory (DATA/kv) is a 1 MiB tmpfs mounted in a user and
# mount namespace of kvd's own (unshare -rm), so no root is needed; where
# such namespaces are not allowed the test is skipped.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

it_init storefull 23600 1

if ! unshare -rm sh -c 'mount -t tmpfs -o size=64k none /mnt' 2>/dev/null
then
	echo "skip  user and mount namespaces are not available here"
	it_finish
fi

data=$IT_TMP/node1
mkdir -p "$data/kv"
# shellcheck disable=SC2016,SC2086 # $1 is the inner shell's; KVD_TIMING
# is a list of flags
start_proc 1 unshare -rm sh -c \
	'mount -t tmpfs -o size=1m kvd-it-storefull "$1" && shift && exec "$@"' \
	_ "$data/kv" "$KVD" --id 1 --data-dir "$data" \
	--client-addr "$(client_addr 1)" --peers "$IT_PEERS" $KVD_TIMING
check "a leader is elected" wait_for 10 have_leader

# Values of 100 KiB fill the store's megabyte within a dozen puts; each
# put is answered at commit, before the apply that fails.
head -c 102400 /dev/urandom >"$IT_TMP/value"
acked=0
for ((i = 1; i <= 30; i++)); do
	kvctl --timeout 3s put "big$i" - <"$IT_TMP/value" >/dev/null 2>&1 ||
		break
	acked=$i
done
check "some puts were acknowledged before the store filled up" \
	[ "$acked" -gt 0 ]
check "kvd stops once the store cannot grow" \
	wait_for 10 test -s "$IT_TMP/node1.rc"
check "... with exit 1" [ "$(cat "$IT_TMP/node1.rc")" = 1 ]
check "... saying that the disk is full" grep -qF \
	'cause=fsm_apply error="no space left on device"' "$(log_of 1)"
check "... naming the store's file and the space left in its directory" \
	grep -qE "detail=\"$data/kv/kv.mdb: commit: [^\"]*; [0-9]+ bytes free in $data/kv" \
	"$(log_of 1)"
# shellcheck disable=SC2317 # called through check
no_io_error_line() {
	! grep -qF 'error="I/O error"' "$(log_of 1)"
}
check "... and not calling it an I/O error" no_io_error_line

# Restarted without the small file system (the store is gone with it, the
# log is not), the node replays its log: every acknowledged put is there.
start_node 1
check "restarted with room, a leader is elected" wait_for 10 have_leader
# shellcheck disable=SC2317 # called through check
acked_values_back() {
	local i
	for ((i = 1; i <= acked; i++)); do
		kvctl --timeout 3s get "big$i" >"$IT_TMP/got" 2>/dev/null &&
			cmp -s "$IT_TMP/value" "$IT_TMP/got" || return 1
	done
}
check "every acknowledged value reads back intact" acked_values_back

it_finish
