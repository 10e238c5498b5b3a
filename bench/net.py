#!/usr/bin/env python3
"""Network benchmark: ferry device-to-device sync against an rsync daemon and
two Syncthing instances, side by side, on loopback and on a shaped link.

    sudo python3 bench/net.py [--ferry PATH] [--links loopback,shaped]
                              [--tools ferry,rsync,syncthing] [--scenarios ...]
                              [--runs N] [--full] [--json OUT] [--workdir DIR]

Needs root (network namespaces, TUN devices), iproute2, rsync, syncthing, curl
and GNU time (Debian: `apt-get install -y rsync syncthing curl iproute2 time`),
and ferry built with `--features net`.

Links (each side runs in a network namespace, so the wire counters hold only
what the tools send; nothing else on the machine shares them):
  loopback  one namespace `fbn-lo`, both sides on 127.0.0.1 (different ports);
            bytes on the wire = tx_bytes of that namespace's `lo`
  shaped    namespaces `fbn-a` (10.77.0.1) and `fbn-b` (10.77.0.2) joined by a
            TUN pair that bench/linkemu.py forwards between with --netem's
            delay, loss and rate each way (default `delay 50ms loss 1% rate
            100mbit`, so 100 ms RTT) -- `tc ... netem` in user space, because
            this machine's kernel has no sch_netem; bytes on the wire =
            tx_bytes of both TUN ends (what each side sent, lost packets too)
            Its tree is --shaped-tree (default 200 files, 4 MiB + 8 MiB):
            ferry takes minutes for that at 100 ms RTT.
Namespaces are deleted on exit, also on Ctrl-C / SIGTERM (and stale ones from an
earlier run are deleted at start).

Tools (side A holds the generated tree and sends; side B receives):
  ferry      `ferry daemon --listen IP:PORT` per side (own FERRY_HOME), each
             `ferry device add`s the other with --addr; initial = `ferry share SRC
             --with b` on A then `ferry accept SHARE DST` on B as soon as the offer
             shows; later changes are picked up by A's watcher and pushed (nothing
             is triggered); no-op = `POST /api/conduits/ID/sync` on both daemons,
             timed until both daemons' logs show that run's end
             (`conduit N (api): ...`; a run that changes nothing adds no
             history row)
  rsync      `rsync --daemon` on B (module with DST), client on A:
             `rsync -a --delete SRC/ rsync://B:PORT/bench/` (delta transfer on)
  syncthing  two `syncthing serve` instances (own --home, generated config,
             discovery/relays/NAT/usage reporting off, tcp listen address on the
             link, low priority off), each with the other as a device (only A has
             B's address: dialling both ways at 100 ms RTT made crossing SYNs); initial =
             the folder added through the REST API on both (sendreceive, watcher
             off); after a mutation the harness asks A to rescan
             (`POST /rest/db/scan`, which returns once the scan is done);
             no-op = that rescan on both sides
Each tool gets its own copy of the source tree (same seed, same mutations in
the same order), and tools run one after another, never at the same time.

Time of a scenario: from the start (the share/folder command, the rsync client,
or the end of the mutation for daemon tools) until B's tree matches: for
`initial` every path's type, size and mtime second, for mutations the touched
paths' (polled; rsync's time is its client's). Then, untimed, B's whole tree is
compared with A's (paths, types, sizes, SHA-256): a tool that does not deliver
within --timeout, or delivers something else, is a failure, not a time; its
later scenarios on that link are skipped. Bytes on the wire are the link
counters' difference from the start to one second after delivery (so trailing
index updates count; the harness's own few control requests are on the link
too, about 1 KB each). Peak RSS per side is VmHWM of the daemons at the end
of the link's session (GNU time %M for rsync's daemon and its forked
per-connection children; for the rsync client the largest of its runs).
"""

import argparse
import atexit
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

sys.dont_write_bytecode = True   # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_tree  # noqa: E402
import mutate    # noqa: E402
from run import (TIME_BIN, describe, differences, machine_info,  # noqa: E402
                 machine_line, read_maxrss, tool_version)

MIB = gen_tree.MIB
SCENARIOS = ("initial", "noop", "edit10", "overwrite-middle", "insert-start")
TOOLS = ("ferry", "rsync", "syncthing")
LINKS = ("loopback", "shaped")
IGNORE = {".ferry", ".stfolder", ".stversions", ".stignore"}
DEFAULT_NETEM = "delay 50ms loss 1% rate 100mbit"


class BenchError(Exception):
    """A tool failed to deliver (or to start): recorded, the tool's link session ends."""


# ----------------------------------------------------------------------------
# processes and cleanup

STARTED = []        # Popen objects of long-running children we started
NAMESPACES = []     # namespaces we created


