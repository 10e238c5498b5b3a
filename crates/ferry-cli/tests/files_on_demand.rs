//! Files on demand through the real binary and real FUSE (issue 14): a selective
//! conduit, `ferry free-up|keep-offline|pin|unpin|ls`, `ferry mount|unmount`.
//!
//! Needs `/dev/fuse` and `fusermount3` (Debian's fuse3; `.ci/run` installs it). Without
//! `/dev/fuse` each test says so and passes; with it, a missing `fusermount3` fails.

#![cfg(feature = "fuse")]

mod common;

use common::ferry_cmd;
use serde_json::Value;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Long enough for a loaded CI machine; only ever a bound on waiting, never asserted.
const DEADLINE: Duration = Duration::from_secs(120);

fn fuse_available() -> bool {
    if !Path::new("/dev/fuse").exists() {
        eprintln!("SKIPPED: /dev/fuse is absent on this machine; FUSE tests need it");
        return false;
    }
    true
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Content with many distinct chunks (FastCDC finds cut points in it).
fn content(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn mounted(mp: &Path) -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| Path::new(m) == mp)
}

/// One test's world: library, local side `a`, secondary `b`, mount point `mnt`.
struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    a: PathBuf,
    b: PathBuf,
    mnt: PathBuf,
    mounts: Vec<(Child, PathBuf)>,
}

impl World {
    fn new() -> World {
        let dir = tempfile::Builder::new()
            .prefix("ferry-fod-")
            .tempdir()
            .unwrap();
        let root = dir.path().canonicalize().unwrap();
        let w = World {
            home: root.join("home"),
            a: root.join("a"),
            b: root.join("b"),
            mnt: root.join("mnt"),
            root,
            _dir: dir,
            mounts: Vec::new(),
        };
        for d in [&w.home, &w.a, &w.b, &w.mnt] {
            fs::create_dir(d).unwrap();
        }
        w
    }

    fn ferry(&self, args: &[&str]) -> std::process::Output {
        let out = ferry_cmd(&self.home).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ferry {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_slice(&self.ferry(&a).stdout).unwrap()
    }

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    /// `ferry conduit add a b --mode selective` (manual) and a first sync.
    fn selective(&self, extra: &[&str]) {
        let mut args = vec![
            "conduit",
            "add",
            Self::s(&self.a),
            Self::s(&self.b),
            "--mode",
            "selective",
            "--schedule",
            "manual",
        ];
        args.extend_from_slice(extra);
        self.ferry(&args);
        self.ferry(&["sync", Self::s(&self.a), Self::s(&self.b)]);
    }

    /// The state `ferry ls` gives `path` (relative to a).
    fn state(&self, rel: &str) -> Value {
        let v = self.json(&["ls", Self::s(&self.a)]);
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == rel)
            .cloned()
            .unwrap_or_else(|| panic!("{rel} not listed: {v}"))
    }

    /// `ferry mount DIR MP` in the background, waited for.
    fn mount(&mut self, dir: &Path, mp: &Path, timeout: &str) {
        self.mount_with(dir, mp, timeout, &[]);
    }

