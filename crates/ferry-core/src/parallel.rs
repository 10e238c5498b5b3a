//! Work spread over cores: one helper for the scan's hashing and the executor's copies,
//! so both schedule the same way (runs of neighbouring items per worker).

use crate::replica::beneath::ParentMemo;

/// What each worker keeps between items: a buffer, and the folders its current run
/// opened (one for reading, one for writing), forgotten at the end of each run.
#[derive(Default)]
pub(crate) struct Scratch {
    pub buf: Vec<u8>,
    pub read_dir: ParentMemo,
    pub write_dir: ParentMemo,
}

/// Runs `f` over `items` on `workers` threads (0 = all cores, up to 8), each worker
/// with its own scratch; results come back in input order (`None` only for an item no
/// worker finished).
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T, &mut Scratch) -> R + Sync,
) -> Vec<Option<R>> {
    parallel_map_runs(items, workers, 32, f)
}

/// [`parallel_map`] handing out runs of `run` neighbouring items at a time (1 for work
/// that waits on a network rather than on a folder's lock).
pub(crate) fn parallel_map_runs<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    run: usize,
    f: impl Fn(&T, &mut Scratch) -> R + Sync,
) -> Vec<Option<R>> {
    let threads = if workers > 0 {
        workers
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8)
    }
    .min(items.len().max(1));
    let run = run.max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| {
                let mut scratch = Scratch::default();
                loop {
                    // Runs of neighbouring items (files of one folder, in plan order)
                    // go to one worker, so workers rarely wait on the same folder's lock.
                    let start = next.fetch_add(run, std::sync::atomic::Ordering::Relaxed);
                    if start >= items.len() {
                        break;
                    }
                    scratch.read_dir.clear();
                    scratch.write_dir.clear();
                    for (i, item) in items.iter().enumerate().skip(start).take(run) {
                        let r = f(item, &mut scratch);
                        if let Ok(mut slot) = out[i].lock() {
                            *slot = Some(r);
                        }
                    }
                }
            });
        }
    });
    out.into_iter()
        .map(|m| m.into_inner().ok().flatten())
        .collect()
}
