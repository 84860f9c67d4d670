"""History files: one event per line, read and written here.

Format (see README.md):

    <mono_ns> <process> <type> <f> <key> <value> [attr=value ...]

mono_ns is CLOCK_MONOTONIC of the recording process, in nanoseconds, and
lines are in nondecreasing time order. type is invoke, ok, fail or info.
Lines starting with '#' and blank lines are ignored. Events of the process
"nemesis" record faults and are not client operations.

An operation is an invoke and the next completion of the same process.
An invoke without a completion by the end of the file is treated as info.
"""

import math

TYPES = ("invoke", "ok", "fail", "info")
NIL = "nil"  # read result: the key does not exist
NONE = "-"  # no value (invoke of a read)
INF = math.inf
NEMESIS = "nemesis"


class HistoryError(Exception):
    """A malformed history: the message names the line."""


class Event:
    __slots__ = ("time", "process", "type", "f", "key", "value", "attrs",
                 "line")

    def __init__(self, time, process, type_, f, key, value, attrs=None,
                 line=0):
        self.time = time
        self.process = process
        self.type = type_
        self.f = f
        self.key = key
        self.value = value
        self.attrs = attrs or {}
        self.line = line

    def format(self):
        s = "%d %s %s %s %s %s" % (self.time, self.process, self.type,
                                   self.f, self.key, self.value)
        for k, v in self.attrs.items():
            s += " %s=%s" % (k, v)
        return s


class Op:
    """A client operation: an invoke paired with its completion."""

    __slots__ = ("process", "f", "key", "value", "invoke", "complete",
                 "type", "attrs", "line")

    def __init__(self, process, f, key, value, invoke, complete, type_,
                 attrs=None, line=0):
        self.process = process
        self.f = f
        self.key = key
        self.value = value  # written value, or value read (ok reads)
        self.invoke = invoke
        self.complete = complete  # INF when the outcome is unknown
        self.type = type_  # ok, fail or info
        self.attrs = attrs or {}
        self.line = line

    def describe(self, t0=0):
        """One line for reports: times in ms relative to t0."""
        end = ("inf" if self.complete == INF else
               "%.3f" % ((self.complete - t0) / 1e6))
        node = self.attrs.get("node")
        return "[%.3f ms .. %s ms] process %s %s %s %s %s%s (line %d)" % (
            (self.invoke - t0) / 1e6, end, self.process, self.type, self.f,
            self.key, self.value, " via n%s" % node if node else "",
            self.line)


def check_token(tok, what, lineno):
    if not tok or any(c.isspace() for c in tok):
        raise HistoryError("line %d: %s must be one non-empty token" %
                           (lineno, what))


def parse_line(text, lineno):
    parts = text.split()
    if len(parts) < 6:
        raise HistoryError("line %d: expected at least 6 fields "
                           "'<mono_ns> <process> <type> <f> <key> <value>', "
                           "got %d" % (lineno, len(parts)))
    try:
        t = int(parts[0])
    except ValueError:
        raise HistoryError("line %d: time '%s' is not an integer" %
                           (lineno, parts[0])) from None
    if parts[2] not in TYPES:
        raise HistoryError("line %d: type '%s' is not one of %s" %
                           (lineno, parts[2], ", ".join(TYPES)))
    attrs = {}
    for a in parts[6:]:
        k, sep, v = a.partition("=")
        if not sep or not k:
            raise HistoryError("line %d: attribute '%s' is not key=value" %
                               (lineno, a))
        attrs[k] = v
    return Event(t, parts[1], parts[2], parts[3], parts[4], parts[5], attrs,
                 lineno)


def parse(lines):
    """Parse an iterable of lines into a list of Events."""
    events = []
    last = None
    for lineno, text in enumerate(lines, 1):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        ev = parse_line(text, lineno)
        if last is not None and ev.time < last:
            raise HistoryError("line %d: time %d goes back (previous %d); "
                               "events must be in time order" %
                               (lineno, ev.time, last))
        last = ev.time
        events.append(ev)
    return events


def load(path):
    with open(path) as f:
        return parse(f)


def pair(events):
    """Pair invokes with completions per process; return a list of Ops.

    Ops are returned in invoke order. A process has at most one operation
    outstanding; an invoke left open at the end becomes info.
    """
    pending = {}
    ops = []
    for ev in events:
        if ev.process == NEMESIS:
            continue
        if ev.type == "invoke":
            if ev.process in pending:
                raise HistoryError(
                    "line %d: process %s invokes again while its operation "
                    "from line %d has no completion" %
                    (ev.line, ev.process, pending[ev.process].line))
            op = Op(ev.process, ev.f, ev.key, ev.value, ev.time, INF, "info",
                    dict(ev.attrs), ev.line)
            pending[ev.process] = op
            ops.append(op)
            continue
        op = pending.pop(ev.process, None)
        if op is None:
            raise HistoryError("line %d: completion for process %s without "
                               "an invoke" % (ev.line, ev.process))
        if ev.f != op.f or ev.key != op.key:
            raise HistoryError("line %d: completion '%s %s' does not match "
                               "invoke '%s %s' on line %d" %
                               (ev.line, ev.f, ev.key, op.f, op.key, op.line))
        op.type = ev.type
        op.attrs.update(ev.attrs)
        if ev.type == "info":
            continue  # outcome unknown: completion stays at infinity
        op.complete = ev.time
        if op.f == "read" or op.f == "get":
            if ev.type == "ok":
                op.value = ev.value
        elif ev.value != op.value and ev.value != NONE:
            raise HistoryError("line %d: completion value '%s' differs from "
                               "invoked value '%s' (line %d)" %
                               (ev.line, ev.value, op.value, op.line))
    return ops


class Recorder:
    """Appends events to a history file; thread-safe, one clock."""

    def __init__(self, path, clock):
        import threading
        self._f = open(path, "w")
        self._lock = threading.Lock()
        self._clock = clock
        self._f.write("# jepsen-lite history v1: <mono_ns> <process> <type> "
                      "<f> <key> <value> [attr=value ...]\n")

    def event(self, process, type_, f, key, value, **attrs):
        """Record one event; the time is taken under the lock so that the
        file stays in time order. Returns the time."""
        with self._lock:
            t = self._clock()
            if self._f.closed:
                return t
            ev = Event(t, process, type_, f, key, value,
                       {k: "_".join(str(v).split()) or "-"
                        for k, v in attrs.items() if v is not None})
            self._f.write(ev.format() + "\n")
            return t

    def flush(self):
        with self._lock:
            self._f.flush()

    def close(self):
        with self._lock:
            if not self._f.closed:
                self._f.close()
