"""The named tests: each is a fault schedule run while a workload runs,
plus claims of its own checked on top of the history checkers."""

import calendar
import os
import re
import threading
import time

from . import client as kvclient


class Spec:
    def __init__(self, fn, claim, nodes=3, workload="registers", time=20,
                 clients=5, think=0.005, faketime=False, prepare=None,
                 proxy=False, may_exit=False, fiu=False,
                 registers_only=False, fault_env=None, after=None):
        self.fn = fn
        self.claim = claim
        self.nodes = nodes
        self.workload = workload
        self.time = time
        self.clients = clients
        self.think = think
        self.faketime = faketime
        self.prepare = prepare
        self.proxy = proxy
        self.fiu = fiu  # nodes run under fiu-run -x (libfiu)
        # The schedule issues register operations of its own.
        self.registers_only = registers_only
        self.may_exit = may_exit  # nodes may stop on their own (fail-stop)
        # Run the fault-hook build (make kvd-bugs: build/bugs/kvd-faults)
        # with this environment on every node.
        self.fault_env = fault_env
        self.after = after  # claims checked once the nodes have stopped


def _leader(T, **kw):
    lid, term = T.cluster.wait_leader(10, **kw)
    if lid is None:
        T.check("leader elected", False, "no leader within 10 s")
        raise RuntimeError("no leader")
    return lid, term


def _recorded(T, proc, f, key, value, node, timeout=1.0):
    """One recorded operation outside the workload's threads."""
    c = kvclient.Client([], timeout)
    try:
        return T.wl.op(c, proc, f, key, value, node)
    finally:
        c.close()


def leader_follower_cut(T):
    """5 nodes: the leader and one follower are cut off from the other
    three; the three elect a leader, the old one steps down, and the
    history stays linearizable."""
    T.sleep(T.time * 0.2)
    lid, term = _leader(T)
    f = next(i for i in T.cluster.ids() if i != lid)
    rest = [i for i in T.cluster.ids() if i not in (lid, f)]
    T.nem.partition([[lid, f], rest], "leader-and-follower-cut")
    t = time.monotonic()
    new, nterm = T.cluster.wait_leader(10, among=rest)
    T.check("majority elects a leader", new is not None,
            "n%s term %s after %.2f s" % (new, nterm, time.monotonic() - t))
    T.sleep(max(3 * T.cluster.election_timeout, T.left() * 0.6))
    st = T.cluster.status(lid)
    T.check("cut-off leader stepped down (CheckQuorum)",
            st is not None and st["role"] != "leader",
            "n%d reports %s" % (lid, st and "%s term %d" %
                                (st["role"], st["term"])))
    T.nem.heal_net()
    T.sleep(T.left())


def leader_pause(T):
    """The leader is SIGSTOPped for three election timeouts, a write goes
    through the new leader, the old leader is resumed and read through at
    once: the read must not be stale."""
    T.sleep(T.time * 0.15)
    rounds = 0
    while T.left() > 4 * T.cluster.election_timeout + 2:
        lid, term = _leader(T)
        T.nem.pause(lid)
        T.sleep(3 * T.cluster.election_timeout)
        others = [i for i in T.cluster.ids() if i != lid]
        new, nterm = T.cluster.wait_leader(10, among=others)
        if new is None:
            T.check("leader elected while old leader paused", False, "")
            T.nem.resume(lid)
            return
        rounds += 1
        val = "pause-%d" % rounds
        _recorded(T, "pause", "write", "r0", val, new)
        T.nem.resume(lid)
        seen = []
        for k in T.wl.keys:
            r = _recorded(T, "pause", "read", k, None, lid)
            seen.append("%s %s by %s" % (k, r.type, r.addr))
        T.log("read through resumed n%d: %s" % (lid, "; ".join(seen)))
        T.sleep(1.0)
    T.check("pause rounds", rounds > 0, "%d rounds" % rounds)


