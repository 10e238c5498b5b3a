#!/usr/bin/env python3
"""Benchmark harness: ferry against cp, rsync and unison on generated trees.

    python3 bench/run.py [--ferry PATH] [--scenarios a,b,c] [--runs N]
                         [--smoke] [--json OUT] [--workdir DIR] [--keep]

Generates a seeded tree with gen_tree.py, then for every scenario runs each
installed tool against its own destination copy, alternating the tools (the
order rotates every run), and prints median wall-clock seconds plus ferry's
ratio to each anchor as a Markdown table.  After every sync the destination is
compared with the source (relative paths, file sizes and SHA-256 of contents);
any difference, and any tool exiting non-zero, stops the run with exit code 1.
A tool that is not installed is reported as "missing"; in --smoke mode a
missing ferry binary is an error (exit 2), so CI catches it.

Tools (each with a private state directory under the work dir):
  ferry   FERRY_HOME=<tmp> ferry sync SRC DST --yes   (scan DIR for `million`)
  rsync   rsync -a --delete SRC/ DST/
  unison  UNISON=<tmp> unison SRC DST -batch -auto -silent
  cp      cp -a SRC DST                                (initial only)

Bytes read/written: the harness reads its own /proc/self/io before and after
each child.  When a process reaps a child the kernel adds the child's I/O
counters (including its own reaped descendants, e.g. rsync's receiver and
generator) to the parent's, so the difference is the tool's I/O.  rchar/wchar
count bytes passed through read()/write()-style calls, pipes included (so
rsync's sender->receiver pipe counts on both sides), but not mmap'd reads;
write_bytes counts bytes dirtied for storage.  Peak memory is GNU time's %M
(/usr/bin/time wraps every child; ~1 ms, the same for every tool): the
largest resident set of any single process of the tool's tree.  All timings
are warm-cache: the page cache is not dropped between runs (that needs root
and a quiet machine, and is not reliable in containers/CI), but sync(2) is
called before each child so earlier writes are flushed outside the timing.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

sys.dont_write_bytecode = True   # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_tree  # noqa: E402
import mutate    # noqa: E402

MIB = gen_tree.MIB
MUTATIONS = ("edit10", "overwrite-middle", "insert-start", "rename-dir")
SCENARIOS = ("initial", "noop") + MUTATIONS + ("million",)
TOOL_ORDER = ("ferry", "rsync", "unison", "cp")
ANCHORS = ("rsync", "unison", "cp")
IO_ROWS = ("overwrite-middle", "insert-start")
MILLION_SCAN = "million: initial scan"
MILLION_RESCAN = "million: no-op rescan"
ROW_ORDER = ("initial", "noop") + MUTATIONS + (MILLION_SCAN, MILLION_RESCAN)
TIME_BIN = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


class BenchError(Exception):
    """A tool failed or left a wrong destination: print and exit non-zero."""


@dataclass
class Measurement:
    """One timed child process."""
    seconds: float
    rchar: int
    wchar: int
    read_bytes: int
    write_bytes: int
    maxrss_kib: int


# ----------------------------------------------------------------------------
# arguments

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ferry", default="target/release/ferry",
                   help="ferry binary (default target/release/ferry)")
    p.add_argument("--scenarios", help="comma list from: " + ",".join(SCENARIOS))
    p.add_argument("--runs", type=int, help="repetitions per tool (default 3)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny tree, 1 run, no million; fails if ferry is missing")
    p.add_argument("--json", metavar="OUT", help="also write results as JSON")
    p.add_argument("--workdir", help="parent for the scratch dir (default /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the scratch dir")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--files", type=int, help="small files (default 20000)")
    p.add_argument("--total-mib", type=float, help="small files' MiB (default 400)")
    p.add_argument("--large-mib", type=int, help="big.bin MiB (default 256)")
    p.add_argument("--million-files", type=int, default=1_000_000,
                   help="file count of the million scenario (~1 KiB each)")
    p.add_argument("--verify-ignore", action="append", default=[".ferry"], metavar="NAME",
                   help="top-level name to skip when comparing trees (ferry's own .ferry always)")
    a = p.parse_args(argv)
    apply_defaults(p, a)
    return a


def apply_defaults(parser, a):
    """Fill in mode-dependent defaults (smoke = tiny tree, one run)."""
    tree = (200, 4, 8) if a.smoke else (20_000, 400, 256)
    a.files = tree[0] if a.files is None else a.files
    a.total_mib = tree[1] if a.total_mib is None else a.total_mib
    a.large_mib = tree[2] if a.large_mib is None else a.large_mib
    a.runs = (1 if a.smoke else 3) if a.runs is None else a.runs
    if a.scenarios is None:
        a.scenarios = [s for s in SCENARIOS if not (a.smoke and s == "million")]
    else:
        a.scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    bad = [s for s in a.scenarios if s not in SCENARIOS]
    if bad:
        parser.error(f"unknown scenario(s) {bad}; choose from {list(SCENARIOS)}")
    if a.large_mib < 2 and set(a.scenarios) & {"overwrite-middle", "insert-start"}:
        parser.error("overwrite-middle/insert-start need --large-mib >= 2")
    if a.runs < 1:
        parser.error("--runs must be >= 1")


# ----------------------------------------------------------------------------
# running children

def proc_io():
    """This process's /proc/self/io counters (children are added when reaped)."""
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(":") for line in f)}


