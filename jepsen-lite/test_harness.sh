#!/bin/sh
# Tests of the jepsen-lite harness pieces (namespaces, nftables faults,
# signals, cleanup) with a dummy server; needs root, no kvd.
exec python3 "$(dirname "$0")/test_harness.py" "$@"
