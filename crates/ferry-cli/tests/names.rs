//! The `ferry` binary on names that are not valid UTF-8 (legacy Latin-1 names such as
//! `caf\xe9.txt`): they sync with their bytes, and every output shows them escaped
//! (`caf\xe9.txt`), text and `--json` alike, never with a raw NUL or a U+FFFD.

use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{ferry_cmd, folders};

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// Every path below `root` but `.ferry/`, by its bytes: file contents, link targets.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new(".ferry") {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(rel, t.as_os_str().as_bytes().to_vec());
            } else if m.is_dir() {
                out.insert(rel, b"<dir>".to_vec());
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

struct World {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    a: PathBuf,
    b: PathBuf,
}

impl World {
    fn new() -> World {
        let (tmp, [home, a, b]) = folders(["home", "a", "b"]);
        World {
            _tmp: tmp,
            home,
            a,
            b,
        }
    }

    /// Runs `ferry ARGS`; checks the exit code and that no output holds a raw NUL or
    /// bytes that are not UTF-8 (which would be shown as U+FFFD).
    fn ferry(&self, args: &[&OsStr], code: i32) -> (String, String) {
        let out: Output = ferry_cmd(&self.home).args(args).output().unwrap();
        let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
        let stderr = String::from_utf8(out.stderr).expect("stderr is UTF-8");
        assert_eq!(
            out.status.code(),
            Some(code),
            "ferry {args:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
        for text in [&stdout, &stderr] {
            assert!(!text.contains('\0') && !text.contains("\\u0000"), "{text}");
            assert!(!text.contains('\u{fffd}'), "{text}");
        }
        (stdout, stderr)
    }

    fn sync(&self, extra: &[&str], code: i32) -> (String, String) {
        let mut args = vec![OsStr::new("sync"), self.a.as_os_str(), self.b.as_os_str()];
        args.extend(extra.iter().map(OsStr::new));
        self.ferry(&args, code)
    }

    fn json(&self, args: &[&OsStr], code: i32) -> Value {
        let mut all = vec![OsStr::new("--json")];
        all.extend_from_slice(args);
        let (stdout, _) = self.ferry(&all, code);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
    }
}

#[test]
fn latin1_names_sync_and_show_escaped() {
    let w = World::new();
    std::fs::write(w.a.join(os(b"caf\xe9.txt")), "caf\u{e9} in Latin-1").unwrap();
    std::fs::create_dir(w.a.join(os(b"r\xe9sum\xe9"))).unwrap();
    std::fs::write(w.a.join(os(b"r\xe9sum\xe9/cv.txt")), "cv").unwrap();
    std::fs::write(w.a.join(os(b"r\xe9sum\xe9/\xff.bin")), "ff").unwrap();
    std::os::unix::fs::symlink(os(b"cible\xe9"), w.a.join(os(b"lien\xe9"))).unwrap();
    std::fs::write(w.a.join("plain.txt"), "plain").unwrap();

    let (_, stderr) = w.sync(&[], 0);
    assert!(stderr.is_empty(), "no name is skipped: {stderr}");
    assert_eq!(tree(&w.a), tree(&w.b));
    assert_eq!(tree(&w.b).len(), 6);

    // `ferry status` (no daemon: from the index) counts them like any file (four files
    // and the link).
    let status = w.json(&[OsStr::new("status")], 0);
    assert_eq!(status["conduits"][0]["files"]["a"], 5, "{status}");
    assert_eq!(status["conduits"][0]["files"]["b"], 5, "{status}");
    w.ferry(&[OsStr::new("status")], 0);

    // A conflict on a Latin-1 name, left for the user: shown escaped everywhere.
    std::fs::write(w.a.join(os(b"caf\xe9.txt")), "edited on a").unwrap();
    std::fs::write(w.b.join(os(b"caf\xe9.txt")), "edited on b").unwrap();
    let (stdout, _) = w.sync(&["--conflict", "manual"], 3);
    assert!(
        stdout.contains(r"conflict: caf\xe9.txt (left untouched"),
        "{stdout}"
    );
    let (text, _) = w.ferry(&[OsStr::new("conflicts")], 0);
    assert!(text.starts_with(r"caf\xe9.txt [open]"), "{text}");
    let rows = w.json(&[OsStr::new("conflicts")], 0);
    assert_eq!(rows["conflicts"][0]["path"], r"caf\xe9.txt", "{rows}");
    let status = w.json(&[OsStr::new("status")], 0);
    assert_eq!(status["conduits"][0]["open_conflicts"], 1, "{status}");

    // Resolving takes the path as bytes from the command line.
    let on_a = w.a.join(os(b"caf\xe9.txt"));
    let resolved = w.json(
        &[
            OsStr::new("resolve"),
            on_a.as_os_str(),
            OsStr::new("--keep"),
            OsStr::new("b"),
        ],
        0,
    );
    assert_eq!(
        resolved["resolved"][0]["path"], r"caf\xe9.txt",
        "{resolved}"
    );
    w.sync(&["--conflict", "newest"], 0);
    assert_eq!(std::fs::read(&on_a).unwrap(), b"edited on b");
    assert_eq!(tree(&w.a), tree(&w.b));

    // The overwritten content is a version of that path, listed escaped.
    let versions = w.json(&[OsStr::new("versions"), on_a.as_os_str()], 0);
    let v = &versions["versions"][0];
    assert_eq!(v["path"], r"caf\xe9.txt", "{versions}");
    let stored = v["stored_path"].as_str().unwrap();
    assert!(
        stored.contains(r"/.ferry/versions/caf\xe9.txt~"),
        "{stored}"
    );
    let id = v["id"].as_i64().unwrap().to_string();
    let restored = w.json(
        &[
            OsStr::new("restore"),
            on_a.as_os_str(),
            OsStr::new("--version"),
            OsStr::new(&id),
        ],
        0,
    );
    assert!(
        restored["restored_to"]
            .as_str()
            .unwrap()
            .ends_with(r"caf\xe9.txt"),
        "{restored}"
    );
    assert_eq!(std::fs::read(&on_a).unwrap(), b"edited on a");

    // Deleting the folder with a non-UTF-8 name on b deletes it on a.
    std::fs::remove_dir_all(w.b.join(os(b"r\xe9sum\xe9"))).unwrap();
    let run = w.json(&[OsStr::new("sync"), w.a.as_os_str(), w.b.as_os_str()], 0);
    assert_eq!(run["errors"], Value::Array(vec![]), "{run}");
    assert_eq!(run["in_sync"], true, "{run}");
    assert!(!w.a.join(os(b"r\xe9sum\xe9")).exists());
    assert_eq!(tree(&w.a), tree(&w.b));
}

/// A scan of a folder with such names reports nothing skipped.
#[test]
fn scan_indexes_latin1_names_without_warnings() {
    let w = World::new();
    std::fs::write(w.a.join(os(b"\xe9t\xe9.txt")), "summer").unwrap();
    std::fs::create_dir(w.a.join(os(b"\xc0 faire"))).unwrap();
    std::fs::write(w.a.join(os(b"\xc0 faire/liste")), "todo").unwrap();
    let report = w.json(&[OsStr::new("scan"), w.a.as_os_str()], 0);
    assert_eq!(report["entries"], 3, "{report}");
    assert_eq!(report["errors"], Value::Array(vec![]), "{report}");
}
