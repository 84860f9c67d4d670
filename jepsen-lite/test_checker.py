#!/usr/bin/env python3
"""Tests of the history parser and the checkers.

Each test is a function whose docstring states the claim. Prints one line
per failure and "N passed, M failed"; exits 1 when any failed.
"""

import os
import random
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from jl import (client, history, leaders, linear, picture,  # noqa: E402
                setcheck)


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def hist(spec):
    """Ops from lines '<ms> <process> <type> <f> <key> <value> [attrs]',
    written in ms for readability and parsed as a real history file."""
    lines = []
    for s in spec.strip().splitlines():
        p = s.split()
        lines.append(" ".join([str(int(float(p[0]) * 1e6))] + p[1:]))
    return history.pair(history.parse(lines))


def lin(spec):
    rs = linear.check(hist(spec))
    vals = [r.valid for r in rs]
    return (False if False in vals else (None if None in vals else True)), rs


# ---- history format ----

@test
def parse_pairs_invoke_with_next_completion_of_same_process():
    """Invokes pair with the next completion of the same process."""
    ops = hist("""
        0 1 invoke write x 1
        0 2 invoke read x -
        1 2 ok read x nil node=3
        2 1 ok write x 1
    """)
    assert len(ops) == 2
    assert ops[0].complete == 2e6 and ops[0].value == "1"
    assert ops[1].value == "nil" and ops[1].attrs["node"] == "3"


@test
def parse_leaves_unfinished_invoke_as_info():
    """An invoke with no completion by the end is info with no end."""
    ops = hist("0 1 invoke write x 1")
    assert ops[0].type == "info" and ops[0].complete == history.INF


@test
def parse_rejects_second_invoke_of_a_busy_process():
    """A process may not invoke while its operation is open."""
    try:
        hist("0 1 invoke write x 1\n1 1 invoke write x 2")
    except history.HistoryError as e:
        assert "line 2" in str(e)
        return
    raise AssertionError("accepted")


@test
def parse_rejects_time_going_backwards():
    """Events out of time order are an error naming the line."""
    try:
        hist("5 1 invoke write x 1\n1 1 ok write x 1")
    except history.HistoryError as e:
        assert "line 2" in str(e)
        return
    raise AssertionError("accepted")


@test
def parse_rejects_short_lines_and_bad_types():
    """Malformed lines are rejected with a message, not skipped."""
    for bad in ("0 1 invoke write x", "0 1 started write x 1",
                "zero 1 invoke write x 1", "0 1 invoke write x 1 node"):
        try:
            history.parse([bad])
        except history.HistoryError:
            continue
        raise AssertionError("accepted: " + bad)


# ---- linearizable histories ----

@test
def sequential_writes_and_reads_are_linearizable():
    """A sequential history that reads back each write passes."""
    v, _ = lin("""
        0 1 invoke read x -
        1 1 ok read x nil
        2 1 invoke write x 1
        3 1 ok write x 1
        4 2 invoke read x -
        5 2 ok read x 1
        6 2 invoke write x 2
        7 2 ok write x 2
        8 1 invoke read x -
        9 1 ok read x 2
    """)
    assert v is True


@test
def read_concurrent_with_write_may_see_old_or_new():
    """A read overlapping a write may return either value."""
    for seen in ("nil", "1"):
        v, _ = lin("""
            0 1 invoke write x 1
            1 2 invoke read x -
            2 2 ok read x %s
            3 1 ok write x 1
        """ % seen)
        assert v is True, seen


@test
def concurrent_writes_may_take_effect_in_either_order():
    """Two overlapping writes may land in the order later reads show."""
    for last in ("1", "2"):
        v, _ = lin("""
            0 1 invoke write x 1
            0 2 invoke write x 2
            5 1 ok write x 1
            6 2 ok write x 2
            7 3 invoke read x -
            8 3 ok read x %s
        """ % last)
        assert v is True, last


