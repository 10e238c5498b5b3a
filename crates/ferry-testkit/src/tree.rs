//! Trees for tests: write and read files under a root, snapshot a tree (kind, content,
//! permission bits, symlink target; `.ferry/` left out), the versions ferry kept of a
//! path, streaming byte comparisons of large files.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::hash::Hasher;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Files up to this size are kept byte for byte in a snapshot; larger ones as a digest.
const SNAPSHOT_INLINE_MAX: u64 = 1 << 20;
/// Read size for streaming comparisons of large files.
const STREAM_CHUNK: usize = 1 << 20;

/// What a snapshot records about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File { content: Content, mode: u32 },
    Dir { mode: u32 },
    Symlink { target: PathBuf },
}

/// A file's content: its bytes, or for large files its length and a streaming digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Bytes(Vec<u8>),
    Digest { len: u64, sip: u64 },
}

pub type Snapshot = BTreeMap<PathBuf, Node>;

/// Snapshot of the tree under `root`, without the top-level `.ferry/`. Never follows
/// symlinks.
pub fn snapshot(root: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    snapshot_dir(root, root, &mut out);
    out
}

fn snapshot_dir(root: &Path, dir: &Path, out: &mut Snapshot) {
    for item in fs::read_dir(dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display())) {
        let path = item.unwrap().path();
        let rel = path.strip_prefix(root).unwrap().to_path_buf();
        if rel == Path::new(".ferry") {
            continue;
        }
        let meta = fs::symlink_metadata(&path).unwrap();
        let mode = meta.mode() & 0o7777;
        let node = if meta.file_type().is_symlink() {
            Node::Symlink {
                target: fs::read_link(&path).unwrap(),
            }
        } else if meta.is_dir() {
            snapshot_dir(root, &path, out);
            Node::Dir { mode }
        } else {
            Node::File {
                content: content_of(&path, meta.len()),
                mode,
            }
        };
        out.insert(rel, node);
    }
}

fn content_of(path: &Path, len: u64) -> Content {
    if len <= SNAPSHOT_INLINE_MAX {
        return Content::Bytes(fs::read(path).unwrap());
    }
    let mut file = File::open(path).unwrap();
    let mut buf = vec![0u8; STREAM_CHUNK];
    let mut sip = std::collections::hash_map::DefaultHasher::new();
    let mut total = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf);
        if n == 0 {
            break;
        }
        sip.write(&buf[..n]);
        total += n as u64;
    }
    Content::Digest {
        len: total,
        sip: sip.finish(),
    }
}

/// Reads until `buf` is full or the end of the file; returns how much was read.
fn read_full(file: &mut File, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).unwrap() {
            0 => break,
            n => filled += n,
        }
    }
    filled
}

/// Whether two files hold the same bytes, compared chunk by chunk (never whole files in
/// memory).
pub fn same_bytes(p: &Path, q: &Path) -> bool {
    let (mut f, mut g) = (File::open(p).unwrap(), File::open(q).unwrap());
    if f.metadata().unwrap().len() != g.metadata().unwrap().len() {
        return false;
    }
    let (mut x, mut y) = (vec![0u8; STREAM_CHUNK], vec![0u8; STREAM_CHUNK]);
    loop {
        let (n, m) = (read_full(&mut f, &mut x), read_full(&mut g, &mut y));
        if n != m || x[..n] != y[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

/// Writes `content` to `root/rel`, creating parent folders.
pub fn write(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

pub fn read(root: &Path, rel: &str) -> Vec<u8> {
    let p = root.join(rel);
    fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn set_mtime(path: &Path, t: SystemTime) {
    File::open(path).unwrap().set_modified(t).unwrap();
}

/// A point in time `secs` seconds before now (whole nanoseconds kept).
pub fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

/// Contents of the versions ferry kept of `rel` in `root/.ferry/versions/`.
pub fn kept_versions(root: &Path, rel: &str) -> Vec<Vec<u8>> {
    let rel = Path::new(rel);
    let dir = root
        .join(".ferry/versions")
        .join(rel.parent().unwrap_or(Path::new("")));
    let prefix = format!("{}~", rel.file_name().unwrap().to_str().unwrap());
    let Ok(items) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let item = item.unwrap();
        if item.file_name().to_str().unwrap().starts_with(&prefix) {
            out.push(fs::read(item.path()).unwrap());
        }
    }
    out
}

/// Names in `dir` (one level) that start with `prefix`.
pub fn names_starting_with(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}
