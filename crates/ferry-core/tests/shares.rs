//! Two devices in one process: each with its own index and folder, sharing the folder
//! through the engine's seams only — entries handed over as a peer would send them
//! (`share::outgoing` → `share::incoming`), content pulled by hash from the other
//! device's folder (`FolderContent`), each device applying only its own side.

use ferry_core::index::{Index, Resolution, ShareOffer, ShareRow};
use ferry_core::model::Hash;
use ferry_core::model::RelPath;
use ferry_core::plan::{ConflictPolicy, SyncMode};
use ferry_core::replica::open_location;
use ferry_core::replica::{ChunkSource, FolderContent, Piece};
use ferry_core::resolve::{resolve_path, Keep};
use ferry_core::share;
use ferry_core::NoProgress;
use ferry_core::{sync_conduit, PullSource, SyncOptions, SyncOutcome};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

struct Device {
    name: &'static str,
    db: PathBuf,
    dir: PathBuf,
    index: Index,
    share: Option<ShareRow>,
}

impl Device {
    fn new(tmp: &Path, name: &'static str) -> Device {
        let dir = tmp.join(name).join("folder");
        std::fs::create_dir_all(&dir).unwrap();
        let db = tmp.join(name).join("index.db");
        let index = Index::open(&db).unwrap();
        Device {
            name,
            db,
            dir,
            index,
            share: None,
        }
    }

    fn share(&self) -> &ShareRow {
        self.share.as_ref().unwrap()
    }

    fn location_uuid(&self) -> String {
        self.index.location(self.share().location_id).unwrap().uuid
    }

    /// What a peer reads this device's content from.
    fn content(&self) -> Arc<FolderContent> {
        let mut index = Index::open(&self.db).unwrap();
        let loc = open_location(&mut index, &self.dir, false).unwrap();
        Arc::new(FolderContent::new(index, loc))
    }

    fn conduit(&self, peer: &str) -> i64 {
        (self
            .index
            .share_member(&self.share().id, peer)
            .unwrap()
            .unwrap())
        .conduit_id
        .unwrap()
    }

    fn run(&mut self, peer: &str, pull: Arc<dyn ChunkSource + Send + Sync>) -> SyncOutcome {
        let conduit = self.conduit(peer);
        let opts = SyncOptions {
            pull: Some(PullSource(pull)),
            ..Default::default()
        };
        sync_conduit(&mut self.index, conduit, &opts, &NoProgress).unwrap()
    }

    fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    fn read(&self, rel: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join(rel)).ok()
    }
}

/// Hands `from`'s changes to `to` as the wire would; returns how many entries changed.
fn send(from: &Device, to: &mut Device) -> usize {
    let member = (to.index.share_member(&to.share().id, from.name).unwrap()).unwrap();
    let entries = share::outgoing(&from.index, from.share(), member.received_seq, 10_000).unwrap();
    let upto = entries.iter().map(|e| e.cache.sequence).max().unwrap_or(0);
    let pairs: Vec<_> = entries.into_iter().map(|e| (e.path, e.state)).collect();
    let share = to.share().clone();
    share::incoming(&mut to.index, &share, from.name, &pairs, upto).unwrap()
}

/// X offers its folder to Y, Y accepts, and each learns the other's folder ID.
fn pair(tmp: &Path, mode: SyncMode) -> (Device, Device) {
    pair_with(tmp, mode, ConflictPolicy::Newest)
}

fn pair_with(tmp: &Path, mode: SyncMode, policy: ConflictPolicy) -> (Device, Device) {
    let mut x = Device::new(tmp, "X");
    let mut y = Device::new(tmp, "Y");
    let dir = x.dir.clone();
    x.share = Some(share::create_share(&mut x.index, &dir, &["Y".into()], mode, policy).unwrap());
    let id = x.share().id.clone();
    (y.index)
        .record_offer(&ShareOffer {
            share_id: id.clone(),
            device: "X".into(),
            folder_name: "folder".into(),
            folder_id: x.location_uuid(),
            mode,
            conflict_policy: policy,
            received_at: 0,
        })
        .unwrap();
    let dir = y.dir.clone();
    y.share = Some(share::accept_offer(&mut y.index, &id, &dir).unwrap());
    assert!(y.index.offers().unwrap().is_empty());
    // Accepting tied Y to X's folder; X learns Y's from Y's share list.
    assert!(y
        .index
        .share_member(&id, "X")
        .unwrap()
        .unwrap()
        .conduit_id
        .is_some());
    let uy = y.location_uuid();
    let sx = x.share().clone();
    share::attach_member(&mut x.index, &sx, "Y", &uy).unwrap();
    (x, y)
}

/// Runs both devices and exchanges entries until nothing changes any more.
fn settle(x: &mut Device, y: &mut Device) {
    let (cx, cy) = (x.content(), y.content());
    for _ in 0..6 {
        x.run("Y", cy.clone());
        let a = send(x, y);
        y.run("X", cx.clone());
        let b = send(y, x);
        if a == 0 && b == 0 {
            return;
        }
    }
    panic!("the two devices did not settle");
}

