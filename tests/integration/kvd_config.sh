#!/bin/bash
# kvd configurations that cannot work, and data directories it cannot trust:
# refused at start with exit 2 (or 1 for a busy port or a damaged data
# directory) and a message naming the cause, with nothing stored that would
# refuse the corrected configuration afterwards.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

it_init config 23400 3

# kvd_says WANT_RC TEXT kvd-args...: kvd exits WANT_RC and its output
# contains TEXT.
kvd_says() {
	local want=$1 text=$2 out rc
	shift 2
	out=$(timeout 10 "$KVD" "$@" 2>&1)
	rc=$?
	if [ "$rc" != "$want" ]; then
		echo "  exit $rc, want $want: $out"
		return 1
	fi
	if ! grep -qF -- "$text" <<<"$out"; then
		echo "  no '$text' in: $out"
		return 1
	fi
}

# kvd_never_says RC TEXT ARGS...: kvd ARGS exits with RC and its output
# does not contain TEXT.
kvd_never_says() {
	local want=$1 text=$2 out rc
	shift 2
	out=$(timeout 10 "$KVD" "$@" 2>&1)
	rc=$?
	if [ "$rc" != "$want" ]; then
		echo "  exit $rc, want $want: $out"
		return 1
	fi
	if grep -qF -- "$text" <<<"$out"; then
		echo "  '$text' in: $out"
		return 1
	fi
}

# node_args K: the flags node K starts with (as start_node gives them).
node_args() {
	echo --id "$1" --data-dir "$IT_TMP/node$1" \
		--client-addr "$(client_addr "$1")" --peers "$IT_PEERS" \
		$KVD_TIMING
}

# Tick settings are flag errors, whichever of the two is left default; the
# message names the flag that was given, or both when both were.
# shellcheck disable=SC2046 # node_args is a list of flags
check "--election-ticks 1 (not above the default heartbeat) names --election-ticks" \
	kvd_says 2 "kvd: --election-ticks: 1 must be greater than --heartbeat-ticks, which is 1 by default (the default --election-ticks is 10)" \
	--id 1 --data-dir "$IT_TMP/x" --client-addr "$(client_addr 1)" \
	--peers "$IT_PEERS" --election-ticks 1
check "--heartbeat-ticks 20 (above the default election) names --heartbeat-ticks" \
	kvd_says 2 "kvd: --heartbeat-ticks: 20 must be less than --election-ticks, which is 10 by default (the default --heartbeat-ticks is 1)" \
	--id 1 --data-dir "$IT_TMP/x" --client-addr "$(client_addr 1)" \
	--peers "$IT_PEERS" --heartbeat-ticks 20
check "--election-ticks 3 --heartbeat-ticks 3 names both" \
	kvd_says 2 "kvd: --heartbeat-ticks 3 must be less than --election-ticks 3" \
	--id 1 --data-dir "$IT_TMP/x" --client-addr "$(client_addr 1)" \
	--peers "$IT_PEERS" --election-ticks 3 --heartbeat-ticks 3
printf 'election-ticks = 1\n' >"$IT_TMP/ticks.ini"
check "election-ticks = 1 in a config file names --election-ticks too" \
	kvd_says 2 "kvd: --election-ticks: 1 must be greater than --heartbeat-ticks" \
	--config "$IT_TMP/ticks.ini" \
	--id 1 --data-dir "$IT_TMP/x" --client-addr "$(client_addr 1)" \
	--peers "$IT_PEERS"
check "... and neither opened a data directory" [ ! -e "$IT_TMP/x" ]

# A data directory that is a file, or cannot be made, is named on stderr.
# A file where the directory should be is a configuration mistake that a
# restart cannot mend: exit 2, as docs/operations.md and kvd(1) say.
echo keep >"$IT_TMP/afile"
check "a --data-dir that is a file is refused as such (exit 2)" \
	kvd_says 2 "kvd: --data-dir $IT_TMP/afile exists and is not a directory" \
	--id 1 --data-dir "$IT_TMP/afile" --client-addr "$(client_addr 1)" \
	--peers "$IT_PEERS"
check "... and the file is left as it was" \
	[ "$(cat "$IT_TMP/afile")" = keep ]
