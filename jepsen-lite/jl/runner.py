"""Runs one named test: network, cluster, workload, faults, recovery,
final reads, checks, report.

Steps of a run (each step's failure still ends in the teardown):

    setup     namespaces and bridge (netns.Net.setup), the runner moves
              into jl-cli, kvd started on every node, first leader awaited
    run       status sampler, workload threads and the test's fault
              schedule run together for about --time seconds
    heal      every fault undone (Nemesis.heal_all); recovery time is the
              time until a leader answers and every node has applied the
              commit index that leader first reported
    final     workload stopped; final reads through every node
    teardown  kvd stopped (SIGTERM, then SIGKILL), tmpfs unmounted,
              namespaces deleted; also on Ctrl-C and SIGTERM
    check     history (registers: linearizable per key; set: lost,
              unexpected, agreement), leaders per term from the node logs
              and the status samples, and the test's own claims
"""

import os
import random
import shutil
import signal
import time

from . import cluster as kvcluster
from . import (history, leaders, linear, netns, nemesis, picture, setcheck,
               workload)
from .tests import TESTS


class Interrupted(Exception):
    pass


def _on_signal(signum, frame):
    raise Interrupted("signal %d" % signum)


class Context:
    """What a test's schedule sees."""

    def __init__(self, name, out, seed, time_s, log):
        self.name = name
        self.out = out
        self.seed = seed
        self.time = time_s
        self.rng = random.Random(seed)
        self.log = log
        self.checks = []  # (name, True|False|None, message)
        self.net = self.cluster = self.rec = self.nem = self.wl = None
        self.start = time.monotonic()

    def check(self, name, valid, message=""):
        self.checks.append((name, valid, message))
        self.log("check %s: %s %s" % (name, {True: "PASS", False: "FAIL",
                                             None: "UNKNOWN"}[valid],
                                      message))

    def left(self):
        return self.time - (time.monotonic() - self.start)

    def sleep(self, s):
        if s > 0:
            time.sleep(s)


