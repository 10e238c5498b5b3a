//! Integration tests that drive the real `ferry` binary on temporary folders: what is
//! about the binary (arguments, output, `--json`, exit codes, commands other than sync,
//! running as another user). The engine's behaviour (modes, policies, renames, names,
//! metadata, symlinks, ignore rules) is tested through the library in ferry-core's
//! `tests/`.
//!
//! Every test gets its own library (`FERRY_HOME`) and its own pair of folders, so tests
//! run in parallel without seeing each other. Trees are compared with [`snapshot`],
//! which records every path below a root (except ferry's own `.ferry/`) with its kind,
//! content, permission bits and symlink target.

use assert_cmd::Command;
use ferry_testkit::{
    ago, bind_mount, kept_versions, names_starting_with, read, set_mode, set_mtime, snapshot,
    write, Run,
};
use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Whether reading a chmod-000 file fails here (it does not for root, which ignores
/// permission bits).
fn permission_bits_enforced(dir: &Path) -> bool {
    let probe = dir.join("probe-000");
    fs::write(&probe, b"probe").unwrap();
    set_mode(&probe, 0o000);
    let enforced = fs::read(&probe).is_err();
    set_mode(&probe, 0o600);
    fs::remove_file(&probe).unwrap();
    enforced
}

/// Changes the owner of everything under `path` (not following symlinks).
fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    let meta = fs::symlink_metadata(path).unwrap();
    if meta.is_dir() {
        for item in fs::read_dir(path).unwrap() {
            chown_tree(&item.unwrap().path(), uid, gid);
        }
    }
}

/// One test's world: a temp dir holding the library (`home/`) and folders `a/` and `b/`.
struct Env {
    dir: TempDir,
    home: PathBuf,
    a: PathBuf,
    b: PathBuf,
    /// Run the binary as `nobody` (see [`Env::drop_privileges`]).
    as_nobody: bool,
}

/// User and group ID of `nobody`.
const NOBODY: u32 = 65534;

impl Env {
    fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("ferry-cli-")
            .tempdir()
            .unwrap();
        let root = dir.path().canonicalize().unwrap();
        let (home, a, b) = (root.join("home"), root.join("a"), root.join("b"));
        for d in [&home, &a, &b] {
            fs::create_dir(d).unwrap();
        }
        Env {
            dir,
            home,
            a,
            b,
            as_nobody: false,
        }
    }

    /// Makes permission bits bite for the binary. Root ignores them, so when reading a
    /// chmod-000 file succeeds here, a copy of the binary goes into the temp dir (the
    /// build folder may not be reachable by `nobody`), the whole temp dir is handed to
    /// `nobody` and later runs go through `setpriv`. Call it after writing the
    /// fixtures. Fails the test when that is impossible rather than skipping it.
    fn drop_privileges(&mut self) {
        if permission_bits_enforced(self.dir.path()) {
            return;
        }
        let bin = self.dir.path().join("ferry-as-nobody");
        std::fs::copy(assert_cmd::cargo::cargo_bin("ferry"), &bin).unwrap();
        set_mode(&bin, 0o755);
        chown_tree(self.dir.path(), NOBODY, NOBODY);
        self.as_nobody = true;
        // The fresh copy can be "busy" for a moment when another test's process was
        // forked while it was open for writing (closed at that process's exec).
        let mut probe = self.ferry(["--version"]);
        for _ in 0..20 {
            if !probe.stderr.contains("Text file busy") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            probe = self.ferry(["--version"]);
        }
        assert_eq!(
            probe.code, 0,
            "running as root, which ignores permission bits, and `setpriv` cannot run \
             ferry as nobody: {}",
            probe.stderr
        );
    }

    /// A path in the temp dir, outside both synced folders.
    fn outside(&self, name: &str) -> PathBuf {
        self.dir.path().canonicalize().unwrap().join(name)
    }

    /// `ferry ARGS` with this test's library.
    fn ferry<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = if self.as_nobody {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={NOBODY}"))
                .arg(format!("--regid={NOBODY}"))
                .arg("--clear-groups")
                .arg(self.dir.path().join("ferry-as-nobody"));
            c
        } else {
            Command::cargo_bin("ferry").unwrap()
        };
        cmd.env("FERRY_HOME", &self.home)
            .env("FERRY_CONFIG", self.home.join("no-config.toml"))
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path())
            .args(args);
        Run::from(cmd.output().unwrap())
    }

    /// `ferry sync A B EXTRA…`.
    fn sync(&self, extra: &[&str]) -> Run {
        let mut args: Vec<&OsStr> =
            vec![OsStr::new("sync"), self.a.as_os_str(), self.b.as_os_str()];
        args.extend(extra.iter().map(OsStr::new));
        self.ferry(args)
    }

    /// `ferry --json sync A B EXTRA…`, expecting exit code `code`; returns the summary.
    fn sync_json(&self, extra: &[&str], code: i32) -> Value {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let run = self.sync(&args);
        run.expect_code(code);
        run.json()
    }
}

/// Asserts the summary's counters (`files_copied`, `files_deleted`, `files_renamed`,
/// `conflicts`).
fn assert_counts(summary: &Value, copied: u64, deleted: u64, renamed: u64, conflicts: u64) {
    let got = (
        summary["files_copied"].as_u64(),
        summary["files_deleted"].as_u64(),
        summary["files_renamed"].as_u64(),
        summary["conflicts"].as_u64(),
    );
    assert_eq!(
        got,
        (Some(copied), Some(deleted), Some(renamed), Some(conflicts)),
        "(copied, deleted, renamed, conflicts) in summary {summary:#}"
    );
}

/// Every row of every table of the library's index, as text, sorted (opened read-only).
fn index_dump(home: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open_with_flags(
        home.join("index.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let mut st = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = st.column_count();
        let mut rows = st.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let cols: Vec<String> = (0..n)
                .map(|i| format!("{:?}", row.get::<_, rusqlite::types::Value>(i).unwrap()))
                .collect();
            out.push(format!("{t}: {}", cols.join(" | ")));
        }
    }
    out.sort();
    out
}