#[test]
fn a_shared_folder_reaches_the_other_device_and_changes_flow_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair(tmp.path(), SyncMode::Bidirectional);
    x.write("notes.txt", b"from x");
    x.write("photos/2026/cat.jpg", &ferry_testkit::noise(700_000, 1));
    std::os::unix::fs::symlink("notes.txt", x.dir.join("link")).unwrap();
    settle(&mut x, &mut y);
    assert_eq!(y.read("notes.txt").unwrap(), b"from x");
    assert_eq!(
        y.read("photos/2026/cat.jpg").unwrap(),
        ferry_testkit::noise(700_000, 1)
    );
    assert_eq!(
        std::fs::read_link(y.dir.join("link")).unwrap(),
        Path::new("notes.txt")
    );

    // An edit on Y and a deletion on X, each reaching the other.
    y.write("notes.txt", b"edited on y");
    std::fs::remove_file(x.dir.join("photos/2026/cat.jpg")).unwrap();
    settle(&mut x, &mut y);
    assert_eq!(x.read("notes.txt").unwrap(), b"edited on y");
    assert_eq!(y.read("photos/2026/cat.jpg"), None);
    // Y's copy was kept as a version, not just unlinked.
    let versions = ferry_testkit::files_below(&y.dir.join(".ferry/versions"));
    assert!(
        versions
            .iter()
            .any(|p| p.to_string_lossy().contains("cat.jpg")),
        "{versions:?}"
    );
}

/// Counts the bytes a source handed out, and notes which pieces it was told of ahead
/// and which it was asked for.
struct Counting {
    inner: Arc<FolderContent>,
    bytes: AtomicU64,
    told: std::sync::Mutex<Vec<Hash>>,
    asked: std::sync::Mutex<Vec<Hash>>,
}

impl ChunkSource for Counting {
    fn read(&self, piece: &Piece, buf: &mut Vec<u8>) -> ferry_core::Result<bool> {
        let found = self.inner.read(piece, buf)?;
        if found {
            self.bytes
                .fetch_add(u64::from(piece.len), Ordering::Relaxed);
            self.asked.lock().unwrap().push(piece.hash);
        }
        Ok(found)
    }

    fn prefetch(&self, upcoming: &[Piece]) {
        self.told
            .lock()
            .unwrap()
            .extend(upcoming.iter().map(|p| p.hash));
    }
}

#[test]
fn a_small_edit_to_a_big_file_pulls_only_the_chunks_that_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair(tmp.path(), SyncMode::Bidirectional);
    let mut big = ferry_testkit::noise(8 << 20, 7);
    x.write("big.bin", &big);
    settle(&mut x, &mut y);
    assert_eq!(y.read("big.bin").unwrap(), big);

    big.splice(
        0..0,
        b"a hundred bytes or so inserted at the very start".repeat(2),
    );
    x.write("big.bin", &big);
    x.run("Y", y.content());
    send(&x, &mut y);
    let far = Arc::new(Counting {
        inner: x.content(),
        bytes: AtomicU64::new(0),
        told: Default::default(),
        asked: Default::default(),
    });
    let out = y.run("X", far.clone());
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(y.read("big.bin").unwrap(), big);
    let pulled = far.bytes.load(Ordering::Relaxed);
    assert!(
        pulled > 0 && pulled < 1 << 20,
        "pulled {pulled} bytes of an 8 MiB file for a 100-byte insert"
    );
    // Every piece read from afar was announced before it was asked for, and only the
    // pieces no local content held were announced.
    let (told, asked) = (far.told.lock().unwrap(), far.asked.lock().unwrap());
    assert!(
        asked.iter().all(|h| told.contains(h)),
        "asked for pieces never announced"
    );
    let mut distinct = told.clone();
    distinct.sort_unstable_by_key(|h| h.0);
    distinct.dedup();
    assert_eq!(distinct.len(), asked.len(), "announced pieces held here");
}

/// Claims to have every piece and hands out zeros.
struct Liar;

impl ChunkSource for Liar {
    fn read(&self, piece: &Piece, buf: &mut Vec<u8>) -> ferry_core::Result<bool> {
        buf.clear();
        buf.resize(piece.len as usize, 0);
        Ok(true)
    }
}

#[test]
fn content_from_a_lying_device_is_never_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair(tmp.path(), SyncMode::Bidirectional);
    y.write("doc.txt", b"y's own words");
    x.write("new.txt", b"real content");
    x.write("doc.txt", b"x's later words, which win by time");
    let later = filetime::FileTime::from_unix_time(2_000_000_000, 0);
    filetime::set_file_mtime(x.dir.join("doc.txt"), later).unwrap();
    x.run("Y", y.content());
    send(&x, &mut y);
    let out = y.run("X", Arc::new(Liar));
    assert!(!out.problems.is_empty());
    assert_eq!(y.read("new.txt"), None);
    assert_eq!(y.read("doc.txt").unwrap(), b"y's own words");
    let left: Vec<_> = ferry_testkit::files_below(&y.dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".ferry.tmp"))
        .collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
    // With the honest device, the next run completes.
    let out = y.run("X", x.content());
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(y.read("new.txt").unwrap(), b"real content");
}

