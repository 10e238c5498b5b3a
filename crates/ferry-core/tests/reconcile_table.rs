//! Truth-table tests of the pure reconciler (`ferry_core::plan::reconcile`), through the crate's
//! public API only.
//!
//! - `truth_table`: one row per situation (absent, same content, one side newer,
//!   deletions, modify-vs-delete, concurrent edits under every conflict policy, type
//!   changes, directory rules, renames, mode and symlink changes, mirror), each with the
//!   exact multiset of actions and the conflict records expected, for the modes and
//!   policies the row names.
//! - named tests for what reads better on its own (conflict names, tie-breaks, the
//!   unsupported modes).
//! - property tests over random small, well-formed trees on both sides: no panic, every
//!   action's `expected` matches what that side holds at that point of the plan, mirror
//!   never touches side A's disk, and (except for manual conflicts) applying the plan
//!   leaves both sides with the same content, the same vectors and well-formed trees.

use ferry_core::model::Hash;
use ferry_core::model::RelPath;
use ferry_core::model::VersionVector;
use ferry_core::model::{Entry, EntryKind, Presence, StatInfo};
use ferry_core::plan::{reconcile, ReconcileInput};
use ferry_core::plan::{Action, ConflictPolicy, Plan, Side, SyncMode};
use proptest::prelude::*;
use std::collections::BTreeMap;

use ConflictPolicy::{KeepBoth, Manual, Newest, Source, Target};
use Side::{A, B};
use SyncMode::{Bidirectional, Mirror, Selective};

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// Replica IDs of side A's and side B's locations inside version vectors.
const RA: u64 = 1;
const RB: u64 = 2;

/// 2023-11-14 22:13:20 UTC, the `now` every test passes to the reconciler.
const NOW: i64 = 1_700_000_000;
const STAMP: &str = "20231114-221320";

const SEC: i64 = 1_000_000_000;

const ALL_POLICIES: &[ConflictPolicy] = &[Newest, KeepBoth, Source, Target, Manual];
const BIDI: &[SyncMode] = &[Bidirectional];
const MIRROR: &[SyncMode] = &[Mirror];
const BOTH_MODES: &[SyncMode] = &[Bidirectional, Mirror];
const SELECTIVE: &[SyncMode] = &[Selective];
const SELECTIVE_OR_BIDI: &[SyncMode] = &[Bidirectional, Selective];
const ALL_MODES_BUT_MIRROR: &[SyncMode] = &[Bidirectional, Selective];
const ALL_MODES: &[SyncMode] = &[Bidirectional, Mirror, Selective];

type Vv<'a> = &'a [(u64, u64)];

fn p(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

fn vv(pairs: Vv) -> VersionVector {
    let mut v = VersionVector::new();
    for &(id, c) in pairs {
        v.set(id, c);
    }
    v
}

fn stat(size: u64, mode: u32) -> StatInfo {
    StatInfo {
        size,
        mtime_ns: 1000 * SEC,
        ctime_ns: 1000 * SEC,
        inode: 7,
        mode,
    }
}

/// A regular file, mode 0644, mtime 1000 s.
fn file(path: &str, content: &str, v: Vv) -> Entry {
    {
        let mut e = Entry::at(p(path), EntryKind::File, stat(content.len() as u64, 0o644));
        e.state.hash = Some(Hash::of(content.as_bytes()));
        e.state.version = vv(v);
        e.cache.sequence = 1;
        e
    }
}

/// A directory, mode 0755.
fn dir(path: &str, v: Vv) -> Entry {
    {
        let mut e = Entry::at(p(path), EntryKind::Dir, stat(0, 0o755));
        e.state.version = vv(v);
        e.cache.sequence = 1;
        e
    }
}

/// A symbolic link to `target` (its content hash is the hash of the target).
fn link(path: &str, target: &str, v: Vv) -> Entry {
    {
        let mut e = Entry::at(
            p(path),
            EntryKind::Symlink,
            stat(target.len() as u64, 0o777),
        );
        e.state.hash = Some(Hash::of(target.as_bytes()));
        e.state.link_target = Some(target.to_string());
        e.state.version = vv(v);
        e.cache.sequence = 1;
        e
    }
}

/// `e` dehydrated (files on demand): the path exists, its content is elsewhere.
fn dehydrated(mut e: Entry) -> Entry {
    e.state.presence = Presence::Dehydrated;
    e
}

/// The tombstone a scan leaves when `e` disappears: same row, deleted, with vector `v`.
fn tomb(e: &Entry, v: Vv) -> Entry {
    e.tombstone(&vv(v))
}

/// Builder-style tweaks of fixture entries.
trait EntryExt {
    fn mode(self, mode: u32) -> Entry;
    fn mtime(self, secs: i64) -> Entry;
    fn at(self, path: &str) -> Entry;
}

impl EntryExt for Entry {
    fn mode(mut self, mode: u32) -> Entry {
        self.state.mode = mode;
        self
    }
    fn mtime(mut self, secs: i64) -> Entry {
        self.state.mtime_ns = secs * SEC;
        self
    }
    fn at(mut self, path: &str) -> Entry {
        self.path = p(path);
        self
    }
}

/// `name.conflict-<STAMP>-<side>.ext` as the reconciler must name a loser kept aside.
fn aside_name(stem: &str, side: &str, ext: &str) -> String {
    format!("{stem}.conflict-{STAMP}-{side}{ext}")
}

// Expected actions -----------------------------------------------------------------------

fn copy(to: Side, source: &Entry, expected: Option<&Entry>, v: Vv) -> Action {
    Action::Copy {
        to,
        path: source.path.clone(),
        source: Box::new(source.clone()),
        expected: expected.cloned().map(Box::new),
        version: vv(v),
    }
}

fn delete(side: Side, expected: &Entry, v: Vv) -> Action {
    Action::Delete {
        side,
        path: expected.path.clone(),
        expected: Box::new(expected.clone()),
        version: vv(v),
    }
}

fn mkdir(side: Side, source: &Entry, expected: Option<&Entry>, v: Vv) -> Action {
    Action::Mkdir {
        side,
        path: source.path.clone(),
        source: Box::new(source.clone()),
        expected: expected.cloned().map(Box::new),
        version: vv(v),
    }
}

fn record(side: Side, e: &Entry, v: Vv) -> Action {
    Action::Record {
        side,
        entry: Box::new(e.with_version(&vv(v))),
    }
}

fn move_aside(side: Side, expected: &Entry, to: &str) -> Action {
    Action::MoveAside {
        side,
        path: expected.path.clone(),
        to: p(to),
        expected: Box::new(expected.clone()),
    }
}

fn rename(side: Side, expected: &Entry, from_v: Vv, source: &Entry, v: Vv) -> Action {
    Action::Rename {
        side,
        from: expected.path.clone(),
        expected: Box::new(expected.clone()),
        from_version: vv(from_v),
        to: source.path.clone(),
        source: Box::new(source.clone()),
        version: vv(v),
    }
}

/// Expected conflict record, minus the inputs and the policy (checked generically).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Conflict {
    path: String,
    winner: Option<Side>,
    kept_at: Option<String>,
}

fn conflict(path: &str, winner: Option<Side>, kept_at: Option<&str>) -> Conflict {
    Conflict {
        path: path.to_string(),
        winner,
        kept_at: kept_at.map(str::to_string),
    }
}

// Running and checking --------------------------------------------------------------------

/// One entry as a one-side input.
fn one(e: &Entry) -> &[Entry] {
    std::slice::from_ref(e)
}

fn run(mode: SyncMode, policy: ConflictPolicy, a: &[Entry], b: &[Entry]) -> Plan {
    reconcile(ReconcileInput {
        a,
        b,
        mode,
        policy,
        now: NOW,
        occupied: &|_| false,
    })
    .unwrap_or_else(|e| panic!("reconcile failed ({mode:?}, {policy:?}): {e}"))
}

/// Compares two action lists as multisets: the executor runs plans in phases by action
/// kind, so the order inside a plan carries no meaning the tests should pin down.
fn assert_same_actions(context: &str, got: &[Action], want: &[Action]) {
    let mut missing: Vec<&Action> = Vec::new();
    let mut left: Vec<&Action> = got.iter().collect();
    for w in want {
        match left.iter().position(|g| *g == w) {
            Some(i) => {
                left.remove(i);
            }
            None => missing.push(w),
        }
    }
    assert!(
        missing.is_empty() && left.is_empty(),
        "{context}: actions differ\n  missing (expected, not produced): {missing:#?}\n  \
         unexpected (produced, not expected): {left:#?}\n  whole plan: {got:#?}"
    );
}

/// Checks the conflict records: paths, winners, where the loser stays, the policy and
/// that each record carries the inputs at its path.
fn assert_conflicts(
    context: &str,
    plan: &Plan,
    policy: ConflictPolicy,
    a: &[Entry],
    b: &[Entry],
    want: &[Conflict],
) {
    let mut got: Vec<Conflict> = plan
        .conflicts
        .iter()
        .map(|c| Conflict {
            path: c.path.as_str().to_string(),
            winner: c.winner,
            kept_at: c.loser_kept_at.clone(),
        })
        .collect();
    let mut want = want.to_vec();
    got.sort_by(|x, y| x.path.cmp(&y.path));
    want.sort_by(|x, y| x.path.cmp(&y.path));
    assert_eq!(got, want, "{context}: conflict records");
    for c in &plan.conflicts {
        // Held because it would need a dehydrated entry's content: left to the user.
        let held = c.winner.is_none() && c.a.iter().chain(&c.b).any(is_dehydrated);
        let want_policy = if held { Manual } else { policy };
        assert_eq!(c.policy, want_policy, "{context}: policy of {:?}", c.path);
        let at = |side: &[Entry]| side.iter().find(|e| e.path == c.path).cloned();
        assert_eq!(
            c.a,
            at(a),
            "{context}: record's side-A entry at {:?}",
            c.path
        );
        assert_eq!(
            c.b,
            at(b),
            "{context}: record's side-B entry at {:?}",
            c.path
        );
    }
}