/// Names, sizes and mtimes of what a folder's `.ferry/` holds (empty when it has none).
fn ferry_dir_listing(root: &Path) -> Vec<String> {
    let Ok(items) = fs::read_dir(root.join(".ferry")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = items
        .map(|e| {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            format!(
                "{:?} {} {:?}",
                e.file_name(),
                m.len(),
                m.modified().unwrap()
            )
        })
        .collect();
    out.sort();
    out
}

/// A synced pair holding `f.txt` = "base", then edited on both sides: A's edit older,
/// B's newer.
fn conflicting_pair() -> Env {
    let env = Env::new();
    write(&env.a, "f.txt", "base");
    write(&env.a, "other.txt", "unrelated");
    env.sync(&[]).expect_code(0);
    write(&env.a, "f.txt", "edited on a");
    set_mtime(&env.a.join("f.txt"), ago(20));
    write(&env.b, "f.txt", "edited on b, later");
    set_mtime(&env.b.join("f.txt"), ago(10));
    env
}

// ---------------------------------------------------------------------------------------
// 1. Initial sync and the JSON summary
// ---------------------------------------------------------------------------------------

/// A first run copies A into an empty B; the JSON summary's counters are right; a second
/// run copies nothing.
#[test]
fn initial_sync_fills_empty_b_and_reports_json_summary() {
    let env = Env::new();
    write(&env.a, "hello.txt", "hello");
    write(&env.a, "sub/data.bin", vec![7u8; 1000]);
    write(&env.a, "sub/deeper/note.md", "# note\n");

    let s = env.sync_json(&[], 0);
    assert_counts(&s, 3, 0, 0, 0);
    assert_eq!(s["bytes_transferred"].as_u64(), Some(5 + 1000 + 7));
    assert_eq!(s["in_sync"], Value::Bool(true));
    assert_eq!(s["open_conflicts"].as_u64(), Some(0));
    assert_eq!(s["mode"], "bidirectional");
    assert_eq!(s["dry_run"], Value::Bool(false));
    assert_eq!(s["errors"], serde_json::json!([]));
    assert_eq!(snapshot(&env.a), snapshot(&env.b));
    assert!(env.b.join(".ferry").is_dir(), "B is marked as a location");

    let again = env.sync_json(&[], 0);
    assert_counts(&again, 0, 0, 0, 0);
    assert_eq!(again["bytes_transferred"].as_u64(), Some(0));
    assert_eq!(again["in_sync"], Value::Bool(true));
    assert_eq!(snapshot(&env.a), snapshot(&env.b));
}

// ---------------------------------------------------------------------------------------
// 2. Unreadable files
// ---------------------------------------------------------------------------------------

/// An unreadable file is reported (exit 1, its name on stderr) while everything else
/// syncs; once readable again it syncs too. (As root, the binary runs as `nobody`.)
#[test]
fn unreadable_file_is_reported_and_the_rest_syncs() {
    let mut env = Env::new();
    write(&env.a, "ok.txt", "fine");
    write(&env.a, "sub/also-ok.txt", "fine too");
    write(&env.a, "locked.txt", "can't read me");
    set_mode(&env.a.join("locked.txt"), 0o000);
    env.drop_privileges();

    let run = env.sync(&[]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("locked.txt"),
        "stderr names the file: {}",
        run.stderr
    );
    assert_eq!(read(&env.b, "ok.txt"), b"fine");
    assert_eq!(read(&env.b, "sub/also-ok.txt"), b"fine too");
    assert!(!env.b.join("locked.txt").exists());

    set_mode(&env.a.join("locked.txt"), 0o644);
    env.sync(&[]).expect_code(0);
    assert_eq!(read(&env.b, "locked.txt"), b"can't read me");
    assert_eq!(snapshot(&env.a), snapshot(&env.b));
}

/// A synced folder that becomes unreadable is reported, and its files are not taken for
/// deleted: the other side keeps them. (As root, the binary runs as `nobody`.)
#[test]
fn unreadable_directory_is_not_taken_for_deleted() {
    let mut env = Env::new();
    write(&env.a, "locked/one.txt", "1");
    write(&env.a, "locked/two.txt", "2");
    write(&env.a, "free.txt", "free");
    env.drop_privileges();
    env.sync(&[]).expect_code(0);
    let a_before = snapshot(&env.a);

    set_mode(&env.a.join("locked"), 0o000);
    let run = env.sync(&[]);
    run.expect_code(1);
    assert!(run.stderr.contains("locked"), "stderr: {}", run.stderr);
    assert!(env.b.join("locked").is_dir());

    set_mode(&env.a.join("locked"), 0o755);
    // The folder's mode (000) went to B in the last run, so B's scan may report it once
    // more while the restored mode travels back.
    env.sync(&[]);
    env.sync(&[]).expect_code(0);
    assert_eq!(snapshot(&env.a), a_before);
    assert_eq!(snapshot(&env.b), a_before);
    for f in ["locked/one.txt", "locked/two.txt"] {
        assert!(
            kept_versions(&env.b, f).is_empty(),
            "{f} was never deleted on B"
        );
        assert!(
            kept_versions(&env.a, f).is_empty(),
            "{f} was never replaced on A"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 3. Conflicts
// ---------------------------------------------------------------------------------------

/// A conflict the policy settled: `ferry conflicts` lists recently settled ones by
/// default, `--all` lists every row, and both exit 0 (none is open). What the policy
/// did to the files is tested in ferry-core (`tests/engine.rs`).
#[test]
fn conflicts_lists_recently_settled_ones_and_exits_0() {
    let env = conflicting_pair();
    let s = env.sync_json(&[], 0);
    assert_eq!(s["conflicts"].as_u64(), Some(1), "{s:#}");
    assert_eq!(s["open_conflicts"].as_u64(), Some(0));
    assert_eq!(s["in_sync"], Value::Bool(true));

    let recent = env.ferry(["--json", "conflicts"]);
    recent.expect_code(0);
    assert_eq!(recent.json()["conflicts"][0]["status"], "settled");
    let all = env.ferry(["--json", "conflicts", "--all"]);
    all.expect_code(0);
    let rows = all.json();
    let rows = rows["conflicts"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["path"], "f.txt");
    assert_eq!(rows[0]["status"], "settled");
    assert_eq!(rows[0]["winner"], "b");
}

/// With `--conflict manual` both versions stay untouched, the run exits 3, and `ferry
/// conflicts` lists the path as open.
#[test]
fn conflict_manual_leaves_both_untouched_and_exits_3() {
    let env = conflicting_pair();
    let a_before = snapshot(&env.a);
    let b_before = snapshot(&env.b);

    let s = env.sync_json(&["--conflict", "manual"], 3);
    assert_eq!(s["open_conflicts"].as_u64(), Some(1), "{s:#}");
    assert_eq!(s["in_sync"], Value::Bool(false));
    assert_eq!(snapshot(&env.a), a_before);
    assert_eq!(snapshot(&env.b), b_before);

    let text = env.sync(&[]);
    text.expect_code(3);
    assert!(text.stdout.contains("conflict: f.txt"), "{}", text.stdout);

    // A listing exits 0, open conflicts or not.
    let listed = env.ferry(["--json", "conflicts"]);
    listed.expect_code(0);
    let rows = listed.json();
    let rows = rows["conflicts"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["path"], "f.txt");
    assert_eq!(rows[0]["status"], "open");
    assert_eq!(rows[0]["conflict_policy"], "manual");
    assert_eq!(snapshot(&env.a), a_before);
    assert_eq!(snapshot(&env.b), b_before);
}

// ---------------------------------------------------------------------------------------
// 4. Safety stops
// ---------------------------------------------------------------------------------------

/// A run that would delete more than half (and more than 10) of B's files stops with
/// exit 1 and a hint about `--yes`, deleting nothing; with `--yes` it proceeds.
#[test]
fn mass_deletion_stops_until_yes() {
    let env = Env::new();
    for i in 0..20 {
        write(&env.a, &format!("file{i:02}.txt"), format!("file {i}"));
    }
    env.sync(&[]).expect_code(0);
    let b_before = snapshot(&env.b);
    for i in 0..15 {
        fs::remove_file(env.a.join(format!("file{i:02}.txt"))).unwrap();
    }

    let run = env.sync(&[]);
    run.expect_code(1);
    assert!(run.stderr.contains("--yes"), "stderr: {}", run.stderr);
    assert_eq!(snapshot(&env.b), b_before, "nothing deleted on B");
    // Still refused on a second try: the stop is not a one-off.
    env.sync(&[]).expect_code(1);
    assert_eq!(snapshot(&env.b), b_before);

    let s = env.sync_json(&["--yes"], 0);
    assert_counts(&s, 0, 15, 0, 0);
    assert_eq!(snapshot(&env.b).len(), 5);
    assert_eq!(snapshot(&env.a), snapshot(&env.b));
}

/// A folder that lost its `.ferry` marker (removed and recreated empty) is refused with
/// exit 1 and A is untouched; `--yes` starts it over and copies A back into it.
#[test]
fn missing_marker_refuses_until_yes_reinitialises() {
    let env = Env::new();
    write(&env.a, "one.txt", "1");
    write(&env.a, "two/three.txt", "3");
    env.sync(&[]).expect_code(0);
    let a_before = snapshot(&env.a);

    fs::remove_dir_all(&env.b).unwrap();
    let run = env.sync(&[]);
    run.expect_code(1);
    assert!(run.stderr.contains("is gone"), "stderr: {}", run.stderr);
    assert!(run.stderr.contains("--yes"), "stderr: {}", run.stderr);
    assert!(!env.b.exists(), "a folder synced before is not recreated");
    assert_eq!(snapshot(&env.a), a_before, "A untouched while B is gone");

    fs::create_dir(&env.b).unwrap();
    let run = env.sync(&[]);
    run.expect_code(1);
    assert!(run.stderr.contains("marker"), "stderr: {}", run.stderr);
    assert!(run.stderr.contains("--yes"), "stderr: {}", run.stderr);
    assert_eq!(snapshot(&env.a), a_before, "A untouched");
    assert!(snapshot(&env.b).is_empty(), "B untouched");

    let s = env.sync_json(&["--yes"], 0);
    assert_counts(&s, 2, 0, 0, 0);
    assert_eq!(snapshot(&env.a), a_before, "A untouched");
    assert_eq!(snapshot(&env.b), a_before, "B filled from A");
    assert!(env.b.join(".ferry/location").is_file());
    assert_counts(&env.sync_json(&[], 0), 0, 0, 0, 0);
}

/// A first mirror run onto a folder full of its own files would delete them all: it
/// stops until `--yes`.
#[test]
fn mirror_onto_a_full_folder_stops_until_yes() {
    let env = Env::new();
    write(&env.a, "from-a.txt", "a");
    for i in 0..20 {
        write(&env.b, &format!("own{i:02}.txt"), format!("b's own {i}"));
    }
    let b_before = snapshot(&env.b);
    let run = env.sync(&["--mode", "mirror"]);
    run.expect_code(1);
    assert!(run.stderr.contains("--yes"), "stderr: {}", run.stderr);
    assert_eq!(snapshot(&env.b), b_before);

    env.sync(&["--yes"]).expect_code(0);
    assert_eq!(snapshot(&env.b), snapshot(&env.a));
    assert_eq!(
        kept_versions(&env.b, "own00.txt"),
        vec![b"b's own 0".to_vec()]
    );
}

/// A folder synced with itself or its own subfolder (also one that would be created
/// there), a first folder that does not exist, or a second one whose parent does not,
/// is refused with exit 1 and nothing is created.
#[test]
fn overlapping_or_missing_folders_are_refused() {
    let env = Env::new();
    write(&env.a, "sub/x.txt", "x");
    let a_before = snapshot(&env.a);
    let missing = env.outside("missing");
    for (a, b) in [
        (env.a.clone(), env.a.clone()),
        (env.a.clone(), env.a.join("sub")),
        (env.a.join("sub"), env.a.clone()),
        (env.a.clone(), env.a.join("sub/new")),
        (missing.clone(), env.a.clone()),
        (env.a.clone(), missing.join("deeper")),
    ] {
        let run = env.ferry([OsStr::new("sync"), a.as_os_str(), b.as_os_str()]);
        run.expect_code(1);
        assert!(run.stderr.contains("ferry: error"), "{}", run.stderr);
    }
    assert_eq!(snapshot(&env.a), a_before);
    assert!(!env.a.join(".ferry").exists());
    assert!(!missing.exists());
}

/// The repro: `mount --bind H A2/sub; ferry sync H A2` nested H into itself
/// once more at every run. Now every run is refused, naming the mount point, and
/// writes nothing: no marker, no file, no location in the index.
#[test]
fn overlap_hidden_by_a_bind_mount_is_refused() {
    let env = Env::new();
    let (h, a2) = (env.a.clone(), env.b.clone());
    write(&h, "f.txt", "only in H");
    fs::create_dir(a2.join("sub")).unwrap();
    let Some(_mount) = bind_mount(&h, &a2.join("sub")) else {
        return;
    };
    let before = (snapshot(&h), snapshot(&a2));
    for _ in 0..2 {
        let run = env.sync(&[]);
        run.expect_code(1);
        assert!(
            run.stderr
                .contains(&format!("{} is {}", a2.join("sub").display(), h.display())),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("overlap"), "{}", run.stderr);
    }
    assert_eq!((snapshot(&h), snapshot(&a2)), before);
    assert!(!h.join(".ferry").exists() && !a2.join(".ferry").exists());
    assert!(
        !index_dump(&env.home)
            .iter()
            .any(|row| row.starts_with("locations:")),
        "{:?}",
        index_dump(&env.home)
    );
}

/// `ferry sync a b`, `mv a a2`, `ferry sync a2 b`: the folder is followed (a note says
/// so), nothing is copied or deleted and the conduit stays the same; before, this was a
/// raw `UNIQUE constraint failed` forever. Then `cp -a a2 a3; ferry sync a3 b`: a copy,
/// refused with what to do, and nothing written.
#[test]
fn moved_folder_is_followed_and_a_copy_is_refused() {
    let env = Env::new();
    write(&env.a, "x.txt", "x");
    write(&env.a, "d/y.txt", "y");
    let first = env.sync_json(&[], 0);
    assert_counts(&first, 2, 0, 0, 0);

    let a2 = env.outside("a2");
    fs::rename(&env.a, &a2).unwrap();
    let run = env.ferry([
        OsStr::new("--json"),
        OsStr::new("sync"),
        a2.as_os_str(),
        env.b.as_os_str(),
    ]);
    run.expect_code(0);
    let moved = run.json();
    assert_counts(&moved, 0, 0, 0, 0);
    assert_eq!(moved["conduit"], first["conduit"]);
    let note = format!("{} was moved from {}", a2.display(), env.a.display());
    assert!(
        moved["info"][0].as_str().unwrap().contains(&note),
        "{moved:#}"
    );
    assert!(
        run.stderr.contains(&format!("ferry: note: {note}")),
        "{}",
        run.stderr
    );
    let list = env.ferry(["--json", "conduit", "list"]).json();
    assert_eq!(list["conduits"].as_array().unwrap().len(), 1, "{list:#}");

    let a3 = env.outside("a3");
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(&a2)
        .arg(&a3)
        .status()
        .unwrap();
    assert!(cp.success());
    let before = (
        index_dump(&env.home),
        ferry_dir_listing(&a3),
        snapshot(&a3),
        snapshot(&env.b),
    );
    let run = env.ferry([OsStr::new("sync"), a3.as_os_str(), env.b.as_os_str()]);
    run.expect_code(1);
    assert!(run.stderr.contains("copy"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("delete {}", a3.join(".ferry").display())),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("UNIQUE"), "{}", run.stderr);
    assert_eq!(
        (
            index_dump(&env.home),
            ferry_dir_listing(&a3),
            snapshot(&a3),
            snapshot(&env.b)
        ),
        before,
        "a refused run wrote something"
    );
}

// ---------------------------------------------------------------------------------------
// 5. Dry run, status, history, scan, usage errors
// ---------------------------------------------------------------------------------------

/// `--dry-run` reports the plan but changes no synced file and records no run.
#[test]
fn dry_run_changes_nothing() {
    let env = Env::new();
    write(&env.a, "x.txt", "x");
    write(&env.a, "d/y.txt", "y");

    let s = env.sync_json(&["--dry-run"], 0);
    assert_eq!(s["dry_run"], Value::Bool(true));
    assert_eq!(s["in_sync"], Value::Bool(false));
    assert_eq!(s["planned"]["copy"].as_u64(), Some(2), "{s:#}");
    assert_counts(&s, 0, 0, 0, 0);
    assert!(snapshot(&env.b).is_empty(), "B holds nothing synced");

    env.sync(&[]).expect_code(0);
    write(&env.a, "x.txt", "x, edited");
    fs::remove_file(env.b.join("d/y.txt")).unwrap();
    write(&env.b, "new.txt", "new");
    let (a_before, b_before) = (snapshot(&env.a), snapshot(&env.b));
    let runs_before = env.ferry(["--json", "history"]).json();

    let text = env.sync(&["--dry-run"]);
    text.expect_code(0);
    assert!(text.stdout.contains("dry run"), "{}", text.stdout);
    assert!(
        text.stdout.contains("would copy 2, delete 1"),
        "{}",
        text.stdout
    );
    assert_eq!(snapshot(&env.a), a_before);
    assert_eq!(snapshot(&env.b), b_before);
    assert_eq!(env.ferry(["--json", "history"]).json(), runs_before);

    // The real run then does what the dry run showed.
    let s = env.sync_json(&[], 0);
    assert_counts(&s, 2, 1, 0, 0);
    assert_eq!(snapshot(&env.a), snapshot(&env.b));
}

/// A dry run that previews another mode or policy does not change the conduit's stored
/// settings: the next plain run keeps the old ones.
#[test]
fn dry_run_does_not_store_mode_or_policy() {
    let env = Env::new();
    write(&env.a, "shared.txt", "shared");
    env.sync(&[]).expect_code(0);
    write(&env.b, "only-b.txt", "made on b");

    let preview = env.sync_json(
        &["--dry-run", "--mode", "mirror", "--conflict", "manual"],
        0,
    );
    assert_eq!(
        preview["planned"]["delete"].as_u64(),
        Some(1),
        "{preview:#}"
    );
    let status = env.ferry(["--json", "status"]).json();
    let status = &status["conduits"];
    assert_eq!(status[0]["mode"], "bidirectional", "{status:#}");
    assert_eq!(status[0]["conflict_policy"], "newest", "{status:#}");

    let s = env.sync_json(&[], 0);
    assert_eq!(s["mode"], "bidirectional");
    assert_eq!(read(&env.a, "only-b.txt"), b"made on b");
    assert_eq!(read(&env.b, "only-b.txt"), b"made on b");
}

/// On folders ferry has never seen, `--dry-run` reports the copies but writes nothing:
/// no `.ferry` in either folder, no library where there was none, and in an existing
/// library not a byte of the index changes. The real run afterwards works.
#[test]
fn dry_run_on_new_folders_writes_no_marker_and_no_index_rows() {
    let env = Env::new();
    write(&env.a, "x.txt", "x");
    write(&env.a, "d/y.txt", "y");
    write(&env.b, "z.txt", "z");
    let (a_before, b_before) = (snapshot(&env.a), snapshot(&env.b));

    let s = env.sync_json(&["--dry-run"], 0);
    assert_eq!(s["dry_run"], Value::Bool(true));
    assert_eq!(s["planned"]["copy"].as_u64(), Some(3), "{s:#}");
    assert!(!env.a.join(".ferry").exists() && !env.b.join(".ferry").exists());
    assert_eq!(
        (snapshot(&env.a), snapshot(&env.b)),
        (a_before.clone(), b_before.clone())
    );
    let library: Vec<_> = fs::read_dir(&env.home).unwrap().collect();
    assert!(library.is_empty(), "no library is created: {library:?}");

    // A library that already holds another conduit keeps its index byte for byte.
    let (c, d) = (env.outside("c"), env.outside("d"));
    fs::create_dir(&c).unwrap();
    fs::create_dir(&d).unwrap();
    write(&c, "c.txt", "c");
    env.ferry([OsStr::new("sync"), c.as_os_str(), d.as_os_str()])
        .expect_code(0);
    let db = env.home.join("index.db");
    let (bytes, dump) = (fs::read(&db).unwrap(), index_dump(&env.home));
    let text = env.sync(&["--dry-run"]);
    text.expect_code(0);
    assert!(
        text.stdout.contains("would copy 3, mkdir 1"),
        "{}",
        text.stdout
    );
    assert!(!env.a.join(".ferry").exists() && !env.b.join(".ferry").exists());
    assert_eq!((snapshot(&env.a), snapshot(&env.b)), (a_before, b_before));
    assert_eq!(index_dump(&env.home), dump);
    assert!(fs::read(&db).unwrap() == bytes, "index.db changed");
    assert_eq!(
        dump.iter().filter(|r| r.starts_with("locations:")).count(),
        2,
        "only c and d: {dump:#?}"
    );

    let s = env.sync_json(&[], 0);
    assert_counts(&s, 3, 0, 0, 0);
    assert_eq!(snapshot(&env.a), snapshot(&env.b));
    assert!(env.a.join(".ferry/location").is_file());
}

/// On a synced pair with edits on both sides, a dry run (plain, previewing mirror with
/// --yes, or by conduit ID) leaves every index row, the index file and both folders,
/// `.ferry/` included, as they were.
#[test]
fn dry_run_on_a_synced_pair_leaves_the_index_unchanged() {
    let env = Env::new();
    write(&env.a, "x.txt", "x");
    write(&env.a, "d/y.txt", "y");
    env.sync(&[]).expect_code(0);
    write(&env.a, "x.txt", "x, edited");
    fs::remove_file(env.b.join("d/y.txt")).unwrap();
    write(&env.b, "new.txt", "new");
    let trees = || {
        (
            snapshot(&env.a),
            snapshot(&env.b),
            ferry_dir_listing(&env.a),
            ferry_dir_listing(&env.b),
        )
    };
    let before = trees();
    let db = env.home.join("index.db");
    let (bytes, dump) = (fs::read(&db).unwrap(), index_dump(&env.home));
    assert!(dump.iter().any(|r| r.starts_with("entries:")), "{dump:#?}");

    let conduit = env.ferry(["--json", "status"]).json()["conduits"][0]["conduit"].to_string();
    for run in [
        env.sync(&["--dry-run"]),
        env.sync(&["--dry-run", "--mode", "mirror", "--yes"]),
        env.ferry(["sync", "--conduit", conduit.as_str(), "--dry-run"]),
    ] {
        run.expect_code(0);
        assert!(run.stdout.contains("dry run"), "{}", run.stdout);
        assert_eq!(trees(), before);
        assert_eq!(index_dump(&env.home), dump);
        assert!(fs::read(&db).unwrap() == bytes, "index.db changed");
    }

    let s = env.sync_json(&[], 0);
    assert_counts(&s, 2, 1, 0, 0);
    assert_eq!(snapshot(&env.a), snapshot(&env.b));
}

/// `ferry status`, `ferry history --json` and `ferry scan DIR` report what happened.
#[test]
fn status_history_and_scan_report() {
    let env = Env::new();
    let status = env.ferry(["status"]);
    status.expect_code(0);
    assert!(status.stdout.contains("no conduits"), "{}", status.stdout);

    write(&env.a, "one.txt", "12345");
    write(&env.a, "two.txt", "123");
    env.sync(&[]).expect_code(0);
    env.sync(&[]).expect_code(0);

    let status = env.ferry(["--json", "status"]);
    status.expect_code(0);
    let status = status.json();
    assert!(status["daemon"].is_null(), "{status:#}");
    let rows = status["conduits"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let c = &rows[0];
    assert_eq!(c["a"].as_str(), env.a.to_str());
    assert_eq!(c["b"].as_str(), env.b.to_str());
    assert_eq!(c["mode"], "bidirectional");
    assert_eq!(c["runs"].as_u64(), Some(2));
    assert_eq!(c["files"]["a"].as_u64(), Some(2));
    assert_eq!(c["files"]["b"].as_u64(), Some(2));
    assert_eq!(c["last_run"]["status"], "ok");
    assert_eq!(c["open_conflicts"].as_u64(), Some(0));
    let text = env.ferry(["status"]);
    text.expect_code(0);
    assert!(
        text.stdout.contains(env.a.to_str().unwrap()),
        "{}",
        text.stdout
    );

    let history = env.ferry(["--json", "history"]);
    history.expect_code(0);
    let gens = history.json();
    let gens = gens["generations"].as_array().unwrap();
    assert_eq!(gens.len(), 2, "{gens:?}");
    let (newest, first) = (&gens[0], &gens[1]);
    for g in [newest, first] {
        let started = g["started_at"].as_i64().expect("started_at");
        let completed = g["completed_at"].as_i64().expect("completed_at");
        assert!(completed >= started, "{g}");
        assert_eq!(g["status"], "ok");
        assert_eq!(g["conflicts"].as_u64(), Some(0));
    }
    assert!(
        newest["number"].as_i64() > first["number"].as_i64(),
        "newest first"
    );
    assert_eq!(first["files_copied"].as_u64(), Some(2));
    assert_eq!(first["files_deleted"].as_u64(), Some(0));
    assert_eq!(first["bytes_transferred"].as_u64(), Some(8));
    assert_eq!(newest["files_copied"].as_u64(), Some(0));
    assert_eq!(newest["bytes_transferred"].as_u64(), Some(0));
    env.ferry(["history"]).expect_code(0);
    let limited = env.ferry(["--json", "history", "--limit", "1"]).json();
    assert_eq!(limited["generations"].as_array().map(Vec::len), Some(1));

    let dir = env.outside("scanned");
    write(&dir, "s1.txt", "abc");
    write(&dir, "deep/s2.txt", "defg");
    let scan = env.ferry([OsStr::new("--json"), OsStr::new("scan"), dir.as_os_str()]);
    scan.expect_code(0);
    let r = scan.json();
    assert_eq!(r["entries"].as_u64(), Some(3), "{r:#}");
    assert_eq!(r["hashed_files"].as_u64(), Some(2));
    assert_eq!(r["hashed_bytes"].as_u64(), Some(7));
    assert_eq!(r["root"].as_str(), dir.to_str());
    assert!(
        dir.join(".ferry/location").is_file(),
        "scan registers the folder"
    );
    fs::remove_file(dir.join("s1.txt")).unwrap();
    let scan = env.ferry([OsStr::new("scan"), dir.as_os_str()]);
    scan.expect_code(0);
    assert!(scan.stdout.contains("1 deleted"), "{}", scan.stdout);
}

/// An invalid `--mode` is a usage error: exit 2, and nothing is created.
#[test]
fn invalid_mode_is_a_usage_error() {
    let env = Env::new();
    write(&env.a, "x.txt", "x");
    let run = env.sync(&["--mode", "sideways"]);
    run.expect_code(2);
    assert!(run.stderr.contains("sideways"), "{}", run.stderr);
    assert!(!env.a.join(".ferry").exists());
    assert!(!env.b.join(".ferry").exists());
    env.sync(&["--conflict", "coin-flip"]).expect_code(2);
    env.ferry(["no-such-command"]).expect_code(2);
}

// ---------------------------------------------------------------------------------------
// Archive, versions and restore, conflict resolution, history
// ---------------------------------------------------------------------------------------

/// `--mode archive` moves verified files from A to B, reports the bytes freed, leaves
/// B's own files alone, is idempotent, and archives new work on the next run.
#[test]
fn archive_mode_moves_files_to_b_and_reports_bytes_freed() {
    let env = Env::new();
    write(&env.a, "done/report.txt", "final report");
    write(&env.a, "photo.raw", vec![3u8; 50_000]);
    write(&env.b, "already-archived.txt", "old");
    let s = env.sync_json(&["--mode", "archive"], 0);
    assert_eq!(s["files_archived"].as_u64(), Some(2), "{s:#}");
    assert_eq!(s["bytes_freed"].as_u64(), Some(12 + 50_000), "{s:#}");
    assert!(!env.a.join("done/report.txt").exists());
    assert!(!env.a.join("photo.raw").exists());
    assert_eq!(read(&env.b, "done/report.txt"), b"final report");
    assert_eq!(read(&env.b, "photo.raw"), vec![3u8; 50_000]);
    assert_eq!(read(&env.b, "already-archived.txt"), b"old");

    let again = env.sync_json(&[], 0);
    assert_eq!(again["mode"], "archive");
    assert_eq!(
        (
            again["files_copied"].as_u64(),
            again["files_archived"].as_u64()
        ),
        (Some(0), Some(0))
    );

    write(&env.a, "done/next.txt", "more work");
    let text = env.sync(&[]);
    text.expect_code(0);
    assert!(text.stdout.contains("1 archived"), "{}", text.stdout);
    assert!(text.stdout.contains("freed"), "{}", text.stdout);
    assert_eq!(read(&env.b, "done/next.txt"), b"more work");
    assert!(!env.a.join("done/next.txt").exists());
    assert_eq!(read(&env.b, "already-archived.txt"), b"old");
}

/// An archive conduit refuses to become mirror (which would delete the archive from B)
/// or bidirectional (which would copy it back into A), with exit code 1, also as a dry
/// run, with --yes, through `ferry conduit add`, or as a conduit the other way round.
/// Nothing changes, and plain runs go on archiving.
#[test]
fn archive_conduit_refuses_to_switch_mode() {
    let env = Env::new();
    write(&env.a, "done/report.txt", "final report");
    write(&env.a, "photo.raw", vec![3u8; 50_000]);
    let s = env.sync_json(&["--mode", "archive"], 0);
    assert_eq!(s["files_archived"].as_u64(), Some(2), "{s:#}");
    write(&env.a, "new.txt", "not archived yet");
    let (a_before, b_before) = (snapshot(&env.a), snapshot(&env.b));

    let (a, b) = (env.a.as_os_str(), env.b.as_os_str());
    let runs = [
        env.sync(&["--mode", "mirror"]),
        env.sync(&["--mode", "mirror", "--dry-run"]),
        env.sync(&["--mode", "mirror", "--yes"]),
        env.sync(&["--mode", "bidirectional"]),
        env.sync(&["--mode", "bidirectional", "--dry-run"]),
        env.ferry([
            OsStr::new("conduit"),
            OsStr::new("add"),
            a,
            b,
            OsStr::new("--mode"),
            OsStr::new("mirror"),
        ]),
        env.ferry([OsStr::new("sync"), b, a]),
        env.ferry(["conduit", "set", "1", "--mode", "mirror"]),
    ];
    for run in &runs {
        run.expect_code(1);
        assert!(run.stderr.contains("refusing"), "stderr: {}", run.stderr);
        assert!(run.stderr.contains("archive"), "stderr: {}", run.stderr);
        assert!(
            run.stderr.contains("different folder"),
            "stderr: {}",
            run.stderr
        );
        assert_eq!(snapshot(&env.a), a_before);
        assert_eq!(snapshot(&env.b), b_before);
    }
    assert!(
        runs[0].stderr.contains("deleting from"),
        "{}",
        runs[0].stderr
    );
    assert!(runs[3].stderr.contains("back into"), "{}", runs[3].stderr);
    let status = env.ferry(["--json", "status"]).json();
    let conduits = status["conduits"].as_array().unwrap();
    assert_eq!(conduits.len(), 1, "{status:#}");
    assert_eq!(conduits[0]["mode"], "archive", "{status:#}");

    let s = env.sync_json(&[], 0);
    assert_eq!(s["mode"], "archive");
    assert_eq!(s["files_archived"].as_u64(), Some(1), "{s:#}");
    assert_eq!(read(&env.b, "done/report.txt"), b"final report");
    assert_eq!(read(&env.b, "new.txt"), b"not archived yet");
}

/// `ferry conduit set` changes a saved conduit's settings (the dashboard's code path);
/// an unknown conduit or a bad value changes nothing.
#[test]
fn conduit_set_changes_settings() {
    let env = Env::new();
    let (a, b) = (env.a.as_os_str(), env.b.as_os_str());
    env.ferry([OsStr::new("conduit"), OsStr::new("add"), a, b])
        .expect_code(0);
    let v = env
        .ferry([
            "--json",
            "conduit",
            "set",
            "1",
            "--mode",
            "mirror",
            "--conflict",
            "manual",
            "--schedule",
            "every:10m",
            "--bandwidth-limit",
            "1M",
        ])
        .json();
    assert_eq!(v["mode"], "mirror", "{v:#}");
    assert_eq!(v["conflict_policy"], "manual");
    assert_eq!(v["schedule"], "every:10m");
    assert_eq!(v["bandwidth_limit"], 1 << 20);
    let unknown = env.ferry(["conduit", "set", "7", "--mode", "mirror"]);
    unknown.expect_code(1);
    assert!(
        unknown.stderr.contains("no conduit 7"),
        "{}",
        unknown.stderr
    );
    env.ferry(["conduit", "set", "1", "--schedule", "often"])
        .expect_code(2);
    let list = env.ferry(["--json", "conduit", "list"]).json();
    assert_eq!(list["conduits"][0]["schedule"], "every:10m");
}

/// A file deleted by a sync is listed by `ferry versions` (in either folder) and comes
/// back with `ferry restore`; the restore is a local change the next sync carries over.
#[test]
fn restore_brings_back_a_deleted_file_and_it_syncs() {
    let env = Env::new();
    write(&env.a, "notes/plan.md", "the plan");
    env.sync(&[]).expect_code(0);
    fs::remove_file(env.a.join("notes/plan.md")).unwrap();
    fs::remove_dir(env.a.join("notes")).unwrap();
    env.sync(&[]).expect_code(0);
    assert!(!env.b.join("notes").exists());

    let listed = env.ferry(["--json", "versions", "a/notes/plan.md"]);
    listed.expect_code(0);
    let rows = listed.json();
    let rows = rows["versions"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["size"].as_u64(), Some(8));
    assert!(rows[0]["time"].as_i64().unwrap() > 0);
    let id = rows[0]["id"].as_i64().unwrap().to_string();
    // The same history is listed when asking from the other folder.
    let from_a = env.ferry(["--json", "versions", "b/notes/plan.md"]).json();
    assert_eq!(from_a["versions"][0]["id"], rows[0]["id"]);

    env.ferry(["restore", "a/notes/plan.md", "--version", &id])
        .expect_code(0);
    assert_eq!(read(&env.a, "notes/plan.md"), b"the plan");
    let s = env.sync_json(&[], 0);
    assert_counts(&s, 1, 0, 0, 0);
    assert_eq!(read(&env.b, "notes/plan.md"), b"the plan");

    // --to puts it elsewhere, replacing nothing.
    env.ferry([
        "restore",
        "b/notes/plan.md",
        "--version",
        &id,
        "--to",
        "b/copy.md",
    ])
    .expect_code(0);
    assert_eq!(read(&env.b, "copy.md"), b"the plan");
    env.ferry(["restore", "a/notes/plan.md", "--version", "999"])
        .expect_code(1);
}

/// Pruning keeps what the policy promises: `simple:2` keeps the two newest versions.
#[test]
fn prune_keeps_the_newest_versions_under_simple_retention() {
    let env = Env::new();
    write(&env.a, "f.txt", "v0");
    env.sync(&["--retention", "simple:2"]).expect_code(0);
    for i in 1..=4 {
        write(&env.a, "f.txt", format!("v{i}"));
        set_mtime(&env.a.join("f.txt"), ago(100 - i));
        env.sync(&[]).expect_code(0);
    }
    let before = env.ferry(["--json", "versions", "b/f.txt"]).json();
    assert_eq!(
        before["versions"].as_array().unwrap().len(),
        4,
        "{before:#}"
    );
    env.ferry(["versions", "--prune"]).expect_code(0);
    let after = env.ferry(["--json", "versions", "b/f.txt"]).json();
    let after = after["versions"].as_array().unwrap();
    assert_eq!(after.len(), 2, "{after:?}");
    let kept: Vec<Vec<u8>> = after
        .iter()
        .map(|v| fs::read(v["stored_path"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(kept, vec![b"v3".to_vec(), b"v2".to_vec()]);
    env.ferry(["retention", "b", "trashcan:x"]).expect_code(2);
}

/// A manual conflict settled with `ferry resolve --keep a|b|both`: the choice is applied,
/// the loser kept, the conflict marked settled, and the next sync converges.
#[test]
fn resolve_each_way_then_sync_converges() {
    for keep in ["a", "b", "both"] {
        let env = conflicting_pair();
        env.sync_json(&["--conflict", "manual"], 3);
        let path = if keep == "a" { "b/f.txt" } else { "a/f.txt" };
        env.ferry(["resolve", path, "--keep", keep]).expect_code(0);
        let s = env.sync_json(&[], 0);
        assert_eq!(s["open_conflicts"].as_u64(), Some(0), "{keep}: {s:#}");
        assert_eq!(snapshot(&env.a), snapshot(&env.b), "{keep}");
        let at_path = read(&env.a, "f.txt");
        match keep {
            "a" => {
                assert_eq!(at_path, b"edited on a");
                assert_eq!(
                    kept_versions(&env.b, "f.txt"),
                    vec![b"edited on b, later".to_vec()]
                );
            }
            "b" => {
                assert_eq!(at_path, b"edited on b, later");
                assert_eq!(
                    kept_versions(&env.a, "f.txt"),
                    vec![b"edited on a".to_vec()]
                );
            }
            _ => {
                assert_eq!(at_path, b"edited on b, later");
                let aside = names_starting_with(&env.a, "f.conflict-");
                assert_eq!(aside.len(), 1, "{aside:?}");
                assert_eq!(read(&env.a, &aside[0]), b"edited on a");
            }
        }
        let rows = env.ferry(["--json", "conflicts"]).json();
        let settled = rows["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["status"] == "settled")
            .unwrap_or_else(|| panic!("{keep}: {rows:#}"));
        assert_eq!(settled["resolution"], keep);
        assert_eq!(settled["a_size"].as_i64(), Some(11));
        assert_eq!(settled["b_size"].as_i64(), Some(18));
        assert!(settled["a_mtime_ns"].as_i64().is_some());
        // A second sync changes nothing.
        assert_counts(&env.sync_json(&[], 0), 0, 0, 0, 0);
    }
}

/// `ferry resolve --all --keep newest` settles every open conflict by mtime.
#[test]
fn resolve_all_keeps_the_newest() {
    let env = conflicting_pair();
    env.sync_json(&["--conflict", "manual"], 3);
    env.ferry(["resolve", "--all", "--keep", "newest"])
        .expect_code(0);
    env.ferry(["conflicts"]).expect_code(0);
    env.sync_json(&[], 0);
    assert_eq!(read(&env.a, "f.txt"), b"edited on b, later");
    assert_eq!(snapshot(&env.a), snapshot(&env.b));
}

/// `ferry history --json` lists runs newest first with honest counters.
#[test]
fn history_counts_each_run() {
    let env = conflicting_pair(); // run 1: copies f.txt and other.txt
    env.sync(&[]).expect_code(0); // run 2: one conflict settled by `newest`
    fs::remove_file(env.a.join("other.txt")).unwrap();
    env.sync(&[]).expect_code(0); // run 3: one deletion
    let h = env.ferry(["--json", "history"]).json();
    let h = h["generations"].as_array().unwrap();
    assert_eq!(h.len(), 3, "{h:?}");
    let counts = |g: &Value| {
        (
            g["files_copied"].as_u64().unwrap(),
            g["files_deleted"].as_u64().unwrap(),
            g["conflicts_resolved"].as_u64().unwrap(),
            g["bytes_transferred"].as_u64().unwrap(),
        )
    };
    assert_eq!(counts(&h[0]), (0, 1, 0, 0));
    assert_eq!(counts(&h[1]), (1, 0, 1, 18));
    assert_eq!(counts(&h[2]), (2, 0, 0, 4 + 9));
    for g in h {
        assert!(g["completed_at"].as_i64().unwrap() >= g["started_at"].as_i64().unwrap());
    }
}

/// README's first command: `ferry demo` makes two folders with sample files and syncs
/// them; run again it has nothing to do; deleted and run again, it starts over. A demo
/// folder whose marker alone is gone (the folder still there) is still refused.
#[test]
fn demo_syncs_reruns_and_starts_over() {
    let env = Env::new();
    let demo = env.dir.path().join("ferry-demo");
    let first = env.ferry(["demo"]);
    first.expect_code(0);
    assert!(first.stdout.contains("3 copied"), "{}", first.stdout);
    assert_eq!(
        std::fs::read(demo.join("b/notes/todo.md")).unwrap(),
        std::fs::read(demo.join("a/notes/todo.md")).unwrap()
    );
    let again = env.ferry(["demo"]);
    again.expect_code(0);
    assert!(again.stdout.contains("0 copied"), "{}", again.stdout);

    std::fs::remove_dir_all(&demo).unwrap();
    let over = env.ferry(["demo"]);
    over.expect_code(0);
    assert!(over.stdout.contains("3 copied"), "{}", over.stdout);

    std::fs::remove_dir_all(demo.join("a/.ferry")).unwrap();
    let refused = env.ferry(["demo"]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(refused.stderr.contains("marker"), "{}", refused.stderr);
    assert!(demo.join("b/README.txt").exists(), "nothing deleted on b");
}

/// A read-only folder (0555) syncs on the first run for a user, not only for root: its
/// contents are written before its mode is set, and the next run has nothing to do.
/// (As root, the binary runs as `nobody`.)
#[test]
fn read_only_folder_syncs_on_the_first_run() {
    let mut env = Env::new();
    write(&env.a, "ro/inside.txt", "inside");
    write(&env.a, "ro/deeper/more.txt", "more");
    set_mode(&env.a.join("ro/deeper"), 0o555);
    set_mode(&env.a.join("ro"), 0o555);
    env.drop_privileges();
    let run = env.sync(&[]);
    run.expect_code(0);
    assert_eq!(read(&env.b, "ro/inside.txt"), b"inside");
    assert_eq!(read(&env.b, "ro/deeper/more.txt"), b"more");
    for d in ["ro", "ro/deeper"] {
        let mode = fs::metadata(env.b.join(d)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o555, "{d}");
    }
    let again = env.sync_json(&[], 0);
    assert_counts(&again, 0, 0, 0, 0);
    for root in [&env.a, &env.b] {
        set_mode(&root.join("ro/deeper"), 0o755);
        set_mode(&root.join("ro"), 0o755);
    }
}

/// A user syncing another user's setuid file gets a copy without the setuid bit (the
/// owner cannot be kept), and a note says so. (As root, the binary runs as `nobody`.)
#[test]
fn setuid_bits_are_stripped_when_the_owner_is_not_kept() {
    let mut env = Env::new();
    write(&env.a, "tool", "#!/bin/sh\nid -u\n");
    env.drop_privileges();
    if env.as_nobody {
        // Hand the file back to root, setuid: nobody may read it but not own a copy.
        std::os::unix::fs::lchown(env.a.join("tool"), Some(0), Some(0)).unwrap();
        set_mode(&env.a.join("tool"), 0o4755);
    } else {
        eprintln!("not root: the file belongs to this user, whose copy may keep the bit");
        return;
    }
    let v = env.sync_json(&[], 0);
    let notes = v["notes"].to_string();
    assert!(notes.contains("setuid"), "{v}");
    let m = fs::metadata(env.b.join("tool")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o755);
    assert_eq!(read(&env.b, "tool"), b"#!/bin/sh\nid -u\n");
}
