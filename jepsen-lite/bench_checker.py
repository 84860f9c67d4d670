#!/usr/bin/env python3
"""Prints how long the register checker takes on random histories from a
simulated register (test_checker.random_register_history): the verdict
(zone test), the WGL search alone on the same history, and the full report
of a history with one planted stale read. Figures only; asserts nothing."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from jl import history, linear  # noqa: E402
from test_checker import random_register_history  # noqa: E402


def plant_stale(lines, ops):
    for op in reversed(ops):
        if op.f != "read" or op.type != "ok":
            continue
        old = [w for w in ops if w.f == "write" and w.type == "ok" and
               w.complete < op.invoke and w.value != op.value]
        if len(old) > 10:
            stale = old[-10]
            break
    out = []
    for ln in lines:
        p = ln.split()
        if int(p[0]) == op.complete and p[1] == op.process and p[2] == "ok":
            p[5] = stale.value
        out.append(" ".join(p))
    return out


def main():
    print("%7s %5s %10s %12s %14s" % ("ops", "procs", "verdict s",
                                       "WGL alone s", "stale report s"))
    for n, procs in ((1000, 5), (3000, 5), (3000, 10), (3000, 20),
                     (10000, 10), (30000, 10), (3000, 50)):
        lines = random_register_history(n + procs, n, procs)
        ops = history.pair(history.parse(lines))
        t = time.monotonic()
        r = linear.check(ops)[0]
        verdict = time.monotonic() - t
        assert r.valid
        t = time.monotonic()
        ok, _ = linear._search(linear._prepare(ops), "nil", 300_000)
        wgl = ("%.2f" % (time.monotonic() - t) if ok is not None
               else ">limit")
        bad = history.pair(history.parse(plant_stale(lines, ops)))
        t = time.monotonic()
        rb = linear.check(bad)[0]
        rep = time.monotonic() - t
        print("%7d %5d %10.3f %12s %13.2f%s" % (n, procs, verdict, wgl, rep,
                                               "" if rb.valid is False
                                               else " (missed!)"))


if __name__ == "__main__":
    main()