ln -s afile "$IT_TMP/alink"
check "a --data-dir that is a link to a file is refused the same (exit 2)" \
	kvd_says 2 "kvd: --data-dir $IT_TMP/alink exists and is not a directory" \
	--id 1 --data-dir "$IT_TMP/alink" --client-addr "$(client_addr 1)" \
	--peers "$IT_PEERS"
check "the docs give exit 2 for a --data-dir that is not a directory" \
	bash -c "grep -A3 '^Exit codes' docs/operations.md | tr '\n' ' ' |
		grep -q '2 for .*--data-dir. that exists but is not a directory'"
check "a --data-dir that cannot be created is named (exit 1)" \
	kvd_says 1 "kvd: cannot create the data directory $IT_TMP/afile/sub" \
	--id 1 --data-dir "$IT_TMP/afile/sub" --client-addr "$(client_addr 1)" \
	--peers "$IT_PEERS"

# A switch given a value takes true or false only, and says so.
check "--no-direct-io=maybe is a flag error naming the values" \
	kvd_says 2 "kvd: --no-direct-io: 'maybe': want true or false" \
	--id 1 --data-dir "$IT_TMP/x" --client-addr "$(client_addr 1)" \
	--peers "$IT_PEERS" --no-direct-io=maybe

# Member lists that cannot work are refused before anything is stored.
check "two members on one address are refused" \
	kvd_says 2 "same address 127.0.0.1:23401" \
	--id 1 --data-dir "$IT_TMP/x" --client-addr "$(client_addr 1)" \
	--peers 1=127.0.0.1:23401,2=127.0.0.1:23401
check "two members naming one address differently are refused" \
	kvd_says 2 "127.0.0.1:23401 and localhost:23401 name one host and port" \
	--id 1 --data-dir "$IT_TMP/x" --client-addr "$(client_addr 1)" \
	--peers 1=127.0.0.1:23401,2=localhost:23401
check "a member at the wildcard address 0.0.0.0 is refused" \
	kvd_says 2 "member 2's address 0.0.0.0:23402 is the wildcard address" \
	--id 1 --data-dir "$IT_TMP/x" --client-addr "$(client_addr 1)" \
	--peers 1=127.0.0.1:23401,2=0.0.0.0:23402
check "... and so is one at [::]" \
	kvd_says 2 "member 2's address [::]:23402 is the wildcard address" \
	--id 1 --data-dir "$IT_TMP/x" --client-addr "$(client_addr 1)" \
	--peers "1=127.0.0.1:23401,2=[::]:23402"
check "... and so is the IPv4-mapped one" \
	kvd_says 2 "member 2's address [::ffff:0.0.0.0]:23402 is the wildcard" \
	--id 1 --data-dir "$IT_TMP/x" --client-addr "$(client_addr 1)" \
	--peers "1=127.0.0.1:23401,2=[::ffff:0.0.0.0]:23402"
check "--peer-addr on another port than this node's entry is refused" \
	kvd_says 2 "does not match this node's entry in --peers" \
	--id 1 --data-dir "$IT_TMP/x" --client-addr "$(client_addr 1)" \
	--peers "$IT_PEERS" --peer-addr 127.0.0.1:23409
check "... and nothing was stored" [ ! -e "$IT_TMP/x/cluster" ]

# A peer port in use is reported as such, and the first start stores no
# member list: the same directory starts once the port is free. The
# squatters set SO_REUSEADDR, as kvd does, so that a connection of an
# earlier run left in TIME_WAIT on the port does not stop their bind.
python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 23401))
s.listen()
print("up", flush=True)
time.sleep(30)
' >"$IT_TMP/squatter.out" &
squatter=$!
wait_for 5 grep -q up "$IT_TMP/squatter.out"
# shellcheck disable=SC2046 # node_args is a list of flags
check "a peer port in use is named as such (exit 1)" \
	kvd_says 1 "cannot listen for peers on 127.0.0.1:23401: address already in use" \
	$(node_args 1)
check "... and no member list was stored" [ ! -e "$IT_TMP/node1/cluster" ]
kill "$squatter"
wait "$squatter" 2>/dev/null