    /// [`World::mount`] with more environment for the mount process.
    fn mount_with(&mut self, dir: &Path, mp: &Path, timeout: &str, env: &[(&str, &str)]) {
        let child = ferry_cmd(&self.home)
            .envs(env.iter().copied())
            .args([
                "mount",
                Self::s(dir),
                Self::s(mp),
                "--read-timeout",
                timeout,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.mounts.push((child, mp.to_path_buf()));
        let start = Instant::now();
        while !mounted(mp) {
            let (child, _) = self.mounts.last_mut().unwrap();
            if child.try_wait().unwrap().is_some() || start.elapsed() > DEADLINE {
                let _ = child.kill();
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                panic!(
                    "ferry mount {} {} did not mount: {err}",
                    dir.display(),
                    mp.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn mount_json(&self, dir: &Path) -> Value {
        serde_json::from_slice(&fs::read(dir.join(".ferry/mount.json")).unwrap()).unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for (child, mp) in self.mounts.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            if mounted(mp) {
                let _ = ferry_cmd(&self.home)
                    .args(["unmount", mp.to_str().unwrap()])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn mount_lists_everything_and_reads_online_only_files_by_the_piece() {
    if !fuse_available() {
        return;
    }
    let mut w = World::new();
    fs::create_dir(w.a.join("dir")).unwrap();
    let big = content(16 << 20, 1);
    fs::write(w.a.join("dir/big.bin"), &big).unwrap();
    fs::write(w.a.join("small.txt"), b"small and local").unwrap();
    w.selective(&[]);
    let mtime = fs::metadata(w.a.join("dir/big.bin")).unwrap().mtime();
    let r = w.json(&["free-up", World::s(&w.a.join("dir"))]);
    assert_eq!(r["files"], 1, "{r}");
    assert!(!w.a.join("dir/big.bin").exists());
    assert_eq!(w.state("dir/big.bin")["state"], "online-only");
    assert_eq!(w.state("small.txt")["state"], "local");
    let status = w.json(&["status"]);
    let fod = &status["conduits"][0]["files_on_demand"];
    assert_eq!(fod["bytes_online_only"], big.len() as u64, "{status}");
    assert_eq!(fod["bytes_local"], 15);
    assert_eq!(
        (fod["files_online_only"].clone(), fod["pinned"].clone()),
        (1.into(), 0.into())
    );
    assert_eq!(fod["hydrations_in_progress"], 0);

    let (a, mnt) = (w.a.clone(), w.mnt.clone());
    w.mount(&a, &mnt, "30s");
    // The whole tree, real sizes and times; ferry's own folder is not shown.
    let mut names: Vec<String> = fs::read_dir(&w.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["dir", "small.txt"]);
    let m = fs::metadata(w.mnt.join("dir/big.bin")).unwrap();
    assert_eq!((m.len(), m.mtime()), (big.len() as u64, mtime));
    assert_eq!(
        fs::read(w.mnt.join("small.txt")).unwrap(),
        b"small and local"
    );

    // A partial read fetches only the pieces around it.
    let mut f = fs::File::open(w.mnt.join("dir/big.bin")).unwrap();
    f.seek(SeekFrom::Start(8 << 20)).unwrap();
    let mut buf = vec![0u8; 4096];
    f.read_exact(&mut buf).unwrap();
    assert_eq!(buf, big[8 << 20..(8 << 20) + 4096]);
    let fetched = w.mount_json(&w.a)["fetched_bytes"].as_u64().unwrap();
    assert!(
        fetched > 0 && fetched <= 3 << 20,
        "fetched {fetched} bytes of 16 MiB for 4 KiB"
    );
    assert!(
        !w.a.join("dir/big.bin").exists(),
        "a partial read does not hydrate"
    );
    drop(f);

    // Read to the end: byte-identical, and then installed locally (verified).
    assert_eq!(fs::read(w.mnt.join("dir/big.bin")).unwrap(), big);
    wait_for("the hydration", || w.a.join("dir/big.bin").exists());
    assert_eq!(fs::read(w.a.join("dir/big.bin")).unwrap(), big);
    wait_for("ls to say local", || {
        w.state("dir/big.bin")["state"] == "local"
    });
    assert_eq!(fs::read(w.mnt.join("dir/big.bin")).unwrap(), big);
    w.ferry(&["unmount", World::s(&w.mnt)]);
    assert!(!mounted(&w.mnt));
}

#[test]
fn pins_keep_offline_and_writes_through_the_mount_sync_to_b() {
    if !fuse_available() {
        return;
    }
    let mut w = World::new();
    fs::create_dir(w.a.join("docs")).unwrap();
    fs::write(w.a.join("docs/one.txt"), b"one").unwrap();
    fs::write(w.a.join("docs/two.txt"), b"two").unwrap();
    w.selective(&[]);
    w.ferry(&["pin", World::s(&w.a.join("docs"))]);
    assert_eq!(w.state("docs/one.txt")["pinned"], true);
    assert_eq!(
        w.json(&["status"])["conduits"][0]["files_on_demand"]["pinned"],
        1
    );
    // A pinned folder keeps its files when the whole side is freed up.
    let r = w.json(&["free-up", World::s(&w.a)]);
    assert_eq!(r["files"], 0, "{r}");
    assert!(w.a.join("docs/one.txt").exists());
    w.ferry(&["unpin", World::s(&w.a.join("docs"))]);
    assert_eq!(w.state("docs/one.txt")["pinned"], false);
    let r = w.json(&["free-up", World::s(&w.a)]);
    assert_eq!(r["files"], 2, "{r}");
    w.ferry(&["keep-offline", World::s(&w.a.join("docs/two.txt"))]);
    let two = w.state("docs/two.txt");
    assert_eq!(
        (two["local"].clone(), two["pinned"].clone()),
        (Value::Bool(true), Value::Bool(true))
    );
    assert_eq!(fs::read(w.a.join("docs/two.txt")).unwrap(), b"two");
    assert_eq!(w.state("docs/one.txt")["state"], "online-only");

    let (a, mnt) = (w.a.clone(), w.mnt.clone());
    w.mount(&a, &mnt, "30s");
    // Writes through the mount: a new file, an edit of a local file, an edit of an
    // online-only file (hydrated first), a deletion of an online-only file.
    fs::write(w.mnt.join("docs/new.txt"), b"written through the mount").unwrap();
    fs::write(w.mnt.join("docs/two.txt"), b"two, edited").unwrap();
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(w.mnt.join("docs/one.txt"))
            .unwrap();
        f.write_all(b" and more").unwrap();
    }
    fs::create_dir(w.mnt.join("made")).unwrap();
    fs::write(w.mnt.join("made/x.txt"), b"x").unwrap();
    fs::rename(w.mnt.join("made/x.txt"), w.mnt.join("made/y.txt")).unwrap();
    w.ferry(&["sync", World::s(&w.a), World::s(&w.b)]);
    assert_eq!(
        fs::read(w.b.join("docs/new.txt")).unwrap(),
        b"written through the mount"
    );
    assert_eq!(fs::read(w.b.join("docs/two.txt")).unwrap(), b"two, edited");
    assert_eq!(fs::read(w.b.join("docs/one.txt")).unwrap(), b"one and more");
    assert_eq!(fs::read(w.b.join("made/y.txt")).unwrap(), b"x");
    // Deleting an online-only file through the mount deletes it on B at the next sync.
    w.json(&["free-up", World::s(&w.a.join("docs/new.txt"))]);
    assert!(w.mnt.join("docs/new.txt").exists());
    fs::remove_file(w.mnt.join("docs/new.txt")).unwrap();
    assert!(!w.mnt.join("docs/new.txt").exists());
    w.ferry(&["sync", World::s(&w.a), World::s(&w.b)]);
    assert!(!w.b.join("docs/new.txt").exists());
    assert!(w.b.join("docs/one.txt").exists());
}

/// Sets a file's atime (the mtime stays).
fn set_atime(p: &Path, secs: u64) {
    let f = fs::File::options().write(true).open(p).unwrap();
    let m = f.metadata().unwrap();
    f.set_times(
        fs::FileTimes::new()
            .set_accessed(std::time::UNIX_EPOCH + Duration::from_secs(secs))
            .set_modified(m.modified().unwrap()),
    )
    .unwrap();
}

#[test]
fn quota_eviction_takes_the_least_recently_read_unpinned_closed_files() {
    if !fuse_available() {
        return;
    }
    let mut w = World::new();
    for (name, seed) in [("a.bin", 1), ("b.bin", 2), ("c.bin", 3), ("d.bin", 4)] {
        fs::write(w.a.join(name), content(100_000, seed)).unwrap();
    }
    w.selective(&["--local-quota", "250000"]);
    // The first run had nothing to evict yet... or had: all four are 400,000 bytes.
    // Start again from all local, then set the order of reads.
    w.ferry(&["keep-offline", World::s(&w.a)]);
    for n in ["a.bin", "b.bin", "c.bin", "d.bin"] {
        w.ferry(&["unpin", World::s(&w.a.join(n))]);
    }
    set_atime(&w.a.join("a.bin"), 1_000); // oldest, but held open
    set_atime(&w.a.join("b.bin"), 2_000);
    set_atime(&w.a.join("c.bin"), 3_000);
    set_atime(&w.a.join("d.bin"), 4_000);
    let (a, mnt) = (w.a.clone(), w.mnt.clone());
    w.mount(&a, &mnt, "30s");
    // Reading b through the mount makes it the most recently read.
    let _ = fs::read(w.mnt.join("b.bin")).unwrap();
    let held = fs::File::open(w.a.join("a.bin")).unwrap();
    w.ferry(&["sync", World::s(&w.a), World::s(&w.b)]);
    // 400,000 local, quota 250,000: two files go, the coldest closed ones: c then d.
    assert_eq!(w.state("a.bin")["state"], "local", "open: never evicted");
    assert_eq!(w.state("b.bin")["state"], "local", "read through the mount");
    assert_eq!(w.state("c.bin")["state"], "online-only");
    assert_eq!(w.state("d.bin")["state"], "online-only");
    drop(held);
    assert_eq!(fs::read(w.mnt.join("c.bin")).unwrap(), content(100_000, 3));
    assert!(w.b.join("c.bin").exists() && w.b.join("d.bin").exists());
}

#[test]
fn an_unreachable_secondary_gives_eio_within_the_bound_and_recovers() {
    if !fuse_available() {
        return;
    }
    let mut w = World::new();
    fs::write(w.a.join("cold.bin"), content(1 << 20, 7)).unwrap();
    w.selective(&[]);
    w.ferry(&["free-up", World::s(&w.a.join("cold.bin"))]);
    // Move the secondary into a folder served by a second ferry mount, and
    // bind-mount it back at its old path: stopping that mount's process makes every
    // access to the secondary hang, as a dead network disk does.
    let (c, d, mc) = (w.root.join("c"), w.root.join("d"), w.root.join("mc"));
    for x in [&c, &d, &mc] {
        fs::create_dir(x).unwrap();
    }
    w.ferry(&[
        "conduit",
        "add",
        World::s(&c),
        World::s(&d),
        "--mode",
        "selective",
        "--schedule",
        "manual",
    ]);
    w.ferry(&["sync", World::s(&c), World::s(&d)]);
    fs::rename(&w.b, c.join("b")).unwrap();
    fs::create_dir(&w.b).unwrap();
    w.mount(&c, &mc, "30s");
    let Some(bind) = ferry_testkit::bind_mount(&mc.join("b"), &w.b) else {
        return; // may not mount here: said on stderr
    };
    let (a, mnt) = (w.a.clone(), w.mnt.clone());
    w.mount(&a, &mnt, "2s");
    let server = w.mounts[0].0.id();
    // Resumed however the test ends, before the bind mount and the mounts are taken
    // down (declared last, dropped first): a stopped server would hang their unmount.
    struct Resume(u32);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-CONT", &self.0.to_string()])
                .status();
        }
    }
    let resume = Resume(server);
    Command::new("kill")
        .args(["-STOP", &server.to_string()])
        .status()
        .unwrap();

    // A reader on a thread: the test itself never hangs, whatever the mount does.
    let path = w.mnt.join("cold.bin");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = fs::read(&path);
        let _ = tx.send(r.map(|b| b.len()).map_err(|e| e.raw_os_error()));
    });
    let r = rx.recv_timeout(DEADLINE).expect("the read hung");
    assert_eq!(r, Err(Some(libc::EIO)), "an I/O error, never zero bytes");
    assert!(w.mount_json(&w.a)["failed_reads"].as_u64().unwrap() >= 1);

    // The secondary back: the same read works (once the resumed server answers again;
    // on a loaded machine that can take a moment).
    drop(resume);
    let started = Instant::now();
    let back = loop {
        match fs::read(w.mnt.join("cold.bin")) {
            Ok(b) => break b,
            Err(e) if started.elapsed() < DEADLINE => {
                eprintln!("read after the secondary came back: {e}; trying again");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("the secondary is back but the read still fails: {e}"),
        }
    };
    assert_eq!(back, content(1 << 20, 7));
    drop(bind);
}

#[test]
fn kill_9_during_hydration_leaves_old_or_new_and_a_recoverable_mount() {
    if !fuse_available() {
        return;
    }
    let mut w = World::new();
    let big = content(64 << 20, 5);
    fs::write(w.a.join("big.bin"), &big).unwrap();
    w.selective(&[]);
    w.ferry(&["free-up", World::s(&w.a.join("big.bin"))]);

    // `ferry keep-offline` killed as soon as its temp file appears (or later).
    let mut child = ferry_cmd(&w.home)
        .args(["keep-offline", World::s(&w.a.join("big.bin"))])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let staging = || {
        fs::read_dir(&w.a).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".ferry.tmp.")
        })
    };
    let start = Instant::now();
    while !staging() && start.elapsed() < DEADLINE && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    match fs::read(w.a.join("big.bin")) {
        Ok(b) => assert_eq!(b, big, "new content, whole"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "old: online-only"),
    }
    // The next sync leaves nothing behind and changes nothing on B.
    w.ferry(&["sync", World::s(&w.a), World::s(&w.b)]);
    assert_eq!(fs::read(w.b.join("big.bin")).unwrap(), big);
    assert!(!staging(), "the staged temp file was cleaned up");

    // The mount killed with SIGKILL mid-read: `ferry unmount` clears the stale mount
    // and a new mount reads the file.
    w.ferry(&["free-up", World::s(&w.a)]);
    let (a, mnt) = (w.a.clone(), w.mnt.clone());
    w.mount(&a, &mnt, "30s");
    let path = w.mnt.join("big.bin");
    let reader = std::thread::spawn(move || fs::read(path).map(|b| b.len()));
    std::thread::sleep(Duration::from_millis(20));
    let (mut child, _) = w.mounts.pop().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = reader.join(); // an error (the connection went), or all bytes if it was quick
    assert!(mounted(&w.mnt), "a killed mount stays mounted, stale");
    w.ferry(&["unmount", World::s(&w.mnt)]);
    assert!(!mounted(&w.mnt));
    match fs::read(w.a.join("big.bin")) {
        Ok(b) => assert_eq!(b, big),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
    }
    w.mount(&a, &mnt, "30s");
    assert_eq!(fs::read(w.mnt.join("big.bin")).unwrap(), big);
}

#[test]
fn changes_behind_the_mount_reach_readers_through_it_at_once() {
    changes_behind_the_mount(&[]);
}

/// The same with reads and writes through the mount process (no FUSE passthrough),
/// where the kernel's cached size and pages are all a reader gets.
#[test]
fn changes_behind_the_mount_reach_readers_without_passthrough_too() {
    changes_behind_the_mount(&[("FERRY_FUSE_NO_PASSTHROUGH", "1")]);
}

fn changes_behind_the_mount(env: &[(&str, &str)]) {
    if !fuse_available() {
        return;
    }
    let mut w = World::new();
    fs::write(w.a.join("edited.txt"), b"old").unwrap();
    fs::write(w.a.join("synced.txt"), b"first").unwrap();
    w.selective(&[]);
    let (a, mnt) = (w.a.clone(), w.mnt.clone());
    w.mount_with(&a, &mnt, "30s", env);
    let invalidations = |w: &World| w.mount_json(&w.a)["invalidations"].as_u64().unwrap();
    // Read through the mount: the kernel caches the attributes (size) and pages.
    assert_eq!(fs::read(w.mnt.join("edited.txt")).unwrap(), b"old");
    assert_eq!(fs::read(w.mnt.join("synced.txt")).unwrap(), b"first");
    assert_eq!(fs::metadata(w.mnt.join("edited.txt")).unwrap().len(), 3);

    // Edited on the local disk directly, as an editor saves (new file renamed over):
    // once the mount has heard of it, a reader through it gets the new bytes, not the
    // first three of them (the size the kernel had cached).
    let seen = invalidations(&w);
    fs::write(w.a.join(".edited.txt.tmp"), b"new, longer content").unwrap();
    fs::rename(w.a.join(".edited.txt.tmp"), w.a.join("edited.txt")).unwrap();
    wait_for("the mount to hear of the edit", || invalidations(&w) > seen);
    assert_eq!(
        fs::read(w.mnt.join("edited.txt")).unwrap(),
        b"new, longer content"
    );

    // A sync installs the secondary's new version behind the mount.
    let seen = invalidations(&w);
    fs::write(w.b.join("synced.txt"), b"second version, longer").unwrap();
    w.ferry(&["sync", World::s(&w.a), World::s(&w.b)]);
    assert_eq!(
        fs::read(w.a.join("synced.txt")).unwrap(),
        b"second version, longer"
    );
    wait_for("the mount to hear of the sync", || invalidations(&w) > seen);
    assert_eq!(
        fs::read(w.mnt.join("synced.txt")).unwrap(),
        b"second version, longer"
    );

    // Dehydrated and hydrated again behind the mount: the same bytes either way.
    let seen = invalidations(&w);
    w.ferry(&["free-up", World::s(&w.a.join("synced.txt"))]);
    wait_for("the mount to hear of the dehydration", || {
        invalidations(&w) > seen
    });
    assert_eq!(
        fs::read(w.mnt.join("synced.txt")).unwrap(),
        b"second version, longer"
    );
    let seen = invalidations(&w);
    w.ferry(&["keep-offline", World::s(&w.a.join("synced.txt"))]);
    wait_for("the mount to hear of the hydration", || {
        invalidations(&w) > seen
    });
    assert_eq!(
        fs::read(w.mnt.join("synced.txt")).unwrap(),
        b"second version, longer"
    );
    assert_eq!(fs::metadata(w.mnt.join("synced.txt")).unwrap().len(), 22);
    w.ferry(&["unmount", World::s(&w.mnt)]);
}

#[test]
fn a_folder_swapped_for_a_symlink_never_leads_the_mount_outside_the_root() {
    if !fuse_available() {
        return;
    }
    let mut w = World::new();
    fs::create_dir(w.a.join("d")).unwrap();
    fs::write(w.a.join("d/f.txt"), b"inside").unwrap();
    let outside = w.root.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("f.txt"), b"SECRET").unwrap();
    w.selective(&[]);
    let (a, mnt) = (w.a.clone(), w.mnt.clone());
    w.mount(&a, &mnt, "30s");
    assert_eq!(fs::read(w.mnt.join("d/f.txt")).unwrap(), b"inside");
    // A handle on the folder through the mount, held across the swap: requests made
    // through it name the folder by its inode, whatever is at its path now.
    let dir = fs::File::open(w.mnt.join("d")).unwrap();
    let via = |name: &str| {
        PathBuf::from(format!("/proc/self/fd/{}/{name}", {
            use std::os::fd::AsRawFd;
            dir.as_raw_fd()
        }))
    };
    assert_eq!(fs::read(via("f.txt")).unwrap(), b"inside");

    fs::rename(w.a.join("d"), w.root.join("d.moved")).unwrap();
    std::os::unix::fs::symlink(&outside, w.a.join("d")).unwrap();

    // Reads, writes, creations and listings through the held folder are refused
    // (never the outside file), and nothing outside changes.
    assert!(fs::read(via("f.txt")).is_err());
    assert!(fs::write(via("f.txt"), b"overwritten").is_err());
    assert!(fs::write(via("new.txt"), b"planted").is_err());
    assert!(fs::create_dir(via("sub")).is_err());
    assert!(fs::remove_file(via("f.txt")).is_err());
    if let Ok(list) = fs::read_dir(via("")) {
        for e in list.flatten() {
            assert_ne!(e.file_name(), "f.txt", "the outside folder listed");
        }
    }
    // Through the path, the mount shows the symlink as a symlink: what it names is
    // read by the kernel outside the mount, not by the mount.
    wait_for("the mount to show the symlink", || {
        fs::symlink_metadata(w.mnt.join("d")).is_ok_and(|m| m.file_type().is_symlink())
    });
    assert!(
        fs::write(w.mnt.join("d.new"), b"fine").is_ok(),
        "the mount still works"
    );
    let mut names: Vec<String> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["f.txt"]);
    assert_eq!(fs::read(outside.join("f.txt")).unwrap(), b"SECRET");
    assert_eq!(fs::read(w.root.join("d.moved/f.txt")).unwrap(), b"inside");
    drop(dir);
    w.ferry(&["unmount", World::s(&w.mnt)]);
}

