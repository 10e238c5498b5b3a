//! A run's problems as the API and the dashboard show them: the engine's typed
//! problems (`ferry_core::Problem`: side, path, kind, detail) with a label for
//! people ("changed during sync, will retry", "permission denied", "disk full", …) and
//! whether the next run takes care of it by itself.
//!
//! A run that failed as a whole (or was refused because a folder is not there) is one
//! problem without a path; the daemon hears of it as a message, so its kind is the
//! engine's `refused` (a folder unavailable) or `other`, with the daemon's label.

use ferry_core::{Problem, ProblemKind};
use serde::Serialize;

/// One problem of a run, as the API answers it: the engine's fields (`side`, `path`,
/// `kind`, `detail`) and `label`, `retried`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProblemView {
    #[serde(flatten)]
    pub problem: Problem,
    pub label: &'static str,
    /// The next run retries it by itself; nothing for the user to do.
    pub retried: bool,
}

impl ProblemView {
    /// A per-path problem the engine reported.
    pub fn of(problem: &Problem) -> ProblemView {
        ProblemView {
            label: problem.kind.label(),
            retried: problem.kind.retries_by_itself(),
            problem: problem.clone(),
        }
    }

    /// A run refused because a folder is not there as the index knows it (unplugged
    /// disk, missing marker): nothing was written.
    pub fn folder_unavailable(message: &str) -> ProblemView {
        ProblemView {
            problem: Problem::described(None, ProblemKind::Refused, message.to_string()),
            label: "folder unavailable",
            retried: false,
        }
    }

    /// A run that failed as a whole.
    pub fn run_failed(message: &str) -> ProblemView {
        ProblemView {
            problem: Problem::described(None, ProblemKind::Other, message.to_string()),
            label: "run failed",
            retried: false,
        }
    }
}

/// At most this many problems are shown per run (the index keeps as many; the count
/// is in the run's record).
pub const MAX_KEPT: usize = ferry_core::index::PROBLEMS_KEPT;

/// The problems of a run, at most [`MAX_KEPT`].
pub fn of_run(problems: &[Problem]) -> Vec<ProblemView> {
    problems
        .iter()
        .take(MAX_KEPT)
        .map(ProblemView::of)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::plan::Side;

    #[test]
    fn views_carry_the_engine_kind_and_a_label() {
        let changed = Problem::from_error(
            Some(Side::B),
            Some("x.txt".into()),
            "copy to b:x.txt",
            &ferry_core::Error::Changed("x.txt changed since the scan".into()),
        );
        let v = serde_json::to_value(ProblemView::of(&changed)).unwrap();
        assert_eq!(v["kind"], "changed");
        assert_eq!(v["label"], "changed during sync, will retry");
        assert_eq!(v["retried"], true);
        assert_eq!(v["path"], "x.txt");
        assert_eq!(v["side"], "B");
        assert!(v["detail"]
            .as_str()
            .unwrap()
            .starts_with("copy to b:x.txt: "));
        let v = serde_json::to_value(ProblemView::folder_unavailable("root missing")).unwrap();
        assert_eq!(
            (v["kind"].clone(), v["label"].clone()),
            ("refused".into(), "folder unavailable".into())
        );
        assert_eq!(v["retried"], false);
    }
}