def run_one(name, args, kvd, outroot):
    spec = TESTS[name]
    time_s = args.time if args.time else spec.time
    seed = args.seed if args.seed is not None else int(time.time())
    ts = time.strftime("%Y%m%d-%H%M%S")
    out = os.path.join(outroot, "%s-%s" % (name, ts))
    os.makedirs(out, exist_ok=True)
    logf = open(os.path.join(out, "run.log"), "w")
    t_start = time.monotonic()

    def log(msg):
        line = "[%6.1fs] %s" % (time.monotonic() - t_start, msg)
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    T = Context(name, out, seed, time_s, log)
    T.workload = args.workload or spec.workload
    T.nodes = getattr(args, "nodes", None) or spec.nodes
    T.nemeses = getattr(args, "nemeses", None)
    missing = missing_tools(spec)
    if spec.fault_env:
        kvd = os.path.abspath(getattr(args, "kvd_faults", None) or
                              "build/bugs/kvd-faults")
        if not os.access(kvd, os.X_OK):
            missing = ("%s needs kvd built with the transport's fault hooks:"
                       " no binary at %s (run `make kvd-bugs`, or pass "
                       "--kvd-faults)" % (name, kvd))
    if spec.registers_only and T.workload != "registers":
        missing = "%s needs the registers workload" % name
    if missing:
        log("cannot run %s: %s" % (name, missing))
        T.check("run", None, missing)
        logf.close()
        return 2
    log("test %s: %s (nodes %d, %s workload, %d s, seed %d) -> %s" %
        (name, spec.claim, T.nodes, T.workload, time_s, seed, out))
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT,
                                                      signal.SIGTERM)}
    net = netns.Net(T.nodes)
    T.net = net
    recovery = None
    entered = False
    try:
        net.setup()
        netns.enter(netns.CLIENT_NS)
        entered = True
        rec = history.Recorder(os.path.join(out, "history.txt"),
                               time.monotonic_ns)
        T.rec = rec
        cl = kvcluster.Cluster(net, out, kvd, tick_ms=args.tick_ms,
                               election_ticks=args.election_ticks, log=log)
        T.cluster = cl
        nem = nemesis.Nemesis(cl, net, rec, seed,
                              os.path.join(out, "nemesis.txt"))
        T.nem = nem
        if spec.fault_env:
            log("kvd with fault hooks: %s, environment %s" %
                (kvd, " ".join("%s=%s" % kv for kv in
                               sorted(spec.fault_env.items()))))

            def node_env(i, start):
                # A seed per node and start, from the run's seed.
                return dict(spec.fault_env, RNET_FAULT_SEED=str(
                    seed * 1000 + i * 100 + start))
            cl.node_env = node_env
        if spec.prepare:
            spec.prepare(T)
        if spec.proxy:
            cl.start_proxies()
        cl.start_all(faketime="+0" if spec.faketime else None,
                     fiu=spec.fiu)
        lid, term = cl.wait_leader(15)
        if lid is None:
            T.check("leader at start", False, "no leader within 15 s")
            raise Interrupted("no leader")
        log("leader n%d term %d" % (lid, term))
        sampler = kvcluster.StatusSampler(cl, os.path.join(out,
                                                            "status.txt"))
        sampler.start()
        T.sampler = sampler
        wcls = workload.Registers if T.workload == "registers" else \
            workload.Set
        wl = wcls(cl, rec, clients=spec.clients, seed=seed,
                  think=spec.think,
                  serializable=args.serializable_reads)
        T.wl = wl
        T.start = time.monotonic()  # --time counts from the workload
        wl.start()
        spec.fn(T)
        log("healing")
        nem.heal_all()
        t_heal = time.monotonic()
        recovery = wait_recovered(cl, 60)
        if recovery is None:
            T.check("recovery", False, "cluster did not converge within "
                    "60 s of healing")
        else:
            recovery -= t_heal
            log("recovered %.2f s after healing" % recovery)
        wl.stop()
        log("workload: %s" % wl.counts)
        # With writes stopped the commit index stands still: wait until
        # every node applied it, so that local final reads are complete.
        if wait_recovered(cl, 30) is None:
            log("nodes did not all apply the last commit index within 30 s")
        failed = wl.final_reads()
        if failed:
            T.check("final reads", None, "%d final reads never succeeded" %
                    failed)
    except Interrupted as e:
        log("interrupted: %s" % e)
        if not any(c[1] is False for c in T.checks):
            T.check("run", None, "interrupted: %s" % e)
    except Exception as e:  # report, then tear down
        import traceback
        log("error: %s\n%s" % (e, traceback.format_exc()))
        T.check("run", None, "harness error: %s" % e)
    finally:
        if T.wl:
            T.wl.halt.set()
            for t in T.wl.threads:
                t.join(5)
        if getattr(T, "sampler", None):
            T.sampler.stop()
        if T.rec:
            T.rec.close()
        if T.cluster:
            T.cluster.stop_all()
            codes = T.cluster.exit_codes()
            bad = {i: c for i, c in codes.items() if c not in (0, -9, -15)}
            if bad:
                T.check("clean shutdown", False, "exit codes %s" % bad)
            gone = ", ".join("n%d (exit %d)" % u
                             for u in T.cluster.unexpected)
            if T.cluster.unexpected and spec.may_exit:
                T.check("nodes stopped on their own, as allowed", True, gone)
            elif T.cluster.unexpected:
                T.check("no node exited on its own", False, gone)
        if T.nem:
            T.nem.unmount_all()
            T.nem.close()
        if entered:
            netns.leave()
        net.teardown()
        for s, h in old.items():
            signal.signal(s, h)
    if spec.after and T.cluster:
        try:
            spec.after(T)
        except OSError as e:
            T.check("after the run", None, str(e))
    result = check_run(T, spec, out, recovery, log)
    if result == 0 and not args.keep_data:
        # Log segments are preallocated (64 MiB each): keep the data of
        # failed or unknown runs only.
        shutil.rmtree(os.path.join(out, "data"), ignore_errors=True)
    log("result: %s (report: %s)" % (
        {0: "PASS", 1: "FAIL", 2: "UNKNOWN"}[result],
        os.path.join(out, "report.txt")))
    logf.close()
    return result


