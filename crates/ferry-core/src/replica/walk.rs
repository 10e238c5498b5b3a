//! The directory walk behind a scan: parallel, never following symlinks, applying the
//! built-in excludes and `.ferryignore` files (gitignore syntax, matched with the
//! `ignore` crate's matcher).
//!
//! Why not the `ignore` crate's own walker: it stats every entry by its full path, and
//! resolving long paths component by component was measured at about 15% of a no-op
//! sync. Here each entry is stat'ed relative to its open directory
//! (`fstatat(dirfd, name)`), so only one name is looked up, and each directory is
//! opened beneath the root's handle without following symlinks (`beneath`), so a
//! tree deeper than `PATH_MAX` walks too and a swapped folder is never followed.

use crate::model::entry::{EntryKind, StatInfo};
use crate::model::rel_path::{escape_os, RelPath};
use crate::problem::{Problem, ProblemKind};
use crate::replica::beneath::{DirHandle, RootDir};
use crate::replica::ignore_rules::{temp_tag_of, IndexRules, IGNORE_FILE};
use crate::replica::overlap::{DirId, Fence};
use ignore::gitignore::Gitignore;
use ignore::Match;
use std::collections::VecDeque;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// One path the walk saw (the root itself excluded).
pub struct Seen {
    pub rel: RelPath,
    pub kind: EntryKind,
    pub stat: StatInfo,
}

/// What a walk found.
#[derive(Default)]
pub struct WalkOut {
    pub seen: Vec<Seen>,
    /// Paths that could not be read: what the index knows below them must be kept.
    pub unreadable: Vec<RelPath>,
    /// Leftover ferry temp files (from a run that died).
    pub temp_files: Vec<PathBuf>,
    pub errors: Vec<Problem>,
    /// Paths left out on purpose and said so: fifos, sockets, devices.
    pub notes: Vec<String>,
    /// Directories the walk met that its fence holds (a root of the run, or an
    /// ancestor of one, mounted inside the walked root), with the fenced path each one
    /// is; the walk did not enter them. Any one of them stops the run.
    pub fenced: Vec<(PathBuf, PathBuf)>,
}

/// The note for a path that is neither a file, a folder nor a symlink.
fn special_note(abs: &Path) -> String {
    format!(
        "{}: not a regular file, folder or symlink (fifo, socket or device); not synced",
        escape_os(abs)
    )
}

/// The `.ferryignore` matchers in force for a directory, nearest last.
#[derive(Default)]
pub(crate) struct Rules {
    parent: Option<Arc<Rules>>,
    matcher: Option<Gitignore>,
}

impl Rules {
    /// Whether `abs` is ignored: the nearest `.ferryignore` with an opinion decides.
    fn ignored(&self, abs: &Path, is_dir: bool) -> bool {
        let mut cur = Some(self);
        while let Some(r) = cur {
            if let Some(m) = &r.matcher {
                match m.matched(abs, is_dir) {
                    Match::Ignore(_) => return true,
                    Match::Whitelist(_) => return false,
                    Match::None => {}
                }
            }
            cur = r.parent.as_deref();
        }
        false
    }

    fn any(&self) -> bool {
        self.matcher.is_some() || self.parent.as_ref().is_some_and(|p| p.any())
    }
}

#[derive(Clone)]
pub(crate) struct Job {
    pub(crate) dir: Option<RelPath>,
    pub(crate) rules: Arc<Rules>,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    /// Directories queued or being read; the walk is over when it drops to zero.
    open: usize,
}

#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

impl Queue {
    fn push(&self, new: Vec<Job>) {
        if new.is_empty() {
            return;
        }
        if let Ok(mut s) = self.state.lock() {
            s.open += new.len();
            s.jobs.extend(new);
        }
        self.ready.notify_all();
    }

    /// The next directory to read, or `None` once every directory has been read.
    fn next(&self) -> Option<Job> {
        let mut s = self.state.lock().ok()?;
        loop {
            if let Some(j) = s.jobs.pop_front() {
                return Some(j);
            }
            if s.open == 0 {
                return None;
            }
            s = self.ready.wait(s).ok()?;
        }
    }