@test
def overlapping_reads_order_the_writes_consistently():
    """Reads concurrent with two writes can see 1 then 2 (write 2 after 1)."""
    v, _ = lin("""
        0 1 invoke write x 1
        0 2 invoke write x 2
        1 3 invoke read x -
        2 3 ok read x 1
        3 4 invoke read x -
        4 4 ok read x 2
        9 1 ok write x 1
        9 2 ok write x 2
        10 3 invoke read x -
        11 3 ok read x 2
    """)
    assert v is True


@test
def info_write_may_take_effect_late():
    """An info write may take effect long after its invoke."""
    v, _ = lin("""
        0 1 invoke write x 1
        1 1 info write x 1
        2 2 invoke write x 2
        3 2 ok write x 2
        4 3 invoke read x -
        5 3 ok read x 2
        6 3 invoke read x -
        7 3 ok read x 1
    """)
    assert v is True


@test
def info_write_may_never_take_effect():
    """An info write nobody reads may not have happened at all."""
    v, _ = lin("""
        0 1 invoke write x 1
        1 1 info write x 1
        4 3 invoke read x -
        5 3 ok read x nil
    """)
    assert v is True


@test
def failed_ops_and_info_reads_are_ignored():
    """fail writes did not happen; info reads constrain nothing."""
    v, _ = lin("""
        0 1 invoke write x 1
        1 1 fail write x 1
        2 2 invoke read x -
        3 2 info read x -
        4 3 invoke read x -
        5 3 ok read x nil
    """)
    assert v is True


@test
def keys_are_checked_independently():
    """Each key has its own register."""
    v, rs = lin("""
        0 1 invoke write x 1
        1 1 ok write x 1
        2 1 invoke read y -
        3 1 ok read y nil
        4 1 invoke read x -
        5 1 ok read x 1
    """)
    assert v is True and len(rs) == 2


# ---- non-linearizable histories ----

@test
def stale_read_is_caught():
    """A read after a completed overwrite returning the old value fails."""
    v, rs = lin("""
        0 1 invoke write x 1
        1 1 ok write x 1
        2 1 invoke write x 2
        3 1 ok write x 2
        4 2 invoke read x -
        5 2 ok read x 1
    """)
    assert v is False
    assert "read 1" in rs[0].message, rs[0].message
    assert any(op.value == "2" for op in rs[0].window)


@test
def lost_write_is_caught():
    """A completed write that a later read does not see fails."""
    v, _ = lin("""
        0 1 invoke write x 1
        1 1 ok write x 1
        2 2 invoke read x -
        3 2 ok read x nil
    """)
    assert v is False


@test
def read_of_never_written_value_is_caught():
    """Reading a value no write ever carried fails."""
    v, rs = lin("""
        0 1 invoke write x 1
        1 1 ok write x 1
        2 2 invoke read x -
        3 2 ok read x 7
    """)
    assert v is False and "never written" in rs[0].message


@test
def value_read_before_its_write_began_is_caught():
    """A read that completed before the write of its value began fails."""
    v, rs = lin("""
        0 2 invoke read x -
        1 2 ok read x 1
        2 1 invoke write x 1
        3 1 ok write x 1
    """)
    assert v is False and "before its write began" in rs[0].message


@test
def read_of_failed_write_is_caught():
    """A definitely failed write must never be read."""
    v, rs = lin("""
        0 1 invoke write x 1
        1 1 fail write x 1
        2 2 invoke read x -
        3 2 ok read x 1
    """)
    assert v is False and "failed" in rs[0].message


@test
def reads_flipping_between_two_writes_are_caught():
    """After both writes complete, reads may not see 2 and then 1; the
    report names the read of 1."""
    v, rs = lin("""
        0 1 invoke write x 1
        0 2 invoke write x 2
        1 1 ok write x 1
        1 2 ok write x 2
        2 3 invoke read x -
        3 3 ok read x 2
        4 3 invoke read x -
        5 3 ok read x 1
        6 3 invoke read x -
        7 3 ok read x 2
    """)
    assert v is False
    assert "read 1" in rs[0].message and "line 7" in rs[0].message, \
        rs[0].message