def run_child(argv, env_extra=None, label=""):
    """Run argv to completion; return its Measurement or raise BenchError.

    The child runs under GNU time (when installed) purely to learn its peak
    RSS: the ru_maxrss that wait4() reports for a direct child of this
    process is never below this Python process's own RSS, because exec()
    records the hiwater mark of the (v)forked parent image it replaces.
    """
    env = dict(os.environ, **(env_extra or {}))
    os.sync()   # write back the previous step's dirty pages outside the timing
    with tempfile.TemporaryFile() as out, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        wrapped = [TIME_BIN, "-f", "%M", "-o", rss.name, *argv] \
            if TIME_BIN else argv
        io0 = proc_io()
        t0 = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        io1 = proc_io()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            out.seek(0)
            text = out.read().decode(errors="replace")[-8000:]
            raise BenchError(f"{label or argv[0]} exited with {proc.returncode}:"
                             f"\n  $ {' '.join(argv)}\n{text}")
        maxrss = read_maxrss(rss) if TIME_BIN else usage.ru_maxrss
    d = {k: io1[k] - io0[k] for k in io0}
    return Measurement(seconds, d["rchar"], d["wchar"], d["read_bytes"],
                       d["write_bytes"], maxrss)


def read_maxrss(f):
    """GNU time's -o file: optional status lines, then %M (KiB)."""
    lines = f.read().split()
    return int(lines[-1]) if lines and lines[-1].isdigit() else 0