    fn done(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.open -= 1;
            if s.open == 0 {
                self.ready.notify_all();
            }
        }
    }
}

/// Walks `root` on all cores, never entering a directory `fence` holds. Runs use the
/// streamed walk in path order (`ordered_walk.rs`); this one, holding the whole tree,
/// is the reference its tests compare against.
#[cfg(test)]
pub fn walk(root: &RootDir, rules: IndexRules, fence: &Fence) -> WalkOut {
    let start = vec![Job {
        dir: None,
        rules: Arc::new(Rules::default()),
    }];
    walk_jobs(root, rules, start, WalkOut::default(), fence)
}

/// Walks only `paths` of `root` (and the subtrees of those that are directories), as
/// the full walk would see them: each path is checked against the built-in excludes
/// and the `.ferryignore` files of its ancestors, and skipped when an ancestor is
/// excluded, missing or not a directory. A path that is absent is simply not seen.
/// `paths` must not lie below one another (see [`crate::replica::scan::Scope`]). A path, or an
/// ancestor of one, that `fence` holds is reported in `fenced` and not entered.
pub(crate) fn walk_paths(
    root: &RootDir,
    builtin: IndexRules,
    paths: &[RelPath],
    fence: &Fence,
) -> WalkOut {
    let mut out = WalkOut::default();
    let mut chains = Chains::default();
    let mut start = Vec::new();
    for p in paths {
        let parent = p.parent();
        let Some(rules) = chains.rules_of(root, builtin, parent.as_ref(), fence, &mut out) else {
            continue;
        };
        let abs = p.under(root.path());
        let found = root.parent(p).and_then(|(dir, name)| dir.lstat(&name));
        let found = match found {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e) => {
                out.errors.push(Problem::from_error(None, None, "", &e));
                out.unreadable.push(p.clone());
                continue;
            }
        };
        let Some(kind) = found.kind else {
            out.notes.push(special_note(&abs));
            continue;
        };
        if let Some(is) = fence.hit_found(&found) {
            out.fenced.push((abs, is.to_path_buf()));
            continue;
        }
        let name = p.file_name();
        let is_dir = kind == EntryKind::Dir;
        if !is_dir && temp_tag_of(name).is_some() {
            out.temp_files.push(abs);
            continue;
        }
        if builtin.builtin_excluded(name, p.depth(), is_dir)
            || (rules.any() && rules.ignored(&abs, is_dir))
        {
            continue;
        }
        if is_dir {
            start.push(Job {
                dir: Some(p.clone()),
                rules,
            });
        }
        out.seen.push(Seen {
            rel: p.clone(),
            kind,
            stat: found.stat,
        });
    }
    walk_jobs(root, builtin, start, out, fence)
}

/// The `.ferryignore` rules in force inside each directory a targeted walk looked at
/// (`None`: the directory is excluded, missing or not a directory, so nothing below it
/// is walked), so a batch of paths in one folder reads its ignore files once.
#[derive(Default)]
struct Chains {
    known: std::collections::HashMap<Option<RelPath>, Option<Arc<Rules>>>,
}