def sh(argv, check=True, timeout=120, env=None, capture=True):
    try:
        r = subprocess.run(argv, capture_output=capture, text=True, timeout=timeout,
                           env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BenchError(f"$ {' '.join(argv)}\nstill running after {timeout} s") from None
    if check and r.returncode != 0:
        raise BenchError(f"$ {' '.join(argv)}\nexit {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def spawn(argv, log_path, env=None):
    log = open(log_path, "ab")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT, env=env)
    log.close()
    STARTED.append(p)
    return p


def stop(p, timeout=20):
    """SIGTERM one child we started (by its pid), SIGKILL after timeout."""
    if p is None or p.poll() is not None:
        return
    try:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def cleanup():
    for p in reversed(STARTED):
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=10)
            except Exception:
                pass
    STARTED.clear()
    for ns in list(NAMESPACES):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        NAMESPACES.remove(ns)


def on_signal(signum, _frame):
    cleanup()
    sys.exit(128 + signum)


def vmhwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


# ----------------------------------------------------------------------------
# links

class Link:
    name = ""
    ns_a = ns_b = ip_a = ip_b = ""

    def ex(self, side):
        return ["ip", "netns", "exec", self.ns_a if side == "a" else self.ns_b]

    def add_ns(self, ns):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # stale
        sh(["ip", "netns", "add", ns])
        NAMESPACES.append(ns)
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])

    def counter(self, ns, dev):
        r = sh(["ip", "netns", "exec", ns, "cat",
                f"/sys/class/net/{dev}/statistics/tx_bytes"])
        return int(r.stdout.strip())

    def teardown(self):
        for ns in {self.ns_a, self.ns_b}:
            if ns in NAMESPACES:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
                NAMESPACES.remove(ns)


class Loopback(Link):
    name = "loopback"
    ns_a = ns_b = "fbn-lo"
    ip_a = ip_b = "127.0.0.1"
    description = "one network namespace, both sides on 127.0.0.1 (lo, MTU 65536)"

    def setup(self):
        self.add_ns(self.ns_a)

    def wire_bytes(self):
        return self.counter(self.ns_a, "lo")