def tool_version(argv):
    """First line of a tool's version output, or '' if that fails."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return ""


# ----------------------------------------------------------------------------
# tools

class Tool:
    """A sync tool with its own destination and state directory."""
    name = ""
    exe = ""
    version_args = ("--version",)

    def __init__(self, work):
        self.work = work
        self.generation = 0
        self.base = self.dst = self.home = None

    def path(self):
        return shutil.which(self.exe)

    def version(self):
        return tool_version([self.path(), *self.version_args])

    def fresh(self):
        """Throw away the old destination/state and start with empty ones."""
        self.discard()
        self.generation += 1
        self.base = os.path.join(self.work, "tools", self.name, str(self.generation))
        self.dst = os.path.join(self.base, "dst")
        self.home = os.path.join(self.base, "home")
        os.makedirs(self.home)
        self.prepare_dst()

    def discard(self):
        if self.base:
            shutil.rmtree(self.base, ignore_errors=True)
        self.base = self.dst = self.home = None

    def prepare_dst(self):
        os.makedirs(self.dst)

    def sync(self, src):
        argv, env = self.command(src)
        return run_child(argv, env, label=self.name)

    def command(self, src):
        raise NotImplementedError


class Ferry(Tool):
    name = "ferry"

    def __init__(self, work, binary):
        super().__init__(work)
        self.binary = binary

    def path(self):
        found = shutil.which(self.binary)
        return os.path.abspath(found) if found else None

    def command(self, src):
        return ([self.path(), "sync", src, self.dst, "--yes"],
                {"FERRY_HOME": self.home})


class Rsync(Tool):
    name = exe = "rsync"

    def command(self, src):
        return (["rsync", "-a", "--delete", src + "/", self.dst + "/"], {})


class Unison(Tool):
    name = exe = "unison"
    version_args = ("-version",)

    def command(self, src):
        return (["unison", src, self.dst, "-batch", "-auto", "-silent"],
                {"UNISON": self.home})


class Cp(Tool):
    name = exe = "cp"

    def prepare_dst(self):
        pass  # cp -a SRC DST must create DST itself

    def command(self, src):
        return (["cp", "-a", src, self.dst], {})


# ----------------------------------------------------------------------------
# verification

def file_hash(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def manifest(root, ignore=()):
    """{relative path: entry} for everything under root (dirs included)."""
    out = {}
    for d, dirs, files in os.walk(root):
        if d == root:
            dirs[:] = [x for x in dirs if x not in ignore]
            files = [x for x in files if x not in ignore]
        for name in dirs + files:
            full = os.path.join(d, name)
            out[os.path.relpath(full, root)] = describe(full)
    return out


def describe(path):
    st = os.lstat(path)
    if os.path.islink(path):
        return ("symlink", os.readlink(path))
    if os.path.isdir(path):
        return ("dir",)
    if os.path.isfile(path):
        return ("file", st.st_size, file_hash(path))
    return ("other", st.st_mode)


def differences(want, got, limit=10):
    """Human-readable lines for entries that differ between two manifests."""
    lines = []
    for rel in sorted(want.keys() | got.keys()):
        if want.get(rel) != got.get(rel):
            lines.append(f"  {rel}: source {short(want.get(rel))}, "
                         f"destination {short(got.get(rel))}")
    extra = len(lines) - limit
    return lines[:limit] + ([f"  ... and {extra} more"] if extra > 0 else [])


def short(entry):
    if entry is None:
        return "missing"
    if entry[0] == "file":
        return f"file {entry[1]} B sha256 {entry[2][:12]}"
    return " ".join(str(x) for x in entry)


# ----------------------------------------------------------------------------
# the benchmark

class Bench:
    """Holds the scratch dir, tools, source tree and results."""

    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.src = os.path.join(work, "src")
        self.src_manifest = None
        self.tree = self.million_tree = None
        self.src_touched = 0.0
        self.rounds = 0
        self.results = {}      # row -> tool -> [Measurement]
        all_tools = [Ferry(work, args.ferry), Rsync(work), Unison(work), Cp(work)]
        self.tools = {t.name: t for t in all_tools if t.path()}
        self.missing = [t.name for t in all_tools if not t.path()]

    # -- helpers

    def log(self, msg):
        print(msg, file=sys.stderr, flush=True)

    def record(self, row, tool, m):
        self.results.setdefault(row, {}).setdefault(tool, []).append(m)
        self.log(f"  [{row}] {tool:<6} {m.seconds:8.3f} s")

    def rotated(self, names, run):
        names = [n for n in names if n in self.tools]
        k = run % len(names) if names else 0
        return names[k:] + names[:k]

    def generate_src(self):
        a = self.args
        t0 = time.perf_counter()
        st = gen_tree.generate(self.src, a.seed, a.files, a.total_mib, a.large_mib)
        self.tree = dict(st, seconds=round(time.perf_counter() - t0, 2))
        self.src_touched = time.time()
        self.log(f"source tree: {st['files']} files, "
                 f"{st['total_bytes'] / MIB:.1f} MiB in {self.tree['seconds']} s")

    def source_manifest(self):
        if self.src_manifest is None:
            self.src_manifest = manifest(self.src, self.args.verify_ignore)
        return self.src_manifest

    def verify(self, tool, scenario):
        got = manifest(tool.dst, self.args.verify_ignore)
        diff = differences(self.source_manifest(), got)
        if diff:
            raise BenchError(f"{tool.name} left {tool.dst} different from the "
                             f"source after '{scenario}':\n" + "\n".join(diff))

    def timed_sync(self, tool, scenario):
        try:
            m = tool.sync(self.src)
        except BenchError as e:
            raise BenchError(f"scenario '{scenario}': {e}") from None
        self.verify(tool, scenario)
        return m

    def wait_for_new_second(self):
        """Sleep until the clock is past the second the source last changed in.

        rsync's quick check compares mtimes in whole seconds (unless
        --modify-window=-1), so a same-size edit made in the same second as the
        previous write is invisible to it.  Real edits almost never race a sync
        like that; without this wait a fast benchmark would make them race.
        """
        delay = int(self.src_touched) + 1 - time.time()
        if delay > 0:
            time.sleep(delay + 0.01)

    def ensure_synced(self, tool):
        """Give tool a destination in sync with the source (untimed)."""
        if tool.dst is None:
            tool.fresh()
            self.timed_sync(tool, "setup")

    # -- scenarios

    def run_initial(self):
        for r in range(self.args.runs):
            for name in self.rotated(TOOL_ORDER, r):
                tool = self.tools[name]
                tool.fresh()
                self.record("initial", name, self.timed_sync(tool, "initial"))

    def sync_tools(self):
        return [n for n in TOOL_ORDER if n != "cp"]

    def run_noop(self):
        for name in self.rotated(self.sync_tools(), 0):
            self.ensure_synced(self.tools[name])
        for r in range(self.args.runs):
            for name in self.rotated(self.sync_tools(), r):
                self.record("noop", name, self.timed_sync(self.tools[name], "noop"))

    def run_mutation(self, kind):
        for name in self.rotated(self.sync_tools(), 0):
            self.ensure_synced(self.tools[name])
        for r in range(self.args.runs):
            self.rounds += 1
            self.wait_for_new_second()
            mutate.mutate(kind, self.src, self.args.seed, self.rounds)
            self.src_touched = time.time()
            self.src_manifest = None
            for name in self.rotated(self.sync_tools(), r):
                self.record(kind, name, self.timed_sync(self.tools[name], kind))

    def run_million(self):
        n = self.args.million_files
        self.free_disk()
        src = os.path.join(self.work, "million", "src")
        self.log(f"million: generating {n} files (~1 KiB each) ...")
        t0 = time.perf_counter()
        st = gen_tree.generate(src, self.args.seed, n, max(1, n / 1000), 0)
        self.million_tree = dict(st, seconds=round(time.perf_counter() - t0, 2))
        self.log(f"million: generated in {self.million_tree['seconds']} s")
        ferry, rsync = self.tools.get("ferry"), self.tools.get("rsync")
        if ferry:
            self.million_initial_scans(ferry, src)
        if rsync:
            self.log("million: initial rsync copy (untimed) ...")
            rsync.fresh()
            self.log(f"million: copied in {rsync.sync(src).seconds:.1f} s")
        for r in range(self.args.runs):
            for name in self.rotated(("ferry", "rsync"), r):
                tool = self.tools[name]
                m = self.ferry_scan(tool, src) if name == "ferry" else tool.sync(src)
                self.record(MILLION_RESCAN, name, m)
        self.log("million: deleting the trees ...")
        self.free_disk()
        shutil.rmtree(src, ignore_errors=True)

    def free_disk(self):
        """Drop the earlier scenarios' trees before the big one."""
        for tool in self.tools.values():
            tool.discard()
        shutil.rmtree(self.src, ignore_errors=True)

    def million_initial_scans(self, ferry, src):
        """Each run scans with a fresh FERRY_HOME; the last one stays for rescans."""
        for _ in range(self.args.runs):
            ferry.fresh()
            self.record(MILLION_SCAN, "ferry", self.ferry_scan(ferry, src))

    def ferry_scan(self, ferry, src):
        try:
            return run_child([ferry.path(), "scan", src],
                             {"FERRY_HOME": ferry.home}, label="ferry scan")
        except BenchError as e:
            raise BenchError(f"scenario 'million': {e}") from None

    def run(self):
        order = [s for s in SCENARIOS if s in self.args.scenarios]
        if any(s != "million" for s in order):
            self.generate_src()
        for s in order:
            self.log(f"scenario {s}")
            if s == "initial":
                self.run_initial()
            elif s == "noop":
                self.run_noop()
            elif s == "million":
                self.run_million()
            else:
                self.run_mutation(s)