@test
def info_write_read_then_unread_is_caught():
    """Once a read saw an info write, a later read may not see the older
    value again."""
    v, _ = lin("""
        0 1 invoke write x 1
        1 1 ok write x 1
        2 2 invoke write x 2
        3 2 info write x 2
        4 3 invoke read x -
        5 3 ok read x 2
        6 3 invoke read x -
        7 3 ok read x 1
    """)
    assert v is False


@test
def duplicate_write_values_give_unknown_not_pass():
    """The checker refuses histories whose writes reuse a value."""
    v, rs = lin("""
        0 1 invoke write x 1
        1 1 ok write x 1
        2 1 invoke write x 1
        3 1 ok write x 1
    """)
    assert v is None and "twice" in rs[0].message


# ---- large random histories ----

def random_register_history(seed, n_ops, n_proc, p_info=0.02, p_fail=0.02):
    """Simulate a real register: each op takes effect at a random instant
    inside its interval (info writes: maybe later, maybe never; fail: never).
    Returns history lines in time order."""
    rng = random.Random(seed)
    ops = []
    clock = [0] * n_proc
    next_val = 1
    for _ in range(n_ops):
        p = rng.randrange(n_proc)
        start = clock[p] + rng.randint(1, 200)
        end = start + rng.randint(1, 1000)
        clock[p] = end + 1
        if rng.random() < 0.5:
            kind, val = "write", str(next_val)
            next_val += 1
        else:
            kind, val = "read", None
        r = rng.random()
        typ = "info" if r < p_info else ("fail" if r < p_info + p_fail and
                                         kind == "write" else "ok")
        if typ == "info":
            at = (start + rng.randint(0, 5000) if rng.random() < 0.7
                  else None)
        elif typ == "fail":
            at = None
        else:
            at = rng.uniform(start, end)
        ops.append([p, kind, val, start, end, typ, at])
    state = "nil"
    for op in sorted((o for o in ops if o[6] is not None),
                     key=lambda o: o[6]):
        if op[1] == "write":
            state = op[2]
        else:
            op[2] = state
    events = []
    for p, kind, val, start, end, typ, at in ops:
        if kind == "read" and typ != "ok":
            typ = "info"
        events.append((start, 0, "%d %d invoke %s x %s" %
                       (start * 1000, p, kind, val if kind == "write"
                        else "-")))
        events.append((end, 1, "%d %d %s %s x %s" %
                       (end * 1000, p, typ, kind,
                        val if (kind == "write" or typ == "ok") else "-")))
    events.sort()
    return [e[2] for e in events]


@test
def large_random_linearizable_history_passes_in_seconds():
    """A few thousand ops from a simulated register, eight concurrent
    processes, with info and fail ops, check as linearizable."""
    for seed, n, procs in ((1, 3000, 8), (2, 4000, 5)):
        lines = random_register_history(seed, n, procs)
        ops = history.pair(history.parse(lines))
        t = time.monotonic()
        rs = linear.check(ops)
        dt = time.monotonic() - t
        print("    random history seed %d: %d ops, %d processes: %s in "
              "%.2f s, %d configurations" %
              (seed, len(ops), procs, rs[0].valid, dt, rs[0].configs))
        assert rs[0].valid is True, rs[0].report()


@test
def large_random_history_with_one_stale_read_fails():
    """Corrupting one late read of a random history into a stale value is
    found, and the report names that read."""
    lines = random_register_history(3, 3000, 6, p_info=0, p_fail=0)
    ops = history.pair(history.parse(lines))
    # Pick a read whose value differs from a write that completed before
    # the read began; make it read that older write's value.
    done = [op for op in ops if op.f == "write"]
    for op in reversed(ops):
        if op.f != "read" or op.type != "ok":
            continue
        old = [w for w in done if w.complete < op.invoke and
               w.value != op.value]
        if len(old) > 5:
            stale = old[-5]
            break
    bad = []
    for ln in lines:
        p = ln.split()
        if int(p[0]) == op.complete and p[1] == op.process and \
                p[2] == "ok":
            p[5] = stale.value
        bad.append(" ".join(p))
    t = time.monotonic()
    rs = linear.check(history.pair(history.parse(bad)))
    dt = time.monotonic() - t
    print("    corrupted history: found in %.2f s" % dt)
    assert rs[0].valid is False
    assert "read %s" % stale.value in rs[0].message, rs[0].message


