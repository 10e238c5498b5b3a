//! What `ferry`'s exit status means, for scripts: 0 done; 1 an error, or a run that
//! finished with per-path problems (nothing was lost); 2 a usage error (clap's own); 3
//! the run finished but left conflicts for the user (`ferry conflicts`); 128 + N
//! stopped by signal N at a safe point (`interrupted — run again to resume`).

/// Done; nothing left for the user.
pub const EXIT_OK: u8 = 0;
/// An error, or a run that finished with per-path problems.
pub const EXIT_ERROR: u8 = 1;
/// The run finished but left conflicts for the user.
pub const EXIT_CONFLICTS: u8 = 3;
