"""Linearizability checker for read/write registers, one key at a time.

The search is the Wing-Gong algorithm with Lowe's memoisation (Lowe,
"Testing for linearizability", 2017; Horn and Kroening, "Faster
linearizability checking via P-compositionality", 2015): call and return
entries sit in one time-ordered linked list; the search walks it from the
head, linearizes a call when the register model allows it and the pair
(set of linearized operations, register value) has not been seen before,
and backtracks when it reaches the return of an operation it has not
linearized. Keys are independent (P-compositionality), so each key is
searched on its own.

Rules for the three completion types:

- ok: happened between its invoke and its completion.
- fail: definitely did not happen; dropped.
- info: may take effect at any point after its invoke, or never. Its
  completion is +infinity and the search may leave it unlinearized. Two
  reductions keep this cheap without changing the answer (values are unique
  per write): an info write whose value nobody read is dropped (removing
  it from any valid linearization leaves one that is still valid), and an
  info write whose value was read must take effect before the earliest
  completion among those reads, so that completion becomes its own. An
  info read constrains nothing and is dropped.

A read of a value never written, a read of a value whose write failed and a
read that completed before the write of its value was invoked are reported
directly, before any search.

Because every write carries a unique value, the verdict itself is computed
first in O(n log n) by the zone test of Gibbons and Korach ("Testing shared
memories", 1997, as restated by Golab, Li and Shah, PODC 2011): a write and
the reads of its value form a cluster; with f the earliest completion and s
the latest invoke among the cluster's operations, the cluster has a forward
zone [f, s] when f < s and a backward zone [s, f] otherwise. The history is
linearizable iff no two forward zones overlap and no backward zone lies
inside a forward zone. The initial value is a cluster whose write precedes
everything. This gives the verdict, so many concurrent clients cannot
make it slow.

The WGL search runs only when the zone test finds a violation: it must
confirm it (a disagreement is reported as a checker bug, verdict unknown),
and it finds the shortest prefix of the history that is already not
linearizable (prefixes of a linearizable history are linearizable, so a
binary search over completion times finds it). The report names the
operation whose completion ends that prefix, the operations concurrent
with it, the last writes that completed before it and the write of the
value it read. When the search exceeds its budget of configurations, the
report shows the two clusters whose zones conflict instead.
"""

import bisect

from .history import INF, NIL, NONE

READS = ("read", "get")
# TODO(jepsen): deletes and compare-and-swap are not modelled; the register
# workload does not issue them.
WRITES = ("write", "put")


class Result:
    def __init__(self, key, valid, ops=0, message="", window=None,
                 configs=0):
        self.key = key
        self.valid = valid  # True, False, or None (unknown: search limit)
        self.ops = ops
        self.message = message
        self.window = window or []  # Ops around the contradiction
        self.configs = configs  # configurations explored

    def report(self, t0=0):
        lines = ["key %s: %s (%d ops, %d configurations explored)" %
                 (self.key, {True: "linearizable", False:
                             "NOT linearizable", None: "unknown"}[self.valid],
                  self.ops, self.configs)]
        if self.message:
            lines.append("  " + self.message)
        for op in self.window:
            lines.append("    " + op.describe(t0))
        return "\n".join(lines)


class _Entry:
    __slots__ = ("time", "is_call", "op", "ret", "prev", "next")

    def __init__(self, time, is_call, op):
        self.time = time
        self.is_call = is_call
        self.op = op  # index into the op list
        self.ret = None  # for a call: its return entry (None: never returns)
        self.prev = None
        self.next = None