class Shaped(Link):
    """Two namespaces joined by bench/linkemu.py's TUN pair (netem in user space)."""
    name = "shaped"
    ns_a, ns_b = "fbn-a", "fbn-b"
    ip_a, ip_b = "10.77.0.1", "10.77.0.2"
    dev_a, dev_b = "fbn-ta", "fbn-tb"

    def __init__(self, netem):
        self.netem = netem
        self.emu_args = parse_netem(netem)
        self.description = (f"two namespaces joined by bench/linkemu.py (TUN pair, "
                            f"MTU 1500), `{netem}` each way")
        self.emu = None

    def setup(self):
        self.add_ns(self.ns_a)
        self.add_ns(self.ns_b)
        here = os.path.dirname(os.path.abspath(__file__))
        self.emu = subprocess.Popen(
            [sys.executable, os.path.join(here, "linkemu.py"), self.dev_a, self.dev_b,
             *self.emu_args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        STARTED.append(self.emu)
        if self.emu.stdout.readline().strip() != "ready":
            raise BenchError(f"linkemu.py did not start: {self.emu.stderr.read()}")
        for ns, dev, ip, peer in ((self.ns_a, self.dev_a, self.ip_a, self.ip_b),
                                  (self.ns_b, self.dev_b, self.ip_b, self.ip_a)):
            sh(["ip", "link", "set", "dev", dev, "netns", ns])
            sh(["ip", "-n", ns, "addr", "add", ip, "peer", peer, "dev", dev])
            sh(["ip", "-n", ns, "link", "set", dev, "mtu", "1500", "up"])
        probe = ("import socket,time,statistics\nts=[]\nfor _ in range(5):\n"
                 " s=socket.socket();t=time.perf_counter()\n"
                 f" try: s.connect(('{self.ip_b}',9))\n except OSError: pass\n"
                 " ts.append(time.perf_counter()-t);s.close()\n"
                 "print(round(statistics.median(ts)*1000,1))")
        r = sh(["ip", "netns", "exec", self.ns_a, sys.executable, "-c", probe],
               check=False)
        self.description += (f"; TCP connect (one RTT, median of 5): "
                             f"{r.stdout.strip() or '?'} ms")

    def wire_bytes(self):
        return self.counter(self.ns_a, self.dev_a) + self.counter(self.ns_b, self.dev_b)

    def teardown(self):
        super().teardown()
        if self.emu is not None:
            stop(self.emu)
            self.stats = (self.emu.stderr.read() or "").strip()


def parse_netem(spec):
    """`delay 50ms loss 1% rate 100mbit` -> linkemu.py options."""
    words = spec.split()
    out = []
    units = {"kbit": 1e-3, "mbit": 1.0, "gbit": 1e3}
    for key, val in zip(words[::2], words[1::2]):
        if key == "delay":
            out += ["--delay-ms", str(float(val.removesuffix("ms")))]
        elif key == "loss":
            out += ["--loss-pct", str(float(val.removesuffix("%")))]
        elif key == "rate":
            m = re.fullmatch(r"([\d.]+)(kbit|mbit|gbit)", val)
            if not m:
                raise SystemExit(f"--netem: rate {val!r}: use e.g. 100mbit")
            out += ["--rate-mbit", str(float(m[1]) * units[m[2]])]
        elif key == "limit":
            out += ["--limit", val]
        else:
            raise SystemExit(f"--netem: unknown {key!r} (delay, loss, rate, limit)")
    return out


# ----------------------------------------------------------------------------
# tree checks

def stat_entry(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if os.path.islink(path):
        return ("symlink",)
    if os.path.isdir(path):
        return ("dir",)
    return ("file", st.st_size, int(st.st_mtime))


def stat_tree(root):
    out = {}
    for d, dirs, files in os.walk(root):
        if d == root:
            dirs[:] = [x for x in dirs if x not in IGNORE]
            files = [x for x in files if x not in IGNORE]
        for name in dirs + files:
            full = os.path.join(d, name)
            e = stat_entry(full)
            if e is not None:
                out[os.path.relpath(full, root)] = e
    return out


def manifest(root):
    out = {}
    for d, dirs, files in os.walk(root):
        if d == root:
            dirs[:] = [x for x in dirs if x not in IGNORE]
            files = [x for x in files if x not in IGNORE]
        for name in dirs + files:
            full = os.path.join(d, name)
            out[os.path.relpath(full, root)] = describe(full)
    return out


# ----------------------------------------------------------------------------
# tools

class NetTool:
    name = ""

    def __init__(self, bench, link):
        self.b = bench
        self.link = link
        self.base = os.path.join(bench.work, link.name, self.name)
        self.src = os.path.join(self.base, "a", "src")
        self.dst = os.path.join(self.base, "b", "dst")
        self.logs = []
        self.rss = {"a": 0, "b": 0}

    def ex(self, side):
        return self.link.ex(side)

    def ip(self, side):
        return self.link.ip_a if side == "a" else self.link.ip_b

    # blocking tools (rsync) deliver before kick() returns; daemons are polled
    def start(self):
        pass

    def kick_initial(self):
        raise NotImplementedError

    def kick_change(self):
        pass

    def noop(self):
        raise NotImplementedError

    def finish(self):
        pass

    def log_tail(self, n=40):
        out = []
        for p in self.logs:
            try:
                with open(p, errors="replace") as f:
                    lines = f.read().splitlines()
                out.append(f"--- {p} (last {n} lines)")
                out += lines[-n:]
            except OSError:
                pass
        return "\n".join(out)


class Rsync(NetTool):
    name = "rsync"
    PORT = 41873

    def start(self):
        bdir = os.path.join(self.base, "b")
        os.makedirs(self.dst, exist_ok=True)
        conf = os.path.join(bdir, "rsyncd.conf")
        self.log = os.path.join(bdir, "rsyncd.log")
        with open(conf, "w") as f:
            f.write(f"port = {self.PORT}\naddress = {self.ip('b')}\nuse chroot = false\n"
                    f"log file = {self.log}\n\n[bench]\n    path = {self.dst}\n"
                    "    read only = false\n    uid = 0\n    gid = 0\n")
        self.logs = [self.log]
        self.rss_file = os.path.join(bdir, "daemon.rss")
        self.proc = spawn([*self.ex("b"), TIME_BIN, "-f", "%M", "-o", self.rss_file,
                           "rsync", "--daemon", "--no-detach", f"--config={conf}"],
                          os.path.join(bdir, "daemon.out"))
        deadline = time.time() + 30
        while True:
            r = sh([*self.ex("a"), "rsync", f"rsync://{self.ip('b')}:{self.PORT}/"],
                   check=False)
            if r.returncode == 0:
                break
            if time.time() > deadline:
                raise BenchError(f"rsync daemon did not answer: {r.stderr}")
            time.sleep(0.1)

    def client(self):
        with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
            r = sh([*self.ex("a"), TIME_BIN, "-f", "%M", "-o", rss.name, "rsync", "-a",
                    "--delete", self.src + "/",
                    f"rsync://{self.ip('b')}:{self.PORT}/bench/"],
                   check=False, timeout=self.b.args.timeout)
            self.rss["a"] = max(self.rss["a"], read_maxrss(rss))
        if r.returncode != 0:
            raise BenchError(f"rsync client exited {r.returncode}: {r.stdout}{r.stderr}")

    kick_initial = kick_change = noop = client

    def finish(self):
        kids = children(self.proc.pid)    # time -> ip netns exec'ed rsync
        for k in kids:
            try:
                os.kill(k, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            with open(self.rss_file) as f:
                self.rss["b"] = read_maxrss(f)
        except OSError:
            pass


class Ferry(NetTool):
    name = "ferry"
    PORTS = {"a": 41001, "b": 41002}

    def home(self, side):
        return os.path.join(self.base, side, "home")

    def cli(self, side, *args, check=True):
        env = dict(os.environ, FERRY_HOME=self.home(side))
        r = sh([*self.ex(side), self.b.ferry, *args, "--json"], check=check, env=env)
        return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else None

    def start(self):
        self.procs = {}
        self.ids = {}
        for side in "ab":
            os.makedirs(self.home(side), exist_ok=True)
            self.ids[side] = self.cli(side, "device", "id")["device_id"]
        for side in "ab":
            log = os.path.join(self.home(side), "daemon.log")
            self.logs.append(log)
            env = dict(os.environ, FERRY_HOME=self.home(side),
                       RUST_LOG=os.environ.get("RUST_LOG", "info"))
            self.procs[side] = spawn(
                [*self.ex(side), self.b.ferry, "daemon", "--listen",
                 f"{self.ip(side)}:{self.PORTS[side]}"], log, env=env)
        for side in "ab":
            wait(lambda s=side: ((self.cli(s, "device", "list", check=False) or {})
                                 .get("node") or {}).get("listen"),
                 f"ferry daemon {side}", 60, self)
        for side, other in (("a", "b"), ("b", "a")):
            self.cli(side, "device", "add", self.ids[other], "--name", other,
                     "--addr", f"{self.ip(other)}:{self.PORTS[other]}")

        def connected(side, other):
            rows = (self.cli(side, "device", "list", check=False) or {}).get("devices", [])
            return any(r.get("id") == self.ids[other] and r.get("connected") for r in rows)
        wait(lambda: connected("a", "b") and connected("b", "a"),
             "the two ferry daemons connected", 120, self)

    def kick_initial(self):
        self.share = self.cli("a", "share", self.src, "--with", "b")["share"]["id"]

        def offered():
            got = self.cli("b", "share", "list", check=False) or {}
            return any(o.get("share") == self.share for o in got.get("offers", []))
        wait(offered, "the share offer on B", 120, self)
        self.cli("b", "accept", self.share, self.dst)

    def conduit(self, side):
        for s in self.cli(side, "share", "list")["shares"]:
            if s["id"] == self.share:
                return s["members"][0]["conduit"]
        raise BenchError(f"share {self.share} not listed on {side}")

    def api(self, side, method, path):
        with open(os.path.join(self.home(side), "daemon.json")) as f:
            port = json.load(f)["port"]
        with open(os.path.join(self.home(side), "api-token")) as f:
            token = f.read().strip()
        r = sh([*self.ex(side), "curl", "-sS", "-m", "60", "-X", method, "-H",
                f"Authorization: Bearer {token}", f"http://127.0.0.1:{port}{path}"])
        return json.loads(r.stdout)

    def api_runs(self, side):
        """Runs of the share's conduit asked through the API that this daemon has
        finished: its log says `conduit N (api): ...` at the end of each (a run that
        changes nothing writes no history row, so the log is the signal)."""
        pat = f"conduit {self.conduits[side]} (api): "
        with open(os.path.join(self.home(side), "daemon.log"), errors="replace") as f:
            return f.read().count(pat)

    def prepare_noop(self):
        self.conduits = {s: self.conduit(s) for s in "ab"}
        self.before = {s: self.api_runs(s) for s in "ab"}

    def noop(self):
        for side in "ab":
            self.api(side, "POST", f"/api/conduits/{self.conduits[side]}/sync")
        wait(lambda: all(self.api_runs(s) > self.before[s] for s in "ab"),
             "both ferry daemons finishing the run asked for", self.b.args.timeout,
             self, interval=0.01)

    def finish(self):
        for side in "ab":
            p = self.procs.get(side)
            if p:
                self.rss[side] = vmhwm_kib(p.pid)
                stop(p)
                if p.returncode not in (0, None):
                    self.b.log(f"  ferry daemon {side} exited {p.returncode}")


class Syncthing(NetTool):
    name = "syncthing"
    PORTS = {"a": 41021, "b": 41022}
    GUI = {"a": 41031, "b": 41032}
    KEY = "ferrybench-netbench-key"
    FOLDER = "bench"

    def home(self, side):
        return os.path.join(self.base, side, "st")

    def rest(self, side, method, path, body=None, timeout=None):
        argv = [*self.ex(side), "curl", "-sS", "-f", "-m",
                str(int(timeout or self.b.args.timeout)), "-X", method,
                "-H", f"X-API-Key: {self.KEY}",
                f"http://{self.ip(side)}:{self.GUI[side]}{path}"]
        if body is not None:
            argv[-1:-1] = ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
        r = sh(argv, timeout=(timeout or self.b.args.timeout) + 10)
        return json.loads(r.stdout) if r.stdout.strip() else None

    def start(self):
        self.ids, self.procs = {}, {}
        for side in "ab":
            h = self.home(side)
            r = sh(["syncthing", "generate", "--home", h, "--no-default-folder",
                    "--skip-port-probing"])
            m = re.search(r"Device ID:\s*(\S+)", r.stdout + r.stderr)
            self.ids[side] = m.group(1)
        for side, other in (("a", "b"), ("b", "a")):
            self.write_config(side, other)
        for side in "ab":
            log = os.path.join(self.home(side), "syncthing.log")
            self.logs.append(log)
            env = dict(os.environ, STNODEFAULTFOLDER="1", STNOUPGRADE="1",
                       STNORESTART="1")
            self.procs[side] = spawn(
                [*self.ex(side), "syncthing", "serve", "--home", self.home(side),
                 "--no-browser", "--no-restart", "--no-upgrade"], log, env=env)

        def up(side):
            try:
                return self.rest(side, "GET", "/rest/system/ping", timeout=5)
            except BenchError:
                return False
        for side in "ab":
            wait(lambda s=side: up(s), f"syncthing {side} API", 60, self)

        def connected(side, other):
            c = self.rest(side, "GET", "/rest/system/connections", timeout=5)
            return c["connections"].get(self.ids[other], {}).get("connected")
        wait(lambda: connected("a", "b") and connected("b", "a"),
             "the two syncthing instances connected", 120, self)

    def write_config(self, side, other):
        path = os.path.join(self.home(side), "config.xml")
        tree = ET.parse(path)
        root = tree.getroot()
        gui = root.find("gui")
        gui.find("address").text = f"{self.ip(side)}:{self.GUI[side]}"
        gui.find("apikey").text = self.KEY
        opts = root.find("options")
        for el in opts.findall("listenAddress"):
            opts.remove(el)
        la = ET.SubElement(opts, "listenAddress")
        la.text = f"tcp://{self.ip(side)}:{self.PORTS[side]}"
        for k, v in (("globalAnnounceEnabled", "false"), ("localAnnounceEnabled", "false"),
                     ("relaysEnabled", "false"), ("natEnabled", "false"),
                     ("urAccepted", "-1"), ("autoUpgradeIntervalH", "0"),
                     ("startBrowser", "false"), ("setLowPriority", "false"),
                     ("crashReportingEnabled", "false")):
            el = opts.find(k)
            if el is None:
                el = ET.SubElement(opts, k)
            el.text = v
        me = next(d for d in root.findall("device") if d.get("id") == self.ids[side])
        peer = ET.fromstring(ET.tostring(me))
        peer.set("id", self.ids[other])
        peer.set("name", other)
        # Only A dials: both dial from their listening port (SO_REUSEPORT), so with
        # 100 ms of RTT the two SYNs cross and TCP's simultaneous open makes one
        # connection in which both sides send a TLS ClientHello (seen here:
        # "tls: received unexpected handshake message of type *tls.clientHelloMsg").
        peer.find("address").text = (f"tcp://{self.ip(other)}:{self.PORTS[other]}"
                                     if side == "a" else "dynamic")
        root.insert(list(root).index(me) + 1, peer)
        me.set("name", side)
        tree.write(path)

    def add_folder(self, side, path):
        os.makedirs(path, exist_ok=True)
        self.rest(side, "POST", "/rest/config/folders", {
            "id": self.FOLDER, "label": self.FOLDER, "path": path,
            "type": "sendreceive", "rescanIntervalS": 3600, "fsWatcherEnabled": False,
            "devices": [{"deviceID": self.ids["a"]}, {"deviceID": self.ids["b"]}]})

    def kick_initial(self):
        self.add_folder("a", self.src)
        self.add_folder("b", self.dst)

    def scan(self, side):
        self.rest(side, "POST", f"/rest/db/scan?folder={self.FOLDER}")

    def kick_change(self):
        self.scan("a")

    def noop(self):
        threads = [threading.Thread(target=self.scan, args=(s,)) for s in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        def idle(side):
            st = self.rest(side, "GET", f"/rest/db/status?folder={self.FOLDER}", timeout=10)
            return st.get("state") == "idle" and st.get("needTotalItems", 0) == 0
        wait(lambda: idle("a") and idle("b"), "both syncthing sides idle",
             self.b.args.timeout, self)

    def finish(self):
        for side in "ab":
            p = self.procs.get(side)
            if p:
                self.rss[side] = max([vmhwm_kib(p.pid)] +
                                     [vmhwm_kib(c) for c in children(p.pid)])
                stop(p)


def wait(cond, what, timeout, tool=None, interval=0.05):
    t0 = time.time()
    while True:
        try:
            if cond():
                return
        except (BenchError, ValueError, KeyError, TypeError, AttributeError, OSError):
            pass   # not up yet: a refused request, a half-written file, no field yet
        if time.time() - t0 > timeout:
            extra = ("\n" + tool.log_tail()) if tool else ""
            raise BenchError(f"gave up after {timeout} s waiting for {what}{extra}")
        time.sleep(interval)


# ----------------------------------------------------------------------------
# the benchmark

class Bench:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.ferry = os.path.abspath(args.ferry)
        self.results = {}   # link -> tool -> scenario -> [dict]
        self.failures = []  # (link, tool, scenario, message)
        self.trees = {}     # link -> tree stats
        self.link_desc = {}

    def log(self, msg):
        print(msg, file=sys.stderr, flush=True)

    def tree_shape(self, link):
        a = self.args
        if link.name == "shaped" and a.shaped_tree != "same":
            f, t, l = a.shaped_tree.split(",")
            return int(f), float(t), int(l)
        return a.files, a.total_mib, a.large_mib

    def make_link(self, name):
        return Loopback() if name == "loopback" else Shaped(self.args.netem)

    def run(self):
        for lname in self.args.links:
            link = self.make_link(lname)
            self.log(f"link {lname}: {link.description}")
            try:
                link.setup()
                self.link_desc[lname] = link.description
                self.log(f"  {link.description}")
                for tname in self.args.tools:
                    tool = {"ferry": Ferry, "rsync": Rsync,
                            "syncthing": Syncthing}[tname](self, link)
                    self.run_tool(link, tool)
                    if not self.args.keep:
                        shutil.rmtree(tool.base, ignore_errors=True)
            finally:
                link.teardown()

    def run_tool(self, link, tool):
        a = self.args
        res = self.results.setdefault(link.name, {}).setdefault(tool.name, {})
        os.makedirs(os.path.dirname(tool.src), exist_ok=True)
        os.makedirs(os.path.dirname(tool.dst), exist_ok=True)
        files, total_mib, large_mib = self.tree_shape(link)
        st = gen_tree.generate(tool.src, a.seed, files, total_mib, large_mib)
        self.trees[link.name] = dict(st, large_mib=large_mib)
        touched_at = time.time()
        self.log(f"  {tool.name}: tree {st['files']} files, "
                 f"{st['total_bytes'] / MIB:.1f} MiB")
        rounds = 0
        scenario = "start"
        try:
            tool.start()
            for scenario in a.scenarios:
                if scenario == "initial":
                    res["initial"] = [self.measure(link, tool, "initial", None)]
                    continue
                for _ in range(a.runs):
                    if scenario == "noop":
                        if hasattr(tool, "prepare_noop"):
                            tool.prepare_noop()
                        m = self.measure(link, tool, "noop", None)
                    else:
                        rounds += 1
                        delay = int(touched_at) + 1 - time.time()
                        if delay > 0:
                            time.sleep(delay + 0.01)
                        touched = mutate.mutate(scenario, tool.src, a.seed, rounds)
                        touched_at = time.time()
                        m = self.measure(link, tool, scenario, touched)
                    res.setdefault(scenario, []).append(m)
        except BenchError as e:
            msg = str(e)
            self.failures.append((link.name, tool.name, scenario, msg))
            res.setdefault("failed", []).append(scenario)   # runs before it stay
            self.log(f"  FAILED {link.name}/{tool.name}/{scenario}:\n{msg}")
        finally:
            try:
                tool.finish()
            except Exception as e:  # noqa: BLE001 - report, keep cleaning up
                self.log(f"  stopping {tool.name}: {e}")
            res["rss_kib"] = dict(tool.rss)
            if self.args.keep_logs:
                keep = os.path.join(self.args.keep_logs, link.name, tool.name)
                os.makedirs(keep, exist_ok=True)
                for p in tool.logs:
                    if os.path.exists(p):
                        shutil.copy(p, os.path.join(keep, os.path.basename(
                            os.path.dirname(os.path.dirname(p))) + "-" +
                            os.path.basename(p)))

    def measure(self, link, tool, scenario, touched):
        timeout = self.args.timeout
        if scenario == "initial":
            want = stat_tree(tool.src)
        elif touched is not None:
            want = {p: stat_entry(os.path.join(tool.src, p)) for p in touched}
        os.sync()
        w0 = link.wire_bytes()
        t0 = time.perf_counter()
        if scenario == "initial":
            tool.kick_initial()
        elif scenario == "noop":
            tool.noop()
        else:
            tool.kick_change()
        if scenario != "noop":
            self.wait_delivered(tool, scenario, want, touched, t0, timeout)
        seconds = time.perf_counter() - t0
        time.sleep(1.0)
        wire = link.wire_bytes() - w0
        self.verify(tool, scenario)
        self.log(f"  [{link.name}] {scenario:<16} {tool.name:<9} {seconds:8.3f} s "
                 f"{wire / 1e6:10.3f} MB on the wire")
        return {"seconds": seconds, "wire_bytes": wire}

    def wait_delivered(self, tool, scenario, want, touched, t0, timeout):
        interval = 0.02
        # For the whole tree, stat a sample (every 50th path and big.bin) first and
        # walk everything only once the sample is there: a walk of 20,000 files each
        # poll would take CPU from the daemons being timed.
        sample = sorted(want)[::50] + [gen_tree.BIG_NAME] if touched is None else []
        sample = [p for p in sample if p in want]
        while True:
            c0 = time.perf_counter()
            if touched is None:
                if any(stat_entry(os.path.join(tool.dst, p)) != want[p] for p in sample):
                    got = None
                else:
                    got = stat_tree(tool.dst)
            else:
                got = {p: stat_entry(os.path.join(tool.dst, p)) for p in touched}
            if got == want:
                return
            spent = time.perf_counter() - c0
            if time.perf_counter() - t0 > timeout:
                if got is None:
                    got = stat_tree(tool.dst)
                diff = [f"  {p}: A {want.get(p)}, B {got.get(p)}"
                        for p in sorted(want.keys() | got.keys())
                        if want.get(p) != got.get(p)][:10]
                raise BenchError(f"{tool.name} did not deliver '{scenario}' within "
                                 f"{timeout} s; still different (type, size, mtime):\n"
                                 + "\n".join(diff) + "\n" + tool.log_tail())
            time.sleep(max(interval, 2 * spent))

    def verify(self, tool, scenario):
        want, got = manifest(tool.src), manifest(tool.dst)
        diff = differences(want, got)
        if diff:
            raise BenchError(f"{tool.name} left B's tree different from A's after "
                             f"'{scenario}':\n" + "\n".join(diff) + "\n" + tool.log_tail())


# ----------------------------------------------------------------------------
# report

def cell(res, tool, scenario):
    r = res.get(tool, {}).get(scenario)
    if scenario in res.get(tool, {}).get("failed", []):
        return f"failed ({len(r or [])} delivered)"
    if r is None:
        return None
    return statistics.median(m["seconds"] for m in r), \
        statistics.median(m["wire_bytes"] for m in r)


def fmt_s(c):
    return "n/a" if c is None else c if isinstance(c, str) else f"{c[0]:.3f}"


def fmt_mb(c):
    return "n/a" if c is None else c if isinstance(c, str) else f"{c[1] / 1e6:.3f}"


def ratio(c, base):
    if not isinstance(c, tuple) or not isinstance(base, tuple) or base[0] <= 0:
        return "n/a"
    return f"{c[0] / base[0]:.2f}×"


def report(bench, info):
    a = bench.args
    lines = [f"Machine: {machine_line(info)}"]
    lines.append(f"Runs per change scenario: {a.runs} (median), initial once; seed {a.seed}")
    vers = {"ferry": tool_version([bench.ferry, "--version"]),
            "rsync": tool_version(["rsync", "--version"]),
            "syncthing": tool_version(["syncthing", "--version"])}
    lines.append("Versions: " + "; ".join(f"{k}: {v}" for k, v in vers.items()
                                          if k in a.tools))
    for lname, res in bench.results.items():
        desc = bench.link_desc.get(lname, lname)
        t = bench.trees.get(lname)
        tree = (f"Tree: {t['files']} files, {t['total_bytes'] / MIB:.1f} MiB "
                f"(big.bin {t['large_mib']} MiB)") if t else ""
        lines += ["", f"### {lname}: {desc}", "", tree, "",
                  "| scenario | ferry s | rsync s | syncthing s | ferry/rsync | "
                  "syncthing/rsync | ferry MB | rsync MB | syncthing MB |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in a.scenarios:
            cs = {t: cell(res, t, s) for t in TOOLS}
            lines.append(
                f"| {s} | {fmt_s(cs['ferry'])} | {fmt_s(cs['rsync'])} | "
                f"{fmt_s(cs['syncthing'])} | {ratio(cs['ferry'], cs['rsync'])} | "
                f"{ratio(cs['syncthing'], cs['rsync'])} | {fmt_mb(cs['ferry'])} | "
                f"{fmt_mb(cs['rsync'])} | {fmt_mb(cs['syncthing'])} |")
        rss = []
        for t in TOOLS:
            if t in res:
                r = res[t]["rss_kib"]
                rss.append(f"{t} A {r['a'] / 1024:.1f} / B {r['b'] / 1024:.1f}")
        lines += ["", "Peak RSS per side (MiB): " + "; ".join(rss)]
    if bench.failures:
        lines += ["", "Failures:"]
        for lname, tname, s, _msg in bench.failures:
            lines.append(f"- {lname} / {tname} / {s}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ferry", default="target/release/ferry",
                   help="ferry binary built with --features net")
    p.add_argument("--links", default=",".join(LINKS), help="loopback,shaped")
    p.add_argument("--tools", default=",".join(TOOLS), help="ferry,rsync,syncthing")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help="subset of " + ",".join(SCENARIOS))
    p.add_argument("--runs", type=int, default=3,
                   help="repetitions of each change scenario (initial runs once)")
    p.add_argument("--full", action="store_true",
                   help="the benchmark tree of run.py: 20,000 files, 400 MiB + 256 MiB")
    p.add_argument("--files", type=int, help="small files (default 2000)")
    p.add_argument("--total-mib", type=float, help="small files' MiB (default 40)")
    p.add_argument("--large-mib", type=int, help="big.bin MiB (default 32)")
    p.add_argument("--shaped-tree", default="200,4,8", metavar="FILES,MIB,LARGE_MIB",
                   help="tree of the shaped link (default 200 files, 4 MiB + 8 MiB "
                        "big.bin: ferry needs minutes for it at 100 ms RTT); "
                        "'same' = the loopback tree")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--netem", default=DEFAULT_NETEM,
                   help=f"netem arguments of the shaped link (default '{DEFAULT_NETEM}')")
    p.add_argument("--timeout", type=float, default=900,
                   help="seconds a scenario may take before it counts as failed")
    p.add_argument("--json", metavar="OUT", help="also write results as JSON")
    p.add_argument("--workdir", help="parent of the scratch dir (default /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the scratch dir")
    p.add_argument("--keep-logs", metavar="DIR",
                   help="copy every daemon's log here (per link and tool)")
    a = p.parse_args(argv)
    tree = (20_000, 400, 256) if a.full else (2_000, 40, 32)
    a.files = tree[0] if a.files is None else a.files
    a.total_mib = tree[1] if a.total_mib is None else a.total_mib
    a.large_mib = tree[2] if a.large_mib is None else a.large_mib
    for attr, allowed in (("links", LINKS), ("tools", TOOLS), ("scenarios", SCENARIOS)):
        vals = [x.strip() for x in getattr(a, attr).split(",") if x.strip()]
        bad = [x for x in vals if x not in allowed]
        if bad:
            p.error(f"--{attr}: unknown {bad}; choose from {list(allowed)}")
        setattr(a, attr, vals)
    if a.scenarios and a.scenarios[0] != "initial":
        p.error("--scenarios must start with initial (the others need a synced pair)")
    if a.large_mib < 2 and {"overwrite-middle", "insert-start"} & set(a.scenarios):
        p.error("overwrite-middle/insert-start need --large-mib >= 2")
    return a


def preflight(a):
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces)")
    for exe in ("ip", "tc", "curl") + (("rsync",) if "rsync" in a.tools else ()) \
            + (("syncthing",) if "syncthing" in a.tools else ()):
        if not shutil.which(exe):
            missing.append(exe)
    if not TIME_BIN:
        missing.append("/usr/bin/time (GNU time)")
    if "ferry" in a.tools and not os.access(a.ferry, os.X_OK):
        missing.append(f"ferry binary {a.ferry} (cargo build --release --features net "
                       "-p ferry-cli)")
    return missing


def main(argv=None):
    args = parse_args(argv)
    missing = preflight(args)
    if missing:
        print("ERROR: missing: " + ", ".join(missing), file=sys.stderr)
        return 2
    atexit.register(cleanup)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    parent = args.workdir or tempfile.gettempdir()
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix="ferry-netbench-", dir=parent)
    bench = Bench(args, work)
    info = machine_info(work)
    try:
        bench.run()
    finally:
        cleanup()
        if args.keep:
            print(f"scratch dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(report(bench, info), flush=True)
    if args.json:
        doc = {"machine": info, "config": vars(args), "trees": bench.trees,
               "results": bench.results,
               "failures": [{"link": l, "tool": t, "scenario": s, "message": m}
                            for l, t, s, m in bench.failures]}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2, ensure_ascii=False)
            f.write("\n")
    if bench.failures:
        for l, t, s, m in bench.failures:
            print(f"\nFAILED {l}/{t}/{s}:\n{m}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
