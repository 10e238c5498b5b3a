#!/usr/bin/env python3
"""Scale benchmark: seconds and peak RSS against the number of files.

For each N (default 100k, 300k, 1M) a seeded tree of N small files (~1 KiB, folders
of 1,000) is generated, then ferry, rsync and unison each run, side by side in one
run: the initial sync into an empty destination, a no-op sync, and a sync after
10,000 files were edited. Peak RSS comes from GNU time (`/usr/bin/time`). Then
ferry's daemon is started over the synced pair: its resident memory once idle (after
its start-up run) and its peak (VmHWM), from /proc.
Prints a table per N and a summary of peak RSS against N (is memory flat?); `--json`
writes every measurement.

    python3 bench/scale.py --sizes 100000,300000 --tools ferry,rsync
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_tree  # noqa: E402
import run  # noqa: E402

EDITS = 10_000
STEPS = ("initial", "noop", f"edit{EDITS // 1000}k")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ferry", default="target/release/ferry")
    p.add_argument("--sizes", default="100000,300000,1000000",
                   help="comma list of file counts (default 100000,300000,1000000)")
    p.add_argument("--tools", default="ferry,rsync,unison",
                   help="comma list from ferry,rsync,unison")
    p.add_argument("--workdir", help="parent for the scratch dir (default /tmp)")
    p.add_argument("--json", metavar="OUT")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def edit_files(src, n, seed):
    """Rewrite `n` seeded-random files of the tree with new bytes (same folders)."""
    rng = random.Random(f"scale-edit-{seed}")
    files = []
    for d, dirs, names in os.walk(src):
        dirs[:] = [x for x in dirs if x != ".ferry"]  # ferry's marker and store
        files.extend(os.path.join(d, f) for f in names)
    files.sort()
    for path in rng.sample(files, min(n, len(files))):
        size = os.path.getsize(path) + rng.randint(1, 64)
        with open(path, "wb") as f:
            f.write(rng.randbytes(size))


def proc_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def daemon_idle(tool, src, settle=10.0, deadline=3600.0):
    """ferry's daemon over the synced pair: RSS once its start-up run is over and it
    has idled `settle` seconds, and its peak (VmHWM) so far."""
    env = dict(os.environ, FERRY_HOME=tool.home)
    ferry = tool.path()
    subprocess.run([ferry, "conduit", "add", src, tool.dst, "--quiet"], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    d = subprocess.Popen([ferry, "daemon", "--quiet"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < deadline:
            time.sleep(1.0)
            r = subprocess.run([ferry, "status", "--json"], env=env,
                               capture_output=True, text=True)
            try:
                c = json.loads(r.stdout)["conduits"][0]
            except (ValueError, KeyError, IndexError):
                continue
            if (c.get("last_run") or {}).get("status") == "ok" and c.get("state") == "idle":
                break
        else:
            raise RuntimeError("the daemon's start-up run did not finish")
        time.sleep(settle)
        return {"seconds": round(time.perf_counter() - t0, 3),
                "peak_rss_mib": round(proc_kib(d.pid, "VmHWM") / 1024, 1),
                "idle_rss_mib": round(proc_kib(d.pid, "VmRSS") / 1024, 1)}
    finally:
        d.send_signal(signal.SIGTERM)
        try:
            d.wait(timeout=60)
        except subprocess.TimeoutExpired:
            d.kill()


def measure(tool, src):
    m = tool.sync(src)
    return {"seconds": round(m.seconds, 3), "peak_rss_mib": round(m.maxrss_kib / 1024, 1)}


def main(argv=None):
    a = parse_args(argv)
    if not run.TIME_BIN:
        sys.exit("scale: GNU time (/usr/bin/time) is needed for peak RSS")
    sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    names = [t.strip() for t in a.tools.split(",") if t.strip()]
    work = tempfile.mkdtemp(prefix="ferry-scale-", dir=a.workdir)
    results = []
    try:
        for n in sizes:
            src = os.path.join(work, f"src-{n}")
            t0 = time.perf_counter()
            gen_tree.generate(src, a.seed, n, n / 1024, 0)
            print(f"{n} files generated in {time.perf_counter() - t0:.1f} s", flush=True)
            tools = {}
            for name in names:
                tool = {"ferry": lambda: run.Ferry(work, a.ferry),
                        "rsync": lambda: run.Rsync(work),
                        "unison": lambda: run.Unison(work)}[name]()
                if not tool.path():
                    print(f"  {name}: missing", flush=True)
                    continue
                tool.fresh()
                tools[name] = tool
            row = {"files": n, "steps": {}}
            for step in STEPS:
                if step.startswith("edit"):
                    edit_files(src, EDITS, a.seed)
                row["steps"][step] = {}
                for name, tool in tools.items():
                    m = measure(tool, src)
                    row["steps"][step][name] = m
                    print(f"  [{n} {step}] {name:7} {m['seconds']:8.2f} s "
                          f"{m['peak_rss_mib']:8.1f} MiB", flush=True)
            if "ferry" in tools:
                m = daemon_idle(tools["ferry"], src)
                row["daemon"] = m
                print(f"  [{n} daemon] ferry   idle {m['idle_rss_mib']:8.1f} MiB, "
                      f"peak {m['peak_rss_mib']:.1f} MiB (start-up run and "
                      f"{m['seconds']:.0f} s in all)", flush=True)
            results.append(row)
            for tool in tools.values():
                tool.discard()
            shutil.rmtree(src, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_tables(results, names)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": run.machine_line(run.machine_info(a.workdir or "/tmp")),
                       "results": results}, f, indent=2)


def print_tables(results, names):
    print()
    print("| files | step | " + " | ".join(f"{t} s | {t} MiB" for t in names) + " |")
    print("|---:|---|" + "---:|---:|" * len(names))
    for row in results:
        for step in STEPS:
            cells = []
            for t in names:
                m = row["steps"].get(step, {}).get(t)
                cells += [f"{m['seconds']:.2f}", f"{m['peak_rss_mib']:.0f}"] if m else ["—", "—"]
            print(f"| {row['files']:,} | {step} | " + " | ".join(cells) + " |")
        if "daemon" in row:
            # The daemon's seconds include its start-up run; MiB is idle (peak).
            m = row["daemon"]
            cells = []
            for t in names:
                cells += ([f"{m['seconds']:.0f}", f"{m['idle_rss_mib']:.0f} "
                           f"({m['peak_rss_mib']:.0f})"] if t == "ferry" else ["—", "—"])
            print(f"| {row['files']:,} | daemon idle (peak) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