// ---------------------------------------------------------------------------------------
// The truth table
// ---------------------------------------------------------------------------------------

struct Case {
    name: &'static str,
    modes: &'static [SyncMode],
    policies: &'static [ConflictPolicy],
    a: Vec<Entry>,
    b: Vec<Entry>,
    actions: Vec<Action>,
    conflicts: Vec<Conflict>,
}

impl Case {
    fn new(
        name: &'static str,
        modes: &'static [SyncMode],
        policies: &'static [ConflictPolicy],
    ) -> Case {
        Case {
            name,
            modes,
            policies,
            a: Vec::new(),
            b: Vec::new(),
            actions: Vec::new(),
            conflicts: Vec::new(),
        }
    }
    fn a(mut self, entries: &[&Entry]) -> Case {
        self.a = entries.iter().map(|e| (*e).clone()).collect();
        self
    }
    fn b(mut self, entries: &[&Entry]) -> Case {
        self.b = entries.iter().map(|e| (*e).clone()).collect();
        self
    }
    fn expect(mut self, actions: Vec<Action>) -> Case {
        self.actions = actions;
        self
    }
    fn conflicts(mut self, conflicts: Vec<Conflict>) -> Case {
        self.conflicts = conflicts;
        self
    }
}

fn table() -> Vec<Case> {
    let mut t = Vec::new();

    // --- nothing, or nothing to move ---------------------------------------------------
    t.push(Case::new("absent on both sides", BOTH_MODES, ALL_POLICIES));

    let f = file("f.txt", "x", &[(RA, 1)]);
    let fa_gone = tomb(&f, &[(RA, 2)]);
    t.push(Case::new("deleted on A, never known to B", BOTH_MODES, ALL_POLICIES).a(&[&fa_gone]));

    let fa_gone = tomb(&f, &[(RA, 2)]);
    let fb_gone = tomb(&f, &[(RA, 1), (RB, 1)]);
    t.push(
        Case::new("deleted on both, vectors differ", BOTH_MODES, ALL_POLICIES)
            .a(&[&fa_gone])
            .b(&[&fb_gone])
            .expect(vec![
                record(A, &fa_gone, &[(RA, 2), (RB, 1)]),
                record(B, &fb_gone, &[(RA, 2), (RB, 1)]),
            ]),
    );

    let fa = file("f.txt", "same", &[(RA, 1)]);
    let fb = file("f.txt", "same", &[(RA, 1)]).mtime(5000);
    t.push(
        Case::new(
            "same content, equal vectors, other mtime",
            BOTH_MODES,
            ALL_POLICIES,
        )
        .a(&[&fa])
        .b(&[&fb]),
    );

    // --- same content, different history: vectors merge, nothing is copied ------------
    let fa = file("f.txt", "same", &[(RA, 2)]);
    let fb = file("f.txt", "same", &[(RA, 1)]);
    t.push(
        Case::new("same content, A's vector newer", BOTH_MODES, ALL_POLICIES)
            .a(&[&fa])
            .b(&[&fb])
            .expect(vec![record(B, &fb, &[(RA, 2)])]),
    );

    let fa = file("f.txt", "same", &[(RA, 1)]);
    let fb = file("f.txt", "same", &[(RA, 1), (RB, 1)]);
    t.push(
        Case::new("same content, B's vector newer", BOTH_MODES, ALL_POLICIES)
            .a(&[&fa])
            .b(&[&fb])
            .expect(vec![record(A, &fa, &[(RA, 1), (RB, 1)])]),
    );

    let fa = file("f.txt", "same", &[(RA, 2)]).mtime(2000);
    let fb = file("f.txt", "same", &[(RA, 1), (RB, 1)]).mtime(3000);
    t.push(
        Case::new("same content, concurrent vectors", BOTH_MODES, ALL_POLICIES)
            .a(&[&fa])
            .b(&[&fb])
            .expect(vec![
                record(A, &fa, &[(RA, 2), (RB, 1)]),
                record(B, &fb, &[(RA, 2), (RB, 1)]),
            ]),
    );

    let la = link("l", "target", &[(RA, 2)]);
    let lb = link("l", "target", &[(RB, 1)]);
    t.push(
        Case::new("same symlink, concurrent vectors", BOTH_MODES, ALL_POLICIES)
            .a(&[&la])
            .b(&[&lb])
            .expect(vec![
                record(A, &la, &[(RA, 2), (RB, 1)]),
                record(B, &lb, &[(RA, 2), (RB, 1)]),
            ]),
    );

    let da = dir("d", &[(RA, 1)]);
    let db = dir("d", &[(RB, 1)]);
    t.push(
        Case::new("same dir, created on both", BOTH_MODES, ALL_POLICIES)
            .a(&[&da])
            .b(&[&db])
            .expect(vec![
                record(A, &da, &[(RA, 1), (RB, 1)]),
                record(B, &db, &[(RA, 1), (RB, 1)]),
            ]),
    );

    // --- one side newer -----------------------------------------------------------------
    let fa = file("f.txt", "new", &[(RA, 2)]);
    let fb = file("f.txt", "old", &[(RA, 1)]);
    t.push(
        Case::new("A newer", BOTH_MODES, ALL_POLICIES)
            .a(&[&fa])
            .b(&[&fb])
            .expect(vec![copy(B, &fa, Some(&fb), &[(RA, 2)])]),
    );

    let fa = file("f.txt", "old", &[(RA, 1)]);
    let fb = file("f.txt", "new", &[(RA, 1), (RB, 1)]);
    t.push(
        Case::new("B newer", BIDI, ALL_POLICIES)
            .a(&[&fa])
            .b(&[&fb])
            .expect(vec![copy(A, &fb, Some(&fa), &[(RA, 1), (RB, 1)])]),
    );
    t.push(
        Case::new("B newer: mirror overwrites B's edit", MIRROR, ALL_POLICIES)
            .a(&[&fa])
            .b(&[&fb])
            .expect(vec![
                record(A, &fa, &[(RA, 1), (RB, 1)]),
                copy(B, &fa, Some(&fb), &[(RA, 1), (RB, 1)]),
            ]),
    );

    let fa = file("new.txt", "n", &[(RA, 1)]);
    t.push(
        Case::new("created on A only", BOTH_MODES, ALL_POLICIES)
            .a(&[&fa])
            .expect(vec![copy(B, &fa, None, &[(RA, 1)])]),
    );

    let fb = file("new.txt", "n", &[(RB, 1)]);
    t.push(
        Case::new("created on B only", BIDI, ALL_POLICIES)
            .b(&[&fb])
            .expect(vec![copy(A, &fb, None, &[(RB, 1)])]),
    );
    t.push(
        Case::new("created on B only: mirror deletes it", MIRROR, ALL_POLICIES)
            .b(&[&fb])
            .expect(vec![delete(B, &fb, &[(RB, 1)])]),
    );

    let fb = file("old.txt", "o", &[(RA, 1)]);
    let fa_gone = tomb(&fb, &[(RA, 2)]);
    t.push(
        Case::new("A deleted, A newer", BOTH_MODES, ALL_POLICIES)
            .a(&[&fa_gone])
            .b(&[&fb])
            .expect(vec![delete(B, &fb, &[(RA, 2)])]),
    );

    let fa = file("old.txt", "o", &[(RA, 1)]);
    let fb_gone = tomb(&fa, &[(RA, 1), (RB, 1)]);
    t.push(
        Case::new("B deleted, B newer", BIDI, ALL_POLICIES)
            .a(&[&fa])
            .b(&[&fb_gone])
            .expect(vec![delete(A, &fa, &[(RA, 1), (RB, 1)])]),
    );
    t.push(
        Case::new("B deleted, B newer: mirror restores", MIRROR, ALL_POLICIES)
            .a(&[&fa])
            .b(&[&fb_gone])
            .expect(vec![
                record(A, &fa, &[(RA, 1), (RB, 1)]),
                copy(B, &fa, None, &[(RA, 1), (RB, 1)]),
            ]),
    );

    // --- a modification beats a concurrent deletion, whatever the policy ---------------
    let base = file("f.txt", "base", &[(RA, 1)]);
    let fa = file("f.txt", "edited", &[(RA, 2)]);
    let fb_gone = tomb(&base, &[(RA, 1), (RB, 1)]);
    t.push(
        Case::new(
            "A modified, B deleted, concurrent",
            BOTH_MODES,
            ALL_POLICIES,
        )
        .a(&[&fa])
        .b(&[&fb_gone])
        .expect(vec![
            record(A, &fa, &[(RA, 2), (RB, 1)]),
            copy(B, &fa, None, &[(RA, 2), (RB, 1)]),
        ]),
    );

    let fa_gone = tomb(&base, &[(RA, 2)]);
    let fb = file("f.txt", "edited", &[(RA, 1), (RB, 1)]);
    t.push(
        Case::new("A deleted, B modified, concurrent", BIDI, ALL_POLICIES)
            .a(&[&fa_gone])
            .b(&[&fb])
            .expect(vec![
                record(B, &fb, &[(RA, 2), (RB, 1)]),
                copy(A, &fb, None, &[(RA, 2), (RB, 1)]),
            ]),
    );
    t.push(
        Case::new(
            "A deleted, B modified: mirror deletes on B",
            MIRROR,
            ALL_POLICIES,
        )
        .a(&[&fa_gone])
        .b(&[&fb])
        .expect(vec![
            record(A, &fa_gone, &[(RA, 2), (RB, 1)]),
            delete(B, &fb, &[(RA, 2), (RB, 1)]),
        ]),
    );

    // --- concurrent edits: the conflict policy decides ---------------------------------
    const M: Vv = &[(RA, 2), (RB, 1)];
    let a_late = file("doc.txt", "alpha", &[(RA, 2)]).mtime(2000);
    let b_early = file("doc.txt", "beta", &[(RA, 1), (RB, 1)]).mtime(1000);
    let a_early = a_late.clone().mtime(1000);
    let b_late = b_early.clone().mtime(2000);

    t.push(
        Case::new("concurrent edits, newest: A later", BIDI, &[Newest])
            .a(&[&a_late])
            .b(&[&b_early])
            .expect(vec![
                record(A, &a_late, M),
                copy(B, &a_late, Some(&b_early), M),
            ])
            .conflicts(vec![conflict(
                "doc.txt",
                Some(A),
                Some("version store of side b"),
            )]),
    );
    t.push(
        Case::new("concurrent edits, newest: B later", BIDI, &[Newest])
            .a(&[&a_early])
            .b(&[&b_late])
            .expect(vec![
                record(B, &b_late, M),
                copy(A, &b_late, Some(&a_early), M),
            ])
            .conflicts(vec![conflict(
                "doc.txt",
                Some(B),
                Some("version store of side a"),
            )]),
    );

    let aside_b = aside_name("doc", "b", ".txt");
    t.push(
        Case::new("concurrent edits, keep-both: A later", BIDI, &[KeepBoth])
            .a(&[&a_late])
            .b(&[&b_early])
            .expect(vec![
                move_aside(B, &b_early, &aside_b),
                copy(A, &b_early.clone().at(&aside_b), None, &[(RA, 1), (RB, 1)]),
                record(A, &a_late, M),
                copy(B, &a_late, None, M),
            ])
            .conflicts(vec![conflict("doc.txt", Some(A), Some(&aside_b))]),
    );
    let aside_a = aside_name("doc", "a", ".txt");
    t.push(
        Case::new("concurrent edits, keep-both: B later", BIDI, &[KeepBoth])
            .a(&[&a_early])
            .b(&[&b_late])
            .expect(vec![
                move_aside(A, &a_early, &aside_a),
                copy(B, &a_early.clone().at(&aside_a), None, &[(RA, 2)]),
                record(B, &b_late, M),
                copy(A, &b_late, None, M),
            ])
            .conflicts(vec![conflict("doc.txt", Some(B), Some(&aside_a))]),
    );

    t.push(
        Case::new(
            "concurrent edits, source wins though older",
            BIDI,
            &[Source],
        )
        .a(&[&a_early])
        .b(&[&b_late])
        .expect(vec![
            record(A, &a_early, M),
            copy(B, &a_early, Some(&b_late), M),
        ])
        .conflicts(vec![conflict(
            "doc.txt",
            Some(A),
            Some("version store of side b"),
        )]),
    );
    t.push(
        Case::new(
            "concurrent edits, target wins though older",
            BIDI,
            &[Target],
        )
        .a(&[&a_late])
        .b(&[&b_early])
        .expect(vec![
            record(B, &b_early, M),
            copy(A, &b_early, Some(&a_late), M),
        ])
        .conflicts(vec![conflict(
            "doc.txt",
            Some(B),
            Some("version store of side a"),
        )]),
    );
    t.push(
        Case::new("concurrent edits, manual: nothing moves", BIDI, &[Manual])
            .a(&[&a_late])
            .b(&[&b_early])
            .conflicts(vec![conflict("doc.txt", None, None)]),
    );
    t.push(
        Case::new(
            "concurrent edits, mirror ignores the policy",
            MIRROR,
            ALL_POLICIES,
        )
        .a(&[&a_early])
        .b(&[&b_late])
        .expect(vec![
            record(A, &a_early, M),
            copy(B, &a_early, Some(&b_late), M),
        ]),
    );

    // Equal vectors but different content (e.g. an index rebuilt on one side) is a
    // conflict too, not a silent overwrite.
    let a_eq = file("doc.txt", "alpha", &[(RA, 1)]).mtime(2000);
    let b_eq = file("doc.txt", "beta", &[(RA, 1)]).mtime(1000);
    t.push(
        Case::new("equal vectors, different content, newest", BIDI, &[Newest])
            .a(&[&a_eq])
            .b(&[&b_eq])
            .expect(vec![copy(B, &a_eq, Some(&b_eq), &[(RA, 1)])])
            .conflicts(vec![conflict(
                "doc.txt",
                Some(A),
                Some("version store of side b"),
            )]),
    );

    // Concurrent symlink vs file: keep-both keeps the losing symlink aside too.
    let la = link("lnk", "somewhere", &[(RA, 2)]).mtime(1000);
    let fb = file("lnk", "bytes", &[(RA, 1), (RB, 1)]).mtime(2000);
    let aside_l = aside_name("lnk", "a", "");
    t.push(
        Case::new("concurrent symlink vs file, keep-both", BIDI, &[KeepBoth])
            .a(&[&la])
            .b(&[&fb])
            .expect(vec![
                move_aside(A, &la, &aside_l),
                copy(B, &la.clone().at(&aside_l), None, &[(RA, 2)]),
                record(B, &fb, M),
                copy(A, &fb, None, M),
            ])
            .conflicts(vec![conflict("lnk", Some(B), Some(&aside_l))]),
    );

    // Concurrent file vs empty dir: a losing directory is not kept aside (it is empty).
    let fa = file("x", "bytes", &[(RA, 2)]).mtime(2000);
    let db = dir("x", &[(RA, 1), (RB, 1)]).mtime(1000);
    t.push(
        Case::new(
            "concurrent file vs empty dir, file wins",
            BIDI,
            &[Newest, KeepBoth],
        )
        .a(&[&fa])
        .b(&[&db])
        .expect(vec![
            record(A, &fa, M),
            delete(B, &db, M),
            copy(B, &fa, None, M),
        ])
        .conflicts(vec![conflict("x", Some(A), None)]),
    );

    // Concurrent permission changes on a directory: only the mode is at stake, and no
    // conflict is recorded (there is no content to lose).
    let da = dir("d", &[(RA, 2)]).mode(0o700).mtime(2000);
    let db = dir("d", &[(RA, 1), (RB, 1)]).mode(0o750).mtime(1000);
    t.push(
        Case::new(
            "concurrent dir mode changes, newest",
            BIDI,
            &[Newest, KeepBoth],
        )
        .a(&[&da])
        .b(&[&db])
        .expect(vec![record(A, &da, M), mkdir(B, &da, Some(&db), M)]),
    );

    // --- metadata-only changes ----------------------------------------------------------
    let fa = file("run.sh", "#!/bin/sh", &[(RA, 2)]).mode(0o755);
    let fb = file("run.sh", "#!/bin/sh", &[(RA, 1)]);
    t.push(
        Case::new("mode-only change on A", BOTH_MODES, ALL_POLICIES)
            .a(&[&fa])
            .b(&[&fb])
            .expect(vec![copy(B, &fa, Some(&fb), &[(RA, 2)])]),
    );

    let fa = file("run.sh", "#!/bin/sh", &[(RA, 1)]);
    let fb = file("run.sh", "#!/bin/sh", &[(RA, 1), (RB, 1)]).mode(0o700);
    t.push(
        Case::new("mode-only change on B", BIDI, ALL_POLICIES)
            .a(&[&fa])
            .b(&[&fb])
            .expect(vec![copy(A, &fb, Some(&fa), &[(RA, 1), (RB, 1)])]),
    );

    let da = dir("d", &[(RA, 2)]).mode(0o700);
    let db = dir("d", &[(RA, 1)]);
    t.push(
        Case::new("dir mode-only change on A", BOTH_MODES, ALL_POLICIES)
            .a(&[&da])
            .b(&[&db])
            .expect(vec![mkdir(B, &da, Some(&db), &[(RA, 2)])]),
    );

    let la = link("l", "new-target", &[(RA, 2)]);
    let lb = link("l", "old-target", &[(RA, 1)]);
    t.push(
        Case::new("symlink target changed on A", BOTH_MODES, ALL_POLICIES)
            .a(&[&la])
            .b(&[&lb])
            .expect(vec![copy(B, &la, Some(&lb), &[(RA, 2)])]),
    );

    let la = link("l", "old-target", &[(RA, 1)]);
    let lb = link("l", "new-target", &[(RA, 1), (RB, 1)]);
    t.push(
        Case::new("symlink target changed on B", BIDI, ALL_POLICIES)
            .a(&[&la])
            .b(&[&lb])
            .expect(vec![copy(A, &lb, Some(&la), &[(RA, 1), (RB, 1)])]),
    );

    let la = link("x", "t", &[(RA, 2)]);
    let fb = file("x", "bytes", &[(RA, 1)]);
    t.push(
        Case::new("file replaced by symlink on A", BOTH_MODES, ALL_POLICIES)
            .a(&[&la])
            .b(&[&fb])
            .expect(vec![copy(B, &la, Some(&fb), &[(RA, 2)])]),
    );

    // --- file <-> directory ---------------------------------------------------------------
    let da = dir("d", &[(RA, 2)]);
    let fb = file("d", "was a file", &[(RA, 1)]);
    t.push(
        Case::new("file replaced by empty dir on A", BOTH_MODES, ALL_POLICIES)
            .a(&[&da])
            .b(&[&fb])
            .expect(vec![
                delete(B, &fb, &[(RA, 2)]),
                mkdir(B, &da, None, &[(RA, 2)]),
            ]),
    );

    let da = dir("d", &[(RA, 2)]);
    let dxa = file("d/x", "child", &[(RA, 2)]);
    let fb = file("d", "was a file", &[(RA, 1)]);
    t.push(
        Case::new(
            "file replaced by dir with a child on A",
            BOTH_MODES,
            ALL_POLICIES,
        )
        .a(&[&da, &dxa])
        .b(&[&fb])
        .expect(vec![
            delete(B, &fb, &[(RA, 2)]),
            mkdir(B, &da, None, &[(RA, 2)]),
            copy(B, &dxa, None, &[(RA, 2)]),
        ]),
    );

    let fa = file("d", "now a file", &[(RA, 2)]);
    let db = dir("d", &[(RA, 1)]);
    let dxb = file("d/x", "old child", &[(RA, 1)]);
    let dxa_gone = tomb(&dxb, &[(RA, 2)]);
    t.push(
        Case::new(
            "dir replaced by file on A, B unchanged",
            BOTH_MODES,
            ALL_POLICIES,
        )
        .a(&[&fa, &dxa_gone])
        .b(&[&db, &dxb])
        .expect(vec![
            delete(B, &dxb, &[(RA, 2)]),
            delete(B, &db, &[(RA, 2)]),
            copy(B, &fa, None, &[(RA, 2)]),
        ]),
    );

    // A replaced the dir with a file; B meanwhile added a child: the child survives, so
    // the dir survives on both sides and A's file is moved aside (and shared).
    let newb = file("d/new", "added on B", &[(RB, 1)]);
    let aside_d = aside_name("d", "a", "");
    t.push(
        Case::new(
            "dir replaced by file on A, B added a child",
            BIDI,
            ALL_POLICIES,
        )
        .a(&[&fa, &dxa_gone])
        .b(&[&db, &dxb, &newb])
        .expect(vec![
            delete(B, &dxb, &[(RA, 2)]),
            copy(A, &newb, None, &[(RB, 1)]),
            move_aside(A, &fa, &aside_d),
            copy(B, &fa.clone().at(&aside_d), None, &[(RA, 2)]),
            mkdir(A, &db, None, &[(RA, 2)]),
            record(B, &db, &[(RA, 2)]),
        ])
        .conflicts(vec![conflict("d", Some(B), Some(&aside_d))]),
    );
    t.push(
        Case::new(
            "dir replaced by file on A, B added a child: mirror",
            MIRROR,
            ALL_POLICIES,
        )
        .a(&[&fa, &dxa_gone])
        .b(&[&db, &dxb, &newb])
        .expect(vec![
            delete(B, &dxb, &[(RA, 2)]),
            delete(B, &newb, &[(RB, 1)]),
            delete(B, &db, &[(RA, 2)]),
            copy(B, &fa, None, &[(RA, 2)]),
        ]),
    );

    // The same the other way round: B replaced the dir, A added a child.
    let da = dir("d", &[(RA, 1)]);
    let dxa = file("d/x", "old child", &[(RA, 1)]);
    let fb = file("d", "now a file", &[(RA, 1), (RB, 1)]);
    let dxb_gone = tomb(&dxa, &[(RA, 1), (RB, 1)]);
    let newa = file("d/new", "added on A", &[(RA, 2)]);
    let aside_d = aside_name("d", "b", "");
    t.push(
        Case::new(
            "dir replaced by file on B, A added a child",
            BIDI,
            ALL_POLICIES,
        )
        .a(&[&da, &dxa, &newa])
        .b(&[&fb, &dxb_gone])
        .expect(vec![
            delete(A, &dxa, &[(RA, 1), (RB, 1)]),
            copy(B, &newa, None, &[(RA, 2)]),
            move_aside(B, &fb, &aside_d),
            copy(A, &fb.clone().at(&aside_d), None, &[(RA, 1), (RB, 1)]),
            mkdir(B, &da, None, &[(RA, 1), (RB, 1)]),
            record(A, &da, &[(RA, 1), (RB, 1)]),
        ])
        .conflicts(vec![conflict("d", Some(A), Some(&aside_d))]),
    );

    // --- directory deletion vs concurrent child changes --------------------------------
    let db = dir("d", &[(RA, 1)]);
    let dxb = file("d/x", "old child", &[(RA, 1)]);
    let da_gone = tomb(&db, &[(RA, 2)]);
    let dxa_gone = tomb(&dxb, &[(RA, 2)]);
    t.push(
        Case::new("dir deleted on A, B unchanged", BOTH_MODES, ALL_POLICIES)
            .a(&[&da_gone, &dxa_gone])
            .b(&[&db, &dxb])
            .expect(vec![
                delete(B, &dxb, &[(RA, 2)]),
                delete(B, &db, &[(RA, 2)]),
            ]),
    );

    let newb = file("d/new", "added on B", &[(RB, 1)]);
    t.push(
        Case::new("dir deleted on A, B added a child", BIDI, ALL_POLICIES)
            .a(&[&da_gone, &dxa_gone])
            .b(&[&db, &dxb, &newb])
            .expect(vec![
                delete(B, &dxb, &[(RA, 2)]),
                copy(A, &newb, None, &[(RB, 1)]),
                mkdir(A, &db, None, &[(RA, 2)]),
                record(B, &db, &[(RA, 2)]),
            ]),
    );
    t.push(
        Case::new(
            "dir deleted on A, B added a child: mirror deletes all",
            MIRROR,
            ALL_POLICIES,
        )
        .a(&[&da_gone, &dxa_gone])
        .b(&[&db, &dxb, &newb])
        .expect(vec![
            delete(B, &dxb, &[(RA, 2)]),
            delete(B, &newb, &[(RB, 1)]),
            delete(B, &db, &[(RA, 2)]),
        ]),
    );

    let dxb_edit = file("d/x", "edited on B", &[(RA, 1), (RB, 1)]);
    t.push(
        Case::new("dir deleted on A, B edited a child", BIDI, ALL_POLICIES)
            .a(&[&da_gone, &dxa_gone])
            .b(&[&db, &dxb_edit])
            .expect(vec![
                record(B, &dxb_edit, &[(RA, 2), (RB, 1)]),
                copy(A, &dxb_edit, None, &[(RA, 2), (RB, 1)]),
                mkdir(A, &db, None, &[(RA, 2)]),
                record(B, &db, &[(RA, 2)]),
            ]),
    );

    // A nested survivor keeps every ancestor alive.
    let d1 = dir("p", &[(RA, 1)]);
    let d2 = dir("p/q", &[(RA, 1)]);
    let d1_gone = tomb(&d1, &[(RA, 2)]);
    let d2_gone = tomb(&d2, &[(RA, 2)]);
    let deep = file("p/q/new", "deep", &[(RB, 1)]);
    t.push(
        Case::new(
            "nested dirs deleted on A, B added a grandchild",
            BIDI,
            ALL_POLICIES,
        )
        .a(&[&d1_gone, &d2_gone])
        .b(&[&d1, &d2, &deep])
        .expect(vec![
            copy(A, &deep, None, &[(RB, 1)]),
            mkdir(A, &d2, None, &[(RA, 2)]),
            record(B, &d2, &[(RA, 2)]),
            mkdir(A, &d1, None, &[(RA, 2)]),
            record(B, &d1, &[(RA, 2)]),
        ]),
    );

    // --- renames ------------------------------------------------------------------------
    let oldb = file("old.txt", "payload", &[(RA, 1)]);
    let olda_gone = tomb(&oldb, &[(RA, 2)]);
    let newa = file("new.txt", "payload", &[(RA, 3)]);
    t.push(
        Case::new("rename on A", BOTH_MODES, ALL_POLICIES)
            .a(&[&olda_gone, &newa])
            .b(&[&oldb])
            .expect(vec![rename(B, &oldb, &[(RA, 2)], &newa, &[(RA, 3)])]),
    );

    let olda = file("old.txt", "payload", &[(RA, 1)]);
    let oldb_gone = tomb(&olda, &[(RA, 1), (RB, 1)]);
    let newb = file("new.txt", "payload", &[(RB, 2)]);
    t.push(
        Case::new("rename on B", BIDI, ALL_POLICIES)
            .a(&[&olda])
            .b(&[&oldb_gone, &newb])
            .expect(vec![rename(
                A,
                &olda,
                &[(RA, 1), (RB, 1)],
                &newb,
                &[(RB, 2)],
            )]),
    );

    let suba = dir("sub", &[(RA, 3)]);
    let moved = file("sub/new.txt", "payload", &[(RA, 3)]);
    t.push(
        Case::new("move into a new dir on A", BOTH_MODES, ALL_POLICIES)
            .a(&[&olda_gone, &suba, &moved])
            .b(&[&oldb])
            .expect(vec![
                mkdir(B, &suba, None, &[(RA, 3)]),
                rename(B, &oldb, &[(RA, 2)], &moved, &[(RA, 3)]),
            ]),
    );

    let newa_x = file("new.txt", "payload", &[(RA, 3)]).mode(0o755);
    t.push(
        Case::new(
            "rename with a mode change is copy + delete",
            BOTH_MODES,
            ALL_POLICIES,
        )
        .a(&[&olda_gone, &newa_x])
        .b(&[&oldb])
        .expect(vec![
            copy(B, &newa_x, None, &[(RA, 3)]),
            delete(B, &oldb, &[(RA, 2)]),
        ]),
    );

    let oldb_edit = file("old.txt", "edited on B", &[(RA, 1), (RB, 1)]);
    t.push(
        Case::new("rename on A while B edits the old name", BIDI, ALL_POLICIES)
            .a(&[&olda_gone, &newa])
            .b(&[&oldb_edit])
            .expect(vec![
                copy(B, &newa, None, &[(RA, 3)]),
                record(B, &oldb_edit, &[(RA, 2), (RB, 1)]),
                copy(A, &oldb_edit, None, &[(RA, 2), (RB, 1)]),
            ]),
    );

    // --- mirror: B becomes an exact copy of A --------------------------------------------
    let stray = file("stray.txt", "B only", &[(RB, 1)]);
    let extra = dir("extra", &[(RB, 1)]);
    let extra_f = file("extra/f", "B only", &[(RB, 2)]);
    let keep = file("keep.txt", "k", &[(RA, 1)]);
    t.push(
        Case::new("mirror deletes B-only files and dirs", MIRROR, ALL_POLICIES)
            .a(&[&keep])
            .b(&[&keep, &stray, &extra, &extra_f])
            .expect(vec![
                delete(B, &stray, &[(RB, 1)]),
                delete(B, &extra_f, &[(RB, 2)]),
                delete(B, &extra, &[(RB, 1)]),
            ]),
    );
    t.push(
        Case::new("bidirectional brings B-only files to A", BIDI, ALL_POLICIES)
            .a(&[&keep])
            .b(&[&keep, &stray, &extra, &extra_f])
            .expect(vec![
                copy(A, &stray, None, &[(RB, 1)]),
                mkdir(A, &extra, None, &[(RB, 1)]),
                copy(A, &extra_f, None, &[(RB, 2)]),
            ]),
    );

    // --- files on demand: a dehydrated entry is never a deletion or an edit -------------
    let fd = dehydrated(file("f.txt", "cold", &[(RA, 1)]));
    let fb = file("f.txt", "cold", &[(RA, 1)]);
    t.push(
        Case::new(
            "dehydrated on A, same content on B",
            ALL_MODES,
            ALL_POLICIES,
        )
        .a(&[&fd])
        .b(&[&fb]),
    );

    let fb = file("f.txt", "cold", &[(RA, 1), (RB, 1)]);
    t.push(
        Case::new(
            "dehydrated on A, same content, B's vector newer",
            ALL_MODES,
            ALL_POLICIES,
        )
        .a(&[&fd])
        .b(&[&fb])
        .expect(vec![record(A, &fd, &[(RA, 1), (RB, 1)])]),
    );

    let fb2 = file("f.txt", "edited on B", &[(RA, 1), (RB, 2)]);
    let mut fd_new = dehydrated(fb2.clone());
    fd_new.cache = fd.cache;
    t.push(
        Case::new(
            "selective: B edited a file dehydrated on A: stays online-only",
            SELECTIVE,
            ALL_POLICIES,
        )
        .a(&[&fd])
        .b(&[&fb2])
        .expect(vec![record(A, &fd_new, &[(RA, 1), (RB, 2)])]),
    );
    t.push(
        Case::new(
            "bidirectional: B edited a file dehydrated on A: copied to A",
            BIDI,
            ALL_POLICIES,
        )
        .a(&[&fd])
        .b(&[&fb2])
        .expect(vec![copy(A, &fb2, Some(&fd), &[(RA, 1), (RB, 2)])]),
    );
    t.push(
        Case::new(
            "mirror: B edited a file dehydrated on A: held (A has no bytes)",
            MIRROR,
            ALL_POLICIES,
        )
        .a(&[&fd])
        .b(&[&fb2])
        .conflicts(vec![conflict("f.txt", None, None)]),
    );

    let fb_gone = tomb(&file("f.txt", "cold", &[(RA, 1)]), &[(RA, 1), (RB, 2)]);
    t.push(
        Case::new(
            "B deleted a file dehydrated on A: index-only delete on A",
            SELECTIVE_OR_BIDI,
            ALL_POLICIES,
        )
        .a(&[&fd])
        .b(&[&fb_gone])
        .expect(vec![delete(A, &fd, &[(RA, 1), (RB, 2)])]),
    );
    t.push(
        Case::new(
            "mirror: B deleted a file dehydrated on A: held",
            MIRROR,
            ALL_POLICIES,
        )
        .a(&[&fd])
        .b(&[&fb_gone])
        .conflicts(vec![conflict("f.txt", None, None)]),
    );
    t.push(
        Case::new(
            "dehydrated on A, B never had it: held, nothing copied",
            ALL_MODES,
            ALL_POLICIES,
        )
        .a(&[&fd])
        .conflicts(vec![conflict("f.txt", None, None)]),
    );

    let fd_newer = dehydrated(file("f.txt", "cold", &[(RA, 2)]));
    let fb_edit = file("f.txt", "edited on B", &[(RA, 1), (RB, 1)]);
    t.push(
        Case::new(
            "concurrent: dehydrated A vs an edit on B: held for the user",
            ALL_MODES_BUT_MIRROR,
            ALL_POLICIES,
        )
        .a(&[&fd_newer])
        .b(&[&fb_edit])
        .conflicts(vec![conflict("f.txt", None, None)]),
    );

    let moved = file("g.txt", "cold", &[(RA, 1), (RB, 1)]);
    let fb_gone = tomb(&file("f.txt", "cold", &[(RA, 1)]), &[(RA, 1), (RB, 1)]);
    t.push(
        Case::new(
            "B renamed a file dehydrated on A: not a rename on A",
            SELECTIVE_OR_BIDI,
            ALL_POLICIES,
        )
        .a(&[&fd])
        .b(&[&fb_gone, &moved])
        .expect(vec![
            delete(A, &fd, &[(RA, 1), (RB, 1)]),
            copy(A, &moved, None, &[(RA, 1), (RB, 1)]),
        ]),
    );

    t
}