# ----------------------------------------------------------------------------
# machine description and report

def mount_of(path):
    """(fstype, mount point) of the file system holding path."""
    path = os.path.realpath(path)
    best = ("?", "/")
    with open("/proc/self/mounts") as f:
        for line in f:
            _, mnt, fstype = line.split()[:3]
            mnt = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), mnt)
            inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
            if inside and len(mnt) >= len(best[1]):
                best = (fstype, mnt)
    return best


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info(work):
    fstype, mnt = mount_of(work)
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"date": datetime.date.today().isoformat(), "cores": os.cpu_count(),
            "cpu": cpu_model(), "mem_gib": round(mem, 1), "fs": fstype,
            "mount": mnt, "kernel": platform.release()}


def machine_line(m):
    return (f"{m['date']} · {m['cores']} cores ({m['cpu']}) · {m['mem_gib']} GiB RAM"
            f" · {m['fs']} on {m['mount']} · Linux {m['kernel']} · warm page cache")


def median(ms, attr="seconds"):
    return statistics.median(getattr(m, attr) for m in ms)


def cell(bench, row, tool):
    if tool in bench.missing:
        return "missing"
    ms = bench.results.get(row, {}).get(tool)
    return f"{median(ms):.3f}" if ms else "n/a"


def ratio(bench, row, other):
    for t in ("ferry", other):
        if t in bench.missing:
            return "missing"
    row_data = bench.results.get(row, {})
    if "ferry" not in row_data or other not in row_data:
        return "n/a"
    base = median(row_data[other])
    return f"{median(row_data['ferry']) / base:.2f}×" if base > 0 else "n/a"


