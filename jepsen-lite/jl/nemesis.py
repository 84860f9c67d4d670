"""Fault injection on a running test cluster.

Every fault is recorded twice: as a nemesis event in the history (process
"nemesis", f start or stop, key = fault name, value = detail) and as a line
in nemesis.txt. heal_all() undoes everything: network rules, rate limits
and delays removed, paused nodes resumed, dead nodes restarted, fake
clocks reset to real time.

Network faults are nftables rules and tbf qdiscs inside the node
namespaces (netns.py); delays need the delaying proxies (delayproxy.py,
started before kvd); process faults are signals to kvd (cluster.py); clock
faults need the node to run under libfaketime (started with
faketime="+0"); fsync errors need it to run under fiu-run (libfiu); a
full disk is a small tmpfs on the node's data directory, filled up.
"""

import os
import random
import subprocess

from . import netns


class Nemesis:
    def __init__(self, cluster, net, rec, seed=0, path=None):
        self.cluster = cluster
        self.net = net
        self.rec = rec
        self.rng = random.Random(seed)
        self.f = open(path, "w") if path else None
        self.mounts = []

    def note(self, f, name, detail=""):
        t = self.rec.event("nemesis", "info", f, name,
                           "_".join(str(detail).split()) or "-")
        if self.f:
            self.f.write("%d %s %s %s\n" % (t, f, name, detail))
            self.f.flush()

    def close(self):
        if self.f:
            self.f.close()

    # ---- network ----

    def partition(self, groups, name="partition"):
        self.net.partition(groups)
        self.note("start", name, "|".join(",".join(map(str, g))
                                          for g in groups))

    def cut(self, src, dst):
        """One way: packets from src do not reach dst."""
        self.net.cut(src, dst)
        self.note("start", "cut", "%d->%d" % (src, dst))

    def loss(self, i, pct):
        self.net.loss(i, pct)
        self.note("start", "loss", "n%d %d%%" % (i, pct))

    def duplicate(self, i, pct):
        self.net.duplicate(i, pct)
        self.note("start", "duplicate", "n%d %d%%" % (i, pct))

    def slow(self, i, kbit):
        self.net.bandwidth(i, kbit)
        self.note("start", "slow", "n%d %dkbit" % (i, kbit))

    def delay(self, i, ms):
        """Delay node i's peer traffic by ms each way (needs the test's
        proxies, Spec(proxy=True))."""
        d = dict(self.cluster.delays)
        d[i] = ms
        self.cluster.set_delays(d)
        self.note("start", "delay", "n%d %dms" % (i, ms))

    def heal_net(self):
        self.net.heal()
        self.note("stop", "network", "healed")

    # ---- processes ----

    def kill(self, i):
        self.cluster.kill(i)
        self.note("start", "kill", "n%d" % i)

    def restart(self, i, **kw):
        self.cluster.start(i, **kw)
        self.note("stop", "kill", "n%d restarted" % i)

    def pause(self, i):
        self.cluster.pause(i)
        self.note("start", "pause", "n%d" % i)

    def resume(self, i):
        self.cluster.resume(i)
        self.note("stop", "pause", "n%d" % i)

    # ---- clock ----

    def clock(self, i, spec):
        """libfaketime spec for node i, e.g. "+30" (jump 30 s ahead),
        "-10" or "+0 x1.5" (run 1.5 times as fast)."""
        self.cluster.set_faketime(i, spec)
        self.note("start", "clock", "n%d %s" % (i, spec))

    # ---- disk ----

    def small_disk(self, i, size_mb):
        """Mount a size_mb tmpfs on node i's data directory (node stopped)."""
        d = self.cluster.nodes[i].data_dir
        os.makedirs(d, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mb,
                        netns.PREFIX + "tmpfs", d], check=True)
        self.mounts.append(d)
        self.note("start", "small-disk", "n%d %dMB" % (i, size_mb))

    def fill_disk(self, i):
        """Fill node i's data filesystem, leaving nothing free."""
        path = os.path.join(self.cluster.nodes[i].data_dir, "jl-ballast")
        subprocess.run(["dd", "if=/dev/zero", "of=" + path, "bs=64k"],
                       capture_output=True)
        self.note("start", "disk-full", "n%d" % i)

    def free_disk(self, i):
        path = os.path.join(self.cluster.nodes[i].data_dir, "jl-ballast")
        if os.path.exists(path):
            os.unlink(path)
        self.note("stop", "disk-full", "n%d" % i)

    def fsync_fail(self, i):
        """Make every fdatasync and fsync of node i fail (libfiu)."""
        self.cluster.fiu(i, "enable name=posix/io/sync/*")
        self.note("start", "fsync-error", "n%d" % i)

    def unmount_all(self):
        for d in self.mounts:
            subprocess.run(["umount", "-l", d], capture_output=True)
        self.mounts = []

    # ---- all ----

    def heal_all(self):
        self.net.heal()
        if self.cluster.delay_file and any(self.cluster.delays.values()):
            self.cluster.set_delays({})
            self.note("stop", "delay", "all 0ms")
        for i, n in self.cluster.nodes.items():
            if n.paused:
                self.resume(i)
            if n.faketime_file:
                self.clock(i, "+0")
            if not self.cluster.alive(i):
                self.restart(i, faketime="+0" if n.faketime_file else None,
                             fiu=n.fiu)
        self.note("stop", "all", "healed")

    # ---- choices ----

    def random_halves(self):
        ids = self.cluster.ids()
        self.rng.shuffle(ids)
        k = len(ids) // 2
        return [sorted(ids[:k]), sorted(ids[k:])]

    def bridge(self):
        """Two halves that share one node (which sees both)."""
        ids = self.cluster.ids()
        self.rng.shuffle(ids)
        mid = ids[0]
        rest = ids[1:]
        k = len(rest) // 2
        a, b = rest[:k], rest[k:]
        for x in a:
            for y in b:
                self.net.cut(x, y)
                self.net.cut(y, x)
        self.note("start", "bridge", "%s|%d|%s" % (
            ",".join(map(str, a)), mid, ",".join(map(str, b))))