#[test]
fn truth_table() {
    let table = table();
    let mut rows = 0;
    for case in &table {
        for &mode in case.modes {
            for &policy in case.policies {
                let context = format!("{} [{mode:?}, {policy:?}]", case.name);
                let plan = run(mode, policy, &case.a, &case.b);
                assert_same_actions(&context, &plan.actions, &case.actions);
                assert_conflicts(&context, &plan, policy, &case.a, &case.b, &case.conflicts);
                check_plan_invariants(&context, mode, &case.a, &case.b, &plan);
                rows += 1;
            }
        }
    }
    assert!(rows > 100, "only {rows} rows ran");
}

// ---------------------------------------------------------------------------------------
// Named cases
// ---------------------------------------------------------------------------------------

#[test]
fn newest_mtime_tie_is_broken_by_content_not_by_side() {
    let x = |path: &str, content: &str, v: Vv| file(path, content, v).mtime(1234);
    let (h1, h2) = (Hash::of(b"one"), Hash::of(b"two"));
    let bigger = if h1 > h2 { "one" } else { "two" };
    for policy in [Newest, KeepBoth] {
        for (ca, cb) in [("one", "two"), ("two", "one")] {
            let a = x("t.txt", ca, &[(RA, 2)]);
            let b = x("t.txt", cb, &[(RA, 1), (RB, 1)]);
            let plan = run(Bidirectional, policy, one(&a), one(&b));
            let want = if ca == bigger { A } else { B };
            assert_eq!(plan.conflicts.len(), 1, "{policy:?} {ca}/{cb}");
            assert_eq!(
                plan.conflicts[0].winner,
                Some(want),
                "{policy:?}: A={ca} B={cb}: the larger hash wins the tie"
            );
            // The winning content lands at t.txt on the loser's side.
            let landed = plan.actions.iter().find_map(|act| match act {
                Action::Copy { path, source, .. } if path.as_str() == "t.txt" => {
                    Some(source.state.hash)
                }
                _ => None,
            });
            assert_eq!(landed, Some(Some(Hash::of(bigger.as_bytes()))));
            // Deterministic: the same input gives the same plan.
            assert_eq!(plan, run(Bidirectional, policy, &[a], &[b]));
        }
    }
}

