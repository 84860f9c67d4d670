"""Set checker: unique adds, then a final read of every key through every
node.

The set workload adds element E by writing key <prefix>E with value E. At
the end it reads every key it attempted plus keys it never attempted,
through every node; those reads carry node=N. The verdict:

- lost: an acknowledged add (ok) missing from some node's final read;
- unexpected: an element present that was never attempted, or whose add
  definitely failed;
- corrupt: a present key whose value is not its element;
- disagree: nodes whose final sets differ;
- incomplete: a final read that did not succeed: the check cannot pass.

Adds that ended info may be present or absent.
"""

from .history import NIL


class SetResult:
    def __init__(self):
        self.attempted = 0
        self.acked = 0
        self.failed = 0
        self.unknown = 0
        self.nodes = {}  # node -> set of present elements
        self.lost = {}  # node -> sorted elements
        self.unexpected = {}
        self.corrupt = []
        self.disagree = False
        self.incomplete = []
        self.recovered = 0  # info adds present on every node
        self.adds = {}  # element -> its add Op

    @property
    def valid(self):
        if self.lost or self.unexpected or self.corrupt or self.disagree:
            return False
        if self.incomplete or not self.nodes:
            return None
        return True

    def report(self, t0=0):
        v = self.valid
        lines = ["set: %s: %d attempted, %d acknowledged, %d failed, "
                 "%d unknown (%d of those present), final reads from %d "
                 "nodes" % ({True: "valid", False: "INVALID",
                             None: "unknown"}[v], self.attempted, self.acked,
                            self.failed, self.unknown, self.recovered,
                            len(self.nodes))]
        for node, els in sorted(self.lost.items()):
            lines.append("  node %s lost %d acknowledged adds: %s" %
                         (node, len(els), _short(els)))
            for e in sorted(els, key=_order)[:5]:
                if e in self.adds:
                    lines.append("    " + self.adds[e].describe(t0))
        for node, els in sorted(self.unexpected.items()):
            lines.append("  node %s has %d never-attempted or failed "
                         "elements: %s" % (node, len(els), _short(els)))
        for c in self.corrupt[:10]:
            lines.append("  " + c)
        if self.disagree:
            sizes = ", ".join("n%s: %d" % (n, len(s))
                              for n, s in sorted(self.nodes.items()))
            lines.append("  nodes disagree on the final set (%s)" % sizes)
        if not self.nodes:
            lines.append("  no final reads in the history")
        for m in self.incomplete[:10]:
            lines.append("  incomplete final read: " + m)
        return "\n".join(lines)


def _short(els, n=20):
    els = sorted(els, key=_order)
    s = " ".join(str(e) for e in els[:n])
    return s + (" ..." if len(els) > n else "")


def _order(e):
    return (0, int(e), "") if e.isdigit() else (1, 0, e)


def check(ops, prefix="s"):
    """ops: history.Ops of the set workload (add, and final reads with a
    node attribute). Returns a SetResult."""
    r = SetResult()
    status = {}  # element -> ok|fail|info
    for op in ops:
        if op.f != "add":
            continue
        el = op.key[len(prefix):] if op.key.startswith(prefix) else op.key
        status[el] = op.type
        r.adds[el] = op
    r.attempted = len(status)
    r.acked = sum(1 for s in status.values() if s == "ok")
    r.failed = sum(1 for s in status.values() if s == "fail")
    r.unknown = r.attempted - r.acked - r.failed
    read_keys = {}  # node -> elements with a successful final read
    tried = {}  # node -> (element -> line of an unsuccessful read)
    for op in ops:
        if op.f != "read" or "node" not in op.attrs:
            continue
        node = op.attrs["node"]
        el = op.key[len(prefix):] if op.key.startswith(prefix) else op.key
        present = r.nodes.setdefault(node, set())
        read_keys.setdefault(node, set())
        if op.type != "ok":
            tried.setdefault(node, {})[el] = op.line
            continue
        read_keys[node].add(el)
        if op.value == NIL:
            continue
        present.add(el)
        if op.value != el:
            r.corrupt.append("key %s holds %s on node %s (line %d)" %
                             (op.key, op.value, node, op.line))
    for node, els in sorted(tried.items()):
        for el, line in sorted(els.items()):
            if el not in read_keys[node]:
                r.incomplete.append("%s%s via node %s never read "
                                    "successfully (line %d)" %
                                    (prefix, el, node, line))
    for node, present in r.nodes.items():
        missing_reads = [e for e, s in status.items() if s == "ok" and
                         e not in read_keys[node]]
        if missing_reads:
            r.incomplete.append("node %s: %d acknowledged elements never "
                                "read back" % (node, len(missing_reads)))
        lost = [e for e, s in status.items()
                if s == "ok" and e in read_keys[node] and e not in present]
        if lost:
            r.lost[node] = lost
        bad = [e for e in present if status.get(e, "fail") == "fail"]
        if bad:
            r.unexpected[node] = bad
    sets = list(r.nodes.values())
    if sets:
        # Compare only keys that every node answered.
        common = set.intersection(*read_keys.values()) if read_keys else set()
        views = [s & common for s in sets]
        r.disagree = any(v != views[0] for v in views[1:])
        r.recovered = sum(1 for e, s in status.items()
                          if s == "info" and all(e in x for x in sets))
    return r
