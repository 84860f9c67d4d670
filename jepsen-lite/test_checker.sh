#!/bin/sh
# Tests of the jepsen-lite history checkers (no cluster, no root needed).
exec python3 "$(dirname "$0")/test_checker.py" "$@"