#[test]
fn newest_full_tie_goes_to_side_a() {
    // Same bytes, same mtime, only the mode differs: nothing left to compare but sides.
    let a = file("t.sh", "same", &[(RA, 2)]).mode(0o755);
    let b = file("t.sh", "same", &[(RA, 1), (RB, 1)]).mode(0o700);
    let plan = run(Bidirectional, Newest, one(&a), one(&b));
    assert_eq!(plan.conflicts.len(), 1);
    assert_eq!(plan.conflicts[0].winner, Some(A));
    assert_same_actions(
        "full tie",
        &plan.actions,
        &[
            record(A, &a, &[(RA, 2), (RB, 1)]),
            copy(B, &a, Some(&b), &[(RA, 2), (RB, 1)]),
        ],
    );
}

#[test]
fn conflict_names_follow_the_pattern() {
    // (path, expected aside name of the side-B loser)
    let cases = [
        ("doc.txt", "doc.conflict-20231114-221320-b.txt"),
        (
            "sub/dir/photo.jpeg",
            "sub/dir/photo.conflict-20231114-221320-b.jpeg",
        ),
        ("Makefile", "Makefile.conflict-20231114-221320-b"),
        (".bashrc", ".bashrc.conflict-20231114-221320-b"),
        ("a.tar.gz", "a.tar.conflict-20231114-221320-b.gz"),
    ];
    for (path, want) in cases {
        let a = file(path, "alpha", &[(RA, 2)]).mtime(2000);
        let b = file(path, "beta", &[(RA, 1), (RB, 1)]).mtime(1000);
        let plan = run(Bidirectional, KeepBoth, &[a], one(&b));
        let got: Vec<&RelPath> = plan
            .actions
            .iter()
            .filter_map(|act| match act {
                Action::MoveAside { to, side: B, .. } => Some(to),
                _ => None,
            })
            .collect();
        assert_eq!(got, vec![&p(want)], "{path}");
        assert_eq!(plan.conflicts[0].loser_kept_at.as_deref(), Some(want));
    }
}