impl Chains {
    /// The rules for the contents of `dir` (`None` = the root), built top-down the way
    /// the full walk builds them.
    fn rules_of(
        &mut self,
        root: &RootDir,
        builtin: IndexRules,
        dir: Option<&RelPath>,
        fence: &Fence,
        out: &mut WalkOut,
    ) -> Option<Arc<Rules>> {
        if let Some(known) = self.known.get(&dir.cloned()) {
            return known.clone();
        }
        let rules = match dir {
            None => {
                let base = Arc::new(Rules::default());
                Some(
                    match root.top().ok().and_then(|d| local_rules(&d, &base, out)) {
                        Some(r) => Arc::new(r),
                        None => base,
                    },
                )
            }
            Some(d) => self
                .rules_of(root, builtin, d.parent().as_ref(), fence, out)
                .and_then(|above| {
                    let abs = d.under(root.path());
                    // Opened beneath the root: a symlink or a file there is no folder.
                    let dir = root.dir(d.as_str()).ok()?;
                    if let Some(is) = DirId::of_dir(&dir).ok().and_then(|id| fence.holds(id)) {
                        out.fenced.push((abs, is.to_path_buf()));
                        return None;
                    }
                    let excluded = builtin.builtin_excluded(d.file_name(), d.depth(), true)
                        || (above.any() && above.ignored(&abs, true));
                    (!excluded).then(|| match local_rules(&dir, &above, out) {
                        Some(r) => Arc::new(r),
                        None => above,
                    })
                }),
        };
        self.known.insert(dir.cloned(), rules.clone());
        rules
    }
}

/// Reads the directories of `start` and everything below them on all cores, adding
/// what it finds to `out`.
fn walk_jobs(
    root: &RootDir,
    rules: IndexRules,
    start: Vec<Job>,
    out: WalkOut,
    fence: &Fence,
) -> WalkOut {
    let queue = Queue::default();
    queue.push(start);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    let merged = Mutex::new(out);
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| {
                let mut out = WalkOut::default();
                while let Some(job) = queue.next() {
                    let subdirs = read_dir(root, rules, job, fence, &mut out);
                    queue.push(subdirs);
                    queue.done();
                }
                if let Ok(mut all) = merged.lock() {
                    all.seen.extend(out.seen);
                    all.unreadable.extend(out.unreadable);
                    all.temp_files.extend(out.temp_files);
                    all.errors.extend(out.errors);
                    all.notes.extend(out.notes);
                    all.fenced.extend(out.fenced);
                }
            });
        }
    });
    merged.into_inner().unwrap_or_default()
}

/// Reads one directory; returns its subdirectories to read next (none that `fence`
/// holds: those go to `out.fenced`).
pub(crate) fn read_dir(
    root: &RootDir,
    builtin: IndexRules,
    job: Job,
    fence: &Fence,
    out: &mut WalkOut,
) -> Vec<Job> {
    let mut subdirs = Vec::new();
    let dir_abs = match &job.dir {
        Some(d) => d.under(root.path()),
        None => root.path().to_path_buf(),
    };
    let depth = job.dir.as_ref().map_or(0, |d| d.depth()) + 1;
    let listed = root
        .dir(job.dir.as_ref().map_or("", |d| d.as_str()))
        .and_then(|dir| Ok((dir.names()?, dir)));
    let (names, dir) = match listed {
        Ok(x) => x,
        Err(e) => {
            let doing = format!("{}: cannot list", escape_os(&dir_abs));
            out.errors.push(Problem::from_error(None, None, &doing, &e));
            if let Some(d) = job.dir {
                out.unreadable.push(d);
            }
            return subdirs;
        }
    };
    let rules = match local_rules(&dir, &job.rules, out) {
        Some(r) => Arc::new(r),
        None => job.rules.clone(),
    };
    let check_rules = rules.any();
    for name_os in names {
        // The name's key: itself when it is valid UTF-8, else with its other bytes
        // escaped (see `rel_path`). The file system always gets `name_os`.
        let name = crate::model::rel_path::encode(name_os.as_bytes());
        let rel = match &job.dir {
            Some(d) => d.join(&name),
            None => RelPath::new(&name),
        };
        let Ok(rel) = rel else {
            let why = format!(
                "{}: invalid name; not synced",
                escape_os(dir_abs.join(&name_os))
            );
            out.errors
                .push(Problem::described(None, ProblemKind::InvalidPath, why));
            continue;
        };
        let found = match dir.lstat(&name_os) {
            Ok(Some(f)) => f,
            Ok(None) => continue, // gone since the listing
            Err(e) => {
                out.errors.push(Problem::from_error(None, None, "", &e));
                out.unreadable.push(rel);
                continue;
            }
        };
        let Some(kind) = found.kind else {
            out.notes.push(special_note(&dir_abs.join(&name_os)));
            continue;
        };
        if let Some(is) = fence.hit_found(&found) {
            out.fenced.push((dir_abs.join(&name_os), is.to_path_buf()));
            continue;
        }
        let is_dir = kind == EntryKind::Dir;
        if !is_dir && temp_tag_of(&name).is_some() {
            out.temp_files.push(dir_abs.join(&name_os));
            continue;
        }
        if builtin.builtin_excluded(&name, depth, is_dir) {
            continue;
        }
        if check_rules && rules.ignored(&dir_abs.join(&name_os), is_dir) {
            continue;
        }
        if is_dir {
            subdirs.push(Job {
                dir: Some(rel.clone()),
                rules: rules.clone(),
            });
        }
        out.seen.push(Seen {
            rel,
            kind,
            stat: found.stat,
        });
    }
    subdirs
}

