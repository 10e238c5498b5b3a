//! Reference-model test of whole sync runs on real folders.
//!
//! `sync_properties.rs` checks invariants; this file predicts the *exact* outcome. A tiny
//! model keeps, for a flat set of file names, each side's state (`None` = absent) and the
//! state both sides had after the last run (the common ancestor). Between runs, users
//! write fresh unique content to names or delete them, on both sides. One run then gives,
//! per name, from (ancestor, a, b):
//! - mirror: b becomes exactly a;
//! - bidirectional: a == b → that; only one side changed → that side (deletions too);
//!   both changed and one deleted → the modification; both modified → the policy
//!   (`Source` → a, `Target` → b), and the run records a conflict with that winner.
//!
//! After every real run the trees (without `.ferry/`) must equal the prediction, the run
//! must report no errors and exactly the predicted conflicts, and whatever a side held
//! before the run and no longer holds (conflict losers, overwritten and deleted files)
//! must be in that side's `.ferry/versions/`.

use ferry_core::plan::{ConflictPolicy, Side, SyncMode};
use ferry_core::NoProgress;
use ferry_core::{sync, SyncOptions, SyncOutcome};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

mod common;
use common::Pair;

const NAMES: [&str; 6] = ["f0", "f1", "f2", "f3", "f4", "f5"];

/// One side's files: name → content; a missing name is absent.
type Files = BTreeMap<String, Vec<u8>>;

// ---------------------------------------------------------------- the reference model

#[derive(Debug, Default)]
struct Model {
    ancestor: Files,
    a: Files,
    b: Files,
}

/// What one run must produce.
#[derive(Debug)]
struct Expected {
    /// Both sides' files after the run.
    files: Files,
    /// Names where both sides modified differently, with the policy's winner.
    conflicts: BTreeMap<String, Side>,
}

/// The outcome of one run for one name: the final state, and the winner if it was a
/// conflict the policy settled.
fn decide(
    mode: SyncMode,
    policy: ConflictPolicy,
    anc: Option<&Vec<u8>>,
    a: Option<&Vec<u8>>,
    b: Option<&Vec<u8>>,
) -> (Option<Vec<u8>>, Option<Side>) {
    let (final_state, winner) = match mode {
        SyncMode::Mirror => (a, None),
        _ if a == b => (a, None),
        _ if b == anc => (a, None),
        _ if a == anc => (b, None),
        // Both changed, differently: a modification beats a deletion…
        _ if b.is_none() => (a, None),
        _ if a.is_none() => (b, None),
        // …and two modifications go to the policy.
        _ => match policy {
            ConflictPolicy::Source => (a, Some(Side::A)),
            ConflictPolicy::Target => (b, Some(Side::B)),
            p => panic!("the model only knows the deterministic policies, not {p:?}"),
        },
    };
    (final_state.cloned(), winner)
}

impl Model {
    fn side(&mut self, side: Side) -> &mut Files {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Predicts one run, and advances the model to its result.
    fn run(&mut self, mode: SyncMode, policy: ConflictPolicy) -> Expected {
        let mut expected = Expected {
            files: Files::new(),
            conflicts: BTreeMap::new(),
        };
        for name in NAMES {
            let (anc, a, b) = (self.ancestor.get(name), self.a.get(name), self.b.get(name));
            let (state, winner) = decide(mode, policy, anc, a, b);
            if let Some(content) = state {
                expected.files.insert(name.to_string(), content);
            }
            if let Some(w) = winner {
                expected.conflicts.insert(name.to_string(), w);
            }
        }
        self.ancestor = expected.files.clone();
        self.a = expected.files.clone();
        self.b = expected.files.clone();
        expected
    }
}

// ---------------------------------------------------------------- real folders

/// A side's files on disk, without `.ferry/`. Anything but a regular file shows up as a
/// marker content, so it can never match the model.
fn files_on_disk(root: &Path) -> Files {
    let mut out = Files::new();
    for e in std::fs::read_dir(root).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_str().unwrap().to_string();
        if name == ".ferry" {
            continue;
        }
        let t = e.file_type().unwrap();
        let content = if t.is_file() {
            std::fs::read(e.path()).unwrap()
        } else {
            format!("<not a regular file: {t:?}>").into_bytes()
        };
        out.insert(name, content);
    }
    out
}