#[test]
fn conflict_name_uses_now() {
    let a = file("n.txt", "alpha", &[(RA, 2)]).mtime(2000);
    let b = file("n.txt", "beta", &[(RB, 1)]).mtime(1000);
    let plan = reconcile(ReconcileInput {
        a: &[a],
        b: &[b],
        mode: Bidirectional,
        policy: KeepBoth,
        now: 0,
        occupied: &|_| false,
    })
    .unwrap();
    assert_eq!(
        plan.conflicts[0].loser_kept_at.as_deref(),
        Some("n.conflict-19700101-000000-b.txt")
    );
}

#[test]
fn conflict_name_avoids_paths_in_use_on_either_side() {
    let first = aside_name("doc", "b", ".txt");
    let second = format!("doc.conflict-{STAMP}-b-2.txt");
    let third = format!("doc.conflict-{STAMP}-b-3.txt");
    let a = file("doc.txt", "alpha", &[(RA, 2)]).mtime(2000);
    let b = file("doc.txt", "beta", &[(RA, 1), (RB, 1)]).mtime(1000);
    // The first candidate exists (live) on A, the second only as a tombstone on B.
    let taken_a = file(&first, "older conflict", &[(RA, 1)]);
    let taken_b = tomb(&file(&second, "gone", &[(RB, 1)]), &[(RB, 2)]);
    let plan = run(
        Bidirectional,
        KeepBoth,
        &[a.clone(), taken_a.clone()],
        &[b.clone(), taken_b.clone()],
    );
    assert_eq!(plan.conflicts.len(), 1);
    assert_eq!(plan.conflicts[0].loser_kept_at.as_deref(), Some(&*third));
    assert!(
        plan.actions.contains(&move_aside(B, &b, &third)),
        "{:#?}",
        plan.actions
    );
    check_plan_invariants(
        "name collision",
        Bidirectional,
        &[a, taken_a],
        &[b, taken_b],
        &plan,
    );
}