/// The rules for a directory that has its own `.ferryignore`, or `None` to inherit.
/// The file is read through the directory's handle; its patterns are matched against
/// the paths below `dir`.
fn local_rules(dir: &DirHandle, inherited: &Arc<Rules>, out: &mut WalkOut) -> Option<Rules> {
    let name = std::ffi::OsStr::new(IGNORE_FILE);
    let shown = dir.show(name);
    match dir.lstat(name) {
        Ok(Some(f)) if f.kind == Some(EntryKind::File) => {}
        _ => return None,
    }
    let text = match dir.open_file(name).and_then(|mut f| {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut v)
            .map(|_| v)
            .map_err(|e| crate::error::Error::Io {
                action: "read",
                path: shown.clone(),
                source: e,
            })
    }) {
        Ok(t) => t,
        Err(e) => {
            out.errors.push(Problem::from_error(None, None, "", &e));
            return None;
        }
    };
    let mut builder = ignore::gitignore::GitignoreBuilder::new(dir.path());
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        // A line ferry cannot use is skipped with a warning (file and line); the
        // others still apply.
        let skipped = |why: &str| format!("{}:{}: {why}; line skipped", escape_os(&shown), n + 1);
        let Ok(line) = std::str::from_utf8(line) else {
            out.notes
                .push(skipped("not valid UTF-8 (patterns must be UTF-8)"));
            continue;
        };
        let line = line.trim_end_matches('\r');
        if let Some(why) = unusable_pattern(line) {
            out.notes.push(skipped(why));
            continue;
        }
        if let Err(e) = builder.add_line(Some(shown.clone()), line) {
            out.notes.push(skipped(&e.to_string()));
        }
    }
    let matcher = match builder.build() {
        Ok(m) => m,
        Err(e) => {
            let why = format!("{}: {e}", escape_os(&shown));
            out.errors
                .push(Problem::described(None, ProblemKind::Other, why));
            return None;
        }
    };
    Some(Rules {
        parent: Some(inherited.clone()),
        matcher: Some(matcher),
    })
}

