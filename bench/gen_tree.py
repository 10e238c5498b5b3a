#!/usr/bin/env python3
"""Deterministic, seeded test-tree generator for the ferry benchmarks.

    python3 bench/gen_tree.py OUT_DIR [--seed N] [--files N] [--total-mib M]
                                      [--large-mib L] [--flat]

Writes --files small files (default 20,000) totalling about --total-mib MiB
(default 400), plus one large incompressible file `big.bin` of --large-mib MiB
(default 256; 0 = none).  The same seed and arguments always give a
byte-identical tree (contents and names; mtimes are whatever "now" is).

Layout (non-flat):
  big.bin                         the large file
  bulk/                           min(1000, files/5) files in one directory,
                                  counted within --files (used by rename-dir)
  <top> NNN/sub-NN[/deep-NN]/     the rest, 100 files per leaf directory,
                                  2-3 levels deep
With --flat every non-bulk small file goes directly into OUT_DIR.

About a third of the small files are compressible text (lines of words from a
fixed vocabulary, picked with the seeded RNG); the rest are incompressible
bytes from random.Random.randbytes.  Some file and directory names contain
spaces and non-ASCII characters (all NFC).

Only the standard library is used, so the generator runs anywhere python3 does.
"""

import argparse
import math
import os
import random
import sys
import time
from dataclasses import dataclass

KIB = 1024
MIB = 1024 * 1024
MIN_RAW_SIZE = 512           # log-uniform draw range, before scaling
MAX_RAW_SIZE = MIB
MAX_SIZE = MIB               # hard clamp after scaling
FILES_PER_DIR = 100
FANOUT = 20                  # leaf directories per top-level directory
BULK_MAX = 1000
TEXT_SHARE = 1 / 3
TEXT_EXTS = ("txt", "md", "csv")
BIN_EXTS = ("bin", "dat", "jpg")
BIG_NAME = "big.bin"
BULK_NAME = "bulk"

VOCAB = """
the of and to in is that for it as was with be by on not he this are or his
from at which but have an they you were her she there been one all we their
has would when if so no out up what about into than them can only other time
new some could these two may first then do any like my now over such our man
me even most made after also did many before must through back years where
much your way well down should because each just those people how too little
state good very make world still own see men work long get here between both
life being under never day same another know while last might us great old
year off come since against go came right used take three sync file folder
tree chunk hash delta block rename move copy merge conflict replica archive
version vector clock peer device scan index snapshot journal metadata inode
""".split()

TOP_STEMS = ("projects", "photos", "Mes documents", "música", "src",
             "archive 2019", "Ünïcödé", "notes", "backup copy", "日本語")
FILE_STEMS = ("report final", "café", "naïve résumé", "Прывітанне",
              "ζήτα notes", "draft (1)", "日本語テキスト", "tab\u00a0nbsp")


