#!/usr/bin/env python3
"""Before/after timing of one renamed folder, down to ferry's executor.

    python3 bench/rename_dir.py --before OLD_FERRY --after NEW_FERRY [--files N] [--runs N]

Each binary gets its own pair of folders (A holding `d/` with N small files, B a
synced copy) and its own FERRY_HOME. Every round renames d <-> e on A and runs
`ferry sync A B --json` with each binary, alternating which goes first. Reported:
median wall time, and the executor's share (the time between ferry's "planned"
and "executed the plan" debug lines), which is where a directory rename is
applied; the scan of A (which hashes the renamed files as new paths) is the same
for both. The run's `renamed` and `dirs_renamed` counters show which way the
folder moved. Standard library only; scratch files go to a temp dir.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def sync(binary, work, name):
    env = dict(os.environ, FERRY_HOME=f"{work}/{name}-home",
               RUST_LOG="ferry_core=debug", NO_COLOR="1")
    os.sync()
    t = time.perf_counter()
    p = subprocess.run([binary, "sync", f"{work}/{name}-a", f"{work}/{name}-b",
                        "--yes", "--json"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"{binary} failed:\n{p.stderr[-2000:]}")
    ms = {k: int(v) for k, v in re.findall(
        r"(planned|executed the plan) ms=(\d+)", p.stderr)}
    out = json.loads(p.stdout)
    return wall * 1000, ms.get("executed the plan", 0) - ms.get("planned", 0), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="ferry binary without the change")
    ap.add_argument("--after", required=True, help="ferry binary with the change")
    ap.add_argument("--files", type=int, default=1000, help="files in the folder")
    ap.add_argument("--runs", type=int, default=15, help="renames per binary")
    args = ap.parse_args()
    bins = {"before": args.before, "after": args.after}
    work = tempfile.mkdtemp(prefix="ferry-rename-dir-")
    try:
        for name in bins:
            os.makedirs(f"{work}/{name}-a/d/sub")
            os.makedirs(f"{work}/{name}-b")
            for i in range(args.files):
                sub = "sub/" if i % 10 == 0 else ""
                with open(f"{work}/{name}-a/d/{sub}f{i:06}.txt", "w") as f:
                    f.write(f"file {i} " * (1 + i % 50))
            sync(bins[name], work, name)
        rows = {name: [] for name in bins}
        for r in range(args.runs):
            for name in (list(bins) if r % 2 == 0 else list(bins)[::-1]):
                a = f"{work}/{name}-a"
                src, dst = ("d", "e") if os.path.exists(f"{a}/d") else ("e", "d")
                os.rename(f"{a}/{src}", f"{a}/{dst}")
                rows[name].append(sync(bins[name], work, name))
        print(f"folder of {args.files} files renamed, {args.runs} runs each, medians:")
        for name, rs in rows.items():
            last = rs[-1][2]
            print(f"  {name:6}  wall {statistics.median(x[0] for x in rs):7.1f} ms   "
                  f"execute {statistics.median(x[1] for x in rs):6.1f} ms "
                  f"(min {min(x[1] for x in rs)}, max {max(x[1] for x in rs)})   "
                  f"renamed {last['renamed']}, dirs_renamed {last.get('dirs_renamed', 'n/a')}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