#[test]
fn entries_that_cannot_be_true_are_refused_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair(tmp.path(), SyncMode::Bidirectional);
    x.write("a.txt", b"fine");
    x.run("Y", y.content());
    let good = share::outgoing(&x.index, x.share(), 0, 100).unwrap();
    let mut pairs: Vec<_> = good.into_iter().map(|e| (e.path, e.state)).collect();
    let mut bad = pairs[0].1.clone();
    bad.hash = None;
    pairs.push((RelPath::new("b.txt").unwrap(), bad.clone()));
    let share = y.share().clone();
    let err = share::incoming(&mut y.index, &share, "X", &pairs, 99).unwrap_err();
    assert!(err.to_string().contains("b.txt"), "{err}");
    let member = y.index.share_member(&share.id, "X").unwrap().unwrap();
    let held = y.index.entries(member.remote_location.unwrap()).unwrap();
    assert!(held.is_empty(), "stored part of a refused batch: {held:?}");
    assert_eq!(member.received_seq, 0);

    // A file of 1 GiB claiming to be one chunk: refused before anyone asks for it.
    bad.hash = Some(Hash::of(b"x"));
    bad.size = 1 << 30;
    let one = vec![(RelPath::new("c.txt").unwrap(), bad)];
    assert!(share::incoming(&mut y.index, &share, "X", &one, 1).is_err());
    // Paths a scan never indexes: ferry's own folder and its temp files.
    let good = pairs[0].1.clone();
    for p in [
        ".ferry/versions/x",
        ".ferry",
        "d/.ferry.tmp.0123456789abcdef.0123456789abcdef",
    ] {
        let one = vec![(RelPath::new(p).unwrap(), good.clone())];
        let err = share::incoming(&mut y.index, &share, "X", &one, 1).unwrap_err();
        assert!(err.to_string().contains("ferry's own folder"), "{p}: {err}");
    }
    // Someone who is not a member is refused too.
    assert!(share::incoming(&mut y.index, &share, "Z", &pairs[..1], 1).is_err());
}

#[test]
fn a_mirror_share_flows_from_the_device_that_made_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair(tmp.path(), SyncMode::Mirror);
    x.write("src.txt", b"source");
    settle(&mut x, &mut y);
    assert_eq!(y.read("src.txt").unwrap(), b"source");
    y.write("extra.txt", b"made on the mirror");
    y.write("src.txt", b"edited on the mirror");
    settle(&mut x, &mut y);
    assert_eq!(x.read("extra.txt"), None, "a mirror never flows back");
    assert_eq!(x.read("src.txt").unwrap(), b"source");
    assert_eq!(y.read("src.txt").unwrap(), b"source");
    assert_eq!(y.read("extra.txt"), None);
}

#[test]
fn selective_is_not_shared_between_devices_yet() {
    let tmp = tempfile::tempdir().unwrap();
    let mut x = Device::new(tmp.path(), "X");
    let dir = x.dir.clone();
    let err = share::create_share(
        &mut x.index,
        &dir,
        &[],
        SyncMode::Selective,
        ConflictPolicy::Newest,
    )
    .unwrap_err();
    assert!(err.to_string().contains("between devices"), "{err}");
}

fn versions_hold(d: &Device, bytes: &[u8]) -> bool {
    ferry_testkit::files_below(&d.dir.join(".ferry/versions"))
        .into_iter()
        .any(|p| std::fs::read(&p).is_ok_and(|b| b == bytes))
}

fn open_conflicts(d: &Device) -> usize {
    d.index.conflicts(true).unwrap().len()
}

/// A manual conflict between devices shows on both; resolving it on one device (its
/// own content, or the other device's pulled by hash) settles both, the losing content
/// kept in the version store of the device that had it.
#[test]
fn a_manual_conflict_is_recorded_on_both_devices_and_one_resolution_settles_both() {
    for keep in [Keep::Theirs, Keep::Mine] {
        let tmp = tempfile::tempdir().unwrap();
        let (mut x, mut y) = pair_with(tmp.path(), SyncMode::Bidirectional, ConflictPolicy::Manual);
        x.write("plan.txt", b"v1");
        settle(&mut x, &mut y);
        assert_eq!(y.read("plan.txt").unwrap(), b"v1");
        x.write("plan.txt", b"x's edit");
        y.write("plan.txt", b"y's edit, longer");
        settle(&mut x, &mut y);
        // Recorded on both, nothing touched on either.
        assert_eq!(open_conflicts(&x), 1);
        assert_eq!(open_conflicts(&y), 1);
        assert_eq!(x.read("plan.txt").unwrap(), b"x's edit");
        assert_eq!(y.read("plan.txt").unwrap(), b"y's edit, longer");

        let path = y.dir.join("plan.txt");
        let done = resolve_path(&mut y.index, &path, keep).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].device.as_deref(), Some("X"));
        settle(&mut x, &mut y);
        let (winner, loser, had_loser): (&[u8], &[u8], &Device) = match keep {
            Keep::Theirs => (b"x's edit", b"y's edit, longer", &y),
            _ => (b"y's edit, longer", b"x's edit", &x),
        };
        assert_eq!(x.read("plan.txt").unwrap(), winner, "{keep:?}");
        assert_eq!(y.read("plan.txt").unwrap(), winner, "{keep:?}");
        assert!(
            versions_hold(had_loser, loser),
            "{keep:?}: the loser was not kept"
        );
        assert_eq!(open_conflicts(&x), 0, "{keep:?}: still open on X");
        assert_eq!(open_conflicts(&y), 0, "{keep:?}: still open on Y");
        // Settled for good: more runs change nothing.
        settle(&mut x, &mut y);
        assert_eq!(x.read("plan.txt").unwrap(), winner);
        assert_eq!(open_conflicts(&x) + open_conflicts(&y), 0);
    }
}

