//! What the index leaves out: built-in excludes plus `.ferryignore` files (gitignore
//! syntax, which sync like any other file).

/// Per-location folder holding the marker, temp files and the version store.
pub const FERRY_DIR: &str = ".ferry";
/// Name of the ignore file.
pub const IGNORE_FILE: &str = ".ferryignore";
/// Prefix of ferry's temp files, written next to their final path.
pub const TEMP_PREFIX: &str = ".ferry.tmp.";

/// Operating-system clutter that is never synced.
const OS_JUNK: &[&str] = &[
    ".DS_Store",
    "Thumbs.db",
    "ehthumbs.db",
    "desktop.ini",
    ".Spotlight-V100",
    ".Trashes",
    ".fseventsd",
];

/// How much to index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexRules {
    /// Index everything (including `node_modules`), except ferry's own files.
    pub index_everything: bool,
}

impl IndexRules {
    /// Whether a name (at `depth` 1 = directly under the root) is excluded by the built-ins.
    pub(crate) fn builtin_excluded(&self, name: &str, depth: usize, is_dir: bool) -> bool {
        if depth == 1 && name == FERRY_DIR {
            return true;
        }
        if temp_tag_of(name).is_some() {
            return true;
        }
        if self.index_everything {
            return false;
        }
        OS_JUNK.contains(&name) || (is_dir && name == "node_modules")
    }

    /// OS clutter that may be removed with a directory being deleted.
    pub(crate) fn is_junk(name: &str) -> bool {
        OS_JUNK.contains(&name)
    }
}

/// The location tag of one of ferry's temp-file names (`.ferry.tmp.<16 hex>.<16
/// hex>`, see [`crate::replica::fs_ops::temp_name`]), or `None` for any other name — a user's
/// `.ferry.tmp.notes` is an ordinary file.
pub(crate) fn temp_tag_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(TEMP_PREFIX)?;
    let (tag, r) = rest.split_once('.')?;
    let hex = |s: &str| s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (hex(tag) && hex(r)).then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins() {
        let std = IndexRules::default();
        assert!(std.builtin_excluded(".ferry", 1, true));
        assert!(!std.builtin_excluded(".ferry", 2, true));
        assert!(std.builtin_excluded(".ferry.tmp.0123456789abcdef.fedcba9876543210", 3, false));
        assert!(!std.builtin_excluded(".ferry.tmp.x.abc", 3, false));
        assert!(!std.builtin_excluded(".ferry.tmp.thesis-draft", 3, false));
        assert!(!std.builtin_excluded(".ferry.tmp.0123456789abcdeF.fedcba9876543210", 3, false));
        assert!(std.builtin_excluded(".DS_Store", 2, false));
        assert!(std.builtin_excluded("node_modules", 2, true));
        assert!(!std.builtin_excluded("node_modules", 2, false));
        let all = IndexRules {
            index_everything: true,
        };
        assert!(!all.builtin_excluded("node_modules", 1, true));
        assert!(!all.builtin_excluded("Thumbs.db", 1, false));
        assert!(all.builtin_excluded(".ferry", 1, true));
    }
}
