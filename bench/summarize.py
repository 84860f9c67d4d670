#!/usr/bin/env python3
"""Summarise a bench-compare run: summarize.py OUTDIR.

Reads OUTDIR/raw.tsv (one row per run: system, members, rep, cell, load,
server and client CPU-seconds, the load generator's one-line report),
prints a Markdown table of medians over reps to stdout, and writes two
plots without third-party packages: OUTDIR/throughput.svg (put throughput
against clients) and OUTDIR/latency.svg (put p50 and p99 against clients).
"""
import csv
import math
import os
import re
import statistics
import sys

FIELD = re.compile(r"([A-Za-z0-9.()]+)=([-0-9.a-z]+)")
SYSTEMS = ("kvd", "etcd")


def parse_line(line):
    """The fields of one report line as floats where they are numbers."""
    out = {}
    for k, v in FIELD.findall(line):
        try:
            out[k] = float(v.rstrip("sB"))
        except ValueError:
            out[k] = v
    return out


def load(path):
    runs = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            rep = parse_line(row["line"])
            if "QPS" not in rep:
                continue
            n = rep["n"]
            rep["load"] = float(row["load1"])
            rep["srv_us"] = float(row["server_cpu_s"]) / n * 1e6
            rep["cli_us"] = float(row["client_cpu_s"]) / n * 1e6
            key = (int(row["members"]), row["cell"], row["system"])
            runs.setdefault(key, []).append(rep)
    return runs


def med(runs, key, field):
    vals = [r[field] for r in runs.get(key, []) if field in r]
    return statistics.median(vals) if vals else None


def fmt(v, digits=2):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def cells_in_order(runs, members):
    seen = []
    for m, cell, _ in runs:
        if m == members and cell not in seen:
            seen.append(cell)
    return seen


