#!/bin/bash
# The shared library exports the public API and nothing else.
#
# An embedder links libraft.so next to its own code and other libraries, so
# every exported name is a promise and a chance of collision: only raft_*
# and kv_* (kv_client_* included) may leave the library. Internal modules
# (rlog_, rnet_, kvsm_, node_ ...) and the protobuf-c generated code stay
# hidden (-fvisibility=hidden, lib/libraft.map). Checked against the headers
# in lib/include/libraft: what a header marks RAFT_API is exported, and what
# is exported is declared there. And since an embedder may run several nodes
# in one process, the library keeps no writable global or static data
# beyond the allowed test seams listed below. Prints "N passed, M failed".
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
SO=$BUILD/lib/libraft.so
AR=$BUILD/lib/libraft.a
# Writable globals allowed, each with its reason:
#   rlog_io  the log's system-call table, swapped only by fault-injection
#            tests while no log is open (lib/src/log/io.h)
ALLOWED_GLOBALS="rlog_io"
passed=0
failed=0

pass() {
	echo "ok   $1"
	passed=$((passed + 1))
}

# fail WHAT [LINES]: LINES, one item a line, are printed indented.
fail() {
	echo "FAIL $1"
	if [ -n "${2:-}" ]; then
		sed 's/^/     /' <<<"$2"
	fi
	failed=$((failed + 1))
}

finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit
}

if [ ! -e "$SO" ]; then
	fail "$SO exists (run make first)"
	finish
fi

exported=$(nm -D --defined-only "$SO" | awk '{print $NF}' | sort -u)
# Function names a public header marks RAFT_API (comments and preprocessor
# lines removed, declarations joined onto one line).
declared=$(python3 - lib/include/libraft/*.h <<'PY'
import re, sys
names = set()
for path in sys.argv[1:]:
    text = open(path).read()
    text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
    text = re.sub(r'//[^\n]*', ' ', text)
    text = '\n'.join(l for l in text.split('\n')
                     if not l.lstrip().startswith('#'))
    for decl in re.findall(r'RAFT_API\b([^;{]*)', text):
        m = re.search(r'([A-Za-z_]\w*)\s*\(', decl)
        if m:
            names.add(m.group(1))
print('\n'.join(sorted(names)))
PY
)

# The library exports at least one public function.
if [ -n "$exported" ]; then
	pass "exports $(wc -l <<<"$exported") symbols"
else
	fail "exports no symbols at all"
fi

# Nothing outside the public prefixes is exported; raft__ and kv__ would be
# protobuf-c code generated for a package of that name.
stray=$(grep -vE '^(raft|kv)_[^_]' <<<"$exported")
if [ -z "$stray" ]; then
	pass "every exported symbol starts with raft_ or kv_ (not __)"
else
	fail "symbols outside raft_/kv_ are exported:" "$stray"
fi

# Every exported symbol is declared RAFT_API in a public header.
undeclared=$(comm -23 <(echo "$exported") <(echo "$declared") | grep .)
if [ -z "$undeclared" ]; then
	pass "every exported symbol is declared in lib/include/libraft"
else
	fail "exported but not declared RAFT_API in a public header:" \
		"$undeclared"
fi

# Every function a public header promises is defined and exported.
missing=$(comm -13 <(echo "$exported") <(echo "$declared") | grep .)
if [ -z "$missing" ]; then
	pass "every RAFT_API function ($(wc -l <<<"$declared")) is exported"
else
	fail "declared RAFT_API but not exported by $SO:" "$missing"
fi

# The soname carries the ABI version, so that programs survive upgrades.
soname=$(readelf -d "$SO" | sed -nE 's/.*\(SONAME\).*\[(.*)\].*/\1/p')
if [ "$soname" = libraft.so.0 ]; then
	pass "soname is libraft.so.0"
else
	fail "soname is '$soname', expected libraft.so.0"
fi

# The development symlink chain ends at the versioned file.
target=$(readlink -f "$SO")
if [ -f "$target" ] && [ "$(readlink "$SO")" = libraft.so.0 ] &&
	[[ $(basename "$target") == libraft.so.0.* ]]; then
	pass "libraft.so -> libraft.so.0 -> $(basename "$target")"
else
	fail "symlinks: $SO -> $(readlink "$SO"), resolves to $target"
fi

# The library names every library it needs, so that linking a program with
# -lraft alone leaves no symbol unresolved.
unresolved=$(ldd -r "$SO" 2>&1 | grep 'undefined symbol' |
	sed -E 's/undefined symbol: ([^ \t]*).*/\1/')
if [ -z "$unresolved" ]; then
	pass "no undefined symbols left after loading its dependencies"
else
	fail "undefined symbols in $SO:" "$unresolved"
fi

# Writable data (.data, .bss, thread-local; not relocated read-only data)
# would be shared by every node in a process. Sanitizer builds add their own
# bookkeeping symbols, which do not count.
if [ -f "$AR" ]; then
	writable=$(objdump -t "$AR" | awk '$3 == "O" || $2 == "O" {
		for (i = 1; i <= NF; i++)
			if ($i ~ /^\.(data|bss|tdata|tbss)/ &&
			    $i !~ /^\.data\.rel\.ro/)
				print $NF
	}' | sort -u | grep -vxF -f <(tr ' ' '\n' <<<"$ALLOWED_GLOBALS") |
		grep -vE '^__(odr_asan|asan|ubsan)')
	if [ -z "$writable" ]; then
		pass "no writable global or static data in libraft.a"
	else
		fail "writable global or static data in libraft.a:" "$writable"
	fi
else
	fail "$AR exists (run make first)"
fi

finish
