//! Progress reporting hooks, so the library stays silent and the CLI draws bars.

/// Receives progress events from scans and executions. All methods default to no-ops.
pub trait Progress: Sync {
    /// A phase starts (`"scan A"`, `"copy"`…) with a total of work units if known.
    fn phase(&self, _name: &str, _total_bytes: Option<u64>) {}
    /// How many items (files) the current phase has, when known.
    fn items_total(&self, _total: u64) {}
    /// Some bytes of the current phase are done.
    fn bytes(&self, _n: u64) {}
    /// One item (file) of the current phase is done.
    fn item(&self) {}
}

/// Progress sink that ignores everything.
pub struct NoProgress;
impl Progress for NoProgress {}
