//! A local copy of a big changed file, two ways, side by side: the kernel's whole-file
//! copy (what `ferry sync A B` does, `copy_file_range`) and assembling the new content
//! from the destination's old version plus only the changed chunks of the source
//! (what a device pulling from another device does, `replica::assemble`). Both write a
//! complete temp file and make it durable, as the executor must (safety rule 1).
//!
//! `cargo run --release -p ferry-core --example delta_copy [DIR] [MiB] [runs]`
//! (default: a temp dir under the current folder, 256 MiB, 3 runs). Prints, per bench
//! scenario (`overwrite-middle`, `insert-start`) and way, the median seconds, bytes
//! written (`wchar`), bytes dirtied for storage (`write_bytes`) and, for assembling,
//! the bytes read from the old version and from the source.

use ferry_core::model::{digest_reader, EntryKind, FileState, Presence, VersionVector};
use ferry_core::replica::{assemble, ChunkSource, OpenContent};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn io_counters() -> Res<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/io")?;
    let field = |name: &str| -> u64 {
        (text.lines())
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    };
    Ok((field("wchar:"), field("write_bytes:")))
}

fn state_of(path: &Path) -> Res<FileState> {
    let d = digest_reader(File::open(path)?)?;
    Ok(FileState {
        kind: EntryKind::File,
        size: d.size,
        hash: Some(d.hash),
        chunks: d.chunks,
        mtime_ns: 0,
        mode: 0o644,
        link_target: None,
        version: VersionVector::default(),
        presence: Presence::Live,
    })
}

struct Measured {
    secs: f64,
    wchar: u64,
    write_bytes: u64,
    from: Vec<u64>,
}

fn measure(f: impl FnOnce() -> Res<Vec<u64>>) -> Res<Measured> {
    rustix::fs::sync();
    let (w0, d0) = io_counters()?;
    let t = Instant::now();
    let from = f()?;
    let secs = t.elapsed().as_secs_f64();
    let (w1, d1) = io_counters()?;
    Ok(Measured {
        secs,
        wchar: w1 - w0,
        write_bytes: d1 - d0,
        from,
    })
}

fn kernel_copy(new: &Path, tmp: &Path) -> Res<Vec<u64>> {
    let _ = std::fs::remove_file(tmp);
    std::fs::copy(new, tmp)?;
    File::open(tmp)?.sync_all()?;
    Ok(Vec::new())
}

fn assembled(
    old: &Path,
    new: &Path,
    tmp: &Path,
    olds: &FileState,
    news: &FileState,
) -> Res<Vec<u64>> {
    let _ = std::fs::remove_file(tmp);
    let here = OpenContent::new(File::open(old)?, olds).ok_or("old version")?;
    let there = OpenContent::new(File::open(new)?, news).ok_or("new version")?;
    let out = File::create(tmp)?;
    let mut w = BufWriter::with_capacity(1 << 20, &out);
    let sources: [&dyn ChunkSource; 2] = [&here, &there];
    let report = assemble(news, &[olds], &sources, &mut w)?;
    w.flush()?;
    drop(w);
    out.sync_all()?;
    Ok(report.bytes_from)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let base: PathBuf = args.next().map(PathBuf::from).unwrap_or_else(|| ".".into());
    let mib: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(256);
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir_in(base)?;
    let (old, new, tmp) = (
        dir.path().join("old"),
        dir.path().join("new"),
        dir.path().join("tmp"),
    );
    let data = ferry_testkit::noise(mib << 20, 0x9E37_79B9_7F4A_7C15);
    std::fs::write(&old, &data)?;
    let olds = state_of(&old)?;
    println!(
        "{mib} MiB, {} chunks, {runs} runs, medians",
        olds.chunks.len()
    );
    for scenario in ["overwrite-middle", "insert-start"] {
        let mut changed = data.clone();
        match scenario {
            "overwrite-middle" => {
                let mid = changed.len() / 2;
                changed[mid..mid + (1 << 20)].copy_from_slice(&ferry_testkit::noise(1 << 20, 7));
            }
            _ => {
                let tail = changed.split_off(1000);
                changed.extend_from_slice(&ferry_testkit::noise(100, 11));
                changed.extend_from_slice(&tail);
            }
        }
        std::fs::write(&new, &changed)?;
        let news = state_of(&new)?;
        let (mut k, mut a) = (Vec::new(), Vec::new());
        for run in 0..runs {
            // Alternate which goes first.
            let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
            for way in order {
                if way == 0 {
                    k.push(measure(|| kernel_copy(&new, &tmp))?);
                } else {
                    a.push(measure(|| assembled(&old, &new, &tmp, &olds, &news))?);
                }
            }
        }
        for (name, m) in [("kernel copy", &k), ("assemble", &a)] {
            let last = m.last().ok_or("no run")?;
            println!(
                "{scenario:>16} {name:>12}: {:.3} s, written {:.1} MiB, disk {:.1} MiB{}",
                median(m.iter().map(|x| x.secs).collect()),
                last.wchar as f64 / 1048576.0,
                last.write_bytes as f64 / 1048576.0,
                match last.from.as_slice() {
                    [here, there] => format!(
                        ", read {:.1} MiB from the old version and {:.2} MiB from the source",
                        *here as f64 / 1048576.0,
                        *there as f64 / 1048576.0
                    ),
                    _ => String::new(),
                }
            );
        }
    }
    Ok(())
}
