//! Itemized actions: one record per path of what a run will do (a dry run's plan) or
//! did (kept with its generation), like `rsync -i`: the action, its direction, the
//! path, and the size of the file concerned.

use crate::model::entry::EntryKind;
use crate::model::rel_path::{display_key, RelPath};
use crate::plan::{Action, ConflictRecord, Plan, Side};

/// What happened (or will happen) to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemAction {
    /// A file or symlink written from the other side (new, or replacing the old one).
    Copy,
    /// A file, symlink or empty folder removed because the other side removed it.
    Delete,
    /// A file moved to a new name (no bytes copied).
    Rename,
    /// A folder created.
    Mkdir,
    /// An existing folder's permission bits changed.
    Chmod,
    /// A conflict loser moved aside on its own side, as `name.conflict-…`.
    MoveAside,
    /// Both sides changed the path: settled by the policy, or left for the user.
    Conflict,
    /// Archive mode: removed from A once its copy on B re-read correctly.
    Archive,
}

impl ItemAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemAction::Copy => "copy",
            ItemAction::Delete => "delete",
            ItemAction::Rename => "rename",
            ItemAction::Mkdir => "mkdir",
            ItemAction::Chmod => "chmod",
            ItemAction::MoveAside => "move_aside",
            ItemAction::Conflict => "conflict",
            ItemAction::Archive => "archive",
        }
    }

    pub fn parse(s: &str) -> Option<ItemAction> {
        Some(match s {
            "copy" => ItemAction::Copy,
            "delete" => ItemAction::Delete,
            "rename" => ItemAction::Rename,
            "mkdir" => ItemAction::Mkdir,
            "chmod" => ItemAction::Chmod,
            "move_aside" => ItemAction::MoveAside,
            "conflict" => ItemAction::Conflict,
            "archive" => ItemAction::Archive,
            _ => return None,
        })
    }
}

/// One itemized action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// What was done.
    pub action: ItemAction,
    /// The side whose disk changes; `None` for a conflict (about both sides).
    pub side: Option<Side>,
    /// The path it was done to.
    pub path: RelPath,
    /// A rename's new path, a moved-aside file's new name, an archived file's path on B.
    pub to: Option<RelPath>,
    /// File, directory or symlink, when known.
    pub kind: Option<EntryKind>,
    /// Bytes of the file concerned (files only).
    pub size: Option<u64>,
    /// `replace` for a copy over an existing file; a conflict's outcome; a chmod's mode.
    pub detail: Option<String>,
}

impl Item {
    /// Which way the change flows, `(from, to)`: from the other side for copies,
    /// deletions, renames and folders; A → B for archive; none for a move aside (local
    /// to its side) or a conflict.
    pub fn direction(&self) -> Option<(Side, Side)> {
        match self.action {
            ItemAction::MoveAside | ItemAction::Conflict => None,
            ItemAction::Archive => Some((Side::A, Side::B)),
            _ => self.side.map(|s| (s.other(), s)),
        }
    }