/// A small tmpfs mounted at `at` (root only); unmounted when dropped.
struct SmallFs(PathBuf);

impl SmallFs {
    fn new(at: &Path, size: &str) -> Option<SmallFs> {
        fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        }
        ok.then(|| SmallFs(at.to_path_buf()))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_during_hydration_leaves_the_file_online_only_and_readable() {
    if !fuse_available() {
        return;
    }
    let mut w = World::new();
    // A on a 4 MiB file system of its own; B on the ordinary disk.
    let a = w.root.join("small");
    let Some(_small) = SmallFs::new(&a, "4m") else {
        return;
    };
    let big = content(1 << 20, 7);
    fs::write(a.join("big.bin"), &big).unwrap();
    w.a = a.clone();
    w.selective(&[]);
    let r = w.json(&["free-up", World::s(&a.join("big.bin"))]);
    assert_eq!(r["files"], 1, "{r}");
    // Fill A's file system to within 256 KiB: no room for the 1 MiB file.
    let mut filler = fs::File::create(a.join("filler")).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while std::io::Write::write_all(&mut filler, &chunk).is_ok() {}
    drop(filler);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(a.join("filler"))
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(256 << 10)).unwrap();
    drop(f);

    // keep-offline says it failed; the file stays online-only, no temp file is left.
    let out = ferry_cmd(&w.home)
        .args(["keep-offline", World::s(&a.join("big.bin"))])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!a.join("big.bin").exists());
    let left: Vec<String> = fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        left.iter().all(|n| n == "filler" || n == ".ferry"),
        "{left:?}"
    );

    // Through the mount: read to the end (the hydration that follows fails for want
    // of room, leaving no temp file), then again: the right bytes both times, and the
    // file still online-only. (The listing comes before the second read: that read
    // starts another hydration, whose temp file may be there while it runs.)
    let mnt = w.mnt.clone();
    w.mount(&a, &mnt, "30s");
    assert_eq!(fs::read(w.mnt.join("big.bin")).unwrap(), big);
    wait_for("the hydration to be given up", || {
        w.mount_json(&a)["hydrations_failed"] == 1
    });
    let left: Vec<String> = fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        left.iter().all(|n| n == "filler" || n == ".ferry"),
        "{left:?}"
    );
    assert_eq!(fs::read(w.mnt.join("big.bin")).unwrap(), big);
    assert_eq!(w.state("big.bin")["local"], false);

    // Room again: the next read to the end hydrates it, whole.
    fs::remove_file(a.join("filler")).unwrap();
    assert_eq!(fs::read(w.mnt.join("big.bin")).unwrap(), big);
    wait_for("the hydration", || a.join("big.bin").exists());
    assert_eq!(fs::read(a.join("big.bin")).unwrap(), big);
    w.ferry(&["unmount", World::s(&w.mnt)]);
}