/// Keeping both in a conflict with another device: this device's content moves beside
/// the path under a conflict name and syncs as a new file, the other device's content
/// takes the path on both devices, and the conflict is settled on both. The path's
/// removal here is never announced as a deletion (the other device keeps its file).
#[test]
fn keeping_both_in_a_conflict_with_a_device_keeps_each_content_under_its_own_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair_with(tmp.path(), SyncMode::Bidirectional, ConflictPolicy::Manual);
    x.write("plan.txt", b"v1");
    settle(&mut x, &mut y);
    x.write("plan.txt", b"x's edit");
    y.write("plan.txt", b"y's edit, longer");
    settle(&mut x, &mut y);
    assert_eq!((open_conflicts(&x), open_conflicts(&y)), (1, 1));

    let done = resolve_path(&mut y.index, &y.dir.join("plan.txt"), Keep::Both).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].kept, Resolution::Both);
    let aside = done[0].loser_kept_at.clone().unwrap();
    assert!(aside.starts_with("plan.conflict-"), "{aside}");
    assert_eq!(y.read(&aside).unwrap(), b"y's edit, longer");
    // Announced before Y's next run: the path's removal on Y is not among its changes.
    assert_eq!(send(&y, &mut x), 0, "the path's removal was announced");
    settle(&mut x, &mut y);
    for (name, d) in [("X", &x), ("Y", &y)] {
        assert_eq!(d.read("plan.txt").unwrap(), b"x's edit", "{name}");
        assert_eq!(d.read(&aside).unwrap(), b"y's edit, longer", "{name}");
        assert_eq!(open_conflicts(d), 0, "still open on {name}");
    }
    settle(&mut x, &mut y);
    assert_eq!(x.read("plan.txt").unwrap(), b"x's edit");
    assert_eq!(y.read("plan.txt").unwrap(), b"x's edit");
    assert_eq!(open_conflicts(&x) + open_conflicts(&y), 0);
}

/// An entry from the other device that does not dominate this device's (a forged or
/// stale "resolution") is met as a conflict again: nothing is overwritten.
#[test]
fn a_resolution_without_a_dominating_version_overwrites_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair_with(tmp.path(), SyncMode::Bidirectional, ConflictPolicy::Manual);
    x.write("plan.txt", b"v1");
    settle(&mut x, &mut y);
    y.write("plan.txt", b"y's edit");
    settle(&mut x, &mut y);
    assert_eq!(x.read("plan.txt").unwrap(), b"y's edit");
    // X claims other content at the version Y already has, as a forged resolution would.
    let held = y
        .index
        .share_member(&y.share().id, "X")
        .unwrap()
        .unwrap()
        .received_seq;
    let mut forged = x
        .index
        .entry(x.share().location_id, &RelPath::new("plan.txt").unwrap())
        .unwrap()
        .unwrap();
    forged.state.hash = Some(Hash([9; 32]));
    let sy = y.share().clone();
    share::incoming(
        &mut y.index,
        &sy,
        "X",
        &[(forged.path.clone(), forged.state.clone())],
        held + 1,
    )
    .unwrap();
    let cx = x.content();
    let o = y.run("X", cx);
    assert_eq!(y.read("plan.txt").unwrap(), b"y's edit", "{o:?}");
    assert_eq!(open_conflicts(&y), 1, "{o:?}");
}

#[test]
fn an_archive_share_removes_files_only_after_the_other_device_reports_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair(tmp.path(), SyncMode::Archive);
    let (cx, cy) = (x.content(), y.content());
    let big = ferry_testkit::noise(300_000, 3);
    x.write("done/report.pdf", &big);
    x.write("done/notes.txt", b"archive me");
    // X runs first: Y holds nothing yet, so nothing leaves X.
    x.run("Y", cy.clone());
    assert_eq!(x.read("done/report.pdf").unwrap(), big);
    send(&x, &mut y);
    // Y copies and verifies; until X hears of it, X keeps everything.
    y.run("X", cx.clone());
    assert_eq!(y.read("done/report.pdf").unwrap(), big);
    x.run("Y", cy.clone());
    assert_eq!(x.read("done/notes.txt").unwrap(), b"archive me");
    // Y's entries (its confirmation) reach X: now X frees its copies.
    send(&y, &mut x);
    let o = x.run("Y", cy.clone());
    assert!(o.problems.is_empty(), "{:?}", o.problems);
    assert_eq!(o.stats.files_archived, 2, "{o:?}");
    assert_eq!(x.read("done/report.pdf"), None);
    assert_eq!(x.read("done/notes.txt"), None);
    assert!(
        x.dir.join("done").is_dir(),
        "folders stay: new work lands there"
    );
    // The archive keeps them, whatever runs next on either device.
    settle(&mut x, &mut y);
    assert_eq!(y.read("done/report.pdf").unwrap(), big);
    assert_eq!(y.read("done/notes.txt").unwrap(), b"archive me");
    assert_eq!(x.read("done/report.pdf"), None);

    // Y reports other content at a path: X does not take that for its file's copy.
    x.write("draft.txt", b"x's draft");
    send(&x, &mut y);
    let mut lie = y
        .index
        .entry(
            y.share().location_id,
            &RelPath::new("done/notes.txt").unwrap(),
        )
        .unwrap()
        .unwrap();
    lie.path = RelPath::new("draft.txt").unwrap();
    let held = x
        .index
        .share_member(&x.share().id, "Y")
        .unwrap()
        .unwrap()
        .received_seq;
    let sx = x.share().clone();
    share::incoming(
        &mut x.index,
        &sx,
        "Y",
        &[(lie.path.clone(), lie.state.clone())],
        held + 1,
    )
    .unwrap();
    x.run("Y", cy.clone());
    assert_eq!(
        x.read("draft.txt").unwrap(),
        b"x's draft",
        "not confirmed: kept"
    );
}

