#!/usr/bin/env python3
"""Deterministic mutations of a tree made by gen_tree.py (benchmark scenarios).

    python3 bench/mutate.py KIND DIR [--seed N] [--round N]

KIND is one of:
  edit10            rewrite 10 chosen small files with new contents (each also
                    grows by 1-256 bytes, so no tool can miss the edit by
                    comparing size + mtime at one-second granularity)
  overwrite-middle  overwrite 1 MiB in the middle of big.bin, in place
  insert-start      insert 100 bytes at offset 1000 of big.bin (the whole file
                    is rewritten through a temporary file that replaces it)
  rename-dir        rename the ~1,000-file directory bulk/ to bulk-renamed/,
                    or back again if it was renamed already

--round N (default 1) feeds the RNG, so repeated mutations of the same kind
produce different bytes / pick different files; the same (seed, round, tree)
always gives the same result.
"""

import argparse
import os
import random
import sys

sys.dont_write_bytecode = True   # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_tree  # noqa: E402  (shares the vocabulary and naming constants)

MIB = gen_tree.MIB
KINDS = ("edit10", "overwrite-middle", "insert-start", "rename-dir")
INSERT_OFFSET = 1000
INSERT_LEN = 100
RENAMED = gen_tree.BULK_NAME + "-renamed"
TOOL_STATE = {".ferry", ".stfolder", ".stversions", ".unison"}


def rng_for(kind, seed, rnd):
    return random.Random(f"ferry-bench:{seed}:{kind}:{rnd}")


def small_files(root):
    """Sorted relative paths of every regular file except big.bin and the files
    of a sync tool's state folder at the top (`ferry sync` and `ferry share` put
    `.ferry/` into the source)."""
    out = []
    for d, dirs, files in os.walk(root):
        if d == root:   # never a sync tool's own state (ferry's marker and lock, ...)
            dirs[:] = [x for x in dirs if x not in TOOL_STATE]
        dirs.sort()
        for name in files:
            rel = os.path.relpath(os.path.join(d, name), root)
            if rel != gen_tree.BIG_NAME:
                out.append(rel)
    out.sort()
    return out


def edit10(root, seed, rnd):
    """Rewrite 10 seeded-random small files; text stays text, binary binary."""
    rng = rng_for("edit10", seed, rnd)
    lines = gen_tree.text_lines(seed)
    files = small_files(root)
    chosen = rng.sample(files, min(10, len(files)))
    for rel in chosen:
        path = os.path.join(root, rel)
        size = os.path.getsize(path) + rng.randint(1, 256)
        text = rel.rsplit(".", 1)[-1] in gen_tree.TEXT_EXTS
        with open(path, "wb") as f:
            f.write(gen_tree.content(rng, lines, text, size))
    return chosen


def big_path(root):
    path = os.path.join(root, gen_tree.BIG_NAME)
    if not os.path.isfile(path):
        raise SystemExit(f"mutate: {path} missing (generate with --large-mib > 0)")
    return path


def overwrite_middle(root, seed, rnd):
    """Overwrite 1 MiB starting half a MiB before the middle of big.bin."""
    path = big_path(root)
    offset = max(0, os.path.getsize(path) // 2 - MIB // 2)
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(rng_for("overwrite", seed, rnd).randbytes(MIB))
    return [gen_tree.BIG_NAME]


def insert_start(root, seed, rnd):
    """Insert 100 bytes at offset 1000 of big.bin by rewriting the file."""
    path = big_path(root)
    tmp = path + ".mutate-tmp"
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        dst.write(src.read(INSERT_OFFSET))
        dst.write(rng_for("insert", seed, rnd).randbytes(INSERT_LEN))
        while block := src.read(MIB):
            dst.write(block)
    os.replace(tmp, path)
    return [gen_tree.BIG_NAME]


def rename_dir(root, seed, rnd):
    """Toggle bulk/ <-> bulk-renamed/ (seed and round are not needed)."""
    a = os.path.join(root, gen_tree.BULK_NAME)
    b = os.path.join(root, RENAMED)
    src, dst = (a, b) if os.path.isdir(a) else (b, a)
    if not os.path.isdir(src):
        raise SystemExit(f"mutate: neither {a} nor {b} exists")
    os.rename(src, dst)
    return [os.path.basename(dst)]


ACTIONS = {"edit10": edit10, "overwrite-middle": overwrite_middle,
           "insert-start": insert_start, "rename-dir": rename_dir}


def mutate(kind, root, seed=1, rnd=1):
    """Apply mutation `kind` to the tree at root; return the paths touched."""
    return ACTIONS[kind](root, seed, rnd)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=KINDS)
    p.add_argument("dir")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--round", type=int, default=1)
    a = p.parse_args(argv)
    for rel in mutate(a.kind, a.dir, a.seed, a.round):
        print(rel)


if __name__ == "__main__":
    main()