/// A `ferry daemon` of a world's library with its event stream; killed when dropped.
struct Daemon {
    child: Child,
    stream: std::net::TcpStream,
    text: String,
}

impl Daemon {
    fn start(w: &World, env: &[(&str, &str)]) -> Daemon {
        use std::io::Write;
        let _ = fs::remove_file(w.home.join("daemon.json"));
        let child = ferry_cmd(&w.home)
            .arg("daemon")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as u64;
        let mut port = 0;
        wait_for("daemon.json", || {
            let v: Option<Value> = fs::read_to_string(w.home.join("daemon.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            match v {
                Some(v) if v["pid"].as_u64() == Some(pid) => {
                    port = v["port"].as_u64().unwrap() as u16;
                    true
                }
                _ => false,
            }
        });
        let token = fs::read_to_string(w.home.join("api-token")).unwrap();
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
            token.trim()
        )
        .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut d = Daemon {
            child,
            stream,
            text: String::new(),
        };
        // The handler subscribes before it answers: the status line is the barrier.
        wait_for("the event stream", || {
            d.read();
            d.text.starts_with("HTTP/1.1 200")
        });
        d
    }

    fn read(&mut self) {
        let mut buf = [0u8; 4096];
        if let Ok(k) = self.stream.read(&mut buf) {
            self.text.push_str(&String::from_utf8_lossy(&buf[..k]));
        }
    }