#[test]
fn two_conflicts_in_one_dir_get_distinct_names() {
    let a1 = file("d/x", "a1", &[(RA, 2)]).mtime(2000);
    let b1 = file("d/x", "b1", &[(RA, 1), (RB, 1)]).mtime(1000);
    let a2 = file("d/y", "a2", &[(RA, 2)]).mtime(1000);
    let b2 = file("d/y", "b2", &[(RA, 1), (RB, 1)]).mtime(2000);
    let d = dir("d", &[(RA, 1)]);
    let a = vec![d.clone(), a1, a2];
    let b = vec![d, b1, b2];
    let plan = run(Bidirectional, KeepBoth, &a, &b);
    let mut kept: Vec<String> = plan
        .conflicts
        .iter()
        .filter_map(|c| c.loser_kept_at.clone())
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        vec![
            format!("d/x.conflict-{STAMP}-b"),
            format!("d/y.conflict-{STAMP}-a"),
        ]
    );
    check_plan_invariants("two conflicts", Bidirectional, &a, &b, &plan);
}

#[test]
fn manual_conflicts_leave_vectors_alone() {
    // Nothing is recorded either: merging the vectors would hide the conflict next run.
    let a = file("m.txt", "alpha", &[(RA, 2)]);
    let b = file("m.txt", "beta", &[(RA, 1), (RB, 1)]);
    let plan = run(Bidirectional, Manual, one(&a), one(&b));
    assert!(plan.actions.is_empty(), "{:#?}", plan.actions);
    assert!(!plan.touches_disk());
    let c = &plan.conflicts[0];
    assert_eq!((c.winner, c.loser_kept_at.as_deref()), (None, None));
    assert_eq!((c.a.as_ref(), c.b.as_ref()), (Some(&a), Some(&b)));
}

#[test]
fn manual_conflict_leaves_other_paths_syncing() {
    let d = dir("d", &[(RA, 1)]);
    let xa = file("d/x", "alpha", &[(RA, 2)]);
    let xb = file("d/x", "beta", &[(RA, 1), (RB, 1)]);
    let ya = file("d/y", "new on A", &[(RA, 3)]);
    let a = vec![d.clone(), xa, ya.clone()];
    let b = vec![d.clone(), xb];
    let plan = run(Bidirectional, Manual, &a, &b);
    assert_same_actions(
        "manual + other",
        &plan.actions,
        &[copy(B, &ya, None, &[(RA, 3)])],
    );
    assert_conflicts(
        "manual + other",
        &plan,
        Manual,
        &a,
        &b,
        &[conflict("d/x", None, None)],
    );
    check_plan_invariants("manual + other", Bidirectional, &a, &b, &plan);
}

/// Both sides create `d` independently: A as a file, B as a directory with a child.
/// With the manual policy the file-vs-directory conflict at `d` is left alone, but B's
/// child is still copied to A, below A's *file* `d`. That copy can never succeed (the
/// executor refuses to write through a non-directory), so it fails again on every run;
/// and the reconciler's own "a directory with a surviving child survives" rule is
/// silently skipped for manual conflicts. Expected: no action below `d` on A (the
/// subtree waits for the user, e.g. recorded as part of the conflict), or the
/// directory rule applied as for the other policies.
#[test]
fn manual_file_vs_dir_conflict_does_not_write_below_the_file() {
    let fa = file("d", "a file on A", &[(RA, 1)]);
    let db = dir("d", &[(RB, 1)]);
    let xb = file("d/x", "child on B", &[(RB, 2)]);
    let a = vec![fa];
    let b = vec![db, xb];
    let plan = run(Bidirectional, Manual, &a, &b);
    assert_eq!(plan.conflicts.len(), 1, "{:#?}", plan.conflicts);
    assert_eq!(plan.conflicts[0].path, p("d"));
    for act in &plan.actions {
        if let Action::Copy { to: A, path, .. } = act {
            panic!("copies {path} to A, where d is a file: {:#?}", plan.actions);
        }
    }
    check_plan_invariants("manual file vs dir", Bidirectional, &a, &b, &plan);
}

/// The same input under the other policies: the directory rule wins over the policy,
/// the file is kept aside and the child lands on both sides.
#[test]
fn file_vs_dir_created_on_both_sides_with_a_child() {
    let fa = file("d", "a file on A", &[(RA, 1)]).mtime(5000);
    let db = dir("d", &[(RB, 1)]);
    let xb = file("d/x", "child on B", &[(RB, 2)]);
    let a = vec![fa.clone()];
    let b = vec![db.clone(), xb.clone()];
    let aside = aside_name("d", "a", "");
    // The file wins by policy, but the directory rule overrides: the file goes aside.
    for policy in [Newest, KeepBoth, Source] {
        let ctx = format!("file vs dir with child [{policy:?}]");
        let plan = run(Bidirectional, policy, &a, &b);
        assert_same_actions(
            &ctx,
            &plan.actions,
            &[
                copy(A, &xb, None, &[(RB, 2)]),
                move_aside(A, &fa, &aside),
                copy(B, &fa.clone().at(&aside), None, &[(RA, 1)]),
                mkdir(A, &db, None, &[(RA, 1), (RB, 1)]),
                record(B, &db, &[(RA, 1), (RB, 1)]),
            ],
        );
        check_plan_invariants(&ctx, Bidirectional, &a, &b, &plan);
    }
    // The directory wins by policy: the file is replaced (and versioned on A).
    let plan = run(Bidirectional, Target, &a, &b);
    let m: Vv = &[(RA, 1), (RB, 1)];
    assert_same_actions(
        "file vs dir with child [Target]",
        &plan.actions,
        &[
            copy(A, &xb, None, &[(RB, 2)]),
            record(B, &db, m),
            delete(A, &fa, m),
            mkdir(A, &db, None, m),
        ],
    );
    assert_conflicts(
        "file vs dir with child [Target]",
        &plan,
        Target,
        &a,
        &b,
        &[conflict("d", Some(B), Some("version store of side a"))],
    );
    check_plan_invariants("file vs dir [Target]", Bidirectional, &a, &b, &plan);
}

#[test]
fn rename_keeps_copy_when_two_targets_share_content() {
    // A copied x to y and z, then deleted x: one rename, one copy; never two renames.
    let xb = file("x", "payload", &[(RA, 1)]);
    let xa_gone = tomb(&xb, &[(RA, 2)]);
    let ya = file("y", "payload", &[(RA, 3)]);
    let za = file("z", "payload", &[(RA, 4)]);
    let a = vec![xa_gone, ya, za];
    let b = vec![xb];
    let plan = run(Bidirectional, Newest, &a, &b);
    let renames = plan
        .actions
        .iter()
        .filter(|act| matches!(act, Action::Rename { .. }))
        .count();
    let copies = plan
        .actions
        .iter()
        .filter(|act| matches!(act, Action::Copy { .. }))
        .count();
    let deletes = plan
        .actions
        .iter()
        .filter(|act| matches!(act, Action::Delete { .. }))
        .count();
    assert_eq!((renames, copies, deletes), (1, 1, 0), "{:#?}", plan.actions);
    check_plan_invariants("rename fan-out", Bidirectional, &a, &b, &plan);
}

#[test]
fn renamed_folder_pairs_each_file_with_its_own_old_path() {
    // A renamed d to e; d holds equal contents in several places. Each rename on B
    // keeps its relative path (d/x -> e/x), whichever order the reconciler meets them,
    // so the executor can move d as a whole; and a third file of that content moved
    // out of d pairs with what is left.
    let mut a = vec![
        tomb(&dir("d", &[(RA, 1)]), &[(RA, 2)]),
        dir("e", &[(RA, 3)]),
    ];
    let mut b = vec![dir("d", &[(RA, 1)])];
    let mut expect = vec![];
    for sub in ["d/s", "d/t"] {
        b.push(dir(sub, &[(RA, 1)]));
        a.push(tomb(&dir(sub, &[(RA, 1)]), &[(RA, 2)]));
        a.push(dir(&sub.replace("d/", "e/"), &[(RA, 3)]));
    }
    for name in ["x", "y", "s/x", "s/y", "t/x"] {
        let old = file(&format!("d/{name}"), "same", &[(RA, 1)]);
        let new = file(&format!("e/{name}"), "same", &[(RA, 3)]);
        a.push(tomb(&old, &[(RA, 2)]));
        a.push(new.clone());
        expect.push((old.path.clone(), new.path.clone()));
        b.push(old);
    }
    a.sort_by(|x, y| x.path.cmp(&y.path));
    b.sort_by(|x, y| x.path.cmp(&y.path));
    let plan = run(Bidirectional, Newest, &a, &b);
    let mut renames: Vec<_> = plan
        .actions
        .iter()
        .filter_map(|act| match act {
            Action::Rename { from, to, .. } => Some((from.clone(), to.clone())),
            _ => None,
        })
        .collect();
    renames.sort();
    expect.sort();
    assert_eq!(renames, expect, "{:#?}", plan.actions);
    check_plan_invariants("renamed folder", Bidirectional, &a, &b, &plan);
}

