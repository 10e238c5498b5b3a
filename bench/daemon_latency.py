#!/usr/bin/env python3
"""Measures `ferry daemon`: change propagation latency with an `instant` conduit, and
the idle daemon's CPU and memory over a large unchanged tree.

    cargo build --release
    python3 bench/daemon_latency.py                     # 100,000 files, 50 samples, 10 min idle
    python3 bench/daemon_latency.py --files 2000 --idle-seconds 20   # quick look
    python3 bench/daemon_latency.py --rescan-every 10s --idle-seconds 1800  # memory under stress

Targets (issue 5): p50 latency under 1 s; idle CPU under 1% of one core; RSS flat.
Python 3 standard library only. Prints a JSON report (and writes it with --out).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def make_tree(root, files, per_dir=1000):
    for i in range(files):
        d = os.path.join(root, f"d{i // per_dir:04d}")
        if i % per_dir == 0:
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:07d}.txt"), "wb") as f:
            f.write(f"file {i}\n".encode())


def status(ferry, env):
    out = subprocess.run([ferry, "--json", "status"], env=env, capture_output=True, check=True)
    return json.loads(out.stdout)


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait(cond, what, timeout):
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ferry", default="target/release/ferry")
    ap.add_argument("--files", type=int, default=100_000, help="unchanged files in the tree")
    ap.add_argument("--samples", type=int, default=50, help="latency samples")
    ap.add_argument("--idle-seconds", type=int, default=600, help="idle measurement length")
    ap.add_argument("--rescan-every", help="backstop full-rescan interval, e.g. 10s (default: the daemon's 1h)")
    ap.add_argument("--dir", help="work folder (default: a temp folder, removed after)")
    ap.add_argument("--out", help="also write the JSON report here")
    args = ap.parse_args()
    ferry = os.path.abspath(args.ferry)
    if not os.access(ferry, os.X_OK):
        sys.exit(f"{ferry} not found; run `cargo build --release` first")

    work = args.dir or tempfile.mkdtemp(prefix="ferry-daemon-bench-")
    a, b, home = (os.path.join(work, n) for n in ("a", "b", "home"))
    for d in (a, b, home):
        os.makedirs(d, exist_ok=True)
    env = dict(os.environ, FERRY_HOME=home, RUST_LOG="warn")
    if args.rescan_every:
        env["FERRY_RESCAN_INTERVAL"] = args.rescan_every
    daemon = None
    try:
        t = time.monotonic()
        make_tree(a, args.files)
        os.makedirs(os.path.join(a, "latency"), exist_ok=True)
        gen_s = time.monotonic() - t
        subprocess.run([ferry, "conduit", "add", a, b], env=env, check=True, capture_output=True)
        log = open(os.path.join(work, "daemon.log"), "wb")
        t = time.monotonic()
        daemon = subprocess.Popen([ferry, "daemon"], env=env, stdout=log, stderr=log)

        def initial_done():
            if not os.path.exists(os.path.join(home, "daemon.json")):
                return False
            c = status(ferry, env)["conduits"][0]
            return c["files"]["b"] >= args.files and c["state"] == "idle"

        wait(initial_done, "the initial sync", 3600)
        initial_s = time.monotonic() - t

        latencies = []
        for i in range(args.samples):
            name = f"sample-{i}.txt"
            payload = f"sample {i} {time.time()}\n".encode()
            target = os.path.join(b, "latency", name)
            t0 = time.monotonic()
            with open(os.path.join(a, "latency", name), "wb") as f:
                f.write(payload)
            while True:
                try:
                    with open(target, "rb") as f:
                        if f.read() == payload:
                            break
                except FileNotFoundError:
                    pass
                if time.monotonic() - t0 > 60:
                    sys.exit(f"sample {i} did not propagate within 60 s")
                time.sleep(0.002)
            latencies.append(time.monotonic() - t0)
            time.sleep(0.3)

        # Idle: let the last runs settle, then measure.
        time.sleep(5)
        cpu0, wall0 = proc_cpu_seconds(daemon.pid), time.monotonic()
        rss = [proc_rss_kib(daemon.pid)]
        step = max(1, min(30, args.idle_seconds // 10))
        while time.monotonic() - wall0 < args.idle_seconds:
            time.sleep(step)
            rss.append(proc_rss_kib(daemon.pid))
        cpu1, wall1 = proc_cpu_seconds(daemon.pid), time.monotonic()
        latencies.sort()
        report = {
            "files": args.files,
            "tree_generation_seconds": round(gen_s, 1),
            "initial_sync_seconds": round(initial_s, 1),
            "latency_samples": len(latencies),
            "latency_p50_seconds": round(statistics.median(latencies), 3),
            "latency_p90_seconds": round(latencies[int(len(latencies) * 0.9) - 1], 3),
            "latency_max_seconds": round(latencies[-1], 3),
            "idle_seconds": round(wall1 - wall0, 1),
            "idle_cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 3),
            "idle_rss_kib_first": rss[0],
            "idle_rss_kib_last": rss[-1],
            "idle_rss_kib_max": max(rss),
            # Flat: the second half's typical RSS is no higher than the first half's.
            # Samples that land inside a full rescan see its transient heap, hence the
            # medians beside the maxima.
            "idle_rss_kib_median_first_half": int(statistics.median(rss[: len(rss) // 2 + 1])),
            "idle_rss_kib_median_second_half": int(statistics.median(rss[len(rss) // 2 :])),
            "idle_rss_kib_max_first_half": max(rss[: len(rss) // 2 + 1]),
            "idle_rss_kib_max_second_half": max(rss[len(rss) // 2 :]),
            "rescan_every": args.rescan_every or "1h",
        }
        text = json.dumps(report, indent=2)
        print(text)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text + "\n")
    finally:
        if daemon:
            daemon.terminate()
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