/// A file deleted on the archive device after the source freed its copy stays
/// deleted: the archive's runs do not ask the source (which forgot it) for it again.
#[test]
fn a_file_deleted_on_the_archive_device_is_settled_not_fetched_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair(tmp.path(), SyncMode::Archive);
    x.write("old/tax-2019.pdf", b"no longer needed");
    x.write("old/keep.txt", b"keep me");
    settle(&mut x, &mut y);
    assert_eq!(
        x.read("old/tax-2019.pdf"),
        None,
        "archived: freed on the source"
    );
    assert_eq!(y.read("old/tax-2019.pdf").unwrap(), b"no longer needed");
    std::fs::remove_file(y.dir.join("old/tax-2019.pdf")).unwrap();
    let cx = x.content();
    for _ in 0..3 {
        let o = y.run("X", cx.clone());
        assert!(o.problems.is_empty(), "{:?}", o.problems);
        assert_eq!(o.stats.files_copied, 0, "{o:?}");
        send(&y, &mut x);
        let cy = y.content();
        let o = x.run("Y", cy);
        assert!(o.problems.is_empty(), "{:?}", o.problems);
    }
    assert_eq!(y.read("old/tax-2019.pdf"), None);
    assert_eq!(y.read("old/keep.txt").unwrap(), b"keep me");
    // New work at that path on the source is archived again.
    x.write("old/tax-2019.pdf", b"a new file at the old name");
    settle(&mut x, &mut y);
    assert_eq!(
        y.read("old/tax-2019.pdf").unwrap(),
        b"a new file at the old name"
    );
    assert_eq!(x.read("old/tax-2019.pdf"), None);
}

#[test]
fn concurrent_edits_settle_on_the_same_winner_on_both_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair(tmp.path(), SyncMode::Bidirectional);
    x.write("plan.txt", b"v1");
    settle(&mut x, &mut y);
    // Both edit before either hears of the other's edit; Y's is later.
    x.write("plan.txt", b"x's edit");
    y.write("plan.txt", b"y's later edit");
    let t = |s| filetime::FileTime::from_unix_time(s, 0);
    filetime::set_file_mtime(x.dir.join("plan.txt"), t(1_900_000_000)).unwrap();
    filetime::set_file_mtime(y.dir.join("plan.txt"), t(1_900_000_100)).unwrap();
    settle(&mut x, &mut y);
    assert_eq!(x.read("plan.txt").unwrap(), b"y's later edit");
    assert_eq!(y.read("plan.txt").unwrap(), b"y's later edit");
    // The losing edit is kept on the device that had it.
    let kept = ferry_testkit::files_below(&x.dir.join(".ferry/versions"))
        .into_iter()
        .any(|p| std::fs::read(&p).is_ok_and(|b| b == b"x's edit"));
    assert!(kept, "x's edit was not kept as a version");
}

#[test]
fn keep_both_leaves_one_conflict_copy_on_both_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair_with(
        tmp.path(),
        SyncMode::Bidirectional,
        ConflictPolicy::KeepBoth,
    );
    x.write("doc.txt", b"v1");
    settle(&mut x, &mut y);
    x.write("doc.txt", b"x wrote this");
    y.write("doc.txt", b"y wrote this later");
    let t = |s| filetime::FileTime::from_unix_time(s, 0);
    filetime::set_file_mtime(x.dir.join("doc.txt"), t(1_900_000_000)).unwrap();
    filetime::set_file_mtime(y.dir.join("doc.txt"), t(1_900_000_100)).unwrap();
    settle(&mut x, &mut y);
    let names = |d: &Device| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&d.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".ferry")
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&x), names(&y));
    assert_eq!(names(&x).len(), 2, "{:?}", names(&x));
    assert_eq!(x.read("doc.txt").unwrap(), b"y wrote this later");
    let copy = names(&x)
        .into_iter()
        .find(|n| n.contains("conflict"))
        .unwrap();
    assert_eq!(x.read(&copy).unwrap(), b"x wrote this");
    assert_eq!(y.read(&copy).unwrap(), b"x wrote this");
}