def kill_leader_after_ack(T):
    """kill -9 of the leader right after it acknowledged a write; the next
    leader must still have the write (reads through the survivors)."""
    T.sleep(T.time * 0.1)
    rounds = acked = 0
    while T.left() > 3:
        lid, term = _leader(T)
        rounds += 1
        r = _recorded(T, "killer", "write", "r0", "ack-%d" % rounds, lid)
        if r.type == "ok":
            acked += 1
        T.nem.kill(lid)
        others = [i for i in T.cluster.ids() if i != lid]
        new, nterm = T.cluster.wait_leader(10, among=others)
        if new is not None:
            _recorded(T, "killer", "read", "r0", None, new)
        T.nem.restart(lid)
        T.sleep(1.0)
    T.check("acknowledged writes before kills", acked > 0,
            "%d of %d rounds acknowledged" % (acked, rounds))


def kill_all(T):
    """All nodes are killed with SIGKILL and restarted together while
    clients add elements; no acknowledged add may be lost."""
    T.sleep(T.time * 0.15)
    rounds = 0
    while T.left() > 4:
        for i in T.cluster.ids():
            T.nem.kill(i)
        T.sleep(0.3)
        for i in T.cluster.ids():
            T.nem.restart(i)
        rounds += 1
        lid, term = T.cluster.wait_leader(15)
        T.check("leader after restart %d" % rounds, lid is not None,
                "n%s term %s" % (lid, term))
        T.sleep(2.0)
    T.check("kill-all rounds", rounds > 0, "%d rounds" % rounds)


def isolate_heal(T):
    """A follower is cut off for 30 s and healed: the leader and its term
    do not change, neither while cut off (PreVote, CheckQuorum) nor on
    healing."""
    T.sleep(3)
    lid, term = _leader(T)
    f = next(i for i in T.cluster.ids() if i != lid)
    others = [i for i in T.cluster.ids() if i != f]
    T.nem.partition([[f], others], "isolate-follower")
    t0 = T.cluster.clock()
    T.sleep(max(30, T.time - 10))
    T.nem.heal_net()
    T.sleep(max(5, 5 * T.cluster.election_timeout))
    moved = [(t, n, tm, role) for (t, n, tm, role, ld) in T.sampler.samples
             if t >= t0 and (tm != term or (role == "leader" and n != lid))]
    T.check("no leader or term change (cut and heal)", not moved,
            "leader n%d term %d%s" % (
                lid, term, "" if not moved else
                "; first change: node %d term %d %s" % moved[0][1:]))
    st = T.cluster.status(f)
    T.check("healed follower follows the leader",
            st is not None and st["leader"] == lid and st["term"] == term,
            "n%d: %s" % (f, st and "term %d leader %d" %
                         (st["term"], st["leader"])))


def cut_from_leader(T):
    """A follower loses its link to the leader only (it still reaches the
    other follower): PreVote keeps it from disturbing the cluster, so the
    leader and term stay; after healing it catches up."""
    T.sleep(2)
    lid, term = _leader(T)
    f = next(i for i in T.cluster.ids() if i != lid)
    T.nem.cut(lid, f)
    T.nem.cut(f, lid)
    t0 = T.cluster.clock()
    T.sleep(max(5, T.left() - 6))
    T.nem.heal_net()
    T.sleep(max(3, 3 * T.cluster.election_timeout))
    moved = [(t, n, tm, role) for (t, n, tm, role, ld) in T.sampler.samples
             if t >= t0 and (tm != term or (role == "leader" and n != lid))]
    T.check("no leader or term change", not moved,
            "leader n%d term %d%s" % (
                lid, term, "" if not moved else
                "; first change: node %d term %d %s" % moved[0][1:]))
    T.sleep(T.left())


# Over the second half of the slow-follower window the leader's anonymous
# memory (heap: queued messages, cached entries) may rise by at most this
# much more than the healthy follower's, which holds the same data but
# has no slow peer to buffer for. A leader that buffers without bound for
# the slow follower rises with the load and the length of the window.
MEM_GROWTH_LIMIT_KB = 32 * 1024