# The same for the client port.
caddr=$(client_addr 1)
python3 -c '
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, int(port)))
s.listen()
print("up", flush=True)
time.sleep(30)
' "$caddr" >"$IT_TMP/squatter2.out" &
squatter=$!
wait_for 5 grep -q up "$IT_TMP/squatter2.out"
# shellcheck disable=SC2046 # node_args is a list of flags
check "a client port in use is named as such (exit 1)" \
	kvd_says 1 "cannot listen for clients on $caddr: address already in use" \
	$(node_args 1)
check "... and no member list was stored" [ ! -e "$IT_TMP/node1/cluster" ]
kill "$squatter"
wait "$squatter" 2>/dev/null

start_node 1
start_node 2
start_node 3
check "the cluster then elects a leader" wait_for 10 have_leader
check_rc "... and takes a write" 0 kvctl --timeout 3s put k v
stop_node 3 TERM
check "node 3 stopped cleanly" [ "$STOP_RC" = 0 ]
check "the data directory records its member id" \
	grep -qx "self=3" "$IT_TMP/node3/cluster"

# A copy of node 3's data directory started as node 2 is refused.
stop_node 2 TERM
cp -r "$IT_TMP/node3" "$IT_TMP/copy3"
check "node 3's data directory started as node 2 is refused (exit 2)" \
	kvd_says 2 "belongs to member 3, not 2" \
	--id 2 --data-dir "$IT_TMP/copy3" --client-addr "$(client_addr 2)" \
	--peers "$IT_PEERS" $KVD_TIMING

# Without its cluster file the copy cannot say whose it is: refused, not
# taken for a first start under whatever id is given.
rm "$IT_TMP/copy3/cluster"
check "a data directory with a log but no cluster file is refused (exit 1)" \
	kvd_says 1 "holds a Raft log but no cluster file" \
	--id 2 --data-dir "$IT_TMP/copy3" --client-addr "$(client_addr 2)" \
	--peers "$IT_PEERS" $KVD_TIMING
check "... and no cluster file was written" [ ! -e "$IT_TMP/copy3/cluster" ]

# A damaged cluster file is refused with advice that keeps the member's
# votes and log: restore the file, or rebuild it from another member's,
# which differs only in its self= line; never an empty data directory.
sed 's/^member=1 .*/member=1/' "$IT_TMP/node3/cluster" >"$IT_TMP/copy3/cluster"
check "a damaged cluster file is refused with safe advice (exit 1)" \
	kvd_says 1 "is damaged (line 4); restore it from a backup of this data directory, or copy the cluster file of another member and set its self= line to this member's id; never start this member on an empty data directory" \
	--id 3 --data-dir "$IT_TMP/copy3" --client-addr "$(client_addr 3)" \
	--peers "$IT_PEERS"
check "... which does not suggest starting with an empty one" \
	kvd_never_says 1 "start with an empty" \
	--id 3 --data-dir "$IT_TMP/copy3" --client-addr "$(client_addr 3)" \
	--peers "$IT_PEERS"
check "another member's cluster file with its self= line set is this one's" \
	bash -c "sed 's/^self=2\$/self=3/' '$IT_TMP/node2/cluster' |
		cmp -s - '$IT_TMP/node3/cluster'"

# Other --peers than the stored members: a configuration mistake (exit 2)
# whose advice keeps node 3's votes and log, showing both lists.
other_peers=1=127.0.0.1:23401,2=127.0.0.1:23402,3=127.0.0.1:23409
check "other --peers than stored are refused, showing both lists (exit 2)" \
	kvd_says 2 "was initialised with members $IT_PEERS but the configuration lists $other_peers; membership changes are not supported: start this member with the stored members" \
	--id 3 --data-dir "$IT_TMP/node3" --client-addr "$(client_addr 3)" \
	--peers "$other_peers"
check "... advising to restore an edited cluster file, never an empty data directory" \
	kvd_says 2 "if $IT_TMP/node3/cluster was edited, restore it from a backup of this data directory, or copy another member's and set its self= line to 3; never start this member on an empty data directory" \
	--id 3 --data-dir "$IT_TMP/node3" --client-addr "$(client_addr 3)" \
	--peers "$other_peers"
check "... and never to form a new cluster on an empty one" \
	kvd_never_says 2 "form a new cluster" \
	--id 3 --data-dir "$IT_TMP/node3" --client-addr "$(client_addr 3)" \
	--peers "$other_peers"