/// Serves X's content, and on its first read hands Y one more of X's changes, as a
/// pull running beside Y's run would.
struct ArrivingMeanwhile {
    inner: Arc<FolderContent>,
    deliver: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl ChunkSource for ArrivingMeanwhile {
    fn read(&self, piece: &Piece, buf: &mut Vec<u8>) -> ferry_core::Result<bool> {
        if let Some(deliver) = self.deliver.lock().unwrap().take() {
            deliver();
        }
        self.inner.read(piece, buf)
    }
}

#[test]
fn entries_arriving_during_a_run_are_planned_by_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair(tmp.path(), SyncMode::Bidirectional);
    x.write("first.txt", b"first");
    x.run("Y", y.content());
    send(&x, &mut y);
    // X changes again; its entries reach Y while Y's run copies first.txt.
    x.write("second.txt", b"second");
    x.run("Y", y.content());
    let later: Vec<_> = share::outgoing(&x.index, x.share(), 0, 100)
        .unwrap()
        .into_iter()
        .map(|e| (e.path, e.state))
        .collect();
    let (db, share) = (y.db.clone(), y.share().clone());
    let deliver = move || {
        let mut index = Index::open(&db).unwrap();
        share::incoming(&mut index, &share, "X", &later, 1_000).unwrap();
    };
    let source = Arc::new(ArrivingMeanwhile {
        inner: x.content(),
        deliver: std::sync::Mutex::new(Some(Box::new(deliver))),
    });
    let out = y.run("X", source);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(y.read("first.txt").unwrap(), b"first");
    // Nothing new arrives now; the next run still copies what came in meanwhile.
    y.run("X", x.content());
    assert_eq!(y.read("second.txt").unwrap(), b"second");
}

#[test]
fn a_declined_offer_stays_declined_and_can_still_be_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut y = Device::new(tmp.path(), "Y");
    let offer = ShareOffer {
        share_id: "S1".into(),
        device: "X".into(),
        folder_name: "photos".into(),
        folder_id: "x-folder".into(),
        mode: SyncMode::Bidirectional,
        conflict_policy: ConflictPolicy::Newest,
        received_at: 1,
    };
    y.index.record_offer(&offer).unwrap();
    assert_eq!(y.index.offers().unwrap().len(), 1);
    assert!(y.index.decline_offers("S1").unwrap());
    assert!(!y.index.decline_offers("S1").unwrap(), "declined already");
    assert!(!y.index.decline_offers("nope").unwrap());
    assert!(y.index.offers().unwrap().is_empty());
    // X sends its share list again (each connection does): still declined.
    y.index
        .record_offer(&ShareOffer {
            received_at: 2,
            ..offer.clone()
        })
        .unwrap();
    assert!(y.index.offers().unwrap().is_empty());
    assert_eq!(y.index.offers_of("S1").unwrap()[0].received_at, 2);
    // Declining is not final: accepting by ID still works.
    let dir = y.dir.clone();
    let row = share::accept_offer(&mut y.index, "S1", &dir).unwrap();
    assert_eq!(row.id, "S1");
    assert!(y.index.offers_of("S1").unwrap().is_empty());
}

#[test]
fn content_another_folder_here_holds_is_not_pulled_from_afar() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair(tmp.path(), SyncMode::Bidirectional);
    // Y already has the film in another folder it syncs locally (indexed there).
    let film = ferry_testkit::noise(3 << 20, 11);
    let (z, w) = (tmp.path().join("Y/videos"), tmp.path().join("Y/backup"));
    std::fs::create_dir_all(&z).unwrap();
    std::fs::create_dir_all(&w).unwrap();
    std::fs::write(z.join("film.mkv"), &film).unwrap();
    ferry_core::sync(&mut y.index, &z, &w, &SyncOptions::default(), &NoProgress).unwrap();
    // X shares the same film (and a file Y has nowhere).
    x.write("film-copy.mkv", &film);
    x.write("new.txt", b"only on x");
    x.run("Y", y.content());
    send(&x, &mut y);
    let far = Arc::new(Counting {
        inner: x.content(),
        bytes: AtomicU64::new(0),
        told: Default::default(),
        asked: Default::default(),
    });
    let out = y.run("X", far.clone());
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(y.read("film-copy.mkv").unwrap(), film);
    assert_eq!(y.read("new.txt").unwrap(), b"only on x");
    assert_eq!(
        far.bytes.load(Ordering::Relaxed),
        b"only on x".len() as u64,
        "the film came from afar although another folder here holds it"
    );
    // A copy elsewhere that changed since it was indexed is not used: the piece
    // checks would refuse it anyway, and the file comes from afar.
    let other = ferry_testkit::noise(1 << 20, 12);
    std::fs::write(z.join("clip.mkv"), &other).unwrap();
    ferry_core::sync(&mut y.index, &z, &w, &SyncOptions::default(), &NoProgress).unwrap();
    std::fs::write(z.join("clip.mkv"), ferry_testkit::noise(1 << 20, 13)).unwrap();
    x.write("clip.mkv", &other);
    x.run("Y", y.content());
    send(&x, &mut y);
    let out = y.run("X", far.clone());
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(y.read("clip.mkv").unwrap(), other);
}

/// A link to the other device that is cut after `limit` pieces: every later read
/// fails as a lost connection does. Counts the bytes it delivered.
struct Cut {
    inner: Arc<FolderContent>,
    limit: usize,
    served: std::sync::Mutex<usize>,
    bytes: Arc<AtomicU64>,
}