def _proc_mem(pid):
    """(VmRSS kB, RssAnon kB) of a process, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            v = dict(ln.split(":", 1) for ln in f if ":" in ln)
        return (int(v["VmRSS"].split()[0]), int(v["RssAnon"].split()[0]))
    except (OSError, KeyError, ValueError):
        return None


class MemSampler(threading.Thread):
    """Samples VmRSS and RssAnon of some nodes every second into
    mem.txt: '<mono_ns> <node> <vmrss_kb> <rssanon_kb>'."""

    def __init__(self, T, nodes):
        super().__init__(daemon=True)
        self.T = T
        self.nodes = nodes
        self.samples = {i: [] for i in nodes}  # i -> [(t, rss, anon)]
        self.halt = threading.Event()
        self.f = open(os.path.join(T.out, "mem.txt"), "w")
        self.f.write("# <mono_ns> <node> <VmRSS kB> <RssAnon kB>\n")

    def run(self):
        while not self.halt.is_set():
            for i in self.nodes:
                p = self.T.cluster.nodes[i].proc
                m = _proc_mem(p.pid) if p is not None and \
                    p.poll() is None else None
                if m:
                    t = time.monotonic()
                    self.samples[i].append((t, m[0], m[1]))
                    self.f.write("%d %d %d %d\n" % (time.monotonic_ns(), i,
                                                     m[0], m[1]))
            self.f.flush()
            self.halt.wait(1.0)
        self.f.close()

    def stop(self):
        self.halt.set()
        self.join(5)

    def summary(self, i, t0, t1):
        """Max VmRSS, and RssAnon growth over [t0, t1]'s second half (kB)
        with its slope (kB/s), of node i."""
        s = [x for x in self.samples[i] if t0 <= x[0] <= t1]
        if len(s) < 4:
            return None
        half = [x for x in s if x[0] >= (t0 + t1) / 2]
        n = len(half)
        mt = sum(x[0] for x in half) / n
        ma = sum(x[2] for x in half) / n
        var = sum((x[0] - mt) ** 2 for x in half) or 1.0
        slope = sum((x[0] - mt) * (x[2] - ma) for x in half) / var
        return {"max_rss": max(x[1] for x in s),
                "first_rss": s[0][1], "last_rss": s[-1][1],
                "first_anon": s[0][2], "max_anon": max(x[2] for x in s),
                "growth2": max(x[2] for x in half) - half[0][2],
                "slope2": slope}


def _mem_text(m):
    return ("VmRSS %d -> %d kB (max %d), RssAnon %d -> max %d kB, "
            "second half: RssAnon +%d kB, slope %.0f kB/s" %
            (m["first_rss"], m["last_rss"], m["max_rss"], m["first_anon"],
             m["max_anon"], m["growth2"], m["slope2"]))


def slow_follower(T):
    """Every node's peer traffic runs through a delaying proxy from the
    start; under full write load a follower gets 500 ms delay and 5%
    packet loss for most of the run. The leader's memory stays bounded
    (over the second half of the window its RssAnon, sampled every
    second, grows by at most 32 MiB more than the healthy follower's),
    the follower catches up with the leader's
    applied index within 60 s of healing, and every node ends with the
    same set."""
    T.sleep(2)
    lid, term = _leader(T)
    fol = [i for i in T.cluster.ids() if i != lid]
    f, ref = fol[0], fol[1]
    mem = MemSampler(T, [lid, ref])
    mem.start()
    try:
        T.sleep(1.5)
        t0 = time.monotonic()
        T.nem.delay(f, 500)
        T.nem.loss(f, 5)
        T.sleep(T.left())
        t1 = time.monotonic()
        sf, sl = T.cluster.status(f), T.cluster.status(lid)
        if sf and sl:
            T.log("before healing: n%d applied %d, leader n%d applied %d" %
                  (f, sf["applied"], lid, sl["applied"]))
        T.cluster.set_delays({})
        T.nem.note("stop", "delay", "all 0ms")
        T.nem.heal_net()
        t_heal = time.monotonic()
        caught = None
        while time.monotonic() < t_heal + 60:
            nl, nterm = T.cluster.leader()
            sl = T.cluster.status(nl) if nl else None
            sf = T.cluster.status(f)
            if sl and sf and sf["applied"] >= sl["applied"]:
                caught = time.monotonic() - t_heal
                break
            time.sleep(0.1)
        T.check("slow follower catches up", caught is not None,
                "n%d reached the leader's applied index %s" % (
                    f, "%.2f s after healing" % caught if caught is not None
                    else "not within 60 s"))
    finally:
        mem.stop()
    ml, mr = mem.summary(lid, t0, t1), mem.summary(ref, t0, t1)
    if ml is None:
        T.check("leader memory bounded", None, "too few memory samples")
        return
    T.log("leader n%d memory: %s" % (lid, _mem_text(ml)))
    if mr:
        T.log("other follower n%d memory: %s" % (ref, _mem_text(mr)))
    if mr is None:
        T.check("leader memory bounded", None,
                "no memory samples of the healthy follower n%d" % ref)
        return
    excess = ml["growth2"] - mr["growth2"]
    T.check("leader memory bounded", excess <= MEM_GROWTH_LIMIT_KB,
            "n%d %s; healthy follower n%d RssAnon +%d kB in the second "
            "half; leader's excess %+d kB (limit %d kB)" % (
                lid, _mem_text(ml), ref, mr["growth2"], excess,
                MEM_GROWTH_LIMIT_KB))


_CAND_RE = re.compile(r'^ts=(\S+) .*msg="state changed" id=(\d+) '
                      r'role=candidate term=(\d+)')
_LOADED_RE = re.compile(r'msg="log loaded" id=\d+ term=(\d+) vote=(\d+)')


def _log_ts(ts):
    """Seconds since the epoch of a kvd log timestamp
    (2026-12-03T16:01:43.123Z)."""
    whole, _, frac = ts.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + \
        float("0." + (frac or "0"))


def _log_size(T, i):
    try:
        return os.path.getsize(T.cluster.nodes[i].log_path)
    except OSError:
        return 0


def _log_since(T, i, off):
    with open(T.cluster.nodes[i].log_path, errors="replace") as f:
        f.seek(off)
        return f.read()


def _watch_candidate(T, offs, min_term, deadline_s):
    """Poll the node logs (every 0.5 ms) from the given offsets for a
    'state changed ... role=candidate term=T' line with T >= min_term;
    (node, term, log time) or None at the deadline."""
    end = time.monotonic() + deadline_s
    files = {i: open(T.cluster.nodes[i].log_path, errors="replace")
             for i in offs}
    buf = dict.fromkeys(offs, "")
    try:
        for i, f in files.items():
            f.seek(offs[i])
        while time.monotonic() < end:
            for i, f in files.items():
                buf[i] += f.read()
                *lines, buf[i] = buf[i].split("\n")
                for ln in lines:
                    m = _CAND_RE.match(ln)
                    if m and int(m.group(3)) >= min_term:
                        return i, int(m.group(3)), _log_ts(m.group(1))
            time.sleep(0.0005)
        return None
    finally:
        for f in files.values():
            f.close()


def vote_window_kill(T):
    """5 nodes: the leader is paused again and again so that the others
    campaign; 0-3 ms after a candidate logs its candidacy, one of the
    voters it asked is killed with SIGKILL, aiming between the voter
    receiving the vote request and answering it, and restarted once a
    new leader is elected. Never two leaders in one
    term; the history stays linearizable."""
    T.sleep(2)
    et = T.cluster.election_timeout
    rounds = elected = 0
    lags = []
    # before: the voter had not handled the request (not received or not
    # yet processed); inside: it had taken the new term (logged) but its
    # term and vote were not yet durable, so no answer had left; after:
    # the term and vote were on disk (the answer sent or about to be).
    kinds = {"before": 0, "inside": 0, "after": 0}
    while T.left() > 2 * et + 3:
        lid, term = _leader(T)
        ids = T.cluster.ids()
        offs = {i: _log_size(T, i) for i in ids if i != lid}
        T.nem.pause(lid)
        found = _watch_candidate(T, offs, term + 1, 3 * et + 2)
        if found is None:
            T.nem.resume(lid)
            T.log("round: no candidate within %.1f s" % (3 * et + 2))
            continue
        cand, cterm, t_line = found
        voter = T.rng.choice([i for i in ids if i not in (lid, cand)])
        # The voter takes the request about 1 ms after the candidate's
        # line and answers once its term and vote are durable, a few ms
        # later: spread the kills over that span.
        time.sleep(T.rng.uniform(0, 0.003))
        t_kill = time.time()
        T.nem.kill(voter)
        lag = (t_kill - t_line) * 1000
        lags.append(lag)
        rounds += 1
        logged = [int(t) for t in re.findall(
            r'msg="state changed" id=\d+ role=\w+ term=(\d+)',
            _log_since(T, voter, offs[voter]))]
        others = [i for i in ids if i not in (lid, voter)]
        new, nterm = T.cluster.wait_leader(10, among=others)
        if new is not None:
            elected += 1
        roff = _log_size(T, voter)
        T.nem.restart(voter)
        T.nem.resume(lid)
        # The restarted voter's "log loaded" line says whether its vote
        # in the candidate's term had reached the disk.
        loaded = None
        end = time.monotonic() + 3
        while loaded is None and time.monotonic() < end:
            loaded = _LOADED_RE.search(_log_since(T, voter, roff))
            time.sleep(0.01)
        # kvd logs the voter's term change before its term and vote are
        # durable; the answer waits for the write (node/run.c persist).
        if loaded and int(loaded.group(1)) >= cterm:
            kind = "after"
        elif any(t >= cterm for t in logged):
            kind = "inside"
        else:
            kind = "before"
        kinds[kind] += 1
        T.log("round %d: n%d paused, n%d candidate term %d, voter n%d "
              "killed %.1f ms after the candidate's log line (%s); "
              "restart loaded %s; new leader n%s term %s" %
              (rounds, lid, cand, cterm, voter, lag, kind,
               loaded.group(0) if loaded else "nothing", new, nterm))
        T.cluster.wait_leader(10)
        T.sleep(0.3)
    lags.sort()
    spread = "no kills"
    if lags:
        spread = "kill lag after the candidate's log line median %.1f ms, " \
            "max %.1f ms; kills before/inside/after the window: " \
            "%d/%d/%d" % (lags[len(lags) // 2], lags[-1], kinds["before"],
                          kinds["inside"], kinds["after"])
    T.log(spread)
    T.check("elections with a voter killed", rounds >= 1 and
            elected == rounds,
            "%d rounds, %d new leaders elected without the killed voter; "
            "%s" % (rounds, elected, spread))


def _random_fault(T, kind):
    lid, term = T.cluster.leader()
    ids = T.cluster.ids()
    fol = [i for i in ids if i != lid]
    any_f = T.rng.choice(fol)
    if kind == "halves":
        T.nem.partition(T.nem.random_halves(), kind)
    elif kind == "majority-minority":
        T.rng.shuffle(ids)
        k = T.rng.randint(1, len(ids) // 2)
        T.nem.partition([ids[:k], ids[k:]], kind)
    elif kind == "isolate-leader" and lid:
        T.nem.partition([[lid], fol], kind)
    elif kind == "cut-from-leader" and lid:
        T.nem.cut(lid, any_f)
        T.nem.cut(any_f, lid)
    elif kind == "bridge":
        T.nem.bridge()
    elif kind == "one-way":
        a, b = T.rng.sample(ids, 2)
        T.nem.cut(a, b)
    elif kind == "kill":
        T.nem.kill(T.rng.choice(ids))
    elif kind == "kill-leader" and lid:
        T.nem.kill(lid)
    elif kind == "pause-leader" and lid:
        T.nem.pause(lid)
    elif kind == "pause-follower":
        T.nem.pause(any_f)
    elif kind == "loss":
        T.nem.loss(any_f, T.rng.choice([10, 30, 50]))
    elif kind == "duplicate":
        T.nem.duplicate(T.rng.choice(ids), 20)
    elif kind == "slow":
        T.nem.slow(T.rng.choice(ids), 200)


RANDOM_KINDS = ["halves", "majority-minority", "isolate-leader",
                "cut-from-leader", "bridge", "one-way", "kill", "kill-leader",
                "pause-leader", "pause-follower", "loss", "duplicate", "slow"]


def random_faults(T):
    """A random schedule of network, process and link faults on 5 nodes;
    each lasts a few seconds, a third of the time a second fault joins the
    first, and both are healed before the next round."""
    kinds = T.nemeses or RANDOM_KINDS
    T.sleep(2)
    while T.left() > 6:
        _random_fault(T, T.rng.choice(kinds))
        T.sleep(T.rng.uniform(1, 3))
        if T.rng.random() < 1 / 3:
            _random_fault(T, T.rng.choice(kinds))
            T.sleep(T.rng.uniform(1, 3))
        T.nem.heal_all()
        T.sleep(T.rng.uniform(1, 3))


def clock_faults(T):
    """Every node runs under libfaketime; the leader's and a follower's
    clocks jump ahead, jump back and run fast. kvd's timers run on the
    monotonic clock, which libfaketime also shifts."""
    T.sleep(2)
    while T.left() > 8:
        lid, term = T.cluster.leader()
        if lid is None:
            T.sleep(1)
            continue
        fol = T.rng.choice([i for i in T.cluster.ids() if i != lid])
        spec = T.rng.choice(["+30", "+300", "-20", "+0 x3", "+0 x0.3"])
        victim = T.rng.choice([lid, fol])
        T.nem.clock(victim, spec)
        T.sleep(T.rng.uniform(2, 4))
        T.nem.clock(victim, "+0")
        T.sleep(2)


def delays(T):
    """All peer traffic goes through delaying proxies; a follower, then the
    leader, then everyone get delays from 50 ms up to more than an election
    timeout; the history stays linearizable."""
    T.sleep(2)
    et = T.cluster.election_timeout * 1000
    steps = [("follower", 100), ("leader", 200), ("all", 50),
             ("leader", int(et * 1.5)), ("follower", int(et * 2))]
    for who, ms in steps:
        if T.left() < 5:
            break
        lid, term = T.cluster.leader()
        ids = T.cluster.ids()
        if who == "all":
            for i in ids:
                T.nem.delay(i, ms)
        else:
            victim = lid if (who == "leader" and lid) else \
                T.rng.choice([i for i in ids if i != lid])
            T.nem.delay(victim, ms)
        T.sleep(min(4, T.left() - 3))
        T.cluster.set_delays({})
        T.nem.note("stop", "delay", "all 0ms")
        T.sleep(1)


def fsync_error(T):
    """Every node runs under libfiu; fdatasync starts failing on the
    leader, later on a follower: each must stop (fail-stop) rather than
    carry on, the others keep serving, and no acknowledged add is lost
    once the nodes are restarted."""
    T.sleep(3)
    for role in ("leader", "follower"):
        if T.left() < 6:
            break
        lid, term = _leader(T)
        victim = lid if role == "leader" else \
            T.rng.choice([i for i in T.cluster.ids() if i != lid])
        T.nem.fsync_fail(victim)
        stopped = T.cluster.wait_exit(victim, 5)
        T.check("%s n%d stops on fsync errors" % (role, victim), stopped,
                "exit code %s" % T.cluster.nodes[victim].proc.returncode)
        T.cluster.reap()
        others = [i for i in T.cluster.ids() if i != victim]
        new, nterm = T.cluster.wait_leader(10, among=others)
        T.check("a leader serves without n%d" % victim, new is not None,
                "n%s term %s" % (new, nterm))
        T.sleep(2)
        T.nem.restart(victim, fiu=True)
        T.sleep(min(4, T.left() - 2))
    T.sleep(T.left())


def _disk_prepare(T):
    T.nem.small_disk(3, 160)


def disk_full(T):
    """Node 3's data directory is a 160 MB tmpfs that fills up under write
    load: the node must stop (fail-stop) or refuse writes, the others carry
    on; after the disk is freed and the node restarted it catches up."""
    T.sleep(2)
    T.nem.fill_disk(3)
    T.sleep(T.left() - 4)
    st = T.cluster.status(3)
    T.check("full-disk node stopped or reports failure",
            not T.cluster.alive(3) or (st is not None and st["failed"]) or
            st is None, "alive=%s status=%s" % (T.cluster.alive(3), st))
    T.nem.free_disk(3)
    if T.cluster.alive(3):
        T.nem.kill(3)
    T.nem.restart(3)
    T.sleep(T.left())


def reorder(T):
    """Every node runs the fault-hook build of kvd, whose transport holds
    back 20% of the messages to a peer until the next one has been sent
    (or 20 ms have passed) and sends 5% twice; leader kills and
    partitions of the leader come on top. The history stays linearizable
    and no term has two leaders."""
    T.sleep(2)
    rounds = 0
    while T.left() > 6:
        lid, term = _leader(T)
        fol = [i for i in T.cluster.ids() if i != lid]
        if rounds % 2 == 0:
            T.nem.kill(lid)
            new, nterm = T.cluster.wait_leader(10, among=fol)
            T.check("leader elected after killing n%d" % lid,
                    new is not None, "n%s term %s" % (new, nterm))
            T.sleep(T.rng.uniform(1, 2))
            T.nem.restart(lid)
        else:
            T.nem.partition([[lid], fol], "isolate-leader")
            T.sleep(T.rng.uniform(2, 3))
            T.nem.heal_net()
        rounds += 1
        T.sleep(T.rng.uniform(1.5, 3))
    T.check("kill and partition rounds", rounds > 0, "%d rounds" % rounds)
    T.sleep(T.left())


_FAULTS_ON_RE = re.compile(r'msg="transport fault hooks active" '
                           r'reorder_pct=(\d+) dup_pct=(\d+)')
_FAULT_COUNT_RE = re.compile(r'msg="transport fault counters" held=(\d+) '
                             r'sent_after_next=(\d+) sent_after_wait=(\d+) '
                             r'held_dropped=(\d+) duplicated=(\d+)')


def _fault_counters(T):
    """From the node logs once every node has stopped: every start ran
    with the hooks on, and the counters logged by the stopped nodes
    (those of killed incarnations are lost with them) show messages held
    back and sent out of order."""
    starts = on = stopped = 0
    tot = [0] * 5
    for i in T.cluster.ids():
        with open(T.cluster.nodes[i].log_path, errors="replace") as f:
            for ln in f:
                if ln.startswith("# jepsen-lite: start"):
                    starts += 1
                m = _FAULTS_ON_RE.search(ln)
                if m and int(m.group(1)) > 0:
                    on += 1
                m = _FAULT_COUNT_RE.search(ln)
                if m:
                    stopped += 1
                    tot = [a + int(b) for a, b in zip(tot, m.groups())]
    T.check("fault hooks on at every start", starts > 0 and on == starts,
            "%d of %d starts" % (on, starts))
    T.check("messages reordered", tot[1] + tot[2] > 0,
            "over %d gracefully stopped nodes: %d held back, %d sent after "
            "the next message, %d after waiting, %d dropped with their "
            "connection; %d duplicated" % (stopped, tot[0], tot[1], tot[2],
                                           tot[3], tot[4]))


TESTS = {
    "leader-follower-cut": Spec(leader_follower_cut,
                                leader_follower_cut.__doc__, nodes=5),
    "leader-pause": Spec(leader_pause, leader_pause.__doc__, time=25,
                         registers_only=True),
    "kill-leader-after-ack": Spec(kill_leader_after_ack,
                                  kill_leader_after_ack.__doc__,
                                  registers_only=True),
    "kill-all": Spec(kill_all, kill_all.__doc__, workload="set", time=20),
    "isolate-heal": Spec(isolate_heal, isolate_heal.__doc__, time=40),
    "slow-follower": Spec(slow_follower, slow_follower.__doc__,
                          workload="set", clients=8, think=0, time=40,
                          proxy=True),
    "cut-from-leader": Spec(cut_from_leader, cut_from_leader.__doc__,
                            time=20),
    "vote-window-kill": Spec(vote_window_kill, vote_window_kill.__doc__,
                             nodes=5, time=60),
    "random": Spec(random_faults, random_faults.__doc__, nodes=5, time=60),
    "clock": Spec(clock_faults, clock_faults.__doc__, faketime=True,
                  time=30),
    "delay": Spec(delays, delays.__doc__, time=30, proxy=True),
    "fsync-error": Spec(fsync_error, fsync_error.__doc__, workload="set",
                        time=25, fiu=True, may_exit=True),
    "disk-full": Spec(disk_full, disk_full.__doc__, workload="set",
                      clients=4, think=0.002, time=25,
                      prepare=_disk_prepare, may_exit=True),
    "reorder": Spec(reorder, reorder.__doc__, time=30,
                    fault_env={"RNET_FAULT_REORDER_PCT": "20",
                               "RNET_FAULT_DUP_PCT": "5"},
                    after=_fault_counters),
}

NAMED = ["leader-follower-cut", "leader-pause", "kill-leader-after-ack",
         "kill-all", "isolate-heal", "slow-follower",
         "vote-window-kill"]