def random_small_history(rng):
    """A few ops on one key with arbitrary read results (often invalid)."""
    n_proc = rng.randint(2, 4)
    clock = [0] * n_proc
    ops = []
    vals = []
    for _ in range(rng.randint(2, 9)):
        p = rng.randrange(n_proc)
        start = clock[p] + rng.randint(0, 4)
        end = start + rng.randint(1, 8)
        clock[p] = end + 1
        typ = rng.choice(["ok"] * 6 + ["info", "fail"])
        if rng.random() < 0.5:
            vals.append(str(len(vals) + 1))
            ops.append((start, end, p, "write", vals[-1], typ))
        else:
            ops.append((start, end, p, "read", None, typ))
    events = []
    for start, end, p, f, v, typ in ops:
        if f == "read":
            v = rng.choice(vals + ["nil"]) if vals else "nil"
            if typ == "fail":
                typ = "info"
        events.append((start, 0, "%d %d invoke %s x %s" %
                       (start, p, f, v if f == "write" else "-")))
        events.append((end, 1, "%d %d %s %s x %s" % (end, p, typ, f, v)))
    events.sort()
    return history.pair(history.parse(e[2] for e in events))


@test
def zone_verdict_agrees_with_exhaustive_search():
    """On thousands of small random histories, valid and invalid, the zone
    test and the WGL search give the same verdict."""
    rng = random.Random(42)
    checked = invalid = 0
    for _ in range(5000):
        ops = random_small_history(rng)
        if linear._precheck("x", ops) is not None:
            continue
        prep = linear._prepare(ops)
        by_search, _ = linear._search(prep, "nil", 10 ** 6)
        by_zone = linear._zones(prep, "nil") is None
        assert by_search == by_zone, "\n".join(
            op.describe() for op in ops)
        checked += 1
        invalid += not by_search
    assert checked > 1000 and invalid > 100, (checked, invalid)


@test
def fifty_concurrent_clients_check_in_seconds():
    """3000 ops from fifty concurrent processes still check quickly (the
    verdict does not depend on the search)."""
    lines = random_register_history(8, 3000, 50, 0.05)
    ops = history.pair(history.parse(lines))
    t = time.monotonic()
    rs = linear.check(ops)
    print("    50 processes, 3000 ops: %s in %.2f s" %
          (rs[0].valid, time.monotonic() - t))
    assert rs[0].valid is True


@test
def stale_read_among_fifty_clients_is_caught_in_seconds():
    """A stale read planted in a fifty-process history is found quickly and
    the report shows the conflicting writes and reads."""
    lines = random_register_history(9, 3000, 50, 0, 0)
    ops = history.pair(history.parse(lines))
    for op in reversed(ops):
        if op.f != "read" or op.type != "ok":
            continue
        old = [w for w in ops if w.f == "write" and
               w.complete < op.invoke and w.value != op.value]
        if len(old) > 20:
            stale = old[-20]
            break
    bad = []
    for ln in lines:
        p = ln.split()
        if int(p[0]) == op.complete and p[1] == op.process and \
                p[2] == "ok":
            p[5] = stale.value
        bad.append(" ".join(p))
    t = time.monotonic()
    rs = linear.check(history.pair(history.parse(bad)))
    dt = time.monotonic() - t
    print("    stale read among 50 processes: found in %.2f s" % dt)
    assert rs[0].valid is False and rs[0].window, rs[0].report()


# ---- set checker ----

def sets(spec):
    return setcheck.check(hist(spec))


SET_ADDS = """
    0 1 invoke add s1 1
    1 1 ok add s1 1
    2 1 invoke add s2 2
    3 1 info add s2 2
    4 2 invoke add s3 3
    5 2 fail add s3 3
"""