def missing_tools(spec):
    """What the test needs and this machine lacks, or ""."""
    need = ["ip", "nft", "tc", "ss"]
    if spec.fiu:
        need += ["fiu-run", "fiu-ctrl"]
    lack = [t for t in need if shutil.which(t) is None]
    if spec.faketime and not os.path.exists(kvcluster.FAKETIME_LIB):
        lack.append(kvcluster.FAKETIME_LIB)
    if not lack:
        return ""
    return ("missing %s (Debian packages iproute2, nftables, faketime, "
            "fiu-utils)" % ", ".join(lack))


def wait_recovered(cl, deadline_s):
    """Time at which a leader answered and every node had applied the
    commit index that leader reported first (the writes still running
    keep moving the commit index; catching up to its value at healing
    time is what recovery means here), or None at the deadline."""
    end = time.monotonic() + deadline_s
    target = None
    while time.monotonic() < end:
        st = cl.statuses(0.5)
        leads = [s for s in st.values() if s and s["role"] == "leader"]
        if leads and target is None:
            target = max(leads, key=lambda s: s["term"])["commit"]
        if target is not None and all(st.values()) and \
                all(s["applied"] >= target for s in st.values()):
            return time.monotonic()
        time.sleep(0.05)
    return None


def check_run(T, spec, out, recovery, log):
    lines = ["test %s: %s" % (T.name, spec.claim),
             "seed %d, %d nodes, %s workload, %d s" %
             (T.seed, T.nodes, T.workload, T.time)]
    if recovery is not None:
        lines.append("recovery after healing: %.2f s" % recovery)
    hist_path = os.path.join(out, "history.txt")
    if os.path.exists(hist_path):
        try:
            events = history.load(hist_path)
            t0 = events[0].time if events else 0
            ops = history.pair(events)
            t = time.monotonic()
            n_ok = sum(1 for o in ops if o.type == "ok")
            if T.workload == "registers":
                rs = linear.check(ops)
                vals = [r.valid for r in rs]
                v = False if False in vals else (None if None in vals
                                                 else True)
                rep = "\n".join(r.report(t0) for r in rs)
                T.check("linearizable", v, "%d ops (%d ok), %d keys, "
                        "checked in %.2f s" % (len(ops), n_ok, len(rs),
                                               time.monotonic() - t))
            else:
                r = setcheck.check(ops)
                rep = r.report(t0)
                T.check("set", r.valid, "%d ops, checked in %.2f s" %
                        (len(ops), time.monotonic() - t))
            lines.append(rep)
            if picture.write(os.path.join(out, "timeline.svg"), events,
                             "%s, seed %d: operations per client, faults "
                             "shaded" % (T.name, T.seed)):
                lines.append("picture: %s (operations per client over "
                             "time, fault windows, latency)" %
                             os.path.join(out, "timeline.svg"))
        except history.HistoryError as e:
            T.check("history", None, str(e))
    lr = leaders.LeaderResult()
    for i in range(1, T.nodes + 1):
        p = os.path.join(out, "n%d.log" % i)
        if os.path.exists(p):
            with open(p) as f:
                leaders.scan_log(lr, f, str(i), "n%d.log" % i)
    sp = os.path.join(out, "status.txt")
    if os.path.exists(sp):
        with open(sp) as f:
            leaders.scan_status(lr, f, "status.txt")
    T.check("one leader per term", lr.valid,
            "%d terms with a leader" % len(lr.claims))
    lines.append(lr.report())
    lines.append("")
    for name, v, msg in T.checks:
        lines.append("%-7s %s: %s" % ({True: "PASS", False: "FAIL",
                                        None: "UNKNOWN"}[v], name, msg))
    vals = [c[1] for c in T.checks]
    result = 1 if False in vals else (2 if None in vals else 0)
    lines.append("result: %s" % {0: "PASS", 1: "FAIL", 2: "UNKNOWN"}[result])
    with open(os.path.join(out, "report.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return result
