"""Election Safety (Raft paper, Figure 3.2): at most one leader per term.

Evidence comes from two places: node logs and status samples taken by
the harness (a line per answer: node, term, role). In the logs, a node's
own role changes (msg="state changed" id=N role=leader term=T leader=L,
also spelled event=state_change, or a line with msg="became leader" and
term=T) claim leadership, and a follower's
view (role=follower term=T leader=L) says L led term T. Every (term,
leader) claim is collected; two different nodes claimed for one term is a
violation.
"""

import re

_LEADER_RE = re.compile(r'msg="?became leader"?')
_CHANGE_RE = re.compile(r'\bevent=state_change\b|msg="state changed"')
_ROLE_RE = re.compile(r'\brole=(\w+)')
_TERM_RE = re.compile(r'\bterm=(\d+)')
_ID_RE = re.compile(r'\b(?:id|node)=(\d+)')
_SEEN_RE = re.compile(r'\bleader=(\d+)')


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
        m = _TERM_RE.search(text)
        if m is None:
            continue
        term = int(m.group(1))
        idm = _ID_RE.search(text)
        me = idm.group(1) if idm else node
        where = "%s:%d" % (name, lineno)
        if _LEADER_RE.search(text):
            result.add(term, me, where)
        elif _CHANGE_RE.search(text):
            role = _ROLE_RE.search(text)
            if role and role.group(1) == "leader":
                result.add(term, me, where)
            else:
                seen = _SEEN_RE.search(text)
                if seen and seen.group(1) != "0":
                    result.add(term, seen.group(1),
                               where + " (seen by n%s)" % me)


def scan_status(result, lines, name="status"):
    """Status samples: lines '<mono_ns> <node> <term> <role> ...'; lines
    whose role is leader are claims."""
    for lineno, text in enumerate(lines, 1):
        parts = text.split()
        if len(parts) < 4 or text.startswith("#"):
            continue
        if parts[3] == "leader":
            result.add(int(parts[2]), parts[1], "%s:%d" % (name, lineno))