def final(node, present, keys=("1", "2", "3", "4")):
    out = []
    t = 100 + int(node) * 10
    for k in keys:
        out.append("%d f%s invoke read s%s - node=%s" % (t, node, k, node))
        out.append("%d f%s ok read s%s %s node=%s" %
                   (t, node, k, k if k in present else "nil", node))
    return "\n".join(out)


@test
def set_with_acknowledged_adds_on_every_node_is_valid():
    """Acked adds present everywhere, info adds either way: valid."""
    r = sets(SET_ADDS + final(1, "12") + "\n" + final(2, "12"))
    assert r.valid is True, r.report()
    assert r.recovered == 1


@test
def set_lost_acknowledged_add_is_caught():
    """An acked add missing on a node is a loss."""
    r = sets(SET_ADDS + final(1, "2") + "\n" + final(2, "2"))
    assert r.valid is False and r.lost, r.report()


@test
def set_never_attempted_element_is_caught():
    """An element nobody added must not appear."""
    r = sets(SET_ADDS + final(1, "14") + "\n" + final(2, "14"))
    assert r.valid is False and r.unexpected, r.report()


@test
def set_failed_add_present_is_caught():
    """A definitely failed add must not appear."""
    r = sets(SET_ADDS + final(1, "13") + "\n" + final(2, "13"))
    assert r.valid is False and r.unexpected, r.report()


@test
def set_nodes_that_disagree_are_caught():
    """All nodes must end with the same set."""
    r = sets(SET_ADDS + final(1, "12") + "\n" + final(2, "1"))
    assert r.valid is False and r.disagree, r.report()


@test
def set_failed_final_read_is_unknown():
    """A final read that did not succeed leaves the verdict unknown."""
    spec = SET_ADDS + final(1, "1") + "\n200 f2 invoke read s1 - node=2\n" \
        "201 f2 info read s1 - node=2"
    r = sets(spec)
    assert r.valid is None, r.report()


# ---- leaders ----

@test
def two_leaders_in_one_term_are_caught():
    """Two nodes claiming leadership of one term violate Election Safety."""
    r = leaders.LeaderResult()
    leaders.scan_log(r, ['level=info msg="became leader" term=3'], "1", "a")
    leaders.scan_log(r, ['level=info msg="became leader" term=4'], "2", "b")
    assert r.valid
    leaders.scan_status(r, ["10 3 4 leader", "11 2 4 leader",
                            "12 1 4 follower"])
    assert not r.valid and 4 in r.violations, r.report()


@test
def follower_views_of_different_leaders_in_one_term_are_caught():
    """kvd's state_change lines count: a leader's own line and a
    follower's view of another leader in the same term conflict."""
    r = leaders.LeaderResult()
    leaders.scan_log(r, ["ts=x level=info event=state_change id=1 "
                         "role=leader term=2 leader=1",
                         "ts=x level=info event=state_change id=1 "
                         "role=follower term=3 leader=2"], "1", "n1.log")
    leaders.scan_log(r, ["ts=x level=info event=state_change id=3 "
                         "role=follower term=2 leader=1",
                         "ts=x level=info event=state_change id=3 "
                         "role=candidate term=3 leader=0"], "3", "n3.log")
    assert r.valid and set(r.claims) == {2, 3}, r.report()
    leaders.scan_log(r, ['ts=x level=info msg="state changed" id=2 '
                         "role=leader term=2 leader=2"], "2", "n2.log")
    assert not r.valid and 2 in r.violations, r.report()


# ---- recorder and client codec ----

@test
def recorder_writes_parseable_time_ordered_lines():
    """Recorded events parse back, in time order, with attributes whose
    spaces became underscores."""
    import tempfile
    ticks = iter(range(100, 200))
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as f:
        rec = history.Recorder(f.name, lambda: next(ticks))
        rec.event(1, "invoke", "write", "k", "v1", node=2)
        rec.event(1, "info", "write", "k", "v1", err="timed out\nafter 1 s")
        rec.close()
        rec.event(1, "invoke", "read", "k", "-")  # after close: dropped
        evs = history.parse(open(f.name))
    assert [e.time for e in evs] == [100, 101]
    assert evs[1].attrs["err"] == "timed_out_after_1_s"