/// Every file content kept in a side's version store.
fn versions(root: &Path) -> BTreeSet<Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeSet<Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                walk(&p, out);
            } else if m.is_file() {
                out.insert(std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&root.join(".ferry").join("versions"), &mut out);
    out
}

fn shown(c: &[u8]) -> String {
    String::from_utf8_lossy(c).into_owned()
}

/// Two real folders, their index, and the model that shadows them.
struct World {
    pair: Pair,
    model: Model,
    writes: u32,
}

impl World {
    fn new() -> World {
        World {
            pair: Pair::new(),
            model: Model::default(),
            writes: 0,
        }
    }

    fn root(&self, side: Side) -> &Path {
        match side {
            Side::A => &self.pair.a,
            Side::B => &self.pair.b,
        }
    }

    /// Writes `content` to `name` on `side`, on disk and in the model.
    fn write(&mut self, side: Side, name: &str, content: &str) {
        std::fs::write(self.root(side).join(name), content).unwrap();
        let files = self.model.side(side);
        files.insert(name.to_string(), content.as_bytes().to_vec());
    }

    /// Writes content never seen before in this world.
    fn write_fresh(&mut self, side: Side, name: &str) {
        self.writes += 1;
        let content = format!("{name}: write #{} on side {}", self.writes, side.letter());
        self.write(side, name, &content);
    }

    /// Deletes `name` on `side` if it is there, on disk and in the model.
    fn delete(&mut self, side: Side, name: &str) {
        let path = self.root(side).join(name);
        if std::fs::symlink_metadata(&path).is_ok() {
            std::fs::remove_file(path).unwrap();
        }
        self.model.side(side).remove(name);
    }

