//! Problems: what a run could not do for one path. Typed, so the CLI, the daemon, the
//! API and the dashboard can tell "changed since the scan, will retry" from "permission
//! denied" without reading sentences. A problem never means something was lost: the
//! path was left as it was.

use crate::error::Error;
use crate::plan::Side;
use std::fmt;

/// What kind of trouble a path met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The disk changed since the scan (a racing edit, a file that vanished): the path
    /// was left alone and syncs after the next scan, with no action from the user.
    Changed,
    /// The file system refused access.
    PermissionDenied,
    /// The disk (or the user's quota) is full.
    NoSpace,
    /// A safety check refused the action (e.g. a folder still holding unsynced files).
    Refused,
    /// A name that cannot be used on this side.
    InvalidPath,
    /// Any other I/O error.
    Io,
    /// The index database failed.
    Index,
    /// Anything else.
    Other,
}

impl ProblemKind {
    /// Of an error, by what went wrong (not by its wording).
    pub fn of(e: &Error) -> ProblemKind {
        match e {
            Error::Changed(_) => ProblemKind::Changed,
            Error::Io { source, .. } => ProblemKind::of_io(source),
            Error::Db(_) | Error::Corrupt(_) => ProblemKind::Index,
            Error::Refused(_) => ProblemKind::Refused,
            Error::InvalidPath { .. } => ProblemKind::InvalidPath,
            _ => ProblemKind::Other,
        }
    }

    /// Of an I/O error.
    pub(crate) fn of_io(e: &std::io::Error) -> ProblemKind {
        match e.kind() {
            std::io::ErrorKind::PermissionDenied => ProblemKind::PermissionDenied,
            // Gone since the scan (or the listing): the next scan sees it as deleted.
            std::io::ErrorKind::NotFound => ProblemKind::Changed,
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                ProblemKind::NoSpace
            }
            _ => ProblemKind::Io,
        }
    }

    /// The next run retries by itself; nothing for the user to do.
    pub fn retries_by_itself(self) -> bool {
        self == ProblemKind::Changed
    }

    /// A short label for people ("changed during sync, will retry").
    pub fn label(self) -> &'static str {
        match self {
            ProblemKind::Changed => "changed during sync, will retry",
            ProblemKind::PermissionDenied => "permission denied",
            ProblemKind::NoSpace => "disk full",
            ProblemKind::Refused => "refused by a safety check",
            ProblemKind::InvalidPath => "name not usable here",
            ProblemKind::Io => "I/O error",
            ProblemKind::Index => "index error",
            ProblemKind::Other => "error",
        }
    }
}

/// One thing a run could not do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// The side whose disk or index the problem is on, when one is.
    pub side: Option<Side>,
    /// The path (as people read it) the problem is about, when one is.
    pub path: Option<String>,
    /// What kind of failure it was.
    pub kind: ProblemKind,
    /// What was being done and what went wrong, in a sentence for people.
    pub detail: String,
}

impl Problem {
    /// `error` met while doing `doing` (e.g. "copy to b:docs/a.txt") at `path` on `side`.
    pub fn from_error(
        side: Option<Side>,
        path: Option<String>,
        doing: &str,
        error: &Error,
    ) -> Problem {
        Problem {
            side,
            path,
            kind: ProblemKind::of(error),
            detail: if doing.is_empty() {
                error.to_string()
            } else {
                format!("{doing}: {error}")
            },
        }
    }

    /// A problem known only by its sentence (e.g. a scan's), of kind `kind`.
    pub fn described(side: Option<Side>, kind: ProblemKind, detail: String) -> Problem {
        Problem {
            side,
            path: None,
            kind,
            detail,
        }
    }
}

/// Serializes problems as their sentences (documents whose `errors` were strings keep
/// that shape).
pub(crate) fn as_sentences<S: serde::Serializer>(p: &[Problem], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(p.iter().map(|p| p.detail.as_str()))
}

/// The sentence, as the CLI prints it.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_what_went_wrong() {
        let io = |kind| Error::Io {
            action: "open",
            path: "/x".into(),
            source: std::io::Error::from(kind),
        };
        assert_eq!(
            ProblemKind::of(&io(std::io::ErrorKind::PermissionDenied)),
            ProblemKind::PermissionDenied
        );
        assert_eq!(
            ProblemKind::of(&io(std::io::ErrorKind::StorageFull)),
            ProblemKind::NoSpace
        );
        assert_eq!(
            ProblemKind::of(&Error::Changed("x changed".into())),
            ProblemKind::Changed
        );
        assert!(ProblemKind::Changed.retries_by_itself());
        assert!(!ProblemKind::PermissionDenied.retries_by_itself());
        let p = Problem::from_error(
            Some(Side::B),
            Some("a.txt".into()),
            "copy to b:a.txt",
            &io(std::io::ErrorKind::PermissionDenied),
        );
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["kind"], "permission_denied");
        assert_eq!(json["side"], "B");
        assert!(p.to_string().starts_with("copy to b:a.txt: open /x"));
    }
}