impl ChunkSource for Cut {
    fn read(&self, piece: &Piece, buf: &mut Vec<u8>) -> ferry_core::Result<bool> {
        let mut served = self.served.lock().unwrap();
        if *served >= self.limit {
            return Err(ferry_core::Error::Unavailable("the link was cut".into()));
        }
        let found = self.inner.read(piece, buf)?;
        if found {
            *served += 1;
            self.bytes
                .fetch_add(u64::from(piece.len), Ordering::Relaxed);
        }
        Ok(found)
    }
}

#[test]
fn a_large_copy_cut_many_times_resumes_and_resends_nothing_it_had() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair(tmp.path(), SyncMode::Bidirectional);
    let big = ferry_testkit::noise(12 << 20, 11);
    x.write("big.bin", &big);
    x.run("Y", y.content());
    send(&x, &mut y);
    let bytes = Arc::new(AtomicU64::new(0));
    let content = x.content();
    let mut cuts = 0;
    // Each run is a new connection (and a new executor: all it resumes from is on
    // disk), cut after 7 pieces (about half a MiB).
    while y.read("big.bin").is_none() {
        assert!(cuts < 1000, "never finished");
        let link = Arc::new(Cut {
            inner: content.clone(),
            limit: 7,
            served: Default::default(),
            bytes: bytes.clone(),
        });
        let out = y.run("X", link);
        if y.read("big.bin").is_none() {
            assert!(!out.problems.is_empty(), "a cut run said nothing");
            cuts += 1;
        }
    }
    assert_eq!(y.read("big.bin").unwrap(), big);
    assert!(cuts >= 20, "only {cuts} cuts: the test cut too little");
    let sent = bytes.load(Ordering::Relaxed);
    // At most one chunk again per cut (CHUNK_MAX: 256 KiB); here none is.
    let resent = sent - big.len() as u64;
    assert!(
        resent <= cuts * ferry_core::model::CHUNK_MAX as u64,
        "{resent} bytes sent again over {cuts} cuts"
    );
    assert_eq!(resent, 0, "{cuts} cuts");
    // Nothing of the partial copy is left behind, and nothing of it was indexed.
    let partial = y.dir.join(".ferry/partial");
    let left: Vec<_> = std::fs::read_dir(&partial).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    let names: Vec<_> = std::fs::read_dir(&y.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}"); // .ferry and big.bin
}

#[test]
fn a_partial_copy_whose_bytes_were_spoiled_is_started_over() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair(tmp.path(), SyncMode::Bidirectional);
    let big = ferry_testkit::noise(4 << 20, 12);
    x.write("big.bin", &big);
    x.run("Y", y.content());
    send(&x, &mut y);
    let bytes = Arc::new(AtomicU64::new(0));
    let cut = |limit| {
        Arc::new(Cut {
            inner: x.content(),
            limit,
            served: Default::default(),
            bytes: bytes.clone(),
        })
    };
    y.run("X", cut(20));
    assert!(y.read("big.bin").is_none());
    // Something spoils the bytes already in (the record still says they are).
    let partial = std::fs::read_dir(y.dir.join(".ferry/partial"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_none())
        .unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&partial)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"spoiled", 0).unwrap();
    drop(f);
    // The copy does not hash right: not installed, and the next attempt starts over.
    let out = y.run("X", cut(usize::MAX));
    assert!(!out.problems.is_empty());
    assert!(y.read("big.bin").is_none());
    let out = y.run("X", cut(usize::MAX));
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(y.read("big.bin").unwrap(), big);
}

/// Per-file progress as the engine reports it.
#[derive(Default)]
struct FileProgress(std::sync::Mutex<Vec<(String, u64, u64)>>);

impl ferry_core::Progress for FileProgress {
    fn file_progress(&self, path: &RelPath, done: u64, size: u64) {
        self.0.lock().unwrap().push((path.to_string(), done, size));
    }
}

#[test]
fn a_big_pulled_file_reports_its_progress_as_pieces_arrive() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair(tmp.path(), SyncMode::Bidirectional);
    // Big enough for the partial copy that survives cuts.
    let big = ferry_testkit::noise(6 << 20, 21);
    x.write("big.bin", &big);
    x.run("Y", y.content());
    send(&x, &mut y);
    let conduit = y.conduit("X");
    let opts = SyncOptions {
        pull: Some(PullSource(x.content())),
        ..Default::default()
    };
    let progress = FileProgress::default();
    let out = sync_conduit(&mut y.index, conduit, &opts, &progress).unwrap();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(y.read("big.bin").unwrap(), big);
    let seen = progress.0.lock().unwrap();
    let steps: Vec<u64> = seen
        .iter()
        .filter(|(p, ..)| p == "big.bin")
        .map(|(_, d, _)| *d)
        .collect();
    assert!(steps.len() > 2, "{steps:?}");
    assert_eq!(steps.first(), Some(&0));
    assert_eq!(steps.last(), Some(&(big.len() as u64)), "{steps:?}");
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
}