def table(runs):
    lines = []
    for members in sorted({k[0] for k in runs}):
        lines.append(f"\n**{members} members** (median of "
                     f"{max(len(v) for k, v in runs.items() if k[0] == members)}"
                     " fresh cluster(s))\n")
        lines.append("| workload (clients/conns) | kvd QPS | etcd QPS | "
                     "QPS kvd/etcd | kvd p50 / p99 ms | etcd p50 / p99 ms | "
                     "p50 kvd/etcd | kvd CPU µs/req srv+cli | "
                     "etcd CPU µs/req srv+cli | load |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for cell in cells_in_order(runs, members):
            k, e = (members, cell, "kvd"), (members, cell, "etcd")
            kq, eq = med(runs, k, "QPS"), med(runs, e, "QPS")
            k50, e50 = med(runs, k, "p50"), med(runs, e, "p50")
            loads = [r["load"] for s in SYSTEMS
                     for r in runs.get((members, cell, s), [])]
            lines.append(
                f"| {cell} | {fmt(kq)} | {fmt(eq)} | {ratio(kq, eq)} | "
                f"{fmt(k50, 3)} / {fmt(med(runs, k, 'p99'))} | "
                f"{fmt(e50, 3)} / {fmt(med(runs, e, 'p99'))} | "
                f"{ratio(k50, e50)} | "
                f"{fmt(med(runs, k, 'srv_us'), 0)} + "
                f"{fmt(med(runs, k, 'cli_us'), 0)} | "
                f"{fmt(med(runs, e, 'srv_us'), 0)} + "
                f"{fmt(med(runs, e, 'cli_us'), 0)} | "
                f"{min(loads):.1f}-{max(loads):.1f} |")
    return "\n".join(lines) + "\n"


# ---- SVG plots -----------------------------------------------------------

W, H, ML, MR, MT, MB = 640, 400, 70, 150, 40, 50
COLOURS = {"kvd": "#1f77b4", "etcd": "#d62728"}


def scale_log(v, lo, hi, a, b):
    return a + (math.log10(v) - math.log10(lo)) / (
        math.log10(hi) - math.log10(lo)) * (b - a)


def svg_plot(path, title, ylabel, series, logy):
    """series: list of (label, colour, dash, [(x, y), ...]); log x."""
    pts = [p for _, _, _, s in series for p in s if p[1] is not None]
    if not pts:
        return
    xlo, xhi = 0.8, max(p[0] for p in pts) * 1.25
    ys = [p[1] for p in pts]
    if logy:
        ylo = 10 ** math.floor(math.log10(min(ys)))
        yhi = 10 ** math.ceil(math.log10(max(ys)))
    else:
        ylo, yhi = 0, max(ys) * 1.1

    def sx(x):
        return scale_log(x, xlo, xhi, ML, W - MR)

    def sy(y):
        if logy:
            return scale_log(y, ylo, yhi, H - MB, MT)
        return H - MB - (y - ylo) / (yhi - ylo) * (H - MB - MT)

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" '
         f'height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="20" text-anchor="middle" '
         f'font-size="14">{title}</text>']
    o.append(f'<line x1="{ML}" y1="{H - MB}" x2="{W - MR}" y2="{H - MB}" '
             'stroke="black"/>')
    o.append(f'<line x1="{ML}" y1="{MT}" x2="{ML}" y2="{H - MB}" '
             'stroke="black"/>')
    for x in sorted({p[0] for p in pts}):
        o.append(f'<text x="{sx(x):.1f}" y="{H - MB + 16}" '
                 f'text-anchor="middle">{x:g}</text>')
        o.append(f'<line x1="{sx(x):.1f}" y1="{MT}" x2="{sx(x):.1f}" '
                 f'y2="{H - MB}" stroke="#eee"/>')
    o.append(f'<text x="{(ML + W - MR) / 2}" y="{H - 12}" '
             'text-anchor="middle">clients (requests in flight)</text>')
    if logy:
        ticks = []
        t = ylo
        while t <= yhi * 1.001:
            ticks.append(t)
            t *= 10
    else:
        step = 10 ** math.floor(math.log10(yhi / 2))
        ticks = [i * step for i in range(int(yhi / step) + 1)]
    for t in ticks:
        o.append(f'<text x="{ML - 6}" y="{sy(t) + 4:.1f}" '
                 f'text-anchor="end">{t:g}</text>')
        o.append(f'<line x1="{ML}" y1="{sy(t):.1f}" x2="{W - MR}" '
                 f'y2="{sy(t):.1f}" stroke="#eee"/>')
    o.append(f'<text x="16" y="{(MT + H - MB) / 2}" text-anchor="middle" '
             f'transform="rotate(-90 16 {(MT + H - MB) / 2})">{ylabel}'
             '</text>')
    for i, (label, colour, dash, s) in enumerate(series):
        s = [p for p in s if p[1] is not None]
        if not s:
            continue
        d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        o.append(f'<polyline points="{d}" fill="none" stroke="{colour}" '
                 f'stroke-width="2" stroke-dasharray="{dash}"/>')
        for x, y in s:
            o.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" '
                     f'fill="{colour}"/>')
        ly = MT + 10 + 18 * i
        o.append(f'<line x1="{W - MR + 10}" y1="{ly}" x2="{W - MR + 35}" '
                 f'y2="{ly}" stroke="{colour}" stroke-width="2" '
                 f'stroke-dasharray="{dash}"/>')
        o.append(f'<text x="{W - MR + 40}" y="{ly + 4}">{label}</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def put_series(runs, system, field):
    pts = []
    for m, cell, s in runs:
        if m == 3 and s == system and re.fullmatch(r"put-\d+/\d+", cell):
            clients = int(cell.split("-")[1].split("/")[0])
            pts.append((clients, med(runs, (m, cell, s), field)))
    return sorted(pts)


def plots(runs, outdir):
    svg_plot(os.path.join(outdir, "throughput.svg"),
             "put throughput, 3 members, 256 B values", "requests/s",
             [(s, COLOURS[s], "", put_series(runs, s, "QPS"))
              for s in SYSTEMS], logy=True)
    series = []
    for s in SYSTEMS:
        for field, dash in (("p50", ""), ("p99", "6,3"), ("p99.9", "2,3")):
            series.append((f"{s} {field}", COLOURS[s], dash,
                           put_series(runs, s, field)))
    svg_plot(os.path.join(outdir, "latency.svg"),
             "put latency percentiles, 3 members, 256 B values", "ms",
             series, logy=True)


def main():
    if len(sys.argv) != 2:
        print("usage: summarize.py OUTDIR", file=sys.stderr)
        return 2
    runs = load(os.path.join(sys.argv[1], "raw.tsv"))
    if not runs:
        print("summarize: no successful runs in raw.tsv", file=sys.stderr)
        return 1
    meta = os.path.join(sys.argv[1], "meta.txt")
    if os.path.exists(meta):
        with open(meta) as f:
            print("".join("    " + line for line in f))
    print(table(runs))
    plots(runs, sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