    /// The direction as JSON gives it: `a->b` or `b->a`.
    pub(crate) fn direction_str(&self) -> Option<&'static str> {
        self.direction().map(|(from, _)| match from {
            Side::A => "a->b",
            Side::B => "b->a",
        })
    }

    /// The item for one planned action; `None` for index-only records.
    pub(crate) fn of_action(action: &Action) -> Option<Item> {
        let file_size = |kind: EntryKind, size: u64| (kind == EntryKind::File).then_some(size);
        let side = Some(action.side());
        Some(match action {
            Action::Copy {
                path,
                source,
                expected,
                ..
            } => Item {
                action: ItemAction::Copy,
                side,
                path: path.clone(),
                to: None,
                kind: Some(source.state.kind),
                size: file_size(source.state.kind, source.state.size),
                detail: expected.as_ref().map(|_| "replace".to_string()),
            },
            Action::Delete { path, expected, .. } => Item {
                action: ItemAction::Delete,
                side,
                path: path.clone(),
                to: None,
                kind: Some(expected.state.kind),
                size: file_size(expected.state.kind, expected.state.size),
                detail: None,
            },
            Action::Rename {
                from, to, source, ..
            } => Item {
                action: ItemAction::Rename,
                side,
                path: from.clone(),
                to: Some(to.clone()),
                kind: Some(source.state.kind),
                size: file_size(source.state.kind, source.state.size),
                detail: None,
            },
            Action::Mkdir {
                path,
                source,
                expected,
                ..
            } => Item {
                action: if expected.is_some() {
                    ItemAction::Chmod
                } else {
                    ItemAction::Mkdir
                },
                side,
                path: path.clone(),
                to: None,
                kind: Some(EntryKind::Dir),
                size: None,
                detail: expected
                    .as_ref()
                    .map(|_| format!("mode {:o}", source.state.mode & 0o7777)),
            },
            Action::MoveAside {
                path, to, expected, ..
            } => Item {
                action: ItemAction::MoveAside,
                side,
                path: path.clone(),
                to: Some(to.clone()),
                kind: Some(expected.state.kind),
                size: file_size(expected.state.kind, expected.state.size),
                detail: None,
            },
            Action::Archive {
                path,
                expected,
                archived_as,
            } => Item {
                action: ItemAction::Archive,
                side,
                path: path.clone(),
                to: (archived_as != path).then(|| archived_as.clone()),
                kind: Some(expected.state.kind),
                size: file_size(expected.state.kind, expected.state.size),
                detail: None,
            },
            Action::Record { .. } => return None,
        })
    }

    /// The item for a conflict the reconciler met.
    pub(crate) fn of_conflict(c: &ConflictRecord) -> Item {
        let kind = c.a.as_ref().or(c.b.as_ref()).map(|e| e.state.kind);
        let detail = match c.winner {
            Some(w) => format!(
                "{}: {} wins{}",
                c.policy.as_str(),
                w.letter(),
                c.loser_kept_at
                    .as_deref()
                    .map(|k| format!(", the other is kept at {}", display_key(k)))
                    .unwrap_or_default()
            ),
            None => "left for you: see `ferry conflicts`".to_string(),
        };
        Item {
            action: ItemAction::Conflict,
            side: None,
            path: c.path.clone(),
            to: None,
            kind,
            size: None,
            detail: Some(detail),
        }
    }
}

/// Every action of a plan that changes a disk, and every conflict, in path order.
pub fn plan_items(plan: &Plan) -> Vec<Item> {
    let mut items: Vec<Item> = (plan.actions.iter())
        .filter_map(Item::of_action)
        .chain(plan.conflicts.iter().map(Item::of_conflict))
        .collect();
    items.sort_by(|x, y| x.path.cmp(&y.path));
    items
}

impl serde::Serialize for Item {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Item", 8)?;
        st.serialize_field("action", self.action.as_str())?;
        st.serialize_field("direction", &self.direction_str())?;
        st.serialize_field("side", &self.side.map(Side::letter))?;
        st.serialize_field("path", &display_key(self.path.as_str()))?;
        st.serialize_field("to", &self.to.as_ref().map(|t| display_key(t.as_str())))?;
        st.serialize_field("kind", &self.kind.map(EntryKind::as_str))?;
        st.serialize_field("size", &self.size)?;
        st.serialize_field("detail", &self.detail)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::entry::{Entry, StatInfo};
    use crate::model::version_vector::VersionVector;

    fn file(path: &str, size: u64) -> Entry {
        let stat = StatInfo {
            size,
            ..Default::default()
        };
        Entry::at(RelPath::new(path).unwrap(), EntryKind::File, stat)
    }

    #[test]
    fn directions_and_json() {
        let copy = Action::Copy {
            to: Side::B,
            path: RelPath::new("x.txt").unwrap(),
            source: Box::new(file("x.txt", 5)),
            expected: None,
            version: VersionVector::default(),
        };
        let item = Item::of_action(&copy).unwrap();
        assert_eq!(item.direction(), Some((Side::A, Side::B)));
        let v = serde_json::to_value(&item).unwrap();
        assert_eq!(v["action"], "copy");
        assert_eq!(v["direction"], "a->b");
        assert_eq!(v["side"], "b");
        assert_eq!(v["size"], 5);
        assert_eq!(v["detail"], serde_json::Value::Null);

        let delete = Action::Delete {
            side: Side::A,
            path: RelPath::new("gone.txt").unwrap(),
            expected: Box::new(file("gone.txt", 3)),
            version: VersionVector::default(),
        };
        let item = Item::of_action(&delete).unwrap();
        assert_eq!(item.direction_str(), Some("b->a"));

        let record = Action::Record {
            side: Side::A,
            entry: Box::new(file("same.txt", 1)),
        };
        assert_eq!(Item::of_action(&record), None);
        for a in [
            ItemAction::Copy,
            ItemAction::Delete,
            ItemAction::Rename,
            ItemAction::Mkdir,
            ItemAction::Chmod,
            ItemAction::MoveAside,
            ItemAction::Conflict,
            ItemAction::Archive,
        ] {
            assert_eq!(ItemAction::parse(a.as_str()), Some(a));
        }
    }
}
