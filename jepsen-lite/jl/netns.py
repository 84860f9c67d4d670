"""Network namespaces for a test cluster, and the nftables rules that
inject network faults.

Layout (X is the subnet number, 1 by default):

    jl-br   a namespace holding bridge br0 and one veth end per member
    jl-nI   node I: its veth end as eth0, 10.99.X.(10+I)/24, lo up
    jl-cli  the test's clients: eth0, 10.99.X.2/24

Nothing is created in the root namespace: the veth pairs are made inside
jl-br with their peers moved straight into the member namespace, so the
subnet exists only inside these namespaces and deleting the namespaces
removes every link. The clients' address is never blocked, so clients can
reach every node whatever the partition, as they could in a data centre.

Faults are nftables rules inside a node's namespace, in table inet jl,
rewritten as a whole on every change (nft -f is atomic):

    input:  drop from blocked sources; random loss from lossy sources
    output: drop to blocked destinations
    netdev egress on eth0: random duplication (dup to eth0)

A one-way cut from A to B is a drop in B's input only. Bandwidth limits
use a tbf qdisc on eth0 (the kernel here has no netem, so there is no
fixed delay).
"""

import os
import subprocess

PREFIX = "jl-"
# TODO(jepsen): fixed names allow one run per machine at a time; a run id
# in the names (and in the subnet number) would let runs go in parallel.
BRIDGE_NS = PREFIX + "br"
CLIENT_NS = PREFIX + "cli"


class NetError(Exception):
    pass


def sh(args, check=True, input=None):
    r = subprocess.run(args, input=input, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise NetError("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def ns_name(i):
    return "%sn%d" % (PREFIX, i)


def list_namespaces():
    r = sh(["ip", "netns", "list"], check=False)
    return [ln.split()[0] for ln in r.stdout.splitlines() if ln.strip()]


def ns_pids(ns):
    r = sh(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in r.stdout.split()]


def cleanup(log=print):
    """Remove every namespace named jl-*, killing what still runs in them
    (processes of an earlier run), and unmount jl tmpfs mounts."""
    import signal
    for ns in list_namespaces():
        if not ns.startswith(PREFIX):
            continue
        for pid in ns_pids(ns):
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
                log("cleanup: killed pid %d in %s" % (pid, ns))
            except ProcessLookupError:
                pass
        sh(["ip", "netns", "del", ns], check=False)
        log("cleanup: deleted namespace %s" % ns)
    with open("/proc/mounts") as f:
        for ln in f:
            dev, mnt = ln.split()[:2]
            if dev == PREFIX + "tmpfs":
                sh(["umount", "-l", mnt], check=False)
                log("cleanup: unmounted %s" % mnt)


class Net:
    def __init__(self, n, subnet=1):
        self.n = n
        self.subnet = subnet
        self.rules = {i: Rules() for i in range(1, n + 1)}

    def ip(self, i):
        return "10.99.%d.%d" % (self.subnet, 10 + i)

    @property
    def client_ip(self):
        return "10.99.%d.2" % self.subnet

    def setup(self):
        for ns in [BRIDGE_NS, CLIENT_NS] + [ns_name(i) for i in
                                             range(1, self.n + 1)]:
            if ns in list_namespaces():
                raise NetError("namespace %s exists: run "
                               "'jepsen-lite/run cleanup' first" % ns)
            sh(["ip", "netns", "add", ns])
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        sh(["ip", "-n", BRIDGE_NS, "link", "add", "br0", "type", "bridge"])
        sh(["ip", "-n", BRIDGE_NS, "link", "set", "br0", "up"])
        members = [(ns_name(i), "v%d" % i, self.ip(i))
                   for i in range(1, self.n + 1)]
        members.append((CLIENT_NS, "vc", self.client_ip))
        for ns, veth, addr in members:
            sh(["ip", "-n", BRIDGE_NS, "link", "add", veth, "type", "veth",
                "peer", "name", "eth0", "netns", ns])
            sh(["ip", "-n", BRIDGE_NS, "link", "set", veth, "master", "br0"])
            sh(["ip", "-n", BRIDGE_NS, "link", "set", veth, "up"])
            sh(["ip", "-n", ns, "addr", "add", addr + "/24", "dev", "eth0"])
            sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
        for i in range(1, self.n + 1):
            self.apply(i)

    def teardown(self):
        for ns in [ns_name(i) for i in range(1, self.n + 1)] + \
                [CLIENT_NS, BRIDGE_NS]:
            sh(["ip", "netns", "del", ns], check=False)

    # ---- faults ----

    def apply(self, i):
        """Write node i's whole rule set."""
        sh(["ip", "netns", "exec", ns_name(i), "nft", "-f", "-"],
           input=self.rules[i].render())

    def cut(self, src, dst):
        """Drop packets from node src arriving at node dst (one way)."""
        self.rules[dst].drop_from.add(self.ip(src))
        self.apply(dst)

    def partition(self, groups):
        """Nodes in different groups cannot talk (both ways)."""
        where = {n: gi for gi, g in enumerate(groups) for n in g}
        for a in range(1, self.n + 1):
            for b in range(1, self.n + 1):
                if a != b and where.get(a, -1) != where.get(b, -2):
                    self.rules[b].drop_from.add(self.ip(a))
        for i in range(1, self.n + 1):
            self.apply(i)

    def loss(self, i, pct, peers_only=True):
        """Drop pct% of packets arriving at node i from the other nodes."""
        self.rules[i].loss = pct
        self.rules[i].loss_from = {self.ip(j) for j in range(1, self.n + 1)
                                   if j != i} if peers_only else None
        self.apply(i)

    def duplicate(self, i, pct):
        """Send a copy of pct% of node i's outgoing packets."""
        self.rules[i].dup = pct
        self.apply(i)

    def bandwidth(self, i, kbit):
        """Limit node i's outgoing rate (tbf); kbit 0 removes the limit."""
        ns = ns_name(i)
        sh(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "eth0",
            "root"], check=False)
        if kbit:
            sh(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev",
                "eth0", "root", "tbf", "rate", "%dkbit" % kbit, "burst",
                "16kbit", "latency", "2s"])

    def heal(self):
        for i in range(1, self.n + 1):
            self.rules[i] = Rules()
            self.apply(i)
            self.bandwidth(i, 0)