# A member line of the cluster file edited so that it still parses: the
# stored cluster id is no longer that of the stored members, so the file
# is refused as damaged (exit 1) with the same advice as above.
rm -rf "$IT_TMP/edit3"
cp -r "$IT_TMP/node3" "$IT_TMP/edit3"
sed -i 's/^member=1 .*/member=1 127.0.0.1:23408/' "$IT_TMP/edit3/cluster"
check "a cluster file with an edited member line is refused as damaged (exit 1)" \
	kvd_says 1 "$IT_TMP/edit3/cluster is damaged (its cluster id" \
	--id 3 --data-dir "$IT_TMP/edit3" --client-addr "$(client_addr 3)" \
	--peers "$IT_PEERS"
check "... naming the members given and those of its lines" \
	kvd_says 1 "is that of the members given, $IT_PEERS, not of its member lines, 1=127.0.0.1:23408,2=127.0.0.1:23402,3=127.0.0.1:23403: a member line was changed); restore it from a backup" \
	--id 3 --data-dir "$IT_TMP/edit3" --client-addr "$(client_addr 3)" \
	--peers "$IT_PEERS"
cp "$IT_TMP/node3/cluster" "$IT_TMP/edit3/cluster"
sed -i 's/^cluster_id=.*/cluster_id=12345/' "$IT_TMP/edit3/cluster"
check "a cluster file with an edited cluster id is refused as damaged (exit 1)" \
	kvd_says 1 "is damaged (its cluster id 12345 does not match its members $IT_PEERS: the id or a member line was changed" \
	--id 3 --data-dir "$IT_TMP/edit3" --client-addr "$(client_addr 3)" \
	--peers "$IT_PEERS"
cp "$IT_TMP/node3/cluster" "$IT_TMP/edit3/cluster"
sed -i 's/^self=3$/self=3garbage/' "$IT_TMP/edit3/cluster"
check "a self= line with text after the id is refused as damaged (exit 1)" \
	kvd_says 1 "$IT_TMP/edit3/cluster is damaged (line 2)" \
	--id 3 --data-dir "$IT_TMP/edit3" --client-addr "$(client_addr 3)" \
	--peers "$IT_PEERS"

# The cluster file is written after the log's first segment, and the log
# keeps at least one: a directory with the file but without its log lost
# the member's votes and entries, and is refused (exit 1) rather than
# joining as a blank member with term 0.
rm -rf "$IT_TMP/lost3"
cp -r "$IT_TMP/node3" "$IT_TMP/lost3"
rm -rf "$IT_TMP/lost3/log" "$IT_TMP/lost3/kv"
check "a data directory with its cluster file but no log is refused (exit 1)" \
	kvd_says 1 "$IT_TMP/lost3/cluster says this data directory belongs to member 3 of cluster" \
	--id 3 --data-dir "$IT_TMP/lost3" --client-addr "$(client_addr 3)" \
	--peers "$IT_PEERS"
check "... saying that the log is missing and the votes and log are lost" \
	kvd_says 1 "its Raft log ($IT_TMP/lost3/log) is missing: the member's votes and log are lost; restore the whole data directory from a backup" \
	--id 3 --data-dir "$IT_TMP/lost3" --client-addr "$(client_addr 3)" \
	--peers "$IT_PEERS"
check "... and nothing was created in it" \
	[ ! -e "$IT_TMP/lost3/log" ] && [ ! -e "$IT_TMP/lost3/kv" ]
