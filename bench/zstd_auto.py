#!/usr/bin/env python3
"""Loopback copy of one compressible file between two ferry daemons, with the
compression mode given by the environment: auto (default), FERRY_ZSTD=always,
FERRY_NO_ZSTD=1. Prints seconds from `ferry accept` until the file is in place,
bytes on the wire and whether the sender compressed at the end.

    python3 bench/zstd_auto.py --ferry target/release/ferry [--mib 256] [--runs 3]
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time

MODES = {
    "auto": {},
    "always": {"FERRY_ZSTD": "always"},
    "raw": {"FERRY_NO_ZSTD": "1"},
}


def text_file(path, mib, seed):
    """Log-like lines (zstd level 1 shrinks them ~4-6x)."""
    rnd = random.Random(seed)
    words = ["GET", "PUT", "ok", "error", "user", "session", "cache", "miss", "hit",
             "/api/v1/items", "/static/app.js", "timeout", "retry", "worker"]
    with open(path, "w") as f:
        written = 0
        while written < mib << 20:
            lines = []
            for _ in range(1000):
                lines.append(
                    f"2026-12-01T11:{rnd.randrange(60):02}:{rnd.randrange(60):02}.{rnd.randrange(1000):03}Z "
                    f"{rnd.choice(words)} {rnd.choice(words)} id={rnd.randrange(1 << 32):08x} "
                    f"took={rnd.randrange(5000)}ms {rnd.choice(words)}\n")
            chunk = "".join(lines)
            f.write(chunk)
            written += len(chunk)


def run(ferry, src_file, mode, base, port):
    homes = {s: os.path.join(base, s, "home") for s in "ab"}
    env = {s: dict(os.environ, FERRY_HOME=homes[s], RUST_LOG="info,ferry_net=debug", **MODES[mode])
           for s in "ab"}

    def cli(side, *args):
        r = subprocess.run([ferry, *args, "--json"], env=env[side], capture_output=True,
                           text=True, check=True)
        return json.loads(r.stdout) if r.stdout.strip() else None

    for s in "ab":
        os.makedirs(homes[s])
    src = os.path.join(base, "a", "src")
    dst = os.path.join(base, "b", "dst")
    os.makedirs(src)
    # A sparse file stays sparse (cp --sparse=always); the text is copied as is.
    subprocess.run(["cp", "--sparse=always", src_file, src], check=True)
    ids = {s: cli(s, "device", "id")["device_id"] for s in "ab"}
    ports = {"a": port, "b": port + 1}
    procs = {}
    for s in "ab":
        log = open(os.path.join(homes[s], "daemon.log"), "w")
        procs[s] = subprocess.Popen([ferry, "daemon", "--listen", f"127.0.0.1:{ports[s]}",
                                     "--no-local-discovery"], env=env[s], stdout=log,
                                    stderr=log)
    try:
        for s in "ab":
            while not ((cli(s, "device", "list") or {}).get("node") or {}).get("listen"):
                time.sleep(0.1)
        for s, o in (("a", "b"), ("b", "a")):
            cli(s, "device", "add", ids[o], "--name", o, "--addr", f"127.0.0.1:{ports[o]}")
        share = cli("a", "share", src, "--with", "b")["share"]["id"]
        while not any(o.get("share") == share for o in cli("b", "share", "list").get("offers", [])):
            time.sleep(0.1)
        size = os.path.getsize(src_file)
        t0 = time.monotonic()
        cli("b", "accept", share, dst)
        target = os.path.join(dst, "big.txt")
        while not (os.path.exists(target) and os.path.getsize(target) == size):
            time.sleep(0.02)
        took = time.monotonic() - t0
        row = [r for r in cli("a", "device", "list")["devices"] if r["id"] == ids["b"]][0]
        t = row.get("transfer") or {}
        rss = {}
        for s in "ab":
            with open(f"/proc/{procs[s].pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM"):
                        rss[s] = int(line.split()[1]) // 1024
        return took, t.get("sent_wire_bytes"), t.get("sent_bytes"), t.get("compressing"), rss
    finally:
        for p in procs.values():
            p.terminate()
            p.wait()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ferry", default="target/release/ferry")
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--modes", default="auto,always,raw")
    p.add_argument("--sparse-gib", type=int,
                   help="instead: a sparse file of this apparent size (zeros and 16 "
                        "written 1 MiB ranges), to see memory against size")
    a = p.parse_args()
    ferry = os.path.abspath(a.ferry)
    with tempfile.TemporaryDirectory() as tmp:
        src_file = os.path.join(tmp, "big.txt")
        if a.sparse_gib:
            a.mib = a.sparse_gib << 10
            with open(src_file, "wb") as f:
                f.truncate(a.mib << 20)
                rnd = random.Random(2)
                for i in range(16):
                    f.seek(rnd.randrange(a.mib) << 20)
                    f.write(rnd.randbytes(1 << 20))
            print(f"sparse file of {a.sparse_gib} GiB apparent size, loopback")
        else:
            text_file(src_file, a.mib, 1)
            print(f"{a.mib} MiB of log lines, loopback")
        port = 42100
        for i in range(a.runs):
            for mode in a.modes.split(","):
                base = tempfile.mkdtemp(dir=tmp)
                took, wire, raw, on, rss = run(ferry, src_file, mode, base, port)
                port += 2
                mbps = a.mib / took
                print(f"run {i + 1} {mode:6} {took:7.2f} s {mbps:7.1f} MiB/s  wire {wire} of {raw} "
                      f"bytes  compressing at the end: {on}  RSS A {rss['a']} / B {rss['b']} MiB",
                      flush=True)
                if mode == "auto" and i == 0:
                    log = open(os.path.join(base, "a", "home", "daemon.log")).read()
                    for line in log.splitlines():
                        if "compression turned" in line:
                            print("   ", line[-220:])
                shutil.rmtree(base)


if __name__ == "__main__":
    main()
