# shellcheck shell=bash
# Shared helpers for the kvd integration tests (sourced, not run).
#
# A test calls it_init NAME BASE_PORT, starts nodes with start_node, checks
# claims with check / check_rc, and ends with it_finish, which prints
# "N passed, M failed" and exits non-zero on failure. Every node started is
# killed and the temporary directory removed on exit, whatever happens.
#
# Node K listens for peers on 127.0.0.1:BASE+K and for clients on
# 127.0.0.1:BASE+50+K. Two runs that would use the same ports at once (two
# checkouts testing on one machine) take turns: it_init waits for a lock
# named after BASE_PORT, held until the script exits.

BUILD=${BUILD:-build}
KVD=$BUILD/bin/kvd
KVCTL=$BUILD/bin/kvctl
# Short ticks keep failover, and so the whole run, quick.
KVD_TIMING=${KVD_TIMING:---tick-ms 50 --election-ticks 10}

it_passed=0
it_failed=0
it_pids=()

it_cleanup() {
	local pid
	for pid in "${it_pids[@]}"; do
		kill -KILL "$pid" 2>/dev/null
	done
	wait
	if [ "$it_failed" != 0 ] && [ -n "${IT_KEEP:-}" ]; then
		echo "kept $IT_TMP"
	else
		rm -rf "$IT_TMP"
	fi
}

# it_init NAME BASE_PORT N
it_init() {
	IT_NAME=$1
	IT_BASE=$2
	IT_N=$3
	if [ ! -x "$KVD" ] || [ ! -x "$KVCTL" ]; then
		echo "$IT_NAME: $KVD or $KVCTL not built"
		echo "0 passed, 1 failed"
		exit 1
	fi
	exec {IT_LOCK_FD}>"/tmp/kvd-it-ports-$IT_BASE.lock"
	if ! flock -n "$IT_LOCK_FD"; then
		echo "$IT_NAME: ports from $IT_BASE are in use by another run; waiting"
		if ! flock -w 900 "$IT_LOCK_FD"; then
			echo "$IT_NAME: ports from $IT_BASE still in use after 15 minutes"
			echo "0 passed, 1 failed"
			exit 1
		fi
	fi
	IT_TMP=$(mktemp -d "/tmp/kvd-it-$IT_NAME.XXXXXX")
	trap it_cleanup EXIT
	trap 'exit 130' INT TERM
	it_set_size "$IT_N"
}

# it_set_size N: the membership every node started from now on gets.
it_set_size() {
	local k
	IT_N=$1
	IT_PEERS=""
	IT_EPS=""
	for ((k = 1; k <= IT_N; k++)); do
		IT_PEERS+="${IT_PEERS:+,}$k=127.0.0.1:$((IT_BASE + k))"
		IT_EPS+="${IT_EPS:+,}$(client_addr "$k")"
	done
}

client_addr() {
	echo "127.0.0.1:$((IT_BASE + 50 + $1))"
}

log_of() {
	echo "$IT_TMP/node$1.log"
}

# start_node K [extra kvd flags...]: node K with the test's membership.
start_node() {
	local k=$1
	shift
	# shellcheck disable=SC2086 # KVD_TIMING is a list of flags
	start_proc "$k" "$KVD" --id "$k" --data-dir "$IT_TMP/node$k" \
		--client-addr "$(client_addr "$k")" --peers "$IT_PEERS" \
		$KVD_TIMING "$@"
}

# start_proc K CMD...: run CMD as node K, logging to nodeK.log. A subshell
# records its exit status in nodeK.rc (so that the shell never reports a
# killed job on the terminal).
start_proc() {
	local k=$1
	shift
	rm -f "$IT_TMP/node$k.rc" "$IT_TMP/node$k.pid"
	(
		"$@" >>"$(log_of "$k")" 2>&1 &
		echo $! >"$IT_TMP/node$k.pid"
		wait $!
		echo $? >"$IT_TMP/node$k.rc"
	) 2>/dev/null {IT_LOCK_FD}>&- &
	while [ ! -s "$IT_TMP/node$k.pid" ]; do sleep 0.01; done
	it_pids+=("$(node_pid "$k")")
}