def _search(ops, init, limit):
    """WGL search over prepared ops (f, value, invoke, complete).

    Returns (linearizable or None when the limit was hit, configurations).
    """
    entries = []
    for i, (f, v, inv, comp) in enumerate(ops):
        call = _Entry(inv, True, i)
        entries.append(call)
        if comp != INF:
            ret = _Entry(comp, False, i)
            call.ret = ret
            entries.append(ret)
    # Calls before returns at equal times: such operations overlap, which is
    # the reading that flags fewer histories.
    entries.sort(key=lambda e: (e.time, not e.is_call))
    head = _Entry(0, False, -1)
    prev = head
    for e in entries:
        prev.next = e
        e.prev = prev
        prev = e

    is_read = [f in READS for (f, v, inv, comp) in ops]
    values = [v for (f, v, inv, comp) in ops]
    cache = set()
    stack = []
    lin = 0
    state = init
    entry = head.next
    configs = 0
    while entry is not None:
        if entry.is_call:
            i = entry.op
            if is_read[i]:
                ok = values[i] == state
                new_state = state
            else:
                ok = True
                new_state = values[i]
            if ok:
                new_lin = lin | (1 << i)
                k = (new_lin, new_state)
                if k not in cache:
                    configs += 1
                    if configs > limit:
                        return None, configs
                    cache.add(k)
                    stack.append((entry, state, lin))
                    lin = new_lin
                    state = new_state
                    # Lift the call and its return out of the list.
                    entry.prev.next = entry.next
                    if entry.next is not None:
                        entry.next.prev = entry.prev
                    r = entry.ret
                    if r is not None:
                        r.prev.next = r.next
                        if r.next is not None:
                            r.next.prev = r.prev
                    entry = head.next
                    continue
            entry = entry.next
        else:
            # The return of an operation not yet linearized: backtrack.
            # Frames of reads are popped without trying the branch that
            # skips them (see _unlift).
            while True:
                if not stack:
                    return False, configs
                entry, state, lin = stack.pop()
                _unlift(entry)
                if not is_read[entry.op]:
                    break
            entry = entry.next
    return True, configs


def _unlift(entry):
    """Put a call and its return back into the list.

    A read needs no alternative: if a read is callable (every entry before
    its call is a call) and returns the current value, any linearization
    that places it later can place it now instead, since reads leave the
    value alone and no unlinearized operation returned before the read was
    invoked. So when linearizing it first failed, skipping it fails too,
    and the search backtracks past it.
    """
    r = entry.ret
    if r is not None:
        r.prev.next = r
        if r.next is not None:
            r.next.prev = r
    entry.prev.next = entry
    if entry.next is not None:
        entry.next.prev = entry


def _prepare(ops, cutoff=INF):
    """Reduce one key's ops to tuples (f, value, invoke, complete).

    With a cutoff, the history is cut at that time: operations invoked later
    are left out and operations still open become info.
    """
    first_read = {}
    kept = []
    for op in ops:
        if op.invoke > cutoff or op.type == "fail":
            continue
        comp = op.complete if op.complete <= cutoff else INF
        typ = op.type if comp != INF else "info"
        if op.f in READS:
            if typ != "ok":
                continue
            if op.value not in first_read or comp < first_read[op.value]:
                first_read[op.value] = comp
        kept.append((op.f, op.value, op.invoke, comp, typ))
    out = []
    for f, v, inv, comp, typ in kept:
        if f in WRITES and typ == "info":
            if v not in first_read:
                continue
            comp = first_read[v]
        out.append((f, v, inv, comp))
    return out


def _precheck(key, ops):
    """Direct contradictions; returns a Result or None."""
    writes = {}
    for op in ops:
        if op.f in WRITES:
            if op.value in writes:
                return Result(key, None, len(ops),
                              "value %s written twice (lines %d and %d): "
                              "the checker needs unique values per write" %
                              (op.value, writes[op.value].line, op.line),
                              [writes[op.value], op])
            if op.value == NIL or op.value == NONE:
                return Result(key, None, len(ops),
                              "line %d writes reserved value %s" %
                              (op.line, op.value), [op])
            writes[op.value] = op
        elif op.f not in READS:
            return Result(key, None, len(ops),
                          "line %d: operation '%s' is not read or write" %
                          (op.line, op.f), [op])
    for op in ops:
        if op.f not in READS or op.type != "ok" or op.value == NIL:
            continue
        w = writes.get(op.value)
        if w is None:
            return Result(key, False, len(ops),
                          "read of value %s that was never written" %
                          op.value, [op])
        if w.type == "fail":
            return Result(key, False, len(ops),
                          "read of value %s whose write failed" % op.value,
                          [w, op])
        if w.invoke > op.complete:
            return Result(key, False, len(ops),
                          "value %s read before its write began" % op.value,
                          [op, w])
    return None


