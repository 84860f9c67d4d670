"""An SVG picture of one run, read at a glance: above, one row per client
(the final reads: one row per node) with each operation drawn from invoke
to completion (green ok, red fail, orange info: outcome unknown, drawn
until the client gave up on it), fault windows shaded across all rows and
labelled at the top; below, the latency of every completed operation
over the same time axis (log scale).

Fault windows come from the history's nemesis events: a start opens a
window, closed by the matching stop (the same fault and node for kill,
pause and clock; "network healed" for network faults; "delay all 0ms" for
delays; "all healed" for everything).
"""

import math

from . import history

W = 1200  # picture width
LEFT = 110  # room for row labels
RIGHT = 20
ROW = 14
LAT_H = 220
COLORS = {"ok": "#2a9d3c", "fail": "#d62828", "info": "#f4a11d"}
FAULT_COLORS = ["#8ecae6", "#cdb4db", "#ffd6a5", "#bde0a8", "#f7b2bd",
                "#b5c7f2"]
_PROCESS_FAULTS = ("kill", "pause", "clock", "fsync-error", "disk-full",
                   "small-disk")


def _esc(s):
    return (str(s).replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;").replace('"', "&quot;"))


def fault_windows(events, t_end):
    """[(start, stop, label)] from the nemesis events."""
    open_, out = [], []
    for e in events:
        if e.process != "nemesis":
            continue
        node = e.value.split("_")[0]
        if e.f == "start":
            open_.append((e.time, e.key, node, "%s %s" % (
                e.key, e.value.replace("_", " "))))
            continue
        keep = []
        for w in open_:
            name, wnode = w[1], w[2]
            if e.key == "all":
                done = True
            elif name in _PROCESS_FAULTS:
                done = e.key == name and node == wnode
            elif name == "delay":
                done = e.key == "delay"
            else:
                done = e.key == "network"
            if done:
                out.append((w[0], e.time, w[3]))
            else:
                keep.append(w)
        open_ = keep
    out += [(w[0], t_end, w[3]) for w in open_]
    return sorted(out)


def render(events, title):
    """The SVG text for a history's events."""
    ops = history.pair(events)
    if not events:
        return None
    t0 = events[0].time
    t_end = events[-1].time
    span = max(t_end - t0, 1)
    procs = sorted({_row_name(o.process) for o in ops},
                   key=lambda p: (not p.isdigit(), int(p) if p.isdigit()
                                  else 0, p))
    row = {p: k for k, p in enumerate(procs)}
    top = 70
    tl_h = max(len(procs), 1) * ROW
    lat_top = top + tl_h + 50
    height = lat_top + LAT_H + 60
    pw = W - LEFT - RIGHT

    def x(t):
        return LEFT + (min(t, t_end) - t0) * pw / span

    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="11">' % (W, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="18" font-size="14" font-weight="bold">%s</text>'
           % (LEFT, _esc(title))]
    # Legend.
    lx = LEFT
    for name, c in COLORS.items():
        svg.append('<rect x="%d" y="28" width="14" height="8" fill="%s"/>'
                   '<text x="%d" y="36">%s</text>' % (lx, c, lx + 18, name))
        lx += 60
    svg.append('<text x="%d" y="36">shaded: fault windows</text>' % lx)
    # Fault windows.
    for k, (a, b, label) in enumerate(fault_windows(events, t_end)):
        c = FAULT_COLORS[k % len(FAULT_COLORS)]
        xa, xb = x(a), max(x(b), x(a) + 1)
        svg.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" '
                   'fill="%s" fill-opacity="0.45"><title>%s</title></rect>'
                   % (xa, top - 22, xb - xa, lat_top + LAT_H - top + 22, c,
                      _esc(label)))
        svg.append('<text x="%.1f" y="%d" font-size="9">%s</text>' %
                   (xa + 1, top - 14 + 8 * (k % 2), _esc(label)))
    # Operations.
    for p, k in row.items():
        svg.append('<text x="%d" y="%d" text-anchor="end">%s%s</text>'
                   % (LEFT - 6, top + k * ROW + 10,
                      "client " if p.isdigit() else "", _esc(p)))
    # Operations of one client that touch within a pixel and share an
    # outcome become one bar, so a busy run stays a small file.
    given_up = _info_times(events)
    bars = {}
    for o in ops:
        xa = x(o.invoke)
        end = o.complete if o.complete != history.INF else \
            given_up.get((o.process, o.invoke), t_end)
        xb = max(x(end), xa + 0.8)
        r = _row_name(o.process)
        cur = bars.get(r)
        if cur and cur[2] == o.type and xa <= cur[1] + 1.0:
            cur[1] = max(cur[1], xb)
            continue
        if cur:
            svg.append(_bar(cur, top + row[r] * ROW + 2))
        bars[r] = [xa, xb, o.type]
    for p, cur in bars.items():
        svg.append(_bar(cur, top + row[p] * ROW + 2))
    # Time axis.
    step = _nice_step(span / 1e9)
    s = 0.0
    while s <= span / 1e9:
        xs = x(t0 + s * 1e9)
        svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" '
                   'stroke="#ccc"/>' % (xs, top, xs, lat_top + LAT_H))
        svg.append('<text x="%.1f" y="%d" text-anchor="middle">%gs</text>'
                   % (xs, lat_top + LAT_H + 14, s))
        s += step
    # Latency (log scale, 0.1 ms .. 10 s).
    lo, hi = -1.0, 4.0

    def y(ms):
        v = min(max(math.log10(max(ms, 0.1)), lo), hi)
        return lat_top + LAT_H - (v - lo) * LAT_H / (hi - lo)

    svg.append('<text x="%d" y="%d" font-weight="bold">latency of completed'
               ' operations (ms, log scale)</text>' % (LEFT, lat_top - 8))
    svg.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" '
               'stroke="#999"/>' % (LEFT, lat_top, pw, LAT_H))
    for e in range(int(lo), int(hi) + 1):
        ms = 10.0 ** e
        svg.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" '
                   'stroke="#eee"/><text x="%d" y="%.1f" '
                   'text-anchor="end">%g</text>' % (
                       LEFT, y(ms), LEFT + pw, y(ms), LEFT - 6, y(ms) + 4,
                       ms))
    # One dot per pixel column, latency step and outcome.
    dots = set()
    for o in ops:
        if o.complete == history.INF:
            continue
        ms = (o.complete - o.invoke) / 1e6
        dots.add((round(x(o.complete)), round(y(ms) / 2) * 2, o.type))
    for cx, cy, t in sorted(dots):
        svg.append('<circle cx="%d" cy="%d" r="1.3" fill="%s"/>' %
                   (cx, cy, COLORS.get(t, "#888")))
    svg.append('<text x="%d" y="%d" text-anchor="middle">time since the '
               'first event</text>' % (LEFT + pw // 2, height - 16))
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def _info_times(events):
    """(process, invoke time) -> time of the info completion: when the
    client stopped waiting for an operation of unknown outcome."""
    pending, out = {}, {}
    for e in events:
        if e.process == "nemesis":
            continue
        if e.type == "invoke":
            pending[e.process] = e.time
        elif e.process in pending:
            t = pending.pop(e.process)
            if e.type == "info":
                out[(e.process, t)] = e.time
    return out


def _row_name(process):
    """Workload clients get a row each; the pipelined final reads
    (final-nN-K) one row per node."""
    if process.isdigit():
        return process
    return process.rstrip("0123456789").rstrip("-") or process


def _bar(b, y):
    return '<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>' % (
        b[0], y, b[1] - b[0], ROW - 4, COLORS.get(b[2], "#888"))


def _nice_step(seconds):
    for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if seconds / s <= 12:
            return s
    return 1200


def write(path, events, title):
    text = render(events, title)
    if text is None:
        return False
    with open(path, "w") as f:
        f.write(text)
    return True
