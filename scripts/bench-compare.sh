#!/bin/bash
# kvd against etcd, side by side: `make bench-compare`.
#
# Builds kvbench and the etcd load generator (kvbench-etcd, etcd's own Go
# client; etcd-server and golang come from Debian and are installed here
# when missing), then, REPS times, starts a fresh 3-node kvd cluster and a
# fresh 3-member etcd cluster in turn on the same disk (the order alternates
# between reps) and runs the same matrix against each, with the same flags.
# Ends with a subset on 5 members. The medians over reps go into a
# Markdown table (bench/summarize.py) with CPU-seconds of the servers and of
# the load generator, read from /proc/PID/stat (utime + stime) before and
# after each run, and the load average when each run started.
#
# Durability: kvd fsyncs (fdatasync) its Raft log before a node counts an
# entry as stored, and answers a write once a majority stored it; etcd does
# the same with its WAL. Both run with their defaults; nothing here turns
# syncing off.
#
# Environment:
#   REPS=2            fresh clusters per system (median reported)
#   DURATION=5s       length of each run
#   QUICK=1           a reduced matrix (put 1/1, 64/8; get l 64/8)
#   FIVE=0            skip the 5-member subset
#   OUT=build/bench-compare/DATE   results (raw lines, table, plots)
#   BENCH_BASE=/var/tmp   data directories (a real disk, not tmpfs)
#   ETCD_BENCH_DIR=/work/shared/bench/etcd   etcd's cluster and build scripts
set -u
cd "$(dirname "$0")/.." || exit 1

REPS=${REPS:-2}
DURATION=${DURATION:-5s}
QUICK=${QUICK:-0}
FIVE=${FIVE:-1}
BUILD=${BUILD:-build}
OUT=${OUT:-$BUILD/bench-compare/$(date -u +%Y%m%d-%H%M%S)}
BENCH_BASE=${BENCH_BASE:-/var/tmp}
ETCD_BENCH_DIR=${ETCD_BENCH_DIR:-/work/shared/bench/etcd}
export KVD_BENCH_BASE=$BENCH_BASE/kvd-bench
export PERF_BASE=$BENCH_BASE/etcd-bench
HZ=$(getconf CLK_TCK)

die() {
	echo "bench-compare: $*" >&2
	exit 1
}

case $REPS in
'' | *[!0-9]* | 0) die "REPS must be a whole number of at least 1" ;;
esac
if [ ! -x "$ETCD_BENCH_DIR/cluster" ] || [ ! -x "$ETCD_BENCH_DIR/build" ]; then
	die "no etcd cluster/build scripts in $ETCD_BENCH_DIR (set ETCD_BENCH_DIR)"
fi
if [ "$(stat -f -c %T "$BENCH_BASE")" = tmpfs ]; then
	die "BENCH_BASE=$BENCH_BASE is on tmpfs: syncs would cost nothing"
fi

# ---- Build -----------------------------------------------------------------

install_etcd() {
	local sudo=
	command -v etcd >/dev/null && command -v go >/dev/null &&
		[ -d /usr/share/gocode/src/go.etcd.io/etcd/clientv3 ] && return 0
	[ "$(id -u)" = 0 ] || sudo=sudo
	echo "bench-compare: installing etcd-server and golang from Debian"
	export DEBIAN_FRONTEND=noninteractive
	if ! { $sudo apt-get update -qq &&
		$sudo apt-get install -y -qq etcd-server etcd-client >/dev/null &&
		$sudo apt-get install -y -qq --no-install-recommends golang-go \
			golang-etcd-server-dev >/dev/null; }; then
		die "apt-get could not install etcd-server / golang"
	fi
}

mkdir -p "$OUT/bin" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
make -j2 --no-print-directory all >"$OUT/build.log" 2>&1 ||
	die "make failed; see $OUT/build.log"
install_etcd
"$ETCD_BENCH_DIR/build" "$OUT/bin" >>"$OUT/build.log" 2>&1 ||
	die "building kvbench-etcd failed; see $OUT/build.log"
KVBENCH=$BUILD/bin/kvbench
ETCDBENCH=$OUT/bin/kvbench-etcd

# ---- Clusters --------------------------------------------------------------

cluster() { # SYSTEM start|stop|eps|pids
	local sys=$1 cmd=$2 f
	if [ "$sys" = kvd ]; then
		BUILD=$BUILD bench/kvd-cluster.sh "$cmd"
	elif [ "$cmd" = pids ]; then
		for f in "$PERF_BASE"/m*.pid; do [ -f "$f" ] && cat "$f"; done
	else
		"$ETCD_BENCH_DIR/cluster" "$cmd"
	fi
}

