#!/bin/bash
# An embedder's view: install libraft, build a program against the installed
# copy with pkg-config alone, and run it as a three-member cluster.
#
# 1. `make install PREFIX=...` lays out headers, libraries with their soname
#    links, pkg-config file, programs and man pages; DESTDIR stages the same
#    tree elsewhere without touching PREFIX; `make uninstall` removes it.
# 2. Every installed header compiles on its own, as C11 and as C++.
# 3. examples/counter/counter.c builds with
#    `cc counter.c $(pkg-config --cflags --libs libraft)` (and statically).
# 4. Three copies on 127.0.0.1:24001-24003 elect a leader; an add on the
#    leader is seen by the others; a follower refuses writes naming the
#    leader; a restarted member keeps its state and catches up.
#
# Prints "N passed, M failed"; exits non-zero on any failure.
# Functions run from traps and check() look unreachable to shellcheck.
# shellcheck disable=SC2317
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
ROOT=$PWD
VERSION=$(sed -n 's/^VERSION := //p' Makefile)
PORT0=24000
MEMBERS="1=127.0.0.1:$((PORT0 + 1)),2=127.0.0.1:$((PORT0 + 2))"
MEMBERS="$MEMBERS,3=127.0.0.1:$((PORT0 + 3))"
# A sanitizer build of the library needs the runtime in the program too.
EXTRA_CFLAGS=""
if [ "${SAN:-}" = 1 ]; then
	EXTRA_CFLAGS="-fsanitize=address,undefined"
fi

tmp=$(mktemp -d)
prefix=$tmp/prefix
passed=0
failed=0
declare -A pid infd

cleanup() {
	local i
	for i in "${!pid[@]}"; do
		kill "${pid[$i]}" 2>/dev/null
	done
	for i in "${!pid[@]}"; do
		wait "${pid[$i]}" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
# A write to a member that died must fail, not kill the script.
trap '' PIPE
# Run by `make check`: the inner make must not inherit the outer one's flags.
unset MAKEFLAGS MFLAGS MAKELEVEL

pass() {
	echo "ok   $1"
	passed=$((passed + 1))
}

# fail WHAT [FILE]: FILE's tail is shown to explain the failure.
fail() {
	echo "FAIL $1"
	if [ -n "${2:-}" ] && [ -f "$2" ]; then
		tail -15 "$2" | sed 's/^/     | /'
	fi
	failed=$((failed + 1))
}

finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit
}

# check WHAT COMMAND...: pass if COMMAND succeeds.
check() {
	local what=$1
	shift
	if "$@" >"$tmp/check.log" 2>&1; then
		pass "$what"
	else
		fail "$what" "$tmp/check.log"
	fi
}

run_make() {
	make -s --no-print-directory -C "$ROOT" BUILD="$BUILD" \
		${SAN:+SAN=$SAN} "$@"
}