#[test]
fn rename_onto_a_replaced_dir_is_not_paired() {
    // A deleted the empty dir y and renamed x to y. The executor removes directories
    // after renames, so a rename onto y could not land; the copy must stay a copy.
    let yb = dir("y", &[(RA, 1)]);
    let xb = file("x", "payload", &[(RA, 1)]);
    let xa_gone = tomb(&xb, &[(RA, 2)]);
    let ya = file("y", "payload", &[(RA, 3)]);
    let a = vec![xa_gone, ya.clone()];
    let b = vec![xb.clone(), yb.clone()];
    let plan = run(Bidirectional, Newest, &a, &b);
    assert_same_actions(
        "rename onto replaced dir",
        &plan.actions,
        &[
            delete(B, &yb, &[(RA, 3)]),
            copy(B, &ya, None, &[(RA, 3)]),
            delete(B, &xb, &[(RA, 2)]),
        ],
    );
    check_plan_invariants("rename onto replaced dir", Bidirectional, &a, &b, &plan);
}

#[test]
fn rename_out_of_a_deleted_dir() {
    // A moved d/x to y and removed d: one rename on B, then d goes (rmdir runs last).
    let db = dir("d", &[(RA, 1)]);
    let xb = file("d/x", "payload", &[(RA, 1)]);
    let da_gone = tomb(&db, &[(RA, 2)]);
    let xa_gone = tomb(&xb, &[(RA, 2)]);
    let ya = file("y", "payload", &[(RA, 3)]);
    let a = vec![da_gone, xa_gone, ya.clone()];
    let b = vec![db.clone(), xb.clone()];
    for mode in [Bidirectional, Mirror] {
        let plan = run(mode, Newest, &a, &b);
        assert_same_actions(
            "rename out of deleted dir",
            &plan.actions,
            &[
                rename(B, &xb, &[(RA, 2)], &ya, &[(RA, 3)]),
                delete(B, &db, &[(RA, 2)]),
            ],
        );
        check_plan_invariants("rename out of deleted dir", mode, &a, &b, &plan);
    }
}

#[test]
fn file_deletions_and_touches_disk_helpers() {
    let f = file("f", "x", &[(RA, 1)]);
    let d = dir("d", &[(RA, 1)]);
    let plan = run(
        Bidirectional,
        Newest,
        &[tomb(&f, &[(RA, 2)]), tomb(&d, &[(RA, 2)])],
        &[f.clone(), d.clone()],
    );
    assert_eq!(plan.file_deletions(B), 1);
    assert_eq!(plan.file_deletions(A), 0);
    assert!(plan.touches_disk());
    let same = run(Bidirectional, Newest, one(&f), one(&f));
    assert!(!same.touches_disk());
}

// ---------------------------------------------------------------------------------------
// Plan simulation (used by the table and the property tests)
// ---------------------------------------------------------------------------------------

/// One side as the plan sees it while it is applied in order: what is on disk (and
/// whether it is still the scanned entry), and what the index holds.
#[derive(Debug, Clone, Default)]
struct SideState {
    /// Live paths on disk: (current content, still exactly the scanned entry?).
    disk: BTreeMap<RelPath, (Entry, bool)>,
    /// The index rows, tombstones included.
    index: BTreeMap<RelPath, Entry>,
}

impl SideState {
    fn new(entries: &[Entry]) -> SideState {
        let mut s = SideState::default();
        for e in entries {
            s.index.insert(e.path.clone(), e.clone());
            if e.is_live() {
                s.disk.insert(e.path.clone(), (e.clone(), true));
            }
        }
        s
    }

    /// The disk at `path` must hold exactly `expected` (the scanned entry), or nothing.
    fn check(&self, ctx: &str, path: &RelPath, expected: Option<&Entry>) -> Result<(), String> {
        match (self.disk.get(path), expected) {
            (None, None) => Ok(()),
            (Some((cur, true)), Some(exp)) if cur == exp => Ok(()),
            (cur, exp) => Err(format!(
                "{ctx}: at {path}: expected {exp:?}, but the side holds {cur:?} \
                 (flag = still the scanned entry)"
            )),
        }
    }
}

/// Applies `plan` to both sides in plan order, checking every action's expectation.
fn simulate(a: &[Entry], b: &[Entry], plan: &Plan) -> Result<[SideState; 2], String> {
    let mut st = [SideState::new(a), SideState::new(b)];
    for (i, act) in plan.actions.iter().enumerate() {
        let ctx = format!("action #{i} {act:?}");
        let s = &mut st[act.side() as usize];
        match act {
            Action::Archive { .. } => {
                return Err(format!(
                    "{ctx}: archive removals come only from archive mode"
                ));
            }
            Action::Record { entry, .. } => {
                // Index only: the disk must already agree.
                let on_disk = s.disk.get(&entry.path).map(|(e, _)| e);
                // A dehydrated entry may take another dehydrated state (selective: B's
                // newer content stays online-only): no bytes are on this side.
                let stays_online = on_disk.is_some_and(is_dehydrated) && is_dehydrated(entry);
                let agrees = match on_disk {
                    None => entry.is_tombstone(),
                    Some(d) => entry.is_live() && (d.same_content(entry) || stays_online),
                };
                if !agrees {
                    return Err(format!("{ctx}: disk holds {on_disk:?}"));
                }
                if stays_online {
                    s.disk.insert(entry.path.clone(), (*entry.clone(), false));
                }
                s.index.insert(entry.path.clone(), *entry.clone());
            }
            Action::MoveAside {
                path, to, expected, ..
            } => {
                if is_dehydrated(expected) {
                    return Err(format!(
                        "{ctx}: moves aside a file whose content is not here"
                    ));
                }
                s.check(&ctx, path, Some(expected))?;
                s.check(&ctx, to, None)?;
                if to.parent() != path.parent() {
                    return Err(format!("{ctx}: aside name is not a sibling"));
                }
                let moved = Entry {
                    path: to.clone(),
                    ..*expected.clone()
                };
                s.disk.remove(path);
                s.disk.insert(to.clone(), (moved.clone(), false));
                s.index.insert(to.clone(), moved);
                s.index
                    .insert(path.clone(), expected.tombstone(&expected.state.version));
            }
            Action::Delete {
                path,
                expected,
                version,
                ..
            } => {
                s.check(&ctx, path, Some(expected))?;
                if &expected.path != path {
                    return Err(format!("{ctx}: expected entry names another path"));
                }
                // A directory need not be empty yet at this point of the plan: the
                // executor removes directories after moving and deleting files, so
                // emptiness is checked on the final trees instead.
                s.disk.remove(path);
                s.index.insert(path.clone(), expected.tombstone(version));
            }
            Action::Mkdir {
                path,
                source,
                expected,
                version,
                ..
            } => {
                s.check(&ctx, path, expected.as_deref())?;
                if source.state.kind != EntryKind::Dir || !source.is_live() {
                    return Err(format!("{ctx}: source is not a live dir"));
                }
                let e = {
                    let mut e = source.with_version(version);
                    e.path = path.clone();
                    e
                };
                s.disk.insert(path.clone(), (e.clone(), false));
                s.index.insert(path.clone(), e);
            }
            Action::Rename {
                from,
                expected,
                from_version,
                to,
                source,
                version,
                ..
            } => {
                s.check(&ctx, from, Some(expected))?;
                s.check(&ctx, to, None)?;
                if is_dehydrated(expected) {
                    return Err(format!("{ctx}: renames a file whose content is not here"));
                }
                if expected.state.kind != EntryKind::File
                    || source.state.kind != EntryKind::File
                    || expected.state.hash != source.state.hash
                    || expected.state.mode != source.state.mode
                {
                    return Err(format!("{ctx}: renamed content differs from the source"));
                }
                let e = {
                    let mut e = source.with_version(version);
                    e.path = to.clone();
                    e
                };
                s.disk.remove(from);
                s.disk.insert(to.clone(), (e.clone(), false));
                s.index.insert(to.clone(), e);
                s.index
                    .insert(from.clone(), expected.tombstone(from_version));
            }
            Action::Copy {
                path,
                source,
                expected,
                version,
                ..
            } => {
                s.check(&ctx, path, expected.as_deref())?;
                if source.state.kind == EntryKind::Dir || !source.is_live() {
                    return Err(format!("{ctx}: source is not a live file or symlink"));
                }
                if is_dehydrated(source) {
                    return Err(format!(
                        "{ctx}: copies from a file whose content is not there"
                    ));
                }
                let e = {
                    let mut e = source.with_version(version);
                    e.path = path.clone();
                    e
                };
                s.disk.insert(path.clone(), (e.clone(), false));
                s.index.insert(path.clone(), e);
            }
        }
    }
    Ok(st)
}

/// Checks that hold for every plan, whatever the input:
/// - every action's `expected` is what its side holds at that point of the plan;
/// - mirror changes nothing on side A but index rows;
/// - afterwards, every live path's parent is a live directory and the index agrees with
///   the disk on both sides;
/// - outside manual conflicts, both sides end with the same content and vectors.
fn check_plan_invariants(context: &str, mode: SyncMode, a: &[Entry], b: &[Entry], plan: &Plan) {
    if let Err(e) = check_plan(mode, a, b, plan) {
        panic!("{context}: {e}\n  A: {a:#?}\n  B: {b:#?}\n  plan: {plan:#?}");
    }
}