def _window(ops, culprit):
    """The culprit, operations overlapping it, the last three writes that
    completed before it began, and for a read the write of its value."""
    lo, hi = culprit.invoke, culprit.complete
    around = [op for op in ops if op is not culprit and op.type != "fail" and
              op.invoke <= hi and op.complete >= lo]
    before = [op for op in ops if op.f in WRITES and op.type == "ok" and
              op.complete < lo]
    before.sort(key=lambda op: op.complete)
    win = before[-3:] + around + [culprit]
    if culprit.f in READS:
        win += [op for op in ops if op.f in WRITES and
                op.value == culprit.value and op not in win]
    win.sort(key=lambda op: op.invoke)
    return win


def _zones(prepared, init):
    """Zone test over prepared ops. Returns None when linearizable, else
    (kind, value_a, value_b) naming the clusters that conflict."""
    NEG = float("-inf")
    clusters = {init: [NEG, NEG]}  # value -> [f, s]
    for f, v, inv, comp in prepared:
        if f in WRITES:
            c = clusters.setdefault(v, [comp, inv])
            c[0] = min(c[0], comp)
            c[1] = max(c[1], inv)
    for f, v, inv, comp in prepared:
        if f in READS:
            c = clusters[v]
            c[0] = min(c[0], comp)
            c[1] = max(c[1], inv)
    forward = sorted((fs[0], fs[1], v) for v, fs in clusters.items()
                     if fs[0] < fs[1])
    for a, b in zip(forward, forward[1:]):
        if b[0] < a[1]:
            return ("overlap", a[2], b[2])
    starts = [z[0] for z in forward]
    for v, (f, s) in clusters.items():
        if f < s or (v == init and f == NEG):
            continue
        i = bisect.bisect_left(starts, s) - 1
        if i >= 0 and forward[i][1] > f and forward[i][2] != v:
            return ("inside", forward[i][2], v)
    return None


def check_key(key, ops, init=NIL, limit=100_000):
    """Check one key's ops (history.Op list). Returns a Result."""
    pre = _precheck(key, ops)
    if pre is not None:
        return pre
    prepared = _prepare(ops)
    zone = _zones(prepared, init)
    if zone is None:
        return Result(key, True, len(ops))
    ok, configs = _search(prepared, init, limit)
    if ok or ok is None:
        # The search could not confirm the zone verdict in time: show the
        # clusters that conflict.
        kind, a, b = zone
        win = [op for op in ops if op.type != "fail" and
               op.value in (a, b)]
        return Result(key, False if ok is None else None, len(ops),
                      "the writes of %s and %s with their reads cannot be "
                      "ordered (%s zones)%s:" %
                      (a, b, kind, "" if ok is None else
                       "; the search disagrees, which is a checker bug"),
                      win[:20], configs)
    # Shortest non-linearizable prefix, by completion time.
    cuts = sorted({op.complete for op in ops
                   if op.type == "ok" and op.complete != INF})
    lo, hi = 0, len(cuts) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        r, c = _search(_prepare(ops, cuts[mid]), init, limit)
        configs += c
        if r is False:
            hi = mid
        else:
            lo = mid + 1
    culprit = next(op for op in ops
                   if op.type == "ok" and op.complete == cuts[lo])
    return Result(key, False, len(ops),
                  "no linearization once %s %s completes (process %s, line "
                  "%d); operations around it:" %
                  (culprit.f, culprit.value, culprit.process, culprit.line),
                  _window(ops, culprit), configs)


def check(ops, init=NIL, limit=100_000):
    """Check every key; returns a list of Results, one per key."""
    by_key = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    return [check_key(k, v, init, limit) for k, v in sorted(by_key.items())]
