#!/usr/bin/env python3
"""A link emulator in user space: two TUN devices, and every IP packet between
them delayed, dropped and rate-limited as `tc qdisc ... netem delay D loss L
rate R` would on each end (kernels without sch_netem, such as this machine's,
have no other way). Used by bench/net.py for its `shaped` link.

    python3 bench/linkemu.py DEV_A DEV_B [--delay-ms 50] [--loss-pct 1]
                             [--rate-mbit 100] [--limit 1000] [--seed 1]

Creates TUN devices DEV_A and DEV_B (IFF_TUN, no packet info) in the current
network namespace, prints `ready` on stdout, then forwards until SIGTERM. The
caller moves the devices into their namespaces and gives them addresses
(`ip link set DEV netns NS`; the open file keeps working). Each direction is
its own link: a packet is dropped with probability --loss-pct, else it waits
for the line (serialised at --rate-mbit after the packets before it; tail
drop once --limit packets are queued, netem's default limit), then --delay-ms,
then it is written to the other device. Order within a direction is kept.
On exit it prints counters (packets forwarded, lost, tail-dropped) on stderr.
"""

import argparse
import fcntl
import heapq
import os
import random
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dev_a")
    p.add_argument("dev_b")
    p.add_argument("--delay-ms", type=float, default=50.0)
    p.add_argument("--loss-pct", type=float, default=1.0)
    p.add_argument("--rate-mbit", type=float, default=100.0)
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    fa, fb = open_tun(a.dev_a), open_tun(a.dev_b)
    other = {fa: fb, fb: fa}
    rng = random.Random(a.seed)
    loss = a.loss_pct / 100.0
    delay = a.delay_ms / 1000.0
    bps = a.rate_mbit * 1e6
    line_free = {fa: 0.0, fb: 0.0}        # when each direction's line is free
    on_line = {fa: [], fb: []}            # departure times of queued packets
    q = []                                # (due, seq, out_fd, packet)
    seq = 0
    stats = {"forwarded": 0, "lost": 0, "tail_dropped": 0}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    print("ready", flush=True)
    while not stop:
        now = time.monotonic()
        timeout = max(0.0, q[0][0] - now) if q else 0.5
        try:
            ready, _, _ = select.select([fa, fb], [], [], timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        for fd in ready:
            queued = on_line[fd]
            while queued and queued[0] <= now:
                heapq.heappop(queued)
            for _ in range(256):
                try:
                    pkt = os.read(fd, 65536)
                except (BlockingIOError, InterruptedError):
                    break
                if rng.random() < loss:
                    stats["lost"] += 1
                    continue
                if len(queued) >= a.limit:
                    stats["tail_dropped"] += 1
                    continue
                depart = max(now, line_free[fd]) + len(pkt) * 8 / bps
                line_free[fd] = depart
                heapq.heappush(queued, depart)
                heapq.heappush(q, (depart + delay, seq, other[fd], pkt))
                seq += 1
        now = time.monotonic()
        while q and q[0][0] <= now:
            _, _, out, pkt = heapq.heappop(q)
            try:
                os.write(out, pkt)
                stats["forwarded"] += 1
            except OSError:
                pass
    print(" ".join(f"{k}={v}" for k, v in stats.items()), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
