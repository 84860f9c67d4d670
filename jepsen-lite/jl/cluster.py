"""kvd processes of a test cluster, one per network namespace.

Each node I runs as `ip netns exec jl-nI kvd ...` (ip execs kvd, so the
child's pid is kvd's pid), with its data in <out>/data/nI and its stderr
appended to <out>/nI.log. The harness can kill (SIGKILL), pause (SIGSTOP),
resume (SIGCONT) and restart nodes, start a node under libfaketime, and ask
any node for its status over the client protocol.

Node life:

    stopped --start()--> running --kill()/stop()--> stopped
    running --pause()--> paused --resume()--> running
    paused --kill()--> stopped (SIGCONT is sent after SIGKILL to be sure)
"""

import os
import signal
import subprocess
import sys
import threading
import time

from . import client as kvclient
from . import netns

PEER_PORT = 7101
CLIENT_PORT = 7102
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


class Node:
    def __init__(self, i, net, out):
        self.id = i
        self.ns = netns.ns_name(i)
        self.ip = net.ip(i)
        self.peer_addr = "%s:%d" % (self.ip, PEER_PORT)
        self.client_addr = "%s:%d" % (self.ip, CLIENT_PORT)
        self.data_dir = os.path.join(out, "data", "n%d" % i)
        self.log_path = os.path.join(out, "n%d.log" % i)
        self.proc = None
        self.fiu = False
        self.expected_exit = False
        self.paused = False
        self.faketime_file = None


