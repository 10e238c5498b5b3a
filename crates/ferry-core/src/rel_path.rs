//! Validated location-relative paths (safety rule 4).
//!
//! Every path that reaches the executor, whether it came from a scan, an index row or a
//! plan, is a `RelPath`: relative, `/`-separated, normalised, UTF-8, with no `.`, `..`,
//! empty components or NUL bytes. Building one is the only way to name a file inside a
//! location, so nothing can address a file outside the root by construction.

use crate::error::{Error, Result};
use std::fmt;
use std::path::{Path, PathBuf};

/// A validated relative path inside a location.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    /// Validates `s` as a location-relative path.
    pub fn new(s: &str) -> Result<RelPath> {
        let bad = |reason| Error::InvalidPath {
            path: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(bad("empty path"));
        }
        if s.starts_with('/') {
            return Err(bad("absolute path"));
        }
        if s.contains('\0') {
            return Err(bad("NUL byte in path"));
        }
        for comp in s.split('/') {
            match comp {
                "" => return Err(bad("empty component (double or trailing slash)")),
                "." => return Err(bad("'.' component")),
                ".." => return Err(bad("'..' component")),
                _ => {}
            }
        }
        Ok(RelPath(s.to_string()))
    }

    /// Builds a `RelPath` from a path relative to a root, e.g. from a directory walk.
    pub fn from_path(p: &Path) -> Result<RelPath> {
        let s = p.to_str().ok_or_else(|| Error::InvalidPath {
            path: p.to_string_lossy().into_owned(),
            reason: "file name is not valid UTF-8",
        })?;
        RelPath::new(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path under `root`.
    pub fn under(&self, root: &Path) -> PathBuf {
        root.join(&self.0)
    }

    /// The parent path, `None` for a top-level name.
    pub fn parent(&self) -> Option<RelPath> {
        self.0.rfind('/').map(|i| RelPath(self.0[..i].to_string()))
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        match self.0.rfind('/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// A sibling with another file name (the name must be a single valid component).
    pub fn with_file_name(&self, name: &str) -> Result<RelPath> {
        match self.parent() {
            Some(p) => RelPath::new(&format!("{}/{}", p.0, name)),
            None => RelPath::new(name),
        }
    }

    /// Appends one or more components.
    pub fn join(&self, rest: &str) -> Result<RelPath> {
        RelPath::new(&format!("{}/{}", self.0, rest))
    }

    /// Whether `self` lies strictly below `ancestor`.
    pub fn is_strictly_under(&self, ancestor: &RelPath) -> bool {
        self.0.len() > ancestor.0.len()
            && self.0.starts_with(&ancestor.0)
            && self.0.as_bytes()[ancestor.0.len()] == b'/'
    }

    /// Number of components.
    pub fn depth(&self) -> usize {
        self.0.split('/').count()
    }

    /// All proper ancestors, nearest first.
    pub fn ancestors(&self) -> impl Iterator<Item = &str> {
        let s = self.0.as_str();
        s.char_indices()
            .rev()
            .filter(|(_, c)| *c == '/')
            .map(move |(i, _)| &s[..i])
    }
}

/// Longest file name most file systems accept, in bytes.
pub const NAME_MAX: usize = 255;

/// Shortens `name` to at most `max_bytes` bytes (on a char boundary) when it is longer,
/// ending it with a short hash of the full name so shortened names stay distinct.
pub fn shorten_name(name: &str, max_bytes: usize) -> String {
    if name.len() <= max_bytes {
        return name.to_string();
    }
    let tag = format!("~{}", &blake3::hash(name.as_bytes()).to_hex()[..8]);
    let mut out = String::new();
    for c in name.chars() {
        if out.len() + c.len_utf8() + tag.len() > max_bytes {
            break;
        }
        out.push(c);
    }
    out + &tag
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_and_odd_names() {
        for ok in [
            "a",
            "a/b",
            "-rf",
            "with space/x y",
            "ünï/çødé",
            "new\nline",
            ".hidden/..x",
        ] {
            assert!(RelPath::new(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn rejects_escapes_and_malformed() {
        for bad in [
            "",
            "/etc/passwd",
            "..",
            "a/../b",
            "a/./b",
            "a//b",
            "a/",
            "a\0b",
            "../x",
        ] {
            assert!(RelPath::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shorten_name_fits_and_stays_distinct() {
        assert_eq!(shorten_name("short", 10), "short");
        let a = shorten_name(&"é".repeat(200), 100);
        let b = shorten_name(&format!("{}x", "é".repeat(200)), 100);
        assert!(a.len() <= 100 && b.len() <= 100);
        assert_ne!(a, b);
    }

    #[test]
    fn structure_helpers() {
        let p = RelPath::new("a/b/c.txt").unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "a/b");
        assert_eq!(p.file_name(), "c.txt");
        assert_eq!(p.depth(), 3);
        assert_eq!(p.ancestors().collect::<Vec<_>>(), vec!["a/b", "a"]);
        let a = RelPath::new("a").unwrap();
        assert!(p.is_strictly_under(&a));
        assert!(!RelPath::new("ab/c").unwrap().is_strictly_under(&a));
        assert!(!a.is_strictly_under(&a));
        assert_eq!(p.with_file_name("d").unwrap().as_str(), "a/b/d");
        assert!(p.with_file_name("../x").is_err());
    }
}
