#!/usr/bin/env python3
"""Draws peak RSS against the number of files from `scale.py --json` results, as SVG.

    python3 bench/plot_scale.py bench/results/scale-*.json --out bench/scale-rss.svg

One line per step (initial, no-op, 10,000 edits) of one tool (default ferry), the
daemon's idle RSS where measured, and the issue's 300 MB target; files on a log axis.
No plotting library: the SVG is written by hand so the script runs anywhere.
"""

import argparse
import json
import math
import sys

W, H = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 24, 48
COLOURS = {"initial": "#1f77b4", "noop": "#2ca02c", "edit10k": "#d62728", "daemon idle": "#9467bd"}
LABELS = {"initial": "initial sync", "noop": "no-op sync", "edit10k": "10,000 edits",
          "daemon idle": "daemon idle"}
TARGET_MIB = 300e6 / 2**20


def load(paths, tool):
    """{series: {files: MiB}} from every result file (later files win)."""
    series = {}
    for p in paths:
        with open(p) as f:
            doc = json.load(f)
        for row in doc["results"]:
            n = row["files"]
            for step, by_tool in row.get("steps", {}).items():
                m = by_tool.get(tool)
                if m and m.get("peak_rss_mib") is not None:
                    series.setdefault(step, {})[n] = m["peak_rss_mib"]
            d = row.get("daemon")
            if tool == "ferry" and d and d.get("idle_rss_mib") is not None:
                series.setdefault("daemon idle", {})[n] = d["idle_rss_mib"]
    return series


def svg(series, tool):
    xs = sorted({n for s in series.values() for n in s})
    if not xs:
        sys.exit("plot_scale: no results with peak RSS")
    lo, hi = math.log10(min(xs)), math.log10(max(xs))
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    ymax = max(TARGET_MIB, max(v for s in series.values() for v in s.values())) * 1.1
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(n):
        return LEFT + (math.log10(n) - lo) / (hi - lo) * pw

    def y(v):
        return TOP + ph - v / ymax * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{LEFT}" y="16" font-size="13">{tool}: peak RSS against files in the tree</text>']
    step = 50 if ymax > 150 else 20
    for v in range(0, int(ymax) + 1, step):
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    for n in xs:
        out.append(f'<line x1="{x(n):.1f}" x2="{x(n):.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#eee"/>')
        label = f"{n // 1000:,} k" if n < 1_000_000 else f"{n / 1e6:g} M"
        out.append(f'<text x="{x(n):.1f}" y="{TOP + ph + 18}" text-anchor="middle">{label}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 8}" text-anchor="middle">files (log scale)</text>')
    out.append(f'<text x="14" y="{TOP + ph / 2}" transform="rotate(-90 14 {TOP + ph / 2})" '
               f'text-anchor="middle">MiB</text>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y(TARGET_MIB):.1f}" y2="{y(TARGET_MIB):.1f}" '
               f'stroke="#888" stroke-dasharray="6 4"/>')
    out.append(f'<text x="{LEFT + pw + 8}" y="{y(TARGET_MIB) + 4:.1f}" fill="#555">target 300 MB</text>')
    legend = TOP + 10
    for name, points in series.items():
        colour = COLOURS.get(name, "#333")
        pts = sorted(points.items())
        path = " ".join(f"{x(n):.1f},{y(v):.1f}" for n, v in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for n, v in pts:
            out.append(f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                       f'<title>{LABELS.get(name, name)}, {n:,} files: {v:g} MiB</title></circle>')
        out.append(f'<line x1="{LEFT + pw + 8}" x2="{LEFT + pw + 24}" y1="{legend + 40}" '
                   f'y2="{legend + 40}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{LEFT + pw + 28}" y="{legend + 44}">{LABELS.get(name, name)}</text>')
        legend += 18
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="scale.py --json files")
    p.add_argument("--tool", default="ferry")
    p.add_argument("--out", default="-", help="SVG file (default: stdout)")
    a = p.parse_args(argv)
    doc = svg(load(a.results, a.tool), a.tool)
    if a.out == "-":
        sys.stdout.write(doc)
    else:
        with open(a.out, "w") as f:
            f.write(doc)


if __name__ == "__main__":
    main()
