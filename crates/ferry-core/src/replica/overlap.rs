//! Overlapping roots, told by directory identity (`st_dev`, `st_ino`), not by path.
//!
//! Two roots of a run overlap when they are one folder or one lies inside the other.
//! Paths cannot always tell: a bind mount shows one directory at two paths
//! (`mount --bind H A/sub` puts H inside A, yet no path of H starts with A), and each
//! run would then copy the tree into itself once more. A directory's (device, inode)
//! pair is the same at every path that reaches it, so ferry compares those:
//!
//! - [`check_roots`], before a run opens its locations: each root against the other
//!   root and every ancestor of it (the canonical path's parents, each `lstat`ed). This
//!   finds the same folder (also through a symlink or a bind mount), one inside the
//!   other, and a root that is a bind mount of the other's ancestor. It then looks at
//!   the mount points below each root that `/proc/self/mountinfo` lists: one that is
//!   a root or an ancestor of one (a bind mount of H inside A) is refused before
//!   anything is written.
//! - [`Fence`], in every walk of a scan: a directory the walker meets that is a root
//!   of the run or an ancestor of one stops the run. This needs no mount table, so it
//!   also holds for mounts the table does not show (made after the check, or in
//!   another mount namespace's view).

use crate::error::{Error, IoContext, Result};
use crate::model::entry::EntryKind;
use crate::replica::beneath::{DirHandle, Found};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A directory's identity: the same at every path (or mount) that reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DirId {
    pub dev: u64,
    pub ino: u64,
}

impl DirId {
    pub fn of(m: &std::fs::Metadata) -> DirId {
        DirId {
            dev: m.dev(),
            ino: m.ino(),
        }
    }

    /// The identity of what `found` describes, if it is a directory.
    pub(crate) fn of_found(found: &Found) -> Option<DirId> {
        (found.kind == Some(EntryKind::Dir)).then_some(DirId {
            dev: found.dev,
            ino: found.stat.inode,
        })
    }

    /// The identity of an open directory.
    pub(crate) fn of_dir(dir: &DirHandle) -> Result<DirId> {
        let st = rustix::fs::fstat(dir.fd())
            .map_err(std::io::Error::from)
            .ctx("stat", dir.path())?;
        Ok(DirId {
            dev: st.st_dev,
            ino: st.st_ino,
        })
    }

    /// The identity of `path` itself (`lstat`: a symlink is not followed).
    pub fn at(path: &Path) -> Result<DirId> {
        std::fs::symlink_metadata(path)
            .map(|m| DirId::of(&m))
            .map_err(|e| Error::Location {
                root: path.to_path_buf(),
                reason: format!("cannot stat {}: {e}", path.display()),
            })
    }
}

/// A canonical root followed by each of its ancestors up to `/`, with their identities.
fn lineage(root: &Path) -> Result<Vec<(PathBuf, DirId)>> {
    root.ancestors()
        .map(|p| Ok((p.to_path_buf(), DirId::at(p)?)))
        .collect()
}

/// Refuses two canonical roots that overlap: one is the other, or lies inside it, by
/// identity (so also through symlinks and bind mounts, of the roots or of their
/// ancestors), or a mount point below one root is the other root or an ancestor of
/// either root.
pub(crate) fn check_roots(a: &Path, b: &Path) -> Result<()> {
    let (la, lb) = (lineage(a)?, lineage(b)?);
    for (x, lx, y, ly) in [(a, &la, b, &lb), (b, &lb, a, &la)] {
        if let Some((p, _)) = ly.iter().find(|(_, id)| *id == lx[0].1) {
            return Err(roots_overlap(a, b, x, y, p));
        }
    }
    let fence = Fence::from_lineages([la, lb]);
    for root in [a, b] {
        for mount in mount_points_below(root) {
            // A mount point we cannot stat is left to the walk's own check.
            let Ok(m) = std::fs::symlink_metadata(&mount) else {
                continue;
            };
            if let Some(is) = fence.hit(&m) {
                return Err(fence.refusal(&mount, is));
            }
        }
    }
    Ok(())
}

/// Root `x`'s identity is `p`, which is `y` or one of its ancestors.
fn roots_overlap(a: &Path, b: &Path, x: &Path, y: &Path, p: &Path) -> Error {
    let how = if p == y {
        format!("{} and {} are the same folder", x.display(), y.display())
    } else {
        format!("{} lies inside {}", y.display(), p.display())
    };
    let alias = if p != x && p != y {
        format!(
            " ({} is {} through a bind mount or another path)",
            x.display(),
            p.display()
        )
    } else {
        String::new()
    };
    Error::Refused(format!(
        "{} and {} overlap: {how}{alias}; a folder cannot be synced with itself or its own subfolder",
        a.display(),
        b.display()
    ))
}

/// The mount points strictly below `root` that `/proc/self/mountinfo` lists (none when
/// it cannot be read).
fn mount_points_below(root: &Path) -> Vec<PathBuf> {
    let Ok(table) = std::fs::read("/proc/self/mountinfo") else {
        return Vec::new();
    };
    table
        .split(|&c| c == b'\n')
        .filter_map(|line| line.split(|&c| c == b' ').nth(4))
        .map(unescape_mount_field)
        .filter(|p| p != root && p.starts_with(root))
        .collect()
}