    /// Runs the real sync and the model, and checks that they agree exactly.
    fn sync(
        &mut self,
        mode: SyncMode,
        policy: ConflictPolicy,
    ) -> Result<SyncOutcome, TestCaseError> {
        for side in [Side::A, Side::B] {
            let disk = files_on_disk(self.root(side));
            let model = self.model.side(side).clone();
            prop_assert_eq!(
                disk,
                model,
                "harness: side {:?} out of step before the run",
                side
            );
        }
        let before = [self.model.a.clone(), self.model.b.clone()];
        let expected = self.model.run(mode, policy);

        let opts = SyncOptions {
            mode: Some(mode),
            policy: Some(policy),
            yes: true,
            ..Default::default()
        };
        let p = &mut self.pair;
        let out = sync(&mut p.index, &p.a, &p.b, &opts, &NoProgress).unwrap();
        prop_assert!(
            out.problems.is_empty(),
            "run reported errors: {:?}",
            out.problems
        );

        for side in [Side::A, Side::B] {
            let disk = files_on_disk(self.root(side));
            prop_assert_eq!(
                &disk,
                &expected.files,
                "side {:?} differs from the model ({:?}, {:?}); plan: {:#?}",
                side,
                mode,
                policy,
                out.plan
            );
        }

        let conflicts: BTreeMap<String, Option<Side>> = out
            .plan
            .conflicts
            .iter()
            .map(|c| (c.path.as_str().to_string(), c.winner))
            .collect();
        let predicted: BTreeMap<String, Option<Side>> = expected
            .conflicts
            .iter()
            .map(|(n, w)| (n.clone(), Some(*w)))
            .collect();
        prop_assert_eq!(conflicts, predicted, "conflicts differ from the model");
        for c in &out.plan.conflicts {
            prop_assert!(
                c.loser_kept_at.is_some(),
                "conflict at {} keeps no loser",
                c.path.as_str()
            );
        }

        // What a side held before and lost in this run is in that side's version store.
        for (side, held) in [Side::A, Side::B].into_iter().zip(&before) {
            let kept = versions(self.root(side));
            for (name, content) in held {
                if expected.files.get(name) != Some(content) {
                    prop_assert!(
                        kept.contains(content),
                        "side {:?} lost {:?} at {} without keeping a version; kept: {:?}",
                        side,
                        shown(content),
                        name,
                        kept.iter().map(|c| shown(c)).collect::<Vec<_>>()
                    );
                }
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------- properties

#[derive(Debug, Clone, Copy)]
enum Op {
    Write(usize),
    Delete(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    prop_oneof![
        2 => name.clone().prop_map(Op::Write),
        1 => name.prop_map(Op::Delete),
    ]
}

/// One round: user operations on A, then on B, then one run with this mode and policy.
type Round = (Vec<Op>, Vec<Op>, SyncMode, ConflictPolicy);

fn rounds(modes: Vec<SyncMode>) -> impl Strategy<Value = Vec<Round>> {
    let policies = vec![ConflictPolicy::Source, ConflictPolicy::Target];
    prop::collection::vec(
        (
            prop::collection::vec(op(), 0..5),
            prop::collection::vec(op(), 0..5),
            prop::sample::select(modes),
            prop::sample::select(policies),
        ),
        1..6,
    )
}

fn play(rounds: &[Round]) -> Result<(), TestCaseError> {
    let mut w = World::new();
    for (ops_a, ops_b, mode, policy) in rounds {
        for (side, ops) in [(Side::A, ops_a), (Side::B, ops_b)] {
            for op in ops {
                match *op {
                    Op::Write(n) => w.write_fresh(side, NAMES[n]),
                    Op::Delete(n) => w.delete(side, NAMES[n]),
                }
            }
        }
        w.sync(*mode, *policy)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 300, ..ProptestConfig::default() })]

    #[test]
    fn bidirectional_runs_match_the_model(rounds in rounds(vec![SyncMode::Bidirectional])) {
        play(&rounds)?;
    }

    #[test]
    fn mirror_runs_match_the_model(rounds in rounds(vec![SyncMode::Mirror])) {
        play(&rounds)?;
    }

    #[test]
    fn mixed_mode_runs_match_the_model(
        rounds in rounds(vec![SyncMode::Bidirectional, SyncMode::Mirror])
    ) {
        play(&rounds)?;
    }
}

// ---------------------------------------------------------------- examples

/// A world where `f0` = "base" was synced to both sides.
fn synced_base() -> World {
    let mut w = World::new();
    w.write(Side::A, "f0", "base");
    w.sync(SyncMode::Bidirectional, ConflictPolicy::Source)
        .unwrap();
    w
}

#[test]
fn both_edit_source_wins_and_loser_is_versioned() {
    let mut w = synced_base();
    w.write(Side::A, "f0", "edit on A");
    w.write(Side::B, "f0", "edit on B");
    let out = w
        .sync(SyncMode::Bidirectional, ConflictPolicy::Source)
        .unwrap();
    assert_eq!(std::fs::read(w.pair.b.join("f0")).unwrap(), b"edit on A");
    assert!(versions(&w.pair.b).contains(b"edit on B".as_slice()));
    assert_eq!(out.plan.conflicts.len(), 1);
    assert_eq!(out.plan.conflicts[0].winner, Some(Side::A));
}

#[test]
fn both_edit_target_wins_and_loser_is_versioned() {
    let mut w = synced_base();
    w.write(Side::A, "f0", "edit on A");
    w.write(Side::B, "f0", "edit on B");
    w.sync(SyncMode::Bidirectional, ConflictPolicy::Target)
        .unwrap();
    assert_eq!(std::fs::read(w.pair.a.join("f0")).unwrap(), b"edit on B");
    assert!(versions(&w.pair.a).contains(b"edit on A".as_slice()));
}

#[test]
fn modification_beats_deletion_whatever_the_policy() {
    for policy in [ConflictPolicy::Source, ConflictPolicy::Target] {
        let mut w = synced_base();
        w.delete(Side::A, "f0");
        w.write(Side::B, "f0", "edit on B");
        let out = w.sync(SyncMode::Bidirectional, policy).unwrap();
        assert_eq!(std::fs::read(w.pair.a.join("f0")).unwrap(), b"edit on B");
        assert!(out.plan.conflicts.is_empty());
    }
}

#[test]
fn mirror_overwrites_target_edits_and_deletes_target_extras() {
    let mut w = synced_base();
    w.write(Side::B, "f0", "edit on B");
    w.write(Side::B, "f1", "new on B");
    w.sync(SyncMode::Mirror, ConflictPolicy::Source).unwrap();
    assert_eq!(files_on_disk(&w.pair.b), files_on_disk(&w.pair.a));
    assert_eq!(std::fs::read(w.pair.b.join("f0")).unwrap(), b"base");
    let kept = versions(&w.pair.b);
    assert!(kept.contains(b"edit on B".as_slice()) && kept.contains(b"new on B".as_slice()));
}