    /// The events so far: (name, data).
    fn events(&self) -> Vec<(String, Value)> {
        let mut out: Vec<(String, Value)> = Vec::new();
        for line in self.text.lines() {
            if let Some(name) = line.strip_prefix("event: ") {
                out.push((name.to_string(), Value::Null));
            } else if let (Some(data), Some(last)) = (line.strip_prefix("data: "), out.last_mut()) {
                last.1 = serde_json::from_str(data).unwrap_or(Value::Null);
            }
        }
        out
    }

    fn wait_for(&mut self, what: &str, mut cond: impl FnMut(&[(String, Value)]) -> bool) {
        wait_for(what, || {
            self.read();
            cond(&self.events())
        });
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_hydration_through_the_mount_is_on_the_daemons_event_stream() {
    if !fuse_available() {
        return;
    }
    let mut w = World::new();
    let big = content(3 << 20, 11);
    fs::write(w.a.join("big.bin"), &big).unwrap();
    w.selective(&[]);
    w.ferry(&["free-up", World::s(&w.a.join("big.bin"))]);
    let mut d = Daemon::start(&w, &[]);
    let (a, mnt) = (w.a.clone(), w.mnt.clone());
    w.mount(&a, &mnt, "30s");
    assert_eq!(fs::read(w.mnt.join("big.bin")).unwrap(), big);
    d.wait_for("the mount's hydration on the stream", |list| {
        list.iter().any(|(n, _)| n == "hydration_finished")
    });
    let hydrations: Vec<(String, Value)> = d
        .events()
        .into_iter()
        .filter(|(n, _)| n.starts_with("hydration_"))
        .collect();
    let names: Vec<&str> = hydrations.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["hydration_started", "hydration_finished"]);
    for (_, e) in &hydrations {
        assert_eq!(
            (&e["conduit"], &e["path"], &e["bytes"], &e["by"]),
            (
                &Value::from(1),
                &Value::from("big.bin"),
                &Value::from(big.len() as u64),
                &Value::from("mount")
            )
        );
    }
    assert_eq!(fs::read(w.a.join("big.bin")).unwrap(), big);
    w.ferry(&["unmount", World::s(&w.mnt)]);
}

#[test]
fn the_daemon_keeps_a_free_space_floor_as_files_are_written() {
    let mut w = World::new();
    // A on a 4 MiB file system of its own, kept 40% free.
    let a = w.root.join("small");
    let Some(_small) = SmallFs::new(&a, "4m") else {
        return;
    };
    fs::write(a.join("cold.bin"), content(1 << 20, 1)).unwrap();
    fs::write(a.join("warm.bin"), content(1 << 20, 2)).unwrap();
    set_atime(&a.join("cold.bin"), 1_000);
    set_atime(&a.join("warm.bin"), 2_000);
    w.a = a.clone();
    w.selective(&["--min-free", "40"]);
    assert!(a.join("cold.bin").exists() && a.join("warm.bin").exists());
    let mut d = Daemon::start(&w, &[("FERRY_EVICT_INTERVAL", "200ms")]);
    // A third MiB leaves about a quarter free: the colder file goes, and that is
    // enough.
    fs::write(a.join("new.bin"), content(1 << 20, 3)).unwrap();
    d.wait_for("the floor's dehydration", |list| {
        list.iter().any(|(n, _)| n == "files_dehydrated")
    });
    let (_, e) = d
        .events()
        .into_iter()
        .find(|(n, _)| n == "files_dehydrated")
        .unwrap();
    assert_eq!(
        (&e["by"], &e["paths"]),
        (&Value::from("quota"), &serde_json::json!(["cold.bin"]))
    );
    assert!(!a.join("cold.bin").exists());
    assert!(a.join("warm.bin").exists() && a.join("new.bin").exists());
    assert_eq!(fs::read(w.b.join("cold.bin")).unwrap(), content(1 << 20, 1));
    assert_eq!(w.state("cold.bin")["local"], false);
}