cleanup() {
	N=3 cluster kvd stop >/dev/null 2>&1
	PERF_N=5 cluster etcd stop >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# CPU ticks (utime + stime) of the given pids, summed.
cpu_ticks() {
	local pid sum=0 f
	for pid in "$@"; do
		f=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		f=${f##*) }
		# After "pid (comm) ": state is field 3; utime 14, stime 15.
		# shellcheck disable=SC2086 # split into fields on purpose
		set -- $f
		sum=$((sum + ${12} + ${13}))
	done
	echo "$sum"
}

# ---- Matrix ----------------------------------------------------------------

# name|flags common to both tools (the etcd tool's syntax, which kvbench
# accepts too). Gets read one key, written before the run.
K="-key-size=8"
MATRIX=(
	"put-1/1|-conns=1 -clients=1 -target-leader put $K -val-size=256 -seq"
	"put-16/4|-conns=4 -clients=16 put $K -val-size=256 -seq"
	"put-64/8|-conns=8 -clients=64 put $K -val-size=256 -seq"
	"put-256/16|-conns=16 -clients=256 put $K -val-size=256 -seq"
	"put-1000/100|-conns=100 -clients=1000 put $K -val-size=256 -seq"
	"put4k-1/1|-conns=1 -clients=1 -target-leader put $K -val-size=4096 -seq"
	"put4k-64/8|-conns=8 -clients=64 put $K -val-size=4096 -seq"
	"getl-1/1|-conns=1 -clients=1 range -key=k -consistency=l"
	"getl-64/8|-conns=8 -clients=64 range -key=k -consistency=l"
	"getl-1000/100|-conns=100 -clients=1000 range -key=k -consistency=l"
	"gets-1/1|-conns=1 -clients=1 range -key=k -consistency=s"
	"gets-64/8|-conns=8 -clients=64 range -key=k -consistency=s"
	"gets-1000/100|-conns=100 -clients=1000 range -key=k -consistency=s"
)
MATRIX5=(
	"put-1/1|-conns=1 -clients=1 -target-leader put $K -val-size=256 -seq"
	"put-64/8|-conns=8 -clients=64 put $K -val-size=256 -seq"
	"getl-64/8|-conns=8 -clients=64 range -key=k -consistency=l"
)
if [ "$QUICK" = 1 ]; then
	MATRIX=("${MATRIX[0]}" "${MATRIX[2]}" "${MATRIX[8]}")
	MATRIX5=("${MATRIX5[0]}")
fi

RAW=$OUT/raw.tsv
printf 'system\tmembers\trep\tcell\tload1\tserver_cpu_s\tclient_cpu_s\tline\n' \
	>"$RAW"

# One run: SYSTEM MEMBERS REP NAME FLAGS. The load generator runs under a
# shell that reads its own children's CPU time (cutime + cstime) after it.
run_cell() {
	local sys=$1 n=$2 rep=$3 name=$4 flags=$5 tool eps pids s0 s1 load
	local out client line
	if [ "$sys" = kvd ]; then tool=$KVBENCH; else tool=$ETCDBENCH; fi
	eps=$(N=$n PERF_N=$n cluster "$sys" eps)
	pids=$(N=$n PERF_N=$n cluster "$sys" pids)
	load=$(cut -d' ' -f1 /proc/loadavg)
	# shellcheck disable=SC2086 # one pid a word
	s0=$(cpu_ticks $pids)
	# shellcheck disable=SC2086
	out=$(bash -c '"$@" 2>>"$LOG"; rc=$?; s=$(cat /proc/$$/stat);
		s=${s##*) }; set -- $s; echo "cpu ${14} ${15}"; exit $rc' \
		_ "$tool" -endpoints="$eps" -duration="$DURATION" $flags)
	# shellcheck disable=SC2086
	s1=$(cpu_ticks $pids)
	line=$(grep -v '^cpu ' <<<"$out")
	client=$(grep '^cpu ' <<<"$out" | awk -v hz="$HZ" \
		'{printf "%.3f", ($2 + $3) / hz}')
	case $line in
	*QPS=*) ;;
	*)
		echo "bench-compare: $sys $name failed: $line (see $LOG)" >&2
		line="FAILED"
		;;
	esac
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sys" "$n" "$rep" "$name" \
		"$load" "$(awk -v a="$s0" -v b="$s1" -v hz="$HZ" \
			'BEGIN{printf "%.3f", (b - a) / hz}')" \
		"$client" "$line" >>"$RAW"
	# shellcheck disable=SC2001 # two back-references
	printf '  %-5s %-14s load %-5s %s\n' "$sys" "$name" "$load" \
		"$(sed 's/ lat(ms).*p50=\([0-9.]*\).*p99=\([0-9.]*\) p99.9.*/ p50=\1 p99=\2/' <<<"$line")"
}

run_matrix() { # SYSTEM MEMBERS REP CELLS...
	local sys=$1 n=$2 rep=$3 cell
	shift 3
	echo "== $sys, $n members, rep $rep ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))"
	N=$n PERF_N=$n cluster "$sys" start >>"$LOG" 2>&1 ||
		die "$sys cluster did not start; see $LOG"
	for cell in "$@"; do
		run_cell "$sys" "$n" "$rep" "${cell%%|*}" "${cell#*|}"
	done
	N=$n PERF_N=$n cluster "$sys" stop >>"$LOG" 2>&1
}

export LOG=$OUT/run.log
echo "bench-compare: results in $OUT (REPS=$REPS, DURATION=$DURATION, QUICK=$QUICK)"
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "host: $(nproc) cores, $(uname -r)"
	echo "kvd: $(git describe --always --dirty 2>/dev/null)"
	echo "etcd: $(etcd --version 2>/dev/null | head -1)"
	echo "reps: $REPS, duration per run: $DURATION, data on $BENCH_BASE ($(findmnt -n -o FSTYPE -T "$BENCH_BASE" 2>/dev/null))"
} >"$OUT/meta.txt"
for ((rep = 1; rep <= REPS; rep++)); do
	if ((rep % 2)); then order="kvd etcd"; else order="etcd kvd"; fi
	for sys in $order; do
		run_matrix "$sys" 3 "$rep" "${MATRIX[@]}"
	done
done
if [ "$FIVE" = 1 ]; then
	for ((rep = 1; rep <= REPS; rep++)); do
		if ((rep % 2)); then order="kvd etcd"; else order="etcd kvd"; fi
		for sys in $order; do
			run_matrix "$sys" 5 "$rep" "${MATRIX5[@]}"
		done
	done
fi

python3 bench/summarize.py "$OUT" >"$OUT/table.md" ||
	die "summarize failed"
cat "$OUT/table.md"
echo "bench-compare: table in $OUT/table.md, plots in $OUT/*.svg"