class Rules:
    def __init__(self):
        self.drop_from = set()
        self.loss = 0
        self.loss_from = None
        self.dup = 0

    def render(self):
        lines = ["table inet jl", "delete table inet jl",
                 "table inet jl {",
                 "  chain input { type filter hook input priority 0;"]
        if self.drop_from:
            lines.append("    ip saddr { %s } counter drop" %
                         ", ".join(sorted(self.drop_from)))
        if self.loss:
            src = ("ip saddr { %s } " % ", ".join(sorted(self.loss_from))
                   if self.loss_from else "")
            if self.loss >= 100:
                lines.append("    %scounter drop" % src)
            else:
                lines.append("    %snumgen random mod 100 < %d counter drop"
                             % (src, self.loss))
        lines.append("  }")
        lines.append("  chain output { type filter hook output priority 0;"
                     " }")
        lines.append("}")
        lines += ["table netdev jl", "delete table netdev jl"]
        if self.dup:
            lines += ["table netdev jl {",
                      "  chain egress { type filter hook egress device "
                      "eth0 priority 0;",
                      "    numgen random mod 100 < %d counter dup to eth0" %
                      min(self.dup, 99), "  }", "}"]
        return "\n".join(lines) + "\n"


_home_fd = None


def _setns(fd):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise NetError("setns: %s" % os.strerror(ctypes.get_errno()))


def enter(ns):
    """Move the calling thread into namespace ns (threads started later,
    and child processes, inherit it). Call before starting threads;
    leave() returns to the namespace the thread came from."""
    global _home_fd
    if _home_fd is None:
        _home_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    fd = os.open("/run/netns/" + ns, os.O_RDONLY)
    try:
        _setns(fd)
    finally:
        os.close(fd)


def leave():
    global _home_fd
    if _home_fd is not None:
        _setns(_home_fd)
        os.close(_home_fd)
        _home_fd = None
