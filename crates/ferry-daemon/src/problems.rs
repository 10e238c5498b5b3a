//! A run's problems as the API and the dashboard show them: a kind people can act on
//! ("changed during sync, will retry", "permission denied", "disk full", …) with the
//! engine's message.
//!
//! The engine reports per-file problems as text (`SyncOutcome::errors`: "copy to
//! b:x.txt: …"); the kind is read from the phrasings the engine uses (its safety stops
//! for a path that changed since the scan) and from the operating system's error
//! texts. A typed `Problem` list in the engine's outcome would make this exact; until
//! then, an unknown text is an `other` problem, shown with its message.

use serde::Serialize;

/// What kind of problem, for people and for programs (`kind` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The file changed after the scan (or while it was copied): left alone, nothing
    /// lost; the next run syncs it.
    ChangedDuringSync,
    /// The operating system refused access (EACCES, EPERM).
    PermissionDenied,
    /// No space (or quota) left on the device.
    DiskFull,
    /// A path went missing while the run worked on it.
    NotFound,
    /// Another I/O error from the operating system.
    Io,
    /// A folder of the conduit is not there as the index knows it (unplugged disk,
    /// missing marker): the run was refused, nothing was written.
    FolderUnavailable,
    /// The run failed as a whole.
    RunFailed,
    Other,
}

impl ProblemKind {
    /// A short label for people.
    pub fn label(self) -> &'static str {
        match self {
            ProblemKind::ChangedDuringSync => "changed during sync, will retry",
            ProblemKind::PermissionDenied => "permission denied",
            ProblemKind::DiskFull => "disk full",
            ProblemKind::NotFound => "gone during sync",
            ProblemKind::Io => "I/O error",
            ProblemKind::FolderUnavailable => "folder unavailable",
            ProblemKind::RunFailed => "run failed",
            ProblemKind::Other => "problem",
        }
    }

    /// The next run takes care of it by itself.
    pub fn retried(self) -> bool {
        matches!(self, ProblemKind::ChangedDuringSync | ProblemKind::NotFound)
    }
}

/// One problem of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub label: &'static str,
    /// What the run was doing, when the message says (`copy to b:x.txt`).
    pub action: Option<String>,
    /// The engine's message, whole.
    pub message: String,
    /// The next run retries it by itself.
    pub retried: bool,
}

impl Problem {
    pub fn new(kind: ProblemKind, message: &str) -> Problem {
        const ACTIONS: [&str; 7] = [
            "copy to ",
            "delete ",
            "mkdir ",
            "rename ",
            "move aside ",
            "record ",
            "archive ",
        ];
        let action = ACTIONS
            .iter()
            .any(|a| message.starts_with(a))
            .then(|| message.split_once(": ").map(|(a, _)| a.to_string()))
            .flatten();
        Problem {
            kind,
            label: kind.label(),
            action,
            message: message.to_string(),
            retried: kind.retried(),
        }
    }

    /// A run that failed as a whole (or was refused), as the daemon heard it.
    pub fn of_failed_run(message: &str, unplugged: bool) -> Problem {
        let kind = match kind_of(message) {
            _ if unplugged => ProblemKind::FolderUnavailable,
            ProblemKind::Other => ProblemKind::RunFailed,
            k => k,
        };
        Problem::new(kind, message)
    }

    /// A per-file problem of a run, as the engine worded it.
    pub fn classify(message: &str) -> Problem {
        Problem::new(kind_of(message), message)
    }
}

fn kind_of(m: &str) -> ProblemKind {
    const CHANGED: [&str; 5] = [
        "changed since the scan",
        "appeared since the scan",
        "changed while copying",
        "changed while ferry replaced it",
        "changed twice while ferry replaced it",
    ];
    if CHANGED.iter().any(|c| m.contains(c)) {
        ProblemKind::ChangedDuringSync
    } else if m.contains("Permission denied") || m.contains("Operation not permitted") {
        ProblemKind::PermissionDenied
    } else if m.contains("No space left on device") || m.contains("Disk quota exceeded") {
        ProblemKind::DiskFull
    } else if m.contains("No such file or directory") {
        ProblemKind::NotFound
    } else if m.contains("(os error ") {
        ProblemKind::Io
    } else {
        ProblemKind::Other
    }
}

/// At most this many problems are kept per run (the count is in the run's record).
pub const MAX_KEPT: usize = 50;

/// The problems of this many recent runs are kept (in memory, while the daemon runs).
pub const RUNS_KEPT: usize = 200;

/// The problems of recent runs, by generation ID.
#[derive(Debug, Default)]
pub struct RunProblems(std::sync::Mutex<std::collections::BTreeMap<i64, Vec<Problem>>>);

impl RunProblems {
    pub fn record(&self, generation: i64, problems: Vec<Problem>) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(generation, problems);
            while m.len() > RUNS_KEPT {
                m.pop_first();
            }
        }
    }

    /// A run's problems, if this daemon ran it and it had any.
    pub fn get(&self, generation: i64) -> Option<Vec<Problem>> {
        self.0.lock().ok()?.get(&generation).cloned()
    }
}

/// The problems of a run's error texts, at most [`MAX_KEPT`].
pub fn of_run(errors: &[String]) -> Vec<Problem> {
    errors
        .iter()
        .take(MAX_KEPT)
        .map(|e| Problem::classify(e))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_texts_are_classified() {
        let p = Problem::classify(
            "copy to b:notes/x.txt: refusing to run: notes/x.txt changed since the scan; will sync after the next scan",
        );
        assert_eq!(p.kind, ProblemKind::ChangedDuringSync);
        assert_eq!(p.label, "changed during sync, will retry");
        assert_eq!(p.action.as_deref(), Some("copy to b:notes/x.txt"));
        assert!(p.retried);
        let p =
            Problem::classify("delete a:y.txt: open /t/a/y.txt: Permission denied (os error 13)");
        assert_eq!(p.kind, ProblemKind::PermissionDenied);
        assert_eq!(p.action.as_deref(), Some("delete a:y.txt"));
        assert!(!p.retried);
        assert_eq!(
            Problem::classify("write /t/b/z: No space left on device (os error 28)").kind,
            ProblemKind::DiskFull
        );
        assert_eq!(
            Problem::classify("read /t/b/z: Input/output error (os error 5)").kind,
            ProblemKind::Io
        );
        let p = Problem::classify("something new");
        assert_eq!((p.kind, p.action), (ProblemKind::Other, None));
    }
}
