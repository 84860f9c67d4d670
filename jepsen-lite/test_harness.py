#!/usr/bin/env python3
"""Tests of the harness pieces that need no kvd: namespaces, nftables
faults, process control and cleanup, with python3 -m http.server standing
in for a node. Needs root. Prints "N passed, M failed"."""

import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from jl import netns  # noqa: E402

PORT = 7180
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


class Env:
    def __init__(self, n=3):
        self.net = netns.Net(n)
        self.net.setup()
        self.servers = []
        for i in range(1, n + 1):
            self.servers.append(subprocess.Popen(
                ["ip", "netns", "exec", netns.ns_name(i), sys.executable,
                 "-m", "http.server", "--bind", self.net.ip(i), str(PORT)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                cwd=tempfile.gettempdir()))
        for i in range(1, n + 1):
            end = time.monotonic() + 5
            while not self.reach(0, i) and time.monotonic() < end:
                time.sleep(0.05)

    def reach(self, a, b, timeout=0.5):
        """Can namespace of node a (0: clients) open a TCP connection to
        node b?"""
        ns = netns.ns_name(a) if a else netns.CLIENT_NS
        r = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c",
             "import socket; socket.create_connection(('%s', %d), %s)" %
             (self.net.ip(b), PORT, timeout)], capture_output=True)
        return r.returncode == 0

    def close(self):
        for p in self.servers:
            p.kill()
            p.wait()
        self.net.teardown()


def with_env(fn):
    def run():
        env = Env()
        try:
            fn(env)
        finally:
            env.close()
    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


@test
@with_env
def nodes_reach_each_other_and_clients_reach_nodes(env):
    """Without faults every node and the clients reach every node."""
    assert env.reach(1, 2) and env.reach(2, 3) and env.reach(0, 1)


@test
@with_env
def partition_separates_groups_but_not_clients(env):
    """A partition blocks traffic across groups only; clients still reach
    every node; healing restores it."""
    env.net.partition([[1], [2, 3]])
    assert not env.reach(1, 2) and not env.reach(3, 1)
    assert env.reach(2, 3) and env.reach(0, 1)
    env.net.heal()
    assert env.reach(1, 2)


@test
@with_env
def one_way_cut_drops_only_arrivals_at_the_target(env):
    """cut(1, 2) drops what 1 sends to 2; 3 still reaches 2."""
    env.net.cut(1, 2)
    assert not env.reach(1, 2) and env.reach(3, 2)
    r = subprocess.run(["ip", "netns", "exec", netns.ns_name(2), "nft",
                        "list", "table", "inet", "jl"], capture_output=True,
                       text=True)
    assert env.net.ip(1) in r.stdout


@test
@with_env
def full_loss_blocks_peers_not_clients(env):
    """100% loss at a node drops its peers' packets, not the clients'."""
    env.net.loss(2, 100)
    assert not env.reach(1, 2) and env.reach(0, 2)


@test
@with_env
def duplication_and_rate_limit_rules_install(env):
    """dup to eth0 on the netdev egress hook and a tbf qdisc both install
    and traffic still flows."""
    env.net.duplicate(1, 50)
    env.net.bandwidth(1, 500)
    assert env.reach(1, 2)
    r = subprocess.run(["ip", "netns", "exec", netns.ns_name(1), "nft",
                        "list", "table", "netdev", "jl"],
                       capture_output=True, text=True)
    assert "dup to" in r.stdout, r.stdout


@test
@with_env
def sigstop_makes_a_node_unresponsive_until_sigcont(env):
    """A stopped server accepts no request until it is continued."""
    import urllib.request
    p = env.servers[1]
    os.kill(p.pid, signal.SIGSTOP)
    code = ("import urllib.request as u; u.urlopen('http://%s:%d/', "
            "timeout=0.5)" % (env.net.ip(2), PORT))
    r = subprocess.run(["ip", "netns", "exec", netns.CLIENT_NS,
                        sys.executable, "-c", code], capture_output=True)
    assert r.returncode != 0
    os.kill(p.pid, signal.SIGCONT)
    r = subprocess.run(["ip", "netns", "exec", netns.CLIENT_NS,
                        sys.executable, "-c", code], capture_output=True)
    assert r.returncode == 0, r.stderr
    del urllib


@test
def cleanup_removes_leftover_namespaces_and_processes():
    """cleanup deletes jl-* namespaces and kills what runs inside them."""
    env = Env(2)
    pids = [p.pid for p in env.servers]
    netns.cleanup(log=lambda m: None)
    for p in env.servers:
        p.wait(5)
    assert not [n for n in netns.list_namespaces()
                if n.startswith(netns.PREFIX)]
    assert all(not os.path.exists("/proc/%d" % pid) for pid in pids)


def main():
    if os.geteuid() != 0:
        print("test_harness: needs root; 0 passed, 0 failed")
        return 0
    netns.cleanup(log=lambda m: None)
    passed = failed = 0
    for fn in TESTS:
        try:
            fn()
            passed += 1
        except Exception:
            failed += 1
            print("FAIL %s: %s" % (fn.__name__, fn.__doc__))
            traceback.print_exc()
            netns.cleanup(log=lambda m: None)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