/// Why a `.ferryignore` line that git would take as matching nothing cannot be given
/// to the matcher as it is, or `None`. A lone `!` (or `/`, `!/`) has no pattern left
/// once its markers are stripped: git ignores such a line, but the matcher would take
/// `!` for "un-ignore everything".
fn unusable_pattern(line: &str) -> Option<&'static str> {
    // Comments, and `\!` / `\#` escapes, which keep a pattern.
    if line.starts_with('#') || line.starts_with('\\') {
        return None;
    }
    let trimmed = if line.ends_with("\\ ") {
        line
    } else {
        line.trim_end()
    };
    if trimmed.is_empty() {
        return None;
    }
    let core = trimmed.strip_prefix('!').unwrap_or(trimmed);
    let core = core.strip_prefix('/').unwrap_or(core);
    let core = core.strip_suffix('/').unwrap_or(core);
    core.is_empty()
        .then_some("no pattern after `!` or `/` (git ignores such a line)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn names(out: &WalkOut) -> BTreeSet<String> {
        out.seen
            .iter()
            .map(|s| s.rel.as_str().to_string())
            .collect()
    }

    #[test]
    fn applies_nested_ignore_files_builtins_and_never_follows_links() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in [
            "sub/deeper",
            "sub/secret",
            "node_modules/x",
            ".ferry",
            "outside",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        for f in [
            "a.txt",
            "a.log",
            "keep.log",
            "sub/b.log",
            "sub/c.txt",
            "sub/deeper/d.tmp",
            "sub/secret/s.txt",
            "node_modules/x/m.js",
            ".ferry/location",
            ".DS_Store",
            "sub/.ferry.tmp.0123456789abcdef.0123456789abcdef",
            "sub/.ferry.tmp.notes",
            "outside/o.txt",
        ] {
            std::fs::write(r.join(f), f).unwrap();
        }
        std::fs::write(r.join(".ferryignore"), "*.log\n!keep.log\noutside/\n").unwrap();
        std::fs::write(r.join("sub/.ferryignore"), "secret/\n*.tmp\n").unwrap();
        std::os::unix::fs::symlink(r.join("outside"), r.join("link")).unwrap();
        let out = walk(
            &RootDir::open(r).unwrap(),
            IndexRules::default(),
            &Fence::default(),
        );
        let want: BTreeSet<String> = [
            ".ferryignore",
            "a.txt",
            "keep.log",
            "link",
            "sub",
            "sub/.ferry.tmp.notes",
            "sub/.ferryignore",
            "sub/c.txt",
            "sub/deeper",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(names(&out), want);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(
            out.temp_files,
            vec![r.join("sub/.ferry.tmp.0123456789abcdef.0123456789abcdef")]
        );
        let link = out.seen.iter().find(|s| s.rel.as_str() == "link").unwrap();
        assert_eq!(link.kind, EntryKind::Symlink);

        let all = walk(
            &RootDir::open(r).unwrap(),
            IndexRules {
                index_everything: true,
            },
            &Fence::default(),
        );
        assert!(names(&all).contains("node_modules/x/m.js"));
        assert!(names(&all).contains(".DS_Store"));
        assert!(!names(&all).iter().any(|n| n.starts_with(".ferry/")));
    }

    #[test]
    fn unusable_ignore_lines_are_skipped_with_a_warning_and_the_rest_applies() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for f in ["a.log", "b.tmp", "c.txt", "caf\u{e9}.bak", "d.md"] {
            std::fs::write(r.join(f), f).unwrap();
        }
        let mut text = b"*.log\n!\ncaf\xe9.bak\n*.tmp\n/\n!/\n{z\n*.md\n# a comment\n".to_vec();
        text.extend_from_slice(b"\\!literal\n");
        std::fs::write(r.join(".ferryignore"), text).unwrap();
        let out = walk(
            &RootDir::open(r).unwrap(),
            IndexRules::default(),
            &Fence::default(),
        );
        let want: BTreeSet<String> = [".ferryignore", "c.txt", "caf\u{e9}.bak"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(names(&out), want, "notes: {:?}", out.notes);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let lines: Vec<&str> = out
            .notes
            .iter()
            .map(|n| n.split(": ").next().unwrap().rsplit('/').next().unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                ".ferryignore:2",
                ".ferryignore:3",
                ".ferryignore:5",
                ".ferryignore:6",
                ".ferryignore:7"
            ],
            "{:?}",
            out.notes
        );
        assert!(out.notes[1].contains("UTF-8"), "{:?}", out.notes);
    }

    #[test]
    fn patterns_without_a_pattern_are_unusable() {
        for bad in ["!", "! ", "/", "!/", "//", "!//"] {
            assert!(unusable_pattern(bad).is_some(), "{bad:?}");
        }
        for ok in ["", "   ", "# c", "!x", "/x", "x/", "\\!", "\\ ", "*"] {
            assert!(unusable_pattern(ok).is_none(), "{ok:?}");
        }
    }
}
