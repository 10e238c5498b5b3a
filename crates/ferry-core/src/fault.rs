//! Test hooks: failures injected at named points of a run, to prove that a run dying
//! there loses nothing and resumes.

/// Test hook: a failure injected at a named point of the executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultPoint {
    #[default]
    /// No fault: the normal run.
    None,
    /// Corrupt the temp file after copying, so verification must catch it.
    CorruptTempAfterCopy,
    /// Stop (as if the process died) after staging temp files, before any rename.
    StopAfterStaging,
    /// Archive: corrupt the installed copy on B before it is re-read for verification.
    CorruptArchivedCopy,
    /// Archive: stop (as if the process died) after the copies, before any removal from A.
    StopBeforeArchiveRemoval,
    /// Stop (as if the process died) after directories were renamed on disk, before the
    /// index records their new paths.
    StopAfterDirRenames,
    /// The disk fills up half-way through writing each copy's temp file (`ENOSPC`).
    NoSpaceMidCopy,
    /// Each copy's source cannot be opened (`EACCES`, which root never meets on a real
    /// disk).
    DeniedOpeningSource,
    /// The atomic exchange that replaces an existing file fails (`EIO`), after the
    /// staged copy moved into the version store's staging folder.
    ExchangeFails,
}