/// A path field of `mountinfo`: space, tab, newline and backslash are written as
/// `\` and three octal digits.
fn unescape_mount_field(field: &[u8]) -> PathBuf {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field.get(i + 1..i + 4).and_then(|d| {
            d.iter()
                .all(|c| (b'0'..=b'7').contains(c))
                .then(|| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')))
        });
        match (field[i], octal) {
            (b'\\', Some(n)) if n <= 0xff => {
                out.push(n as u8);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&out))
}

/// The directories a walk must never enter: the roots of a run and all their
/// ancestors. Met inside a root (only a mount can put it there), such a directory means
/// the root holds the other root, or itself, and a run would copy a tree into itself.
#[derive(Debug, Clone, Default)]
pub struct Fence {
    /// Identity → the path it has at or above a root.
    ids: HashMap<DirId, PathBuf>,
    roots: Vec<PathBuf>,
}

impl Fence {
    /// The fence of a run over `roots` (canonical paths).
    pub fn around(roots: &[&Path]) -> Result<Fence> {
        let lineages = roots
            .iter()
            .map(|r| lineage(r))
            .collect::<Result<Vec<_>>>()?;
        Ok(Fence::from_lineages(lineages))
    }

    fn from_lineages(lineages: impl IntoIterator<Item = Vec<(PathBuf, DirId)>>) -> Fence {
        let mut fence = Fence::default();
        for l in lineages {
            if let Some((root, _)) = l.first() {
                fence.roots.push(root.clone());
            }
            for (p, id) in l {
                fence.ids.entry(id).or_insert(p);
            }
        }
        fence
    }

    /// The fenced directory with identity `id`, if there is one.
    pub fn holds(&self, id: DirId) -> Option<&Path> {
        self.ids.get(&id).map(PathBuf::as_path)
    }

    /// The fenced directory that the directory of `meta` is, if it is one.
    pub fn hit(&self, meta: &std::fs::Metadata) -> Option<&Path> {
        meta.is_dir().then(|| self.holds(DirId::of(meta))).flatten()
    }

    /// The fenced directory that the directory `found` describes is, if it is one.
    pub(crate) fn hit_found(&self, found: &Found) -> Option<&Path> {
        DirId::of_found(found).and_then(|id| self.holds(id))
    }

    /// The error that stops a run whose walk met fenced directory `is` at `at`.
    pub fn refusal(&self, at: &Path, is: &Path) -> Error {
        let what = if self.roots.iter().any(|r| r == is) {
            "a folder of this run".to_string()
        } else {
            let held: Vec<String> = self
                .roots
                .iter()
                .filter(|r| r.starts_with(is))
                .map(|r| r.display().to_string())
                .collect();
            format!("which holds {}", held.join(" and "))
        };
        Error::Refused(format!(
            "{} is {} (mounted there?), {what}, so the folders overlap; a folder cannot be \
             synced with itself or its own subfolder: unmount it or sync other folders",
            at.display(),
            is.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_fields_are_unescaped() {
        assert_eq!(
            unescape_mount_field(br"/mnt/a\040b\134c\011"),
            PathBuf::from("/mnt/a b\\c\t")
        );
        assert_eq!(unescape_mount_field(br"/x\04"), PathBuf::from(r"/x\04"));
        assert_eq!(unescape_mount_field(br"/x\999"), PathBuf::from(r"/x\999"));
    }

    #[test]
    fn same_folder_nested_folders_and_symlinks_overlap() {
        let t = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(t.path()).unwrap();
        let (a, b) = (r.join("a"), r.join("b"));
        std::fs::create_dir_all(a.join("sub")).unwrap();
        std::fs::create_dir(&b).unwrap();
        assert!(check_roots(&a, &b).is_ok());
        assert!(check_roots(&a, &a).is_err());
        assert!(check_roots(&a, &a.join("sub")).is_err());
        assert!(check_roots(&a.join("sub"), &a).is_err());
        let msg = check_roots(&a.join("sub"), &a).unwrap_err().to_string();
        assert!(msg.contains("lies inside"), "{msg}");
    }

    #[test]
    fn fence_hits_roots_and_ancestors_only() {
        let t = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(t.path()).unwrap();
        let (a, b) = (r.join("a"), r.join("b"));
        std::fs::create_dir_all(a.join("sub")).unwrap();
        std::fs::create_dir(&b).unwrap();
        let fence = Fence::around(&[&a, &b]).unwrap();
        let meta = |p: &Path| std::fs::symlink_metadata(p).unwrap();
        assert_eq!(fence.hit(&meta(&b)), Some(b.as_path()));
        assert_eq!(fence.hit(&meta(&r)), Some(r.as_path()));
        assert_eq!(fence.hit(&meta(&a.join("sub"))), None);
        let msg = fence.refusal(&a.join("sub"), &r).to_string();
        assert!(msg.contains("which holds"), "{msg}");
    }
}