/// The partial copies in `dir`'s `.ferry/partial` (names, sorted).
fn partials(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join(".ferry/partial"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_partial_copy_no_longer_wanted_is_swept_after_the_grace_period() {
    use ferry_core::replica::{sweep_partials, PARTIAL_GRACE};
    use std::time::{Duration, SystemTime};
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair(tmp.path(), SyncMode::Bidirectional);
    let big = ferry_testkit::noise(4 << 20, 31);
    x.write("big.bin", &big);
    x.run("Y", y.content());
    send(&x, &mut y);
    let cut = Arc::new(Cut {
        inner: x.content(),
        limit: 20,
        served: Default::default(),
        bytes: Default::default(),
    });
    y.run("X", cut);
    assert!(y.read("big.bin").is_none());
    let old = Hash::of(&big).to_hex();
    assert_eq!(partials(&y.dir), vec![old.clone(), format!("{old}.have")]);
    let mut index = Index::open(&y.db).unwrap();
    let loc = open_location(&mut index, &y.dir, false).unwrap();
    let later = SystemTime::now() + PARTIAL_GRACE + Duration::from_secs(1);
    let sweep = |index: &Index| {
        sweep_partials(&loc, PARTIAL_GRACE, later, &mut |h| {
            index.content_wanted(loc.id(), h)
        })
        .unwrap()
    };
    // Still wanted (X has that content): kept, however old.
    assert!(sweep(&index).is_empty());
    assert_eq!(partials(&y.dir).len(), 2);
    // X replaces the file; Y learns it and copies the new content. The old partial
    // copy is not wanted any more, but the run (its sweep) keeps it within the grace.
    let new = ferry_testkit::noise(2 << 20, 32);
    x.write("big.bin", &new);
    x.run("Y", y.content());
    send(&x, &mut y);
    let out = y.run("X", x.content());
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(y.read("big.bin").unwrap(), new);
    assert_eq!(partials(&y.dir), vec![old.clone(), format!("{old}.have")]);
    // Past the grace period it goes, record and all.
    let gone = sweep(&index);
    assert_eq!(
        gone.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
        vec![old]
    );
    assert!(partials(&y.dir).is_empty());
}

/// A large index crosses in bounded batches (as `serve_index` sends it, a batch of
/// `BATCH` entries a message) and a cut resumes where the last stored batch ended:
/// each batch moves the member's `received_seq`, so nothing stored is sent again.
#[test]
fn a_large_index_crosses_in_batches_and_a_cut_resumes_after_the_last_stored_batch() {
    const FILES: usize = 2_500;
    const BATCH: usize = 300;
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair(tmp.path(), SyncMode::Bidirectional);
    for i in 0..FILES {
        x.write(&format!("d{}/f{i}", i % 25), format!("file {i}").as_bytes());
    }
    let cy = y.content();
    x.run("Y", cy);
    // One batch at a time; returns the entries the batch carried (0: nothing left).
    let batch = |x: &Device, y: &mut Device| -> usize {
        let member = (y.index.share_member(&y.share().id, "X").unwrap()).unwrap();
        let entries = share::outgoing(&x.index, x.share(), member.received_seq, BATCH).unwrap();
        assert!(entries.len() <= BATCH);
        let upto = entries.iter().map(|e| e.cache.sequence).max().unwrap_or(0);
        let n = entries.len();
        let pairs: Vec<_> = entries.into_iter().map(|e| (e.path, e.state)).collect();
        let share = y.share().clone();
        if n > 0 {
            share::incoming(&mut y.index, &share, "X", &pairs, upto).unwrap();
        }
        n
    };
    let mut sent = 0;
    for _ in 0..3 {
        sent += batch(&x, &mut y);
    }
    // The link is cut here: Y's index is reopened, as after a restart.
    let db = y.db.clone();
    y.index = Index::open(&db).unwrap();
    let mut finished = false;
    for _ in 0..FILES {
        let n = batch(&x, &mut y);
        if n == 0 {
            finished = true;
            break;
        }
        sent += n;
    }
    assert!(finished, "the exchange never ended");
    // Every entry once (files and their 25 folders), none twice.
    assert_eq!(sent, FILES + 25);
    let cx = x.content();
    let out = y.run("X", cx);
    assert_eq!(out.stats.errors, 0, "{:?}", out.problems);
    for i in (0..FILES).step_by(97) {
        let rel = format!("d{}/f{i}", i % 25);
        assert_eq!(
            y.read(&rel),
            Some(format!("file {i}").into_bytes()),
            "{rel}"
        );
    }
}

/// A large run of a shared folder is planned and applied a batch of paths at a time
/// by the device's writer, with the content pulled from the other device.
#[test]
fn a_share_run_in_batches_brings_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut x, mut y) = pair(tmp.path(), SyncMode::Bidirectional);
    for i in 0..40 {
        x.write(&format!("d{}/f{i}", i % 5), format!("file {i}").as_bytes());
    }
    x.run("Y", y.content());
    assert_eq!(send(&x, &mut y), 45);
    let opts = SyncOptions {
        pull: Some(PullSource(x.content())),
        batch_paths: Some(4),
        ..Default::default()
    };
    let conduit = y.conduit("X");
    let out = sync_conduit(&mut y.index, conduit, &opts, &NoProgress).unwrap();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(out.planned.copy, 40);
    for i in 0..40 {
        let got = y.read(&format!("d{}/f{i}", i % 5)).unwrap();
        assert_eq!(got, format!("file {i}").as_bytes());
    }
}