@dataclass
class FileSpec:
    """One small file of the plan: relative path, size in bytes, kind."""
    rel: str
    size: int
    text: bool


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--files", type=int, default=20_000,
                   help="number of small files, bulk/ included (default 20000)")
    p.add_argument("--total-mib", type=float, default=400,
                   help="total size of the small files in MiB (default 400)")
    p.add_argument("--large-mib", type=int, default=256,
                   help="size of big.bin in MiB, 0 for none (default 256)")
    p.add_argument("--flat", action="store_true",
                   help="no nested directories (bulk/ is still created)")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def bulk_count(files):
    """Files in bulk/: 1000 for big trees, a fifth of the files for small ones."""
    return min(BULK_MAX, files // 5)


def small_sizes(rng, n, total_bytes):
    """Draw n sizes log-uniformly in [512 B, 1 MiB], then fit them to total_bytes.

    The raw draws have a mean of about 134 KiB, far from what most targets
    need (400 MiB / 20,000 files = 20 KiB; 1000 MiB / 1,000,000 = 1 KiB).  So
    every size is multiplied by one factor k = target / sum(raw), which keeps
    the log-uniform shape and just slides its range (for the defaults
    512 B..1 MiB becomes about 78 B..160 KiB).  Sizes are rounded and clamped
    to [1 B, 1 MiB]; since clamping moves the sum again, k is corrected
    (k *= target / actual) a few times until the total is within 0.1 %.
    """
    lo, hi = math.log(MIN_RAW_SIZE), math.log(MAX_RAW_SIZE)
    raw = [math.exp(rng.uniform(lo, hi)) for _ in range(n)]
    if n == 0:
        return []
    k = total_bytes / sum(raw)
    for _ in range(10):
        sizes = [min(MAX_SIZE, max(1, round(r * k))) for r in raw]
        actual = sum(sizes)
        if abs(actual - total_bytes) <= total_bytes / 1000:
            break
        k *= total_bytes / actual
    return sizes


def top_dir_name(a):
    return f"{TOP_STEMS[a % len(TOP_STEMS)]} {a:03d}"


def leaf_dir(j):
    """Relative path of leaf directory j: 2 levels deep, every third one 3."""
    a, b = divmod(j, FANOUT)
    if b % 3 == 2:
        return f"{top_dir_name(a)}/sub-{b - 1:02d}/deep-{b:02d}"
    return f"{top_dir_name(a)}/sub-{b:02d}"


def file_name(rng, i, text):
    """Unique name for small file i; about 15 % get spaces/unicode stems."""
    ext = rng.choice(TEXT_EXTS if text else BIN_EXTS)
    stem = rng.choice(FILE_STEMS) if rng.random() < 0.15 else "file"
    return f"{stem}-{i:06d}.{ext}"


def plan_tree(seed, files, total_mib, flat):
    """Return the list of FileSpec for the small files (bulk/ first)."""
    rng = random.Random(f"ferry-bench:{seed}:structure")
    sizes = small_sizes(rng, files, int(total_mib * MIB))
    n_bulk = bulk_count(files)
    plan = []
    for i, size in enumerate(sizes):
        text = rng.random() < TEXT_SHARE
        name = file_name(rng, i, text)
        if i < n_bulk:
            rel = f"{BULK_NAME}/{name}"
        elif flat:
            rel = name
        else:
            rel = f"{leaf_dir((i - n_bulk) // FILES_PER_DIR)}/{name}"
        plan.append(FileSpec(rel, size, text))
    return plan


def text_lines(seed, count=4096):
    """A fixed table of sentences built from VOCAB (shared by all text files)."""
    rng = random.Random(f"ferry-bench:{seed}:lines")
    lines = []
    for _ in range(count):
        words = rng.choices(VOCAB, k=rng.randint(4, 16))
        lines.append((" ".join(words) + ".\n").encode())
    return lines


def text_bytes(rng, lines, size):
    """size bytes of text: random lines from the table, cut to length."""
    out = bytearray()
    while len(out) < size:
        need = (size - len(out)) // 40 + 1      # lines are ~40-100 bytes
        out += b"".join(rng.choices(lines, k=need))
    return bytes(out[:size])


def content(rng, lines, spec_text, size):
    return text_bytes(rng, lines, size) if spec_text else rng.randbytes(size)


def write_small_files(out_dir, plan, seed):
    """Write the small files in plan order from one seeded content stream."""
    rng = random.Random(f"ferry-bench:{seed}:content")
    lines = text_lines(seed)
    made = set()
    for spec in plan:
        parent = os.path.dirname(spec.rel)
        if parent not in made:
            os.makedirs(os.path.join(out_dir, parent), exist_ok=True)
            made.add(parent)
        with open(os.path.join(out_dir, spec.rel), "wb") as f:
            f.write(content(rng, lines, spec.text, spec.size))


def big_block(seed, index):
    """1 MiB block `index` of big.bin; independent of the other blocks."""
    return random.Random(f"ferry-bench:{seed}:big:{index}").randbytes(MIB)


def write_big(path, seed, mib):
    with open(path, "wb") as f:
        for i in range(mib):
            f.write(big_block(seed, i))


def generate(out_dir, seed=1, files=20_000, total_mib=400, large_mib=256,
             flat=False):
    """Create the tree in out_dir (must be missing or empty); return stats."""
    os.makedirs(out_dir, exist_ok=True)
    if os.listdir(out_dir):
        raise SystemExit(f"gen_tree: {out_dir} is not empty")
    plan = plan_tree(seed, files, total_mib, flat)
    write_small_files(out_dir, plan, seed)
    if large_mib > 0:
        write_big(os.path.join(out_dir, BIG_NAME), seed, large_mib)
    small = sum(s.size for s in plan)
    return {"files": len(plan) + (1 if large_mib > 0 else 0),
            "small_bytes": small, "large_bytes": large_mib * MIB,
            "total_bytes": small + large_mib * MIB,
            "text_files": sum(1 for s in plan if s.text),
            "bulk_files": bulk_count(files)}


def main(argv=None):
    a = parse_args(argv)
    t0 = time.perf_counter()
    st = generate(a.out_dir, a.seed, a.files, a.total_mib, a.large_mib, a.flat)
    dt = time.perf_counter() - t0
    if not a.quiet:
        print(f"gen_tree: {st['files']} files ({st['text_files']} text, "
              f"{st['bulk_files']} in {BULK_NAME}/), "
              f"small {st['small_bytes'] / MIB:.1f} MiB + "
              f"{BIG_NAME} {st['large_bytes'] / MIB:.0f} MiB = "
              f"{st['total_bytes'] / MIB:.1f} MiB in {dt:.1f} s",
              file=sys.stderr)


if __name__ == "__main__":
    main()