fn is_dehydrated(e: &Entry) -> bool {
    e.state.presence == Presence::Dehydrated
}

/// A conflict left to the user because a decision would need a dehydrated entry's
/// content, which is not on its side (safety rule 7).
fn held_for_dehydrated(plan: &Plan) -> Vec<&RelPath> {
    (plan.conflicts.iter())
        .filter(|c| c.winner.is_none())
        .filter(|c| c.a.iter().chain(&c.b).any(is_dehydrated))
        .map(|c| &c.path)
        .collect()
}

fn check_plan(mode: SyncMode, a: &[Entry], b: &[Entry], plan: &Plan) -> Result<(), String> {
    let held = held_for_dehydrated(plan);
    if mode == Mirror {
        if let Some(act) = plan
            .actions
            .iter()
            .find(|act| act.side() == A && !matches!(act, Action::Record { .. }))
        {
            return Err(format!("mirror changes side A: {act:?}"));
        }
        if plan.conflicts.len() != held.len() {
            return Err("mirror reported conflicts".into());
        }
    }
    let st = simulate(a, b, plan)?;
    for (side, s) in [(A, &st[0]), (B, &st[1])] {
        for (path, (e, _)) in &s.disk {
            if let Some(parent) = path.parent() {
                match s.disk.get(&parent) {
                    Some((d, _)) if d.state.kind == EntryKind::Dir => {}
                    other => {
                        return Err(format!(
                            "side {side:?} ends with {path} below a non-directory: {other:?}"
                        ))
                    }
                }
            }
            match s.index.get(path) {
                Some(i) if i.is_live() && i.same_content(e) => {}
                other => {
                    return Err(format!(
                        "side {side:?}: disk has {e:?} at {path}, index has {other:?}"
                    ))
                }
            }
        }
        for (path, i) in &s.index {
            if i.is_live() && !s.disk.contains_key(path) {
                return Err(format!("side {side:?}: index has live {path} not on disk"));
            }
        }
    }
    // Convergence, outside paths left to the user (and what lies below them).
    let manual: Vec<&RelPath> = plan
        .conflicts
        .iter()
        .filter(|c| c.winner.is_none())
        .map(|c| &c.path)
        .collect();
    let left_alone = |q: &RelPath| manual.iter().any(|m| q == *m || q.is_strictly_under(m));
    let paths: std::collections::BTreeSet<&RelPath> =
        st[0].disk.keys().chain(st[1].disk.keys()).collect();
    for q in paths {
        if left_alone(q) {
            continue;
        }
        let (ea, eb) = (st[0].disk.get(q), st[1].disk.get(q));
        match (ea, eb) {
            (Some((x, _)), Some((y, _))) if x.same_content(y) => {
                let (va, vb) = (&st[0].index[q].state.version, &st[1].index[q].state.version);
                if va != vb {
                    return Err(format!("{q}: sides end with vectors {va:?} / {vb:?}"));
                }
            }
            _ => return Err(format!("{q}: sides end different: {ea:?} / {eb:?}")),
        }
    }
    if mode == Mirror {
        let out = |e: &&Entry| {
            !held
                .iter()
                .any(|h| e.path == **h || e.path.is_strictly_under(h))
        };
        let before: Vec<&Entry> = a.iter().filter(|e| e.is_live()).filter(out).collect();
        let after: Vec<&Entry> = st[1].disk.values().map(|(e, _)| e).filter(out).collect();
        let same = before.len() == after.len()
            && before
                .iter()
                .zip(&after)
                .all(|(x, y)| x.path == y.path && x.same_content(y));
        if !same {
            return Err("mirror: B does not end equal to A".into());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------

/// A small namespace with nesting, so type changes and directory rules come up often.
const PATHS: &[&str] = &["d", "d/f", "d/g", "d/s", "d/s/h", "f", "g"];

#[derive(Debug, Clone)]
enum Shape {
    Absent,
    /// A tombstone of a file with this content.
    Tomb(u8),
    /// File: content, executable?, mtime seconds.
    File(u8, bool, i64),
    /// Directory: private mode?
    Dir(bool),
    Link(u8),
    /// A dehydrated file (files on demand): content, mtime seconds.
    Dehydrated(u8, i64),
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        2 => Just(Shape::Absent),
        1 => (0u8..3).prop_map(Shape::Tomb),
        3 => (0u8..3, any::<bool>(), 0i64..3).prop_map(|(c, x, m)| Shape::File(c, x, m)),
        2 => any::<bool>().prop_map(Shape::Dir),
        1 => (0u8..2).prop_map(Shape::Link),
        1 => (0u8..3, 0i64..3).prop_map(|(c, m)| Shape::Dehydrated(c, m)),
    ]
}

fn vector() -> impl Strategy<Value = Vec<(u64, u64)>> {
    (0u64..3, 0u64..3).prop_map(|(a, b)| vec![(RA, a), (RB, b)])
}

fn side() -> impl Strategy<Value = Vec<(Shape, Vec<(u64, u64)>)>> {
    proptest::collection::vec((shape(), vector()), PATHS.len())
}

/// Builds one side's entries; a live entry whose parent is not a live directory on the
/// same side becomes a tombstone, so every side is a well-formed tree (as a scan gives).
fn build(spec: &[(Shape, Vec<(u64, u64)>)]) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for (path, (shape, v)) in PATHS.iter().zip(spec) {
        let mut e = match shape {
            Shape::Absent => continue,
            Shape::Tomb(c) => tomb(&file(path, &format!("c{c}"), v), v),
            Shape::File(c, x, m) => file(path, &format!("c{c}"), v)
                .mode(if *x { 0o755 } else { 0o644 })
                .mtime(*m),
            Shape::Dir(private) => dir(path, v).mode(if *private { 0o700 } else { 0o755 }),
            Shape::Link(t) => link(path, &format!("t{t}"), v),
            Shape::Dehydrated(c, m) => dehydrated(file(path, &format!("c{c}"), v).mtime(*m)),
        };
        let parent_ok = match e.path.parent() {
            None => true,
            Some(parent) => out
                .iter()
                .any(|q| q.path == parent && q.is_live() && q.state.kind == EntryKind::Dir),
        };
        if !parent_ok {
            e.state.presence = Presence::Tombstone;
        }
        out.push(e);
    }
    out
}

fn policy() -> impl Strategy<Value = ConflictPolicy> {
    prop_oneof![
        Just(Newest),
        Just(KeepBoth),
        Just(Source),
        Just(Target),
        Just(Manual),
    ]
}

fn mode() -> impl Strategy<Value = SyncMode> {
    prop_oneof![Just(Bidirectional), Just(Mirror), Just(Selective)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The properties asked of every plan: no panic; each Copy/Delete/Mkdir/MoveAside
    /// (and Rename) expects exactly the scanned live entry at its path, or None where
    /// that side has nothing live, counting what earlier actions of the same plan did
    /// (a kind change deletes first, then writes with `expected: None`); mirror acts on
    /// side A only through Record; the plan is deterministic.
    #[test]
    fn expectations_match_the_sides(
        a in side(), b in side(), mode in mode(), policy in policy(), now in 0i64..4_000_000_000,
    ) {
        let (a, b) = (build(&a), build(&b));
        let input = ReconcileInput { a: &a, b: &b, mode, policy, now, occupied: &|_| false };
        let plan = reconcile(input).unwrap();
        prop_assert_eq!(&plan, &reconcile(input).unwrap());
        if mode == Mirror {
            for act in &plan.actions {
                prop_assert!(
                    act.side() == B || matches!(act, Action::Record { .. }),
                    "mirror acts on A: {:?}", act
                );
            }
        }
        if let Err(e) = simulate(&a, &b, &plan) {
            return Err(TestCaseError::fail(format!("{e}\nA: {a:#?}\nB: {b:#?}\nplan: {plan:#?}")));
        }
    }

    /// Applying the plan leaves well-formed trees with matching indexes and, outside
    /// conflicts left to the user, the same content and vectors on both sides (and for
    /// mirror, B equal to A). Manual is excluded: see
    /// `manual_file_vs_dir_conflict_does_not_write_below_the_file`.
    #[test]
    fn plans_converge(
        a in side(), b in side(), mode in mode(),
        policy in prop_oneof![Just(Newest), Just(KeepBoth), Just(Source), Just(Target)],
    ) {
        let (a, b) = (build(&a), build(&b));
        let plan = reconcile(ReconcileInput { a: &a, b: &b, mode, policy, now: NOW, occupied: &|_| false }).unwrap();
        if let Err(e) = check_plan(mode, &a, &b, &plan) {
            return Err(TestCaseError::fail(format!("{e}\nA: {a:#?}\nB: {b:#?}\nplan: {plan:#?}")));
        }
    }

    /// The same for manual, restricted to inputs without a file-vs-dir manual conflict
    /// (the known bug above); everything else must still converge.
    #[test]
    fn manual_plans_converge_elsewhere(a in side(), b in side()) {
        let (a, b) = (build(&a), build(&b));
        let plan = reconcile(ReconcileInput {
            a: &a, b: &b, mode: Bidirectional, policy: Manual, now: NOW, occupied: &|_| false,
        }).unwrap();
        let type_clash = plan.conflicts.iter().any(|c| {
            let dir = |e: &Option<Entry>| e.as_ref().is_some_and(|e| e.state.kind == EntryKind::Dir);
            dir(&c.a) != dir(&c.b)
        });
        prop_assume!(!type_clash);
        if let Err(e) = check_plan(Bidirectional, &a, &b, &plan) {
            return Err(TestCaseError::fail(format!("{e}\nA: {a:#?}\nB: {b:#?}\nplan: {plan:#?}")));
        }
    }
}
