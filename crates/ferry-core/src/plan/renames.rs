//! Rename pairing: "delete X on side S" plus "create Y on side S with X's content"
//! becomes one rename on S, so no bytes move. Paths that end alike pair first (a file
//! moved with its folder keeps its neighbours' pairing).

use crate::model::entry::{EntryKind, Presence};
use crate::model::rel_path::RelPath;
use crate::plan::{Action, Plan, Side};
use std::collections::{HashMap, HashSet};

/// The deletes of one content (plan indices): all of them, and by each trailing part
/// of their path.
#[derive(Default)]
struct Deletes<'p> {
    any: Vec<usize>,
    by_tail: HashMap<&'p str, Vec<usize>>,
}

/// Turns "delete X on side S" + "create Y on side S with X's content" into a rename.
pub(crate) fn pair_renames(plan: &mut Plan) {
    let written: HashSet<(Side, RelPath)> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Copy { to, path, .. } => Some((*to, path.clone())),
            Action::Mkdir { side, path, .. } => Some((*side, path.clone())),
            Action::MoveAside { side, path, .. } => Some((*side, path.clone())),
            _ => None,
        })
        .collect();
    let deleted_at: HashSet<(Side, RelPath)> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Delete { side, path, .. } => Some((*side, path.clone())),
            _ => None,
        })
        .collect();
    // Deletes by content (side, hash, mode), and within it by each trailing part of
    // their path ("c", "b/c", "a/b/c"). Copies take a delete of their content whose
    // path ends like theirs, the longest such endings first across all copies, then
    // any delete of that content. So each file of a renamed folder pairs with its own
    // old self, also where the folder holds equal contents, and the executor can move
    // the folder as a whole (`dir_rename.rs`).
    type Content = (Side, crate::model::chunk::Hash, u32);
    let mut delete_paths: Vec<(usize, Content, String)> = Vec::new();
    for (i, a) in plan.actions.iter().enumerate() {
        if let Action::Delete {
            side,
            path,
            expected,
            ..
        } = a
        {
            if expected.state.kind == EntryKind::File
                && expected.state.presence == Presence::Live
                && !written.contains(&(*side, path.clone()))
            {
                if let Some(h) = expected.state.hash {
                    delete_paths.push((i, (*side, h, expected.state.mode), path.to_string()));
                }
            }
        }
    }
    if delete_paths.is_empty() {
        return;
    }
    let mut deletes: HashMap<Content, Deletes> = HashMap::new();
    for (i, content, path) in &delete_paths {
        let d = deletes.entry(*content).or_default();
        d.any.push(*i);
        for len in 1..=path.split('/').count() {
            if let Some(tail) = tail(path, len) {
                d.by_tail.entry(tail).or_default().push(*i);
            }
        }
    }
    let mut copies: Vec<(usize, Content, Option<usize>)> = Vec::new();
    for (i, a) in plan.actions.iter().enumerate() {
        let Action::Copy {
            to,
            path,
            source,
            expected: None,
            ..
        } = a
        else {
            continue;
        };
        // A copy that replaces a directory must wait for that directory's removal.
        if deleted_at.contains(&(*to, path.clone()))
            || source.state.kind != EntryKind::File
            || &source.path != path
        {
            continue;
        }
        if let Some(h) = source.state.hash {
            if deletes.contains_key(&(*to, h, source.state.mode)) {
                copies.push((i, (*to, h, source.state.mode), None));
            }
        }
    }
    // Each delete sits in several lists; a taken one is dropped when met.
    let mut taken = vec![false; plan.actions.len()];
    let take = |list: &mut Vec<usize>, taken: &mut [bool]| {
        while let Some(d) = list.pop() {
            if !std::mem::replace(&mut taken[d], true) {
                return Some(d);
            }
        }
        None
    };
    let longest = copies
        .iter()
        .map(|&(i, ..)| plan.actions[i].path().depth())
        .max()
        .unwrap_or(0);
    for len in (0..=longest).rev() {
        for (i, content, pick) in copies.iter_mut().filter(|c| c.2.is_none()) {
            let Some(d) = deletes.get_mut(content) else {
                continue;
            };
            *pick = if len == 0 {
                take(&mut d.any, &mut taken)
            } else {
                tail(plan.actions[*i].path().as_str(), len)
                    .and_then(|t| d.by_tail.get_mut(t))
                    .and_then(|list| take(list, &mut taken))
            };
        }
    }
    let mut removed = HashSet::new();
    for (i, _, pick) in copies {
        let Some(d) = pick else { continue };
        let Action::Copy {
            to,
            path,
            source,
            version,
            ..
        } = &plan.actions[i]
        else {
            continue;
        };
        let Action::Delete {
            path: from,
            expected,
            version: from_version,
            ..
        } = plan.actions[d].clone()
        else {
            continue;
        };
        plan.actions[i] = Action::Rename {
            side: *to,
            from,
            expected,
            from_version,
            to: path.clone(),
            source: source.clone(),
            version: version.clone(),
        };
        removed.insert(d);
    }
    let mut i = 0;
    plan.actions.retain(|_| {
        let keep = !removed.contains(&i);
        i += 1;
        keep
    });
}

/// The last `len` components of a path, if it has that many.
fn tail(path: &str, len: usize) -> Option<&str> {
    match path.rmatch_indices('/').nth(len - 1) {
        Some((i, _)) => Some(&path[i + 1..]),
        None if path.split('/').count() == len => Some(path),
        None => None,
    }
}