node_pid() {
	cat "$IT_TMP/node$1.pid"
}

# stop_node K SIGNAL: signal node K and wait (up to 10 s) until it exits;
# its exit status is left in STOP_RC.
stop_node() {
	kill "-$2" "$(node_pid "$1")" 2>/dev/null
	wait_exit "$1"
}

# wait_exit K: wait (up to 10 s) until node K exits, without signalling
# it; its exit status is left in STOP_RC.
wait_exit() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ -s "$IT_TMP/node$1.rc" ] && break
		sleep 0.05
	done
	# shellcheck disable=SC2034 # read by the tests
	STOP_RC=$(cat "$IT_TMP/node$1.rc" 2>/dev/null)
}

kvctl() {
	"$KVCTL" --endpoints "$IT_EPS" "$@"
}

# kvctl_at K args...: talk to node K only.
kvctl_at() {
	local k=$1
	shift
	"$KVCTL" --endpoints "$(client_addr "$k")" "$@"
}

# The id of the node that every answering node agrees is leader, or
# nothing.
leader_id() {
	"$KVCTL" --endpoints "$IT_EPS" --timeout 1s --json status 2>/dev/null |
		python3 -c '
import json, sys
try:
    nodes = [n for n in json.load(sys.stdin) if n.get("ok")]
except ValueError:
    sys.exit(0)
leaders = [n["id"] for n in nodes if n["role"] == "leader"]
if len(leaders) == 1 and all(n["leader"] == leaders[0] for n in nodes):
    print(leaders[0])
'
}

have_leader() {
	[ -n "$(leader_id)" ]
}

# wait_leader [SECONDS]: poll until a leader is agreed on; print its id.
wait_leader() {
	local deadline=$((SECONDS + ${1:-10})) id
	while ((SECONDS < deadline)); do
		id=$(leader_id)
		if [ -n "$id" ]; then
			echo "$id"
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# wait_for SECONDS CMD...: poll CMD until it succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	while ((SECONDS < deadline)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# check DESCRIPTION CMD...: CMD must succeed.
check() {
	local what=$1
	shift
	if "$@"; then
		it_passed=$((it_passed + 1))
		echo "ok    $what"
	else
		it_failed=$((it_failed + 1))
		echo "FAIL  $what"
	fi
}

# check_rc DESCRIPTION WANT_RC CMD...: CMD must exit with WANT_RC.
check_rc() {
	local what=$1 want=$2 rc
	shift 2
	"$@" >/dev/null 2>&1
	rc=$?
	if [ "$rc" = "$want" ]; then
		it_passed=$((it_passed + 1))
		echo "ok    $what"
	else
		it_failed=$((it_failed + 1))
		echo "FAIL  $what (exit $rc, want $want)"
	fi
}

# check_out DESCRIPTION WANT CMD...: CMD's stdout must be exactly WANT.
check_out() {
	local what=$1 want=$2 got
	shift 2
	got=$("$@" 2>/dev/null)
	if [ "$got" = "$want" ]; then
		it_passed=$((it_passed + 1))
		echo "ok    $what"
	else
		it_failed=$((it_failed + 1))
		echo "FAIL  $what (got '$got', want '$want')"
	fi
}

now_ms() {
	date +%s%3N
}

no_sanitizer_reports() {
	! grep -lE 'runtime error|AddressSanitizer|LeakSanitizer' \
		"$IT_TMP"/node*.log
}

it_finish() {
	check "no sanitizer report in any node's log" no_sanitizer_reports
	echo "$it_passed passed, $it_failed failed"
	[ "$it_failed" = 0 ]
	exit $?
}