# installed_files ROOT: every file and link the install must produce.
installed_files() {
	local r=$1 h
	for h in lib/include/libraft/*.h; do
		echo "$r/include/libraft/$(basename "$h")"
	done
	echo "$r/lib/libraft.a"
	echo "$r/lib/libraft.so.$VERSION"
	echo "$r/lib/pkgconfig/libraft.pc"
	for h in "$BUILD"/bin/kvd "$BUILD"/bin/kvctl; do
		[ -x "$h" ] && echo "$r/bin/$(basename "$h")"
	done
	for h in docs/man/*.1; do
		[ -f "$h" ] && echo "$r/share/man/man1/$(basename "$h")"
	done
}

all_present() {
	local f rc=0
	for f in $(installed_files "$1"); do
		if [ ! -f "$f" ]; then
			echo "missing: $f"
			rc=1
		fi
	done
	[ "$(readlink "$1/lib/libraft.so.0")" = "libraft.so.$VERSION" ] ||
		{ echo "bad link: $1/lib/libraft.so.0" && rc=1; }
	[ "$(readlink "$1/lib/libraft.so")" = libraft.so.0 ] ||
		{ echo "bad link: $1/lib/libraft.so" && rc=1; }
	return $rc
}

# --- 1. install, staged install, uninstall --------------------------------

if run_make install PREFIX="$prefix" >"$tmp/install.log" 2>&1; then
	pass "make install PREFIX=$prefix"
else
	fail "make install PREFIX=..." "$tmp/install.log"
	finish
fi
check "headers, libraries, soname links, libraft.pc, programs installed" \
	all_present "$prefix"

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
check "pkg-config --modversion libraft is $VERSION" \
	test "$(pkg-config --modversion libraft)" = "$VERSION"
# shellcheck disable=SC2016
check "libraft.pc requires libuv, libprotobuf-c and lmdb" \
	bash -c 'r=$(pkg-config --print-requires libraft) &&
		grep -qx libuv <<<"$r" && grep -qx libprotobuf-c <<<"$r" &&
		grep -qx lmdb <<<"$r"'
check "pkg-config points at the installed tree" \
	bash -c "pkg-config --cflags libraft | grep -q -- '-I$prefix/include' &&
		pkg-config --libs libraft | grep -q -- '-L$prefix/lib -lraft'"

stage=$tmp/stage
staged_prefix=/opt/libraft-staging-check
if run_make install PREFIX="$staged_prefix" DESTDIR="$stage" \
	>"$tmp/stage.log" 2>&1 &&
	all_present "$stage$staged_prefix" >"$tmp/stage.log" 2>&1 &&
	[ ! -e "$staged_prefix" ] &&
	grep -qx "prefix=$staged_prefix" \
		"$stage$staged_prefix/lib/pkgconfig/libraft.pc"; then
	pass "DESTDIR stages the tree; libraft.pc names the final PREFIX"
else
	fail "DESTDIR staging" "$tmp/stage.log"
fi
if run_make uninstall PREFIX="$staged_prefix" DESTDIR="$stage" \
	>"$tmp/uninstall.log" 2>&1 &&
	[ -z "$(find "$stage" ! -type d)" ]; then
	pass "make uninstall removes every installed file"
else
	find "$stage" ! -type d >>"$tmp/uninstall.log"
	fail "make uninstall" "$tmp/uninstall.log"
fi

# --- 2. installed headers stand alone -------------------------------------

# uv.h needs POSIX types (pthread_rwlock_t), which strict C11 hides unless
# a POSIX level is asked for; -std=gnu11 (the compiler default) needs none.

cflags=$(pkg-config --cflags libraft)
for h in "$prefix"/include/libraft/*.h; do
	name=libraft/$(basename "$h")
	# shellcheck disable=SC2086
	check "$name compiles alone as C11 -pedantic" \
		cc -std=c11 -D_POSIX_C_SOURCE=200809L -pedantic -Wall -Wextra \
		-Werror -fsyntax-only \
		$cflags -x c - <<<"#include <$name>"
	# shellcheck disable=SC2086
	check "$name compiles alone as C++" \
		c++ -Wall -Wextra -Werror -fsyntax-only $cflags -x c++ - \
		<<<"#include <$name>"
done

# --- 3. the example, built with pkg-config only ---------------------------

example=examples/counter/counter.c
# shellcheck disable=SC2046,SC2086
if cc -o "$tmp/counter" "$example" $EXTRA_CFLAGS \
	$(pkg-config --cflags --libs libraft) >"$tmp/cc.log" 2>&1; then
	pass "counter builds with pkg-config --cflags --libs libraft"
else
	fail "counter builds with pkg-config" "$tmp/cc.log"
	finish
fi
check "counter loads libraft.so.0 from the installed prefix" \
	bash -c "LD_LIBRARY_PATH='$prefix/lib' ldd '$tmp/counter' |
		grep -q 'libraft.so.0 => $prefix/lib/libraft.so.0'"
# shellcheck disable=SC2046,SC2086
check "counter links statically with pkg-config --static" \
	cc -o "$tmp/counter-static" "$example" $EXTRA_CFLAGS \
	$(pkg-config --cflags libraft) \
	$(pkg-config --static --libs libraft | sed 's/-lraft /-l:libraft.a /')

# --- 4. a three-member cluster on loopback --------------------------------

export LD_LIBRARY_PATH=$prefix/lib

# start_member I: run member I with its stdin on a FIFO held open here.
# The member must not inherit the other members' FIFOs, or their end of
# input would never come.
start_member() {
	local i=$1 fd
	rm -f "$tmp/in$i"
	mkfifo "$tmp/in$i"
	(
		for fd in "${infd[@]}"; do
			exec {fd}>&-
		done
		exec "$tmp/counter" "$i" "$tmp/data$i" "$MEMBERS" \
			<"$tmp/in$i" >>"$tmp/out$i" 2>>"$tmp/err$i"
	) &
	pid[$i]=$!
	exec {fd}>"$tmp/in$i"
	infd[$i]=$fd
}

# stop_member I: end its input; it closes its node and exits 0.
stop_member() {
	local i=$1 fd=${infd[$1]} rc
	exec {fd}>&-
	unset "infd[$i]"
	wait "${pid[$i]}"
	rc=$?
	unset "pid[$i]"
	return "$rc"
}

# send I COMMAND: fails if member I has exited.
send() {
	{ echo "$2" 1>&"${infd[$1]}"; } 2>/dev/null
}

# alive I: member I's process is still running.
alive() {
	kill -0 "${pid[$1]}" 2>/dev/null
}

lines() {
	wc -l <"$tmp/out$1"
}

# await I FROM REGEX SECONDS: wait for an answer of member I after line
# FROM that matches REGEX; print it.
await() {
	local i=$1 from=$2 re=$3 deadline=$((SECONDS + $4))
	while [ $SECONDS -lt "$deadline" ]; do
		tail -n +$((from + 1)) "$tmp/out$i" | grep -E -m1 -- "$re" &&
			return 0
		sleep 0.1
	done
	return 1
}

# ask I COMMAND REGEX SECONDS: repeat a read-only COMMAND until an answer
# matches REGEX; print it.
ask() {
	local i=$1 cmd=$2 re=$3 deadline=$((SECONDS + $4)) from
	from=$(lines "$i")
	while [ $SECONDS -lt "$deadline" ]; do
		send "$i" "$cmd" || return 1
		await "$i" "$from" "$re" 1 && return 0
	done
	return 1
}

for i in 1 2 3; do
	touch "$tmp/out$i" "$tmp/err$i"
	start_member "$i"
done

# A leader is elected.
leader=""
dead=""
deadline=$((SECONDS + 15))
while [ -z "$leader$dead" ] && [ $SECONDS -lt $deadline ]; do
	for i in 1 2 3; do
		if ! alive "$i"; then
			dead=$i
			break
		fi
		if ask "$i" status 'role=leader' 1 >/dev/null; then
			leader=$i
			break
		fi
	done
done
if [ -n "$leader" ]; then
	pass "three members elect a leader (member $leader)"
elif [ -n "$dead" ]; then
	fail "member $dead exited before a leader was elected" "$tmp/err$dead"
	finish
else
	fail "no leader within 15 s" "$tmp/err1"
	finish
fi
followers=$(for i in 1 2 3; do [ "$i" = "$leader" ] || echo "$i"; done)
f1=$(head -1 <<<"$followers")
f2=$(tail -1 <<<"$followers")

# An add on the leader is acknowledged once applied.
from=$(lines "$leader")
send "$leader" "add 5"
check "add 5 on the leader is applied" \
	await "$leader" "$from" '^add 5: ok, value 5 ' 10

# Both followers see it in a linearizable read.
for i in $followers; do
	check "member $i reads value 5" ask "$i" get '^get: value 5 ' 10
done

# A follower refuses a write and names the leader.
from=$(lines "$f1")
send "$f1" "add 1"
check "a follower refuses add and names the leader" \
	await "$f1" "$from" "^add 1: error: not the leader; the leader is $leader\$" 5

# Bad input gets an error and changes nothing.
from=$(lines "$leader")
send "$leader" "add five"
check "a malformed add is refused" \
	await "$leader" "$from" "^add: error: expected a whole number" 5

# A member restarted from its data directory keeps its state and catches
# up with what it missed.
check "member $f2 stops cleanly at the end of its input" stop_member "$f2"
from=$(lines "$leader")
send "$leader" "add 2"
check "add 2 commits with one member down" \
	await "$leader" "$from" '^add 2: ok, value 7 ' 10
start_member "$f2"
check "restarted member $f2 catches up to value 7" \
	ask "$f2" get '^get: value 7 ' 15
check "member $f1 reads value 7" ask "$f1" get '^get: value 7 ' 10

for i in 1 2 3; do
	check "member $i exits 0 at the end of its input" stop_member "$i"
done

finish
