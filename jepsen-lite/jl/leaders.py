"""Election Safety (Raft paper, Figure 3.2): at most one leader per term.

Evidence comes from two places: node logs, where kvd writes a line with
msg="became leader" and term=N when a node wins an election, and status
samples taken by the harness (a line per answer: node, term, role). Every
(term, leader) claim is collected; two different nodes claiming the same
term is a violation.
"""

import re

_LEADER_RE = re.compile(r'msg="?became leader"?')
_TERM_RE = re.compile(r'\bterm=(\d+)')
_ID_RE = re.compile(r'\b(?:id|node)=(\d+)')


class LeaderResult:
    def __init__(self):
        self.claims = {}  # term -> {node: source}
        self.terms = 0

    @property
    def violations(self):
        return {t: c for t, c in self.claims.items() if len(c) > 1}

    @property
    def valid(self):
        return not self.violations

    def report(self):
        v = self.violations
        lines = ["leaders: %s: %d terms with a leader seen" %
                 ("valid" if not v else "INVALID", len(self.claims))]
        for t in sorted(v):
            lines.append("  term %d has leaders %s" % (t, ", ".join(
                "n%s (%s)" % (n, s) for n, s in sorted(v[t].items()))))
        return "\n".join(lines)

    def add(self, term, node, source):
        self.claims.setdefault(term, {}).setdefault(str(node), source)


def scan_log(result, lines, node, name="log"):
    """Add the claims of one node's log (node: its id)."""
    for lineno, text in enumerate(lines, 1):
        if not _LEADER_RE.search(text):
            continue
        m = _TERM_RE.search(text)
        if m is None:
            continue
        idm = _ID_RE.search(text)
        result.add(int(m.group(1)), idm.group(1) if idm else node,
                   "%s:%d" % (name, lineno))


def scan_status(result, lines, name="status"):
    """Status samples: lines '<mono_ns> <node> <term> <role> ...'; lines
    whose role is leader are claims."""
    for lineno, text in enumerate(lines, 1):
        parts = text.split()
        if len(parts) < 4 or text.startswith("#"):
            continue
        if parts[3] == "leader":
            result.add(int(parts[2]), parts[1], "%s:%d" % (name, lineno))