rm -rf "$IT_TMP/lost3"
cp -r "$IT_TMP/node3" "$IT_TMP/lost3"
rm -rf "$IT_TMP/lost3/log"/*.seg "$IT_TMP/lost3/kv"
check "a log with its term and vote file but no segment files is refused (exit 1)" \
	kvd_says 1 "($IT_TMP/lost3/log) has its term and vote file but no segment files" \
	--id 3 --data-dir "$IT_TMP/lost3" --client-addr "$(client_addr 3)" \
	--peers "$IT_PEERS"

# A log cut short below what the state machine applied (the segment's
# records gone, its header kept) has lost committed entries: data damage,
# exit 1, naming the log directory.
rm -rf "$IT_TMP/cut3"
cp -r "$IT_TMP/node3" "$IT_TMP/cut3"
for seg in "$IT_TMP/cut3/log"/*.seg; do
	truncate -s 32 "$seg"
done
check "a log ending below the applied index is refused as damage (exit 1)" \
	kvd_says 1 "but the log in $IT_TMP/cut3/log ends at 0: committed entries are missing from the log" \
	--id 3 --data-dir "$IT_TMP/cut3" --client-addr "$(client_addr 3)" \
	--peers "$IT_PEERS"

# A state machine file damaged while the node was down (cut short past its
# meta pages, emptied, or cut inside them) is discarded at start with a
# warning naming it, and rebuilt from the node's own log: node 3's own
# state machine (serializable reads) holds every key again.
CUT_KEYS=40
# shellcheck disable=SC2317 # called through check
put_cut_keys() {
	local i
	for ((i = 1; i <= CUT_KEYS; i++)); do
		kvctl --timeout 3s put "cut$i" "value$i" >/dev/null || return 1
	done
}
# shellcheck disable=SC2317 # called through check
node3_has_cut_keys() {
	local i
	for ((i = 1; i <= CUT_KEYS; i++)); do
		[ "$(kvctl_at 3 --timeout 1s --serializable get "cut$i" \
			2>/dev/null)" = "value$i" ] || return 1
	done
}
# node3_said_since LINE TEXT: node 3's log after line LINE holds TEXT.
# shellcheck disable=SC2317 # called through check
node3_said_since() {
	tail -n +"$(($1 + 1))" "$(log_of 3)" | grep -qF -- "$2"
}
start_node 2
start_node 3
check "the cluster is back with a leader" wait_for 10 have_leader
check "$CUT_KEYS keys are written" put_cut_keys
check "node 3 has applied them" wait_for 10 node3_has_cut_keys
mdb=$IT_TMP/node3/kv/kv.mdb
for size in 8192 0 100; do
	stop_node 3 TERM
	check "node 3 stopped cleanly" [ "$STOP_RC" = 0 ]
	truncate -s "$size" "$mdb"
	seen=$(wc -l <"$(log_of 3)")
	start_node 3
	check "kv.mdb cut to $size bytes: node 3 rebuilds every key from its log" \
		wait_for 15 node3_has_cut_keys
	check "... and keeps running" [ ! -e "$IT_TMP/node3.rc" ]
	check "... having warned that it rebuilt the store" \
		node3_said_since "$seen" \
		'level=warn msg="state machine rebuilt from the log"'
	check "... naming the file" node3_said_since "$seen" "$mdb"
done
check "the warning for 8192 bytes says where the last page ends" \
	grep -qE "$mdb is 8192 bytes but its last page ends at byte [0-9]+" \
	"$(log_of 3)"
stop_node 3 TERM
check "node 3 still stops cleanly" [ "$STOP_RC" = 0 ]

# A log whose term and vote file is gone is refused, with the remedy.
rm -rf "$IT_TMP/nometa"
cp -r "$IT_TMP/node3" "$IT_TMP/nometa"
rm "$IT_TMP/nometa/log/meta"
check "a log without its term and vote file is refused (exit 1)" \
	kvd_says 1 "meta: missing, yet the segments hold" \
	--id 3 --data-dir "$IT_TMP/nometa" --client-addr "$(client_addr 3)" \
	--peers "$IT_PEERS" $KVD_TIMING
check "... saying to restore the data directory" \
	kvd_says 1 "restore the whole data directory from a backup" \
	--id 3 --data-dir "$IT_TMP/nometa" --client-addr "$(client_addr 3)" \
	--peers "$IT_PEERS" $KVD_TIMING

# Every log message the documentation names is one kvd writes.
# shellcheck disable=SC2317 # called through check
doc_msgs_exist() {
	local m bad=0
	while read -r m; do
		if ! grep -rqF -- "\"$m\"" server lib/src &&
			! grep -rqF -- "msg=\\\"$m\\\"" lib/src; then
			echo "  docs name msg=\"$m\", which nothing logs"
			bad=1
		fi
	done < <(cat docs/operations.md docs/man/kvd.1 |
		sed 's/\\(dq/"/g' | grep -o 'msg="[^"]*"' |
		sed 's/^msg="//; s/"$//' | sort -u)
	! grep -n 'event=' docs/operations.md docs/man/kvd.1 && [ "$bad" = 0 ]
}
check "the docs name only log messages kvd writes" doc_msgs_exist

it_finish
