//! Stopping a run at a safe point.
//!
//! A [`Cancel`] is a flag set from outside a run — the CLI's SIGINT/SIGTERM handler,
//! the daemon pausing a conduit or shutting down — and checked by the run only where
//! stopping keeps every safety rule: after the scan, between the executor's phases and
//! actions, and between copy batches (a batch being staged stops staging, and what was
//! already staged and verified is made durable, installed and recorded). The index
//! then holds exactly the actions that completed, and the next run resumes from there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A shared stop request. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag no one has set yet.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Asks every run holding this flag to stop at its next safe point.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the work was asked to stop.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The flag itself, for code that sets it without knowing this type (a signal
    /// handler registered with `signal_hook::flag::register`).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

/// Whether `cancel` (if any) was set.
pub(crate) fn is_cancelled(cancel: Option<&Cancel>) -> bool {
    cancel.is_some_and(Cancel::is_cancelled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let c = Cancel::new();
        let d = c.clone();
        assert!(!is_cancelled(Some(&d)));
        c.cancel();
        assert!(d.is_cancelled());
        assert!(d.flag().load(Ordering::SeqCst));
        assert!(!is_cancelled(None));
    }
}
