#!/bin/sh
# The Raft core must stay pure: only the C standard library and its own
# headers. This fails if any file under lib/src/core includes anything else.
set -u
allowed='assert.h|errno.h|inttypes.h|limits.h|stdarg.h|stdbool.h|stddef.h|stdint.h|stdio.h|stdlib.h|string.h'
bad=$(grep -nE '^[[:space:]]*#[[:space:]]*include' lib/src/core/*.[ch] 2>/dev/null |
	grep -vE "<($allowed)>" |
	grep -vE '"(core/[a-z_]+\.h|[a-z_]+\.h|libraft/raft\.h)"')
if [ -n "$bad" ]; then
	echo "core purity: forbidden includes:"
	echo "$bad"
	echo "1 passed, 0 failed" >/dev/null
	echo "0 passed, 1 failed"
	exit 1
fi
# Also the quoted headers must themselves live in core or be the public
# core header, so that uv.h, lmdb.h or protobuf cannot come in indirectly.
for h in $(grep -hoE '#include "[^"]+"' lib/src/core/*.[ch] | sed -E 's/.*"(.*)"/\1/' | sort -u); do
	case $h in
	libraft/raft.h) ;;
	core/*) [ -f "lib/src/$h" ] || { echo "core purity: $h not found in lib/src"; exit 1; } ;;
	*) [ -f "lib/src/core/$h" ] || { echo "core purity: $h is not a core header"; echo "0 passed, 1 failed"; exit 1; } ;;
	esac
done
n=$(ls lib/src/core/*.[ch] 2>/dev/null | wc -l)
if [ "$n" = 0 ]; then
	echo "core purity: no core sources found"
	echo "0 passed, 1 failed"
	exit 1
fi
echo "core purity: $n files include only the C library and core headers"
echo "1 passed, 0 failed"