def time_table(bench):
    lines = ["| scenario | ferry | rsync | unison | cp | ferry/rsync | "
             "ferry/unison | ferry/cp |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in ROW_ORDER:
        if row not in bench.results:
            continue
        cells = [cell(bench, row, t) for t in TOOL_ORDER]
        cells += [ratio(bench, row, a) for a in ANCHORS]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return lines


def io_table(bench):
    rows = [r for r in IO_ROWS if r in bench.results]
    if not rows:
        return []
    lines = ["", "Bytes moved per sync (MiB, median; rchar/wchar = read()/write()"
             " bytes incl. pipes, disk = write_bytes):", "",
             "| scenario | tool | read | written | disk writes |",
             "|---|---|---:|---:|---:|"]
    for row in rows:
        for tool, ms in sorted(bench.results[row].items(),
                               key=lambda kv: TOOL_ORDER.index(kv[0])):
            vals = [median(ms, a) / MIB for a in ("rchar", "wchar", "write_bytes")]
            lines.append(f"| {row} | {tool} | " +
                         " | ".join(f"{v:.1f}" for v in vals) + " |")
    return lines


def memory_lines(bench):
    out = []
    for row in (MILLION_SCAN, MILLION_RESCAN):
        for tool, ms in bench.results.get(row, {}).items():
            peak = max(m.maxrss_kib for m in ms) / 1024
            out.append(f"- peak RSS, {row}, {tool}: {peak:.1f} MiB")
    how = "GNU time %M" if TIME_BIN else "wait4 rusage, floored at the harness's RSS"
    return ["", f"Peak memory (largest single process, {how}):", ""] + out \
        if out else []


def report(bench, info):
    lines = [f"Machine: {machine_line(info)}"]
    if bench.tree:
        t = bench.tree
        lines.append(f"Tree: {t['files']} files, {t['total_bytes'] / MIB:.1f} MiB "
                     f"(seed {bench.args.seed}); runs: {bench.args.runs}; "
                     "median seconds")
    versions = [f"{n}: {v}" for n, v in
                ((n, t.version()) for n, t in bench.tools.items()) if v]
    lines.append("Versions: " + "; ".join(versions))
    if bench.missing:
        lines.append("Missing tools: " + ", ".join(bench.missing))
    lines += [""] + time_table(bench) + io_table(bench) + memory_lines(bench)
    return "\n".join(lines)


def write_json(path, bench, info, error):
    rows = {row: {tool: {"median_s": median(ms), "runs": [asdict(m) for m in ms]}
                  for tool, ms in tools.items()}
            for row, tools in bench.results.items()}
    doc = {"machine": info, "error": error,
           "config": {k: v for k, v in vars(bench.args).items()},
           "versions": {n: t.version() for n, t in bench.tools.items()},
           "missing": bench.missing, "tree": bench.tree,
           "million_tree": bench.million_tree, "rows": rows}
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")


# ----------------------------------------------------------------------------
# main

def check_ferry(bench, args):
    """In smoke mode a missing ferry binary is fatal; otherwise just reported."""
    if "ferry" in bench.missing:
        msg = (f"ferry binary not found or not executable: {args.ferry} "
               "(build it with `cargo build --release` or pass --ferry PATH)")
        if args.smoke:
            print(f"ERROR: {msg}", file=sys.stderr)
            return False
        print(f"warning: {msg}; ferry is reported as missing", file=sys.stderr)
    return True


def main(argv=None):
    args = parse_args(argv)
    parent = args.workdir or tempfile.gettempdir()
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix="ferry-bench-", dir=parent)
    bench = Bench(args, work)
    if not check_ferry(bench, args):
        shutil.rmtree(work, ignore_errors=True)
        return 2
    info = machine_info(work)
    error = None
    try:
        bench.run()
    except BenchError as e:
        error = str(e)
    finally:
        if args.keep:
            print(f"scratch dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(report(bench, info), flush=True)
    if args.json:
        write_json(args.json, bench, info, error)
    if error:
        print(f"\nERROR: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
