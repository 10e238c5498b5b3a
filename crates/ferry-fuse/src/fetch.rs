//! The only code that touches the secondary: a worker thread with its own index
//! connection runs jobs one at a time; a caller waits for its answer at most the
//! mount's read timeout. A worker that did not answer in time is abandoned (it ends
//! once its stuck call returns) and the next job starts a fresh one.

use ferry_core::index::{ConduitRow, Index};
use ferry_core::on_demand::SelectivePair;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

type Job = Box<dyn FnOnce(&mut Index, &SelectivePair) + Send>;

/// Why a job gave no answer.
#[derive(Debug)]
pub(crate) enum Failed {
    /// The secondary did not answer within the timeout.
    TimedOut,
    /// The job failed (the secondary is missing, damaged, or the index failed).
    Error(ferry_core::Error),
}

pub(crate) struct Fetcher {
    index_path: PathBuf,
    conduit: ConduitRow,
    timeout: Duration,
    worker: Mutex<Option<mpsc::Sender<Job>>>,
}

impl Fetcher {
    pub(crate) fn new(index_path: PathBuf, conduit: ConduitRow, timeout: Duration) -> Fetcher {
        Fetcher {
            index_path,
            conduit,
            timeout,
            worker: Mutex::new(None),
        }
    }

    fn spawn(&self) -> mpsc::Sender<Job> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (path, conduit) = (self.index_path.clone(), self.conduit.clone());
        std::thread::spawn(move || {
            // Opening the pair checks both markers: a secondary that hangs hangs here,
            // on this thread only.
            let opened =
                Index::open(&path).and_then(|i| SelectivePair::open(&i, &conduit).map(|p| (i, p)));
            let (mut index, pair) = match opened {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("mount: cannot reach the secondary: {e}");
                    return; // pending jobs are dropped: their callers see an error
                }
            };
            for job in rx {
                job(&mut index, &pair);
            }
        });
        tx
    }

    /// Runs `f` on the worker and waits for its answer at most the timeout.
    pub(crate) fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Index, &SelectivePair) -> ferry_core::Result<T> + Send + 'static,
    ) -> Result<T, Failed> {
        let (rtx, rrx) = mpsc::channel();
        let job: Job = Box::new(move |i, p| {
            let _ = rtx.send(f(i, p));
        });
        {
            let mut w = self.worker.lock().unwrap_or_else(|p| p.into_inner());
            let tx = w.get_or_insert_with(|| self.spawn());
            if let Err(mpsc::SendError(job)) = tx.send(job) {
                // The worker ended (it could not open the index or the folders): a
                // fresh one tries again.
                let tx = self.spawn();
                let _ = tx.send(job);
                *w = Some(tx);
            }
        }
        match rrx.recv_timeout(self.timeout) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Failed::Error(e)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                *self.worker.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Err(Failed::TimedOut)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                *self.worker.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Err(Failed::Error(ferry_core::Error::Unavailable(
                    "the secondary could not be opened".into(),
                )))
            }
        }
    }
}
