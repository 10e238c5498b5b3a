#!/usr/bin/env python3
"""Files on demand (issue 14): a selective conduit with a local secondary, mounted with
`ferry mount`.

Measures
  - first-byte latency of a dehydrated (online-only) file: open + read 1 byte through
    the mount (median of --runs, each on a fresh open);
  - sequential read throughput (1 MiB reads) through the mount of a dehydrated file
    (fetched piece by piece from the secondary, every piece checked) and of a hydrated
    (local) file, against reading the local file directly;
  - listing a folder of --list-files online-only files through the mount (seconds, and
    the mount process's peak RSS).

Reads are from the page cache unless `--cold` is given and the kernel lets this process
drop caches (root, writable /proc/sys/vm/drop_caches); the table says which.

Needs a ferry built with the fuse feature:
    cargo build --release -p ferry-cli --features fuse
    python3 bench/ondemand.py [--ferry target/release/ferry] [--size-mib 256]
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


def run(ferry, env, *args):
    r = subprocess.run([ferry, *args], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"ferry {' '.join(args)} failed: {r.stderr}")
    return r.stdout


def mounted(mp):
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ")[4] == mp for line in f)


def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def read_all(path, block=1 << 20):
    n = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(block)
            if not b:
                return n
            n += len(b)


def mib_s(nbytes, secs):
    return nbytes / (1 << 20) / secs


def peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferry", default="target/release/ferry")
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--list-files", type=int, default=100_000)
    ap.add_argument("--cold", action="store_true", help="drop the page cache before each read")
    ap.add_argument("--workdir", default="/tmp")
    ap.add_argument("--json", help="also write the numbers here")
    a = ap.parse_args()
    ferry = os.path.abspath(a.ferry)
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        sys.exit("needs /dev/fuse and fusermount3 (apt-get install fuse3)")
    w = tempfile.mkdtemp(prefix="ferry-ondemand-", dir=a.workdir)
    env = dict(os.environ, FERRY_HOME=f"{w}/home", FERRY_CONFIG=f"{w}/none.toml")
    A, B, mnt = f"{w}/a", f"{w}/b", f"{w}/mnt"
    for d in (A, B, mnt, f"{A}/many"):
        os.makedirs(d)
    size = a.size_mib << 20
    for name in ("cold.bin", "hot.bin"):
        with open(f"{A}/{name}", "wb") as f:
            for _ in range(a.size_mib):
                f.write(os.urandom(1 << 20))
    for i in range(a.list_files):
        with open(f"{A}/many/f{i:06}", "wb") as f:
            f.write(b"x")
    run(ferry, env, "conduit", "add", A, B, "--mode", "selective", "--schedule", "manual")
    t = time.monotonic()
    run(ferry, env, "sync", A, B)
    sync_s = time.monotonic() - t
    run(ferry, env, "free-up", f"{A}/cold.bin")
    run(ferry, env, "free-up", f"{A}/many")
    mount = subprocess.Popen([ferry, "mount", A, mnt, "--read-timeout", "60s"], env=env,
                             stderr=subprocess.DEVNULL)
    try:
        while not mounted(mnt):
            if mount.poll() is not None:
                sys.exit("ferry mount exited")
            time.sleep(0.05)
        cold = False
        res = {"size_mib": a.size_mib, "first_sync_s": sync_s}

        first = []
        for _ in range(max(a.runs, 5)):
            if a.cold:
                cold = drop_caches()
            t = time.monotonic()
            with open(f"{mnt}/cold.bin", "rb", buffering=0) as f:
                assert len(f.read(1)) == 1
            first.append((time.monotonic() - t) * 1000)
        res["first_byte_ms"] = statistics.median(first)

        def timed(path):
            if a.cold:
                drop_caches()
            t = time.monotonic()
            n = read_all(path)
            assert n == size, (path, n)
            return mib_s(n, time.monotonic() - t)

        online = []
        for _ in range(a.runs):
            run(ferry, env, "free-up", f"{A}/cold.bin")
            online.append(timed(f"{mnt}/cold.bin"))
            deadline = time.monotonic() + 300
            while not os.path.exists(f"{A}/cold.bin") and time.monotonic() < deadline:
                time.sleep(0.05)  # read to the end: hydrated in the background
        res["online_only_mib_s"] = statistics.median(online)
        res["hydrated_after_full_read"] = os.path.exists(f"{A}/cold.bin")
        res["direct_mib_s"] = statistics.median(timed(f"{A}/hot.bin") for _ in range(a.runs))
        res["mount_local_mib_s"] = statistics.median(timed(f"{mnt}/hot.bin") for _ in range(a.runs))
        res["mount_vs_direct"] = res["mount_local_mib_s"] / res["direct_mib_s"]

        t = time.monotonic()
        names = os.listdir(f"{mnt}/many")
        res["list_s"] = time.monotonic() - t
        assert len(names) == a.list_files, len(names)
        t = time.monotonic()
        for n in names:
            os.stat(f"{mnt}/many/{n}")
        res["list_stat_s"] = time.monotonic() - t
        res["list_files"] = a.list_files
        res["mount_peak_rss_mib"] = (peak_rss_kib(mount.pid) or 0) / 1024
        res["cold_cache"] = cold
    finally:
        subprocess.run([ferry, "unmount", mnt], env=env, capture_output=True)
        mount.wait(timeout=60)
        shutil.rmtree(w, ignore_errors=True)

    print(f"| measure | value |")
    print(f"|---|---|")
    print(f"| first byte of an online-only {a.size_mib} MiB file | {res['first_byte_ms']:.1f} ms |")
    print(f"| sequential read, online-only, through the mount | {res['online_only_mib_s']:.0f} MiB/s |")
    print(f"| sequential read, local file, through the mount | {res['mount_local_mib_s']:.0f} MiB/s |")
    print(f"| sequential read, local file, directly | {res['direct_mib_s']:.0f} MiB/s |")
    print(f"| mount / direct (local file) | {res['mount_vs_direct']:.2f}x |")
    print(f"| list {a.list_files} online-only files (readdir) | {res['list_s']:.2f} s |")
    print(f"| stat each of them | {res['list_stat_s']:.2f} s |")
    print(f"| mount process peak RSS | {res['mount_peak_rss_mib']:.0f} MiB |")
    print(f"| page cache dropped before reads | {'yes' if res['cold_cache'] else 'no (warm)'} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
