//! SIGINT and SIGTERM during a sync: the first asks the run to stop at its next safe
//! point (a [`Cancel`] the executor checks between actions and batches), so the run
//! ends with everything it completed recorded and its generation marked
//! `interrupted`; a second one of either ends the process at once (safe too: the
//! executor's crash rules hold for any kill).

use anyhow::{Context, Result};
use ferry_core::Cancel;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The stop request of this process's sync, set by SIGINT or SIGTERM.
pub struct Interrupt {
    pub cancel: Cancel,
    signal: Arc<AtomicUsize>,
}

impl Interrupt {
    /// Installs the handlers (for the rest of the process).
    pub fn install() -> Result<Interrupt> {
        let cancel = Cancel::new();
        let signal = Arc::new(AtomicUsize::new(0));
        for sig in [SIGINT, SIGTERM] {
            if sig == SIGINT && ignored(sig) {
                continue; // started in the background by a shell: leave Ctrl-C to the rest
            }
            // Registered first, so it sees the flag as it was before this signal: a
            // second signal exits at once, with the status a shell expects of it.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, cancel.flag())
                .context("installing a signal handler")?;
            signal_hook::flag::register_usize(sig, signal.clone(), sig as usize)
                .context("installing a signal handler")?;
            signal_hook::flag::register(sig, cancel.flag())
                .context("installing a signal handler")?;
        }
        Ok(Interrupt { cancel, signal })
    }

    /// The exit code for a run stopped by a signal: 128 + its number (130 for SIGINT,
    /// 143 for SIGTERM), as a shell reports a process the signal killed.
    pub fn exit_code(&self) -> u8 {
        match self.signal.load(Ordering::SeqCst) {
            0 => 130,
            n => (128 + n).min(255) as u8,
        }
    }
}

/// Whether `sig` is ignored in this process (a shell starts background jobs with SIGINT
/// ignored; a program that catches it anyway would break that).
fn ignored(sig: libc::c_int) -> bool {
    // SAFETY: a null new action only queries; `old` is a valid out-pointer.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}
