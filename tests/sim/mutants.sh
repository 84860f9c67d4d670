#!/bin/sh
# Build the simulation against deliberately broken cores, one binary per
# mutant, into $BUILD/mutants/sim-mN. Each mutant breaks one rule:
#   1  commit entries of older terms by counting replicas (Raft Figure 8)
#   2  answer a vote before it is durable (msgs instead of
#      msgs_after_persist)
#   3  a follower cuts its log on a stale AppendEntries whose entries all
#      match
#   4  a leader never notices that a follower lost acknowledged entries
#      (its disk wiped), so it never catches it up again
#   5  a leader takes a rejection that overtook an acceptance for a loss
#      of acknowledged entries
# The mutants exist only here: RAFT_MUTANT is never defined in a library
# build. Usage: tests/sim/mutants.sh [MUTANT...]   (default: 1 2 3 4 5)
set -eu
BUILD=${BUILD:-build}
CC=${CC:-cc}
out=$BUILD/mutants
mkdir -p "$out"
flags="-std=c11 -O2 -g -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -Ilib/include -Ilib/src"
if [ "${SAN:-0}" = 1 ]; then
	flags="$flags -O1 -fsanitize=address,undefined -fno-omit-frame-pointer"
fi
mutants=${*:-1 2 3 4 5}
for m in $mutants; do
	# shellcheck disable=SC2086
	$CC $flags -DRAFT_MUTANT="$m" lib/src/core/*.c lib/src/error.c \
		tests/sim/*.c -o "$out/sim-m$m"
done
echo "mutants: built $mutants into $out"