class Cluster:
    def __init__(self, net, out, kvd, tick_ms=50, election_ticks=10,
                 clock=time.monotonic_ns, log=print):
        self.net = net
        self.out = out
        self.kvd = kvd
        self.tick_ms = tick_ms
        self.election_ticks = election_ticks
        self.clock = clock
        self.log = log
        self.nodes = {i: Node(i, net, out) for i in range(1, net.n + 1)}
        self.peers = ",".join("%d=%s" % (i, n.peer_addr)
                              for i, n in self.nodes.items())
        self.client = kvclient.Client([n.client_addr for n in
                                       self.nodes.values()])
        self._lock = threading.Lock()
        self.proxies = []
        self.unexpected = []  # (node, exit code): exits nobody caused
        self._reaped = set()
        self.delay_file = None
        self.delays = {}
        # Extra environment of a node's kvd, from node_env(i, start):
        # start counts the node's starts from 1.
        self.node_env = None
        self.starts = {i: 0 for i in self.nodes}

    @property
    def election_timeout(self):
        """The longest election timeout, in seconds."""
        return 2 * self.election_ticks * self.tick_ms / 1000.0

    def ids(self):
        return list(self.nodes)

    def start(self, i, faketime=None, fiu=False):
        """Start node i, noting first whether it had exited on its own.

        faketime: a libfaketime spec ("+0", "+10 x2"); the node reads its
        fake offset from a file that set_faketime() rewrites while it
        runs. fiu: run under fiu-run -x, so that fiu() can make its POSIX
        calls fail."""
        n = self.nodes[i]
        if n.proc is not None and n.proc.poll() is None:
            return
        self.reap()
        os.makedirs(n.data_dir, exist_ok=True)
        env = dict(os.environ)
        self.starts[i] += 1
        if self.node_env is not None:
            env.update(self.node_env(i, self.starts[i]))
        if faketime is not None:
            n.faketime_file = os.path.join(self.out, "n%d.faketime" % i)
            with open(n.faketime_file, "w") as f:
                f.write(faketime + "\n")
            env.update(LD_PRELOAD=FAKETIME_LIB,
                       FAKETIME_TIMESTAMP_FILE=n.faketime_file,
                       FAKETIME_CACHE_DURATION="1",
                       FAKETIME_DONT_RESET="1")
        wrap = (["fiu-run", "-x", "-f", os.path.join(self.out, "fiu-ctrl")]
                if fiu else [])
        n.fiu = fiu
        args = ["ip", "netns", "exec", n.ns] + wrap + [self.kvd, "--id",
                                                       str(i),
                "--data-dir", n.data_dir, "--peer-addr", n.peer_addr,
                "--client-addr", n.client_addr, "--peers", self.peers,
                "--tick-ms", str(self.tick_ms), "--election-ticks",
                str(self.election_ticks)]
        if fiu:
            # Direct log writes bypass the calls libfiu intercepts.
            args.append("--no-direct-io")
        with open(n.log_path, "a") as logf:
            logf.write("# jepsen-lite: start n%d at %d%s\n" %
                       (i, self.clock(), " faketime %s" % faketime
                        if faketime else ""))
            logf.flush()
            n.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                      stdout=logf, stderr=logf, env=env)
        n.paused = False
        n.expected_exit = False

    def start_proxies(self):
        """Route all peer traffic through a delaying proxy in each node's
        namespace (delayproxy.py); delays start at zero. Call before
        starting kvd."""
        self.delay_file = os.path.join(self.out, "delays")
        self.set_delays({})
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              "delayproxy.py")
        for i, n in self.nodes.items():
            rules = ["table ip jlproxy {",
                     "  chain output { type nat hook output priority -100;",
                     "    meta mark 0x4a4c return"]
            args = []
            for j, m in self.nodes.items():
                if j == i:
                    continue
                port = 9000 + j
                rules.append("    ip daddr %s tcp dport %d redirect to :%d"
                             % (m.ip, PEER_PORT, port))
                args.append("%d=%d=%s" % (port, j, m.peer_addr))
            rules += ["  }", "}"]
            netns.sh(["ip", "netns", "exec", n.ns, "nft", "-f", "-"],
                     input="\n".join(rules) + "\n")
            logf = open(os.path.join(self.out, "proxy-n%d.log" % i), "w")
            self.proxies.append(subprocess.Popen(
                ["ip", "netns", "exec", n.ns, sys.executable, script,
                 self.delay_file, str(i)] + args, stdin=subprocess.DEVNULL,
                stdout=logf, stderr=logf))
            logf.close()
        # The proxies listen before kvd connects.
        for i, n in self.nodes.items():
            end = time.monotonic() + 5
            while time.monotonic() < end:
                r = subprocess.run(["ip", "netns", "exec", n.ns, "ss",
                                    "-ltnH", "sport", ">=", ":9000"],
                                   capture_output=True, text=True)
                if len(r.stdout.splitlines()) >= len(self.nodes) - 1:
                    break
                time.sleep(0.05)

    def set_delays(self, delays):
        """delays: {node: ms}; nodes not named get 0."""
        self.delays = dict(delays)
        tmp = self.delay_file + ".tmp"
        with open(tmp, "w") as f:
            for i, ms in self.delays.items():
                f.write("%d %d\n" % (i, ms))
        os.rename(tmp, self.delay_file)

    def stop_proxies(self):
        for p in self.proxies:
            p.kill()
            p.wait()
        self.proxies = []

    def fiu(self, i, command):
        """Send a libfiu remote-control command to node i (started with
        fiu=True), e.g. "enable name=posix/io/sync/fdatasync"."""
        n = self.nodes[i]
        if not n.fiu or not self.alive(i):
            raise RuntimeError("n%d is not running under fiu-run" % i)
        netns.sh(["fiu-ctrl", "-f", os.path.join(self.out, "fiu-ctrl"),
                  "-c", command, str(n.proc.pid)])

    def set_faketime(self, i, spec):
        n = self.nodes[i]
        if n.faketime_file is None:
            raise RuntimeError("n%d was not started under faketime" % i)
        tmp = n.faketime_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(spec + "\n")
        os.rename(tmp, n.faketime_file)

    def wait_exit(self, i, deadline_s):
        """True once node i's process has exited, False at the deadline."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if not self.alive(i):
                return True
            time.sleep(0.05)
        return False

    def start_all(self, **kw):
        for i in self.nodes:
            self.start(i, **kw)

    def reap(self):
        """Note nodes that exited on their own (not by kill/stop)."""
        for i, n in self.nodes.items():
            if n.proc is not None and not n.expected_exit and \
                    n.proc.poll() is not None and \
                    n.proc.pid not in self._reaped:
                self._reaped.add(n.proc.pid)
                self.unexpected.append((i, n.proc.returncode))
                self.log("n%d exited on its own with code %d" %
                         (i, n.proc.returncode))

    def alive(self, i):
        p = self.nodes[i].proc
        return p is not None and p.poll() is None

    def signal(self, i, sig):
        n = self.nodes[i]
        if not self.alive(i):
            return False
        os.kill(n.proc.pid, sig)
        return True

    def kill(self, i):
        n = self.nodes[i]
        self.reap()
        n.expected_exit = True
        if self.signal(i, signal.SIGKILL):
            if n.paused:
                os.kill(n.proc.pid, signal.SIGCONT)
            n.proc.wait()
        n.paused = False

    def pause(self, i):
        if self.signal(i, signal.SIGSTOP):
            self.nodes[i].paused = True

    def resume(self, i):
        if self.signal(i, signal.SIGCONT):
            self.nodes[i].paused = False

    def stop(self, i, grace=3.0):
        """SIGTERM, then SIGKILL after grace seconds."""
        n = self.nodes[i]
        self.reap()
        n.expected_exit = True
        if not self.alive(i):
            return
        if n.paused:
            self.resume(i)
        os.kill(n.proc.pid, signal.SIGTERM)
        try:
            n.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill(i)

    def stop_all(self):
        for i in self.nodes:
            self.stop(i)
        self.stop_proxies()

    def exit_codes(self):
        return {i: n.proc.returncode for i, n in self.nodes.items()
                if n.proc is not None and n.proc.poll() is not None}

    # ---- status ----

    def status(self, i, timeout=0.5):
        """Node i's status dict, or None when it does not answer."""
        if not self.alive(i) or self.nodes[i].paused:
            return None
        c = kvclient.Client([], timeout)
        try:
            return c.status(self.nodes[i].client_addr, timeout)
        finally:
            c.close()

    def statuses(self, timeout=0.5):
        return {i: self.status(i, timeout) for i in self.nodes}

    def leader(self, timeout=0.5, among=None):
        """(leader id, term) agreed by the answering nodes among `among`
        (a leader whose own status says leader), or (None, None)."""
        st = {i: s for i, s in self.statuses(timeout).items()
              if s and (among is None or i in among)}
        best = None
        for i, s in st.items():
            if s["role"] == "leader" and (best is None or
                                          s["term"] > best[1]):
                best = (i, s["term"])
        return best if best else (None, None)

    def wait_leader(self, deadline_s=10.0, among=None, exclude=()):
        """Poll until some node in `among` (and not in exclude) leads;
        returns (id, term) or (None, None) at the deadline."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            lid, term = self.leader(among=among)
            if lid is not None and lid not in exclude:
                return lid, term
            time.sleep(0.1)
        return None, None


class StatusSampler(threading.Thread):
    """Samples every node's status every period seconds into status.txt:
    '<mono_ns> <node> <term> <role> leader=<id> commit=<n> applied=<n>'."""

    def __init__(self, cluster, path, period=0.25):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.f = open(path, "w")
        self.f.write("# <mono_ns> <node> <term> <role> leader= commit= "
                     "applied=\n")
        self.period = period
        self.halt = threading.Event()
        self.samples = []  # (t, node, term, role, leader)

    def run(self):
        c = kvclient.Client([], 0.3)
        while not self.halt.is_set():
            for i, n in self.cluster.nodes.items():
                if not self.cluster.alive(i) or n.paused:
                    continue
                st = c.status(n.client_addr, 0.3)
                if st is None:
                    continue
                t = self.cluster.clock()
                self.samples.append((t, i, st["term"], st["role"],
                                     st["leader"]))
                self.f.write("%d %d %d %s leader=%d commit=%d applied=%d\n" %
                             (t, i, st["term"], st["role"], st["leader"],
                              st["commit"], st["applied"]))
            self.f.flush()
            self.halt.wait(self.period)
        c.close()
        self.f.close()

    def stop(self):
        self.halt.set()
        if self.is_alive():
            self.join(5)