@test
def client_requests_encode_as_kv_proto():
    """A put request carries id 1, and key/value inside field 3."""
    b = client.encode_request(7, "put", key=b"k", value=b"vv")
    d = client._decode(b)
    assert d[1] == [7]
    inner = client._decode(d[3][0])
    assert inner[1] == [b"k"] and inner[2] == [b"vv"]
    g = client._decode(client._decode(
        client.encode_request(8, "get", key=b"x", serializable=True))[2][0])
    assert g[1] == [b"x"] and g[2] == [1]


@test
def client_decodes_negative_codes_and_status():
    """Negative int32 codes (10-byte varints) and nested status decode."""
    st = (client._field_varint(1, 2) + client._field_bytes(2, b"leader") +
          client._field_varint(3, 5) + client._field_varint(4, 2))
    buf = (client._field_varint(1, 9) + client._field_varint(2, -3) +
           client._field_bytes(5, b"10.99.1.12:7102") +
           client._field_bytes(11, st))
    r = client.Response(buf)
    assert r.id == 9 and r.code == -3
    assert r.leader_addr == "10.99.1.12:7102"
    assert r.status["role"] == "leader" and r.status["term"] == 5


# ---- picture ----

def events(spec):
    lines = []
    for s in spec.strip().splitlines():
        p = s.split()
        lines.append(" ".join([str(int(float(p[0]) * 1e6))] + p[1:]))
    return history.parse(lines)


@test
def picture_closes_fault_windows_at_their_own_stops():
    """A kill window ends at its own node's restart, a partition at the
    network heal, and what is still open at the end runs to the end."""
    ev = events("""
        0 nemesis info start kill n2
        1 nemesis info start partition 1|2,3
        2 nemesis info start kill n3
        3 nemesis info stop kill n2_restarted
        4 nemesis info stop network healed
        5 1 invoke read r0 -
        9 1 ok read r0 nil
    """)
    w = picture.fault_windows(ev, ev[-1].time)
    got = sorted((a // 1000000, b // 1000000, label) for a, b, label in w)
    assert got == [(0, 3, "kill n2"), (1, 4, "partition 1|2,3"),
                   (2, 9, "kill n3")], got


@test
def picture_draws_a_row_per_client_and_info_until_given_up():
    """The SVG is well-formed XML with a labelled row per client (final
    reads grouped per node) and an info operation drawn until the client
    gave up on it."""
    import xml.dom.minidom
    ev = events("""
        0 1 invoke write r0 1-1
        0 2 invoke read r0 -
        1 2 ok read r0 nil
        2 final-n1-0 invoke read r0 -
        2 final-n1-1 invoke read r1 -
        3 final-n1-0 ok read r0 nil
        3 final-n1-1 ok read r1 nil
        4 1 info write r0 1-1 err=timeout
        9 2 invoke read r1 -
        10 2 fail read r1 - err=not_leader
    """)
    svg = picture.render(ev, "t")
    doc = xml.dom.minidom.parseString(svg)
    labels = [t.firstChild.data for t in doc.getElementsByTagName("text")
              if t.getAttribute("text-anchor") == "end"]
    assert labels[:3] == ["client 1", "client 2", "final-n1"], labels
    orange = [r for r in doc.getElementsByTagName("rect")
              if r.getAttribute("fill") == picture.COLORS["info"] and
              r.getAttribute("y") != "28"]
    assert len(orange) == 1
    # 4 of the 10 ms the history spans.
    w = float(orange[0].getAttribute("width"))
    full = picture.W - picture.LEFT - picture.RIGHT
    assert abs(w - full * 0.4) < 1.0, (w, full)


def main():
    passed = failed = 0
    for fn in TESTS:
        try:
            fn()
            passed += 1
        except Exception:
            failed += 1
            print("FAIL %s: %s" % (fn.__name__, fn.__doc__))
            traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
