"""Client workloads. Every operation is recorded as an invoke before it is
sent and a completion after the answer (history.Recorder).

registers: C client threads; each picks one of K keys, reads or writes a
value unique to the run ("<process>-<seq>"), through its own preferred node
(process p prefers node p mod N + 1; "not leader" answers are followed
inside the same operation). At the end every key is read through every
node (linearizable reads).

set: C client threads add unique elements: element E is key sE holding E.
Every tenth element number is skipped, so the final reads can also show
that nothing never attempted appears. At the end each node is read locally
(serializable) for every element number up to the highest one plus ten,
once the nodes have applied the same index.
"""

import random
import threading
import time

from . import client as kvclient


class Workload:
    def __init__(self, cluster, rec, clients=5, seed=0, timeout=1.0,
                 think=0.005, serializable=False):
        self.cluster = cluster
        self.rec = rec
        self.clients = clients
        self.rng = random.Random(seed)
        self.timeout = timeout
        self.think = think
        # Negative control: local reads, which may be stale; the checker
        # must then find violations under partitions.
        self.serializable = serializable
        self.halt = threading.Event()
        self.threads = []
        self.counts = {"ok": 0, "fail": 0, "info": 0}
        self._lock = threading.Lock()

    def node_addr(self, i):
        return self.cluster.nodes[i].client_addr

    def node_of(self, addr):
        for i, n in self.cluster.nodes.items():
            if n.client_addr == addr:
                return i
        return None

    def start(self):
        for p in range(self.clients):
            t = threading.Thread(target=self._run, args=(p,), daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self):
        self.halt.set()
        for t in self.threads:
            t.join(self.timeout * 3 + 5)

    def _run(self, p):
        rng = random.Random(self.rng.random())
        c = kvclient.Client([n.client_addr for n in
                             self.cluster.nodes.values()], self.timeout)
        ids = sorted(self.cluster.nodes)
        pref = ids[p % len(ids)]
        try:
            seq = 0
            while not self.halt.is_set():
                seq += 1
                typ = self.step(c, p, pref, seq, rng)
                with self._lock:
                    self.counts[typ] = self.counts.get(typ, 0) + 1
                if typ != "ok":
                    time.sleep(0.05)  # let an election settle
                    pref = ids[rng.randrange(len(ids))]
                elif self.think:
                    time.sleep(rng.uniform(0, self.think))
        finally:
            c.close()

    def op(self, c, p, f, key, value, node):
        """One recorded operation; returns the client Result."""
        self.rec.event(p, "invoke", f, key, value if f != "read" else "-",
                       node=node)
        addr = self.node_addr(node)
        if f == "read":
            r = c.get(addr, key, timeout=self.timeout,
                      serializable=self.serializable,
                      follow=not self.serializable)
            val = "nil" if r.value is None else r.value.decode()
            out = val if r.type == "ok" else "-"
        else:
            r = c.put(addr, key, value, timeout=self.timeout)
            out = value
        self.rec.event(p, r.type, f, key, out,
                       node=self.node_of(r.addr) if r.addr else None,
                       err=r.err)
        return r


class Registers(Workload):
    def __init__(self, *a, keys=4, **kw):
        super().__init__(*a, **kw)
        self.keys = ["r%d" % k for k in range(keys)]

    def step(self, c, p, pref, seq, rng):
        key = rng.choice(self.keys)
        if rng.random() < 0.5:
            return self.op(c, p, "read", key, None, pref).type
        return self.op(c, p, "write", key, "%d-%d" % (p, seq), pref).type

    def final_reads(self, deadline_s=10.0):
        """Read every key through every node; retries until each read
        succeeds or the deadline passes. Returns the number that failed."""
        c = kvclient.Client([], self.timeout)
        end = time.monotonic() + deadline_s
        failed = 0
        for i in sorted(self.cluster.nodes):
            for k in self.keys:
                while True:
                    r = self.op(c, "final-n%d" % i, "read", k, None, i)
                    if r.type == "ok":
                        break
                    if time.monotonic() > end:
                        failed += 1
                        break
                    time.sleep(0.1)
        c.close()
        return failed


class Set(Workload):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.next_el = 0
        self._el_lock = threading.Lock()

    def _element(self):
        with self._el_lock:
            self.next_el += 1
            if self.next_el % 10 == 0:
                self.next_el += 1  # never attempted
            return self.next_el

    def step(self, c, p, pref, seq, rng):
        el = self._element()
        self.rec.event(p, "invoke", "add", "s%d" % el, str(el), node=pref)
        r = c.put(self.node_addr(pref), "s%d" % el, str(el),
                  timeout=self.timeout)
        self.rec.event(p, r.type, "add", "s%d" % el, str(el),
                       node=self.node_of(r.addr) if r.addr else None,
                       err=r.err)
        return r.type

    def final_reads(self, deadline_s=20.0, batch=500):
        """Serializable reads of every element number through every node,
        pipelined in batches; unanswered keys are retried until the
        deadline. Returns the number of keys never read."""
        end = time.monotonic() + deadline_s
        keys = ["s%d" % el for el in range(1, self.next_el + 11)]
        failed = [0]

        def one_node(i):
            c = kvclient.Client([], self.timeout)
            addr = self.node_addr(i)
            todo = list(keys)
            while todo:
                part, todo = todo[:batch], todo[batch:]
                for j, k in enumerate(part):
                    self.rec.event("final-n%d-%d" % (i, j), "invoke", "read",
                                   k, "-", node=i)
                res = c.get_many(addr, part, True, self.timeout * 5)
                for j, k in enumerate(part):
                    r = res[k]
                    val = "nil" if r.value is None else r.value.decode()
                    self.rec.event("final-n%d-%d" % (i, j), r.type, "read",
                                   k, val if r.type == "ok" else "-",
                                   node=i, err=r.err)
                    if r.type != "ok":
                        todo.append(k)
                if todo and any(res[k].type != "ok" for k in part):
                    if time.monotonic() > end:
                        with self._lock:
                            failed[0] += len(todo)
                        break
                    time.sleep(0.1)
            c.close()

        threads = [threading.Thread(target=one_node, args=(i,))
                   for i in sorted(self.cluster.nodes)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return failed[0]
