//! Property tests of whole sync runs on real folders: random operation sequences on
//! both sides between runs, then the invariants every run must keep:
//! - bidirectional: both trees end identical (unless a conflict is left for the user);
//! - mirror: the target equals the source, and the source is untouched;
//! - no content present before a run is lost: it is on disk or in a version store;
//! - a second run right after changes nothing.

use ferry_core::plan::{ConflictPolicy, SyncMode};
use ferry_core::NoProgress;
use ferry_core::{sync, SyncOptions, SyncOutcome};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

mod common;
use common::{tree_without_ferry, Node, Pair};

/// Every file content anywhere under the root, version stores included.
fn contents(root: &Path, out: &mut BTreeSet<Vec<u8>>) {
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            contents(&p, out);
        } else if m.is_file() && p.file_name().unwrap() != "location" {
            out.insert(std::fs::read(&p).unwrap());
        }
    }
}

/// Names are bytes. `a\xe9` is not valid UTF-8 (a Latin-1 `aé`): its index key
/// `a\0e9` sorts between `a` and `a/…`, so walks, index rows and subtrees of both
/// interleave. (It took the place of `b`, so saved failure seeds still replay the same
/// shapes of operations.)
const NAMES: [&[u8]; 3] = [b"a", b"a\xe9", b"c"];

#[derive(Debug, Clone)]
enum Op {
    Write(PathBuf, u32),
    Delete(PathBuf),
    Mkdir(PathBuf),
    Rename(PathBuf, PathBuf),
    TypeChange(PathBuf, u32),
    Symlink(PathBuf, u32),
    Chmod(PathBuf, bool),
}

fn path_strategy() -> impl Strategy<Value = PathBuf> {
    prop::collection::vec(prop::sample::select(&NAMES[..]), 1..=3)
        .prop_map(|v| PathBuf::from(OsStr::from_bytes(&v.join(&b'/'))))
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (path_strategy(), 0u32..1000).prop_map(|(p, c)| Op::Write(p, c)),
        2 => path_strategy().prop_map(Op::Delete),
        1 => path_strategy().prop_map(Op::Mkdir),
        2 => (path_strategy(), path_strategy()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => (path_strategy(), 0u32..1000).prop_map(|(p, c)| Op::TypeChange(p, c)),
        1 => (path_strategy(), 0u32..5).prop_map(|(p, t)| Op::Symlink(p, t)),
        1 => (path_strategy(), any::<bool>()).prop_map(|(p, x)| Op::Chmod(p, x)),
    ]
}

/// Whether `rel`'s parent is (or can be made) a real directory without destroying data.
fn parent_ready(root: &Path, rel: &Path) -> bool {
    let mut cur = root.to_path_buf();
    let parts: Vec<&OsStr> = rel.iter().collect();
    for part in &parts[..parts.len() - 1] {
        cur.push(part);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return false,
            Err(_) => std::fs::create_dir(&cur).unwrap(),
        }
    }
    true
}

/// Applies an operation like a user would; operations that make no sense are skipped.
fn apply(root: &Path, op: &Op, salt: u32) {
    let at = |p: &Path| root.join(p);
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    let is_dir = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    match op {
        Op::Write(p, c) => {
            if parent_ready(root, p) && !is_dir(&at(p)) {
                if std::fs::symlink_metadata(at(p)).is_ok_and(|m| m.file_type().is_symlink()) {
                    std::fs::remove_file(at(p)).unwrap();
                }
                let content = format!("content {c} salt {salt} of {}", p.display());
                std::fs::write(at(p), content).unwrap();
            }
        }
        Op::Delete(p) => {
            if is_dir(&at(p)) {
                std::fs::remove_dir_all(at(p)).unwrap();
            } else if exists(&at(p)) {
                std::fs::remove_file(at(p)).unwrap();
            }
        }
        Op::Mkdir(p) => {
            if parent_ready(root, p) && !exists(&at(p)) {
                std::fs::create_dir(at(p)).unwrap();
            }
        }
        Op::Rename(from, to) => {
            let (f, t) = (at(from), at(to));
            if exists(&f) && !exists(&t) && !to.starts_with(from) && parent_ready(root, to) {
                std::fs::rename(f, t).unwrap();
            }
        }
        Op::TypeChange(p, c) => {
            if is_dir(&at(p)) {
                std::fs::remove_dir_all(at(p)).unwrap();
                std::fs::write(at(p), format!("was a dir {c} salt {salt}")).unwrap();
            } else if exists(&at(p)) {
                std::fs::remove_file(at(p)).unwrap();
                std::fs::create_dir(at(p)).unwrap();
                std::fs::write(at(p).join("x"), format!("was a file {c} salt {salt}")).unwrap();
            }
        }
        Op::Symlink(p, t) => {
            if parent_ready(root, p) && !exists(&at(p)) {
                // Every other target is not valid UTF-8 either.
                let odd: &[u8] = if t % 2 == 0 { b"\xe9" } else { b"" };
                let target = [b"target-", odd, t.to_string().as_bytes()].concat();
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), at(p)).unwrap();
            }
        }
        Op::Chmod(p, x) => {
            let f = at(p);
            if std::fs::symlink_metadata(&f).is_ok_and(|m| m.is_file()) {
                let mode = if *x { 0o755 } else { 0o600 };
                std::fs::set_permissions(f, std::fs::Permissions::from_mode(mode)).unwrap();
            }
        }
    }
}

impl Pair {
    /// One run; `batch` sets the paths per batch (`None`: the default, so these
    /// small trees are planned whole; a few paths: batches end everywhere).
    fn sync(
        &mut self,
        mode: SyncMode,
        policy: ConflictPolicy,
        batch: Option<usize>,
    ) -> SyncOutcome {
        let opts = SyncOptions {
            mode: Some(mode),
            policy: Some(policy),
            yes: true,
            batch_paths: batch,
            ..Default::default()
        };
        sync(&mut self.index, &self.a, &self.b, &opts, &NoProgress).unwrap()
    }

    /// Plans a run from the index as it is, without the unchanged-conduit short cut.
    fn replan(&mut self, mode: SyncMode, policy: ConflictPolicy) -> ferry_core::plan::Plan {
        let la = ferry_core::replica::open_location(&mut self.index, &self.a, false).unwrap();
        let lb = ferry_core::replica::open_location(&mut self.index, &self.b, false).unwrap();
        let (ea, eb) = (
            self.index.entries(la.id()).unwrap(),
            self.index.entries(lb.id()).unwrap(),
        );
        ferry_core::plan::reconcile(ferry_core::plan::ReconcileInput {
            a: &ea,
            b: &eb,
            mode,
            policy,
            now: 0,
            occupied: &|_| false,
        })
        .unwrap()
    }

    fn all_contents(&self) -> BTreeSet<Vec<u8>> {
        let mut s = BTreeSet::new();
        contents(&self.a, &mut s);
        contents(&self.b, &mut s);
        s
    }
}

fn policy_strategy() -> impl Strategy<Value = ConflictPolicy> {
    prop::sample::select(vec![
        ConflictPolicy::Newest,
        ConflictPolicy::KeepBoth,
        ConflictPolicy::Source,
        ConflictPolicy::Target,
    ])
}

type Rounds = Vec<(Vec<Op>, Vec<Op>)>;

fn rounds() -> impl Strategy<Value = Rounds> {
    prop::collection::vec(
        (
            prop::collection::vec(op_strategy(), 0..6),
            prop::collection::vec(op_strategy(), 0..6),
        ),
        1..4,
    )
}

/// Every content that existed before a run still exists somewhere (either side or a
/// version store).
fn no_content_lost(before: &BTreeSet<Vec<u8>>, pair: &Pair) -> Result<(), TestCaseError> {
    let after = pair.all_contents();
    let lost: Vec<_> = before
        .difference(&after)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    prop_assert!(lost.is_empty(), "content lost: {:?}", lost);
    Ok(())
}

/// The paths of a run's conflicts left for the user, as file-system paths.
fn open_conflicts(out: &SyncOutcome) -> Vec<PathBuf> {
    out.plan
        .conflicts
        .iter()
        .filter(|c| c.winner.is_none())
        .map(|c| PathBuf::from(OsStr::from_bytes(&c.path.to_bytes())))
        .collect()
}

fn check_run(
    pair: &mut Pair,
    mode: SyncMode,
    policy: ConflictPolicy,
    batch: Option<usize>,
) -> Result<(), TestCaseError> {
    let before = pair.all_contents();
    let a_before = tree_without_ferry(&pair.a);
    let out = pair.sync(mode, policy, batch);
    prop_assert!(out.problems.is_empty(), "errors: {:?}", out.problems);
    no_content_lost(&before, pair)?;
    let (ta, tb) = (tree_without_ferry(&pair.a), tree_without_ferry(&pair.b));
    prop_assert_eq!(&ta, &tb, "trees differ after sync; plan: {:#?}", out.plan);
    if mode == SyncMode::Mirror {
        prop_assert_eq!(&a_before, &ta, "mirror changed its source");
    }
    // Reconciling the converged index from scratch plans nothing (the run's own
    // short cut for unchanged conduits must not be what makes the next run empty).
    let fresh = pair.replan(mode, policy);
    prop_assert!(
        fresh.actions.is_empty(),
        "converged state still plans: {:#?}",
        fresh.actions
    );
    let again = pair.sync(mode, policy, batch);
    prop_assert!(again.problems.is_empty(), "errors: {:?}", again.problems);
    prop_assert!(
        again.planned.total() == 0,
        "second run not a no-op: {:?} {:#?}",
        again.planned,
        again.plan.actions
    );
    Ok(())
}

/// The node at `path` and everything below it (`Path::starts_with` compares whole
/// components).
fn subtree(tree: &BTreeMap<PathBuf, Node>, path: &Path) -> BTreeMap<PathBuf, Node> {
    tree.iter()
        .filter(|(p, _)| p.starts_with(path))
        .map(|(p, n)| (p.clone(), n.clone()))
        .collect()
}

/// Everything but the open conflicts (each with everything below it).
fn outside(tree: &BTreeMap<PathBuf, Node>, open: &[PathBuf]) -> BTreeMap<PathBuf, Node> {
    tree.iter()
        .filter(|(p, _)| !open.iter().any(|c| p.starts_with(c)))
        .map(|(p, n)| (p.clone(), n.clone()))
        .collect()
}

/// One bidirectional run with the manual policy: conflicts are left for the user,
/// untouched on both sides; everything else converges; nothing is lost; a second run
/// finds the same open conflicts and has nothing to do.
fn check_manual_run(pair: &mut Pair, batch: Option<usize>) -> Result<(), TestCaseError> {
    let before = pair.all_contents();
    let (a0, b0) = (tree_without_ferry(&pair.a), tree_without_ferry(&pair.b));
    let out = pair.sync(SyncMode::Bidirectional, ConflictPolicy::Manual, batch);
    prop_assert!(out.problems.is_empty(), "errors: {:?}", out.problems);
    no_content_lost(&before, pair)?;
    let open = open_conflicts(&out);
    let (a1, b1) = (tree_without_ferry(&pair.a), tree_without_ferry(&pair.b));
    // Conflicted paths stay exactly as the user left them on both sides.
    for path in &open {
        prop_assert_eq!(
            subtree(&a0, path),
            subtree(&a1, path),
            "open conflict {} changed on A",
            path.display()
        );
        prop_assert_eq!(
            subtree(&b0, path),
            subtree(&b1, path),
            "open conflict {} changed on B",
            path.display()
        );
    }
    prop_assert_eq!(
        outside(&a1, &open),
        outside(&b1, &open),
        "trees differ outside the open conflicts {:?}; plan: {:#?}",
        open,
        out.plan
    );
    // Settled: the next run leaves the same conflicts open and changes nothing.
    let again = pair.sync(SyncMode::Bidirectional, ConflictPolicy::Manual, batch);
    prop_assert!(again.problems.is_empty(), "errors: {:?}", again.problems);
    prop_assert!(
        again.planned.total() == 0,
        "second run not settled: {:?} {:#?}",
        again.planned,
        again.plan.actions
    );
    // The same set: a run in batches lists a batch's conflicts as it meets them, and
    // a path met in a batch the first time can be met in another the second.
    let (mut still_open, mut open) = (open_conflicts(&again), open);
    still_open.sort();
    open.sort();
    prop_assert_eq!(&still_open, &open, "the second run found other conflicts");
    prop_assert_eq!(
        &tree_without_ferry(&pair.a),
        &a1,
        "the second run changed A"
    );
    prop_assert_eq!(
        &tree_without_ferry(&pair.b),
        &b1,
        "the second run changed B"
    );
    Ok(())
}

/// Paths per batch: the default (small trees planned whole) or a few, so batch
/// boundaries fall between a directory and its contents, a rename's two ends, …
fn batch_strategy() -> impl Strategy<Value = Option<usize>> {
    prop::option::of(1usize..4)
}

/// A tree with the time in conflict copies' names left out (`….conflict-T-a.ext`): the
/// two runs compared may fall on either side of a second. So may two conflicts of one
/// path in successive runs: in the same second the second copy's name gets `-2`, in
/// another second it does not. Neither is left out by collapsing: the number after the
/// side goes too, and each name holds every node that had it, sorted.
fn unstamped(root: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (p, n) in tree_without_ferry(root) {
        let mut s = p.to_string_lossy().into_owned();
        let mut from = 0;
        while let Some(i) = s[from..].find(".conflict-").map(|i| i + from) {
            let at = i + ".conflict-".len();
            let stamp = s.as_bytes()[at..]
                .iter()
                .take(15)
                .all(|b| b.is_ascii_digit() || *b == b'-');
            if stamp && s.len() >= at + 15 {
                s.replace_range(at..at + 15, "T");
                // `T-a-2…`: the collision number after the side letter.
                let side_end = at + 3;
                if s.as_bytes().get(side_end) == Some(&b'-') {
                    let digits = s.as_bytes()[side_end + 1..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .count();
                    if digits > 0 {
                        s.replace_range(side_end..side_end + 1 + digits, "");
                    }
                }
            }
            from = at;
        }
        out.entry(s).or_default().push(format!("{n:?}"));
    }
    for nodes in out.values_mut() {
        nodes.sort();
    }
    out
}

/// The same operations on two pairs, one run in batches of `batch` paths and one
/// planned whole, end in the same trees (the batched plan is the whole plan). Not with
/// `newest`: two writes on one coarse clock tick may tie in one pair and not the other.
fn batched_equals_whole(
    rounds: &Rounds,
    mode: SyncMode,
    policy: ConflictPolicy,
    batch: usize,
) -> Result<(), TestCaseError> {
    let (mut batched, mut whole) = (Pair::new(), Pair::new());
    for (i, (ops_a, ops_b)) in rounds.iter().enumerate() {
        for pair in [&mut batched, &mut whole] {
            for op in ops_a {
                apply(&pair.a, op, i as u32 * 2);
            }
            for op in ops_b {
                apply(&pair.b, op, i as u32 * 2 + 1);
            }
        }
        let x = batched.sync(mode, policy, Some(batch));
        let y = whole.sync(mode, policy, None);
        prop_assert!(
            x.problems.is_empty() && y.problems.is_empty(),
            "errors: {:?} {:?}",
            x.problems,
            y.problems
        );
        prop_assert_eq!(x.planned, y.planned, "planned differently");
        for (p, q) in [(&batched.a, &whole.a), (&batched.b, &whole.b)] {
            prop_assert_eq!(unstamped(p), unstamped(q), "round {}: trees differ", i);
        }
        // The same conflicts (a run in batches meets them batch by batch).
        let (mut cx, mut cy) = (open_conflicts(&x), open_conflicts(&y));
        cx.sort();
        cy.sort();
        prop_assert_eq!(cx, cy);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn bidirectional_converges_and_loses_nothing(rounds in rounds(), policy in policy_strategy(), batch in batch_strategy()) {
        let mut pair = Pair::new();
        for (i, (ops_a, ops_b)) in rounds.iter().enumerate() {
            for op in ops_a { apply(&pair.a, op, i as u32 * 2); }
            for op in ops_b { apply(&pair.b, op, i as u32 * 2 + 1); }
            check_run(&mut pair, SyncMode::Bidirectional, policy, batch)?;
        }
    }

    #[test]
    fn manual_policy_loses_nothing_and_settles(rounds in rounds(), batch in batch_strategy()) {
        let mut pair = Pair::new();
        for (i, (ops_a, ops_b)) in rounds.iter().enumerate() {
            for op in ops_a { apply(&pair.a, op, i as u32 * 2); }
            for op in ops_b { apply(&pair.b, op, i as u32 * 2 + 1); }
            check_manual_run(&mut pair, batch)?;
        }
    }

    #[test]
    fn mirror_makes_target_equal_source(rounds in rounds(), batch in batch_strategy()) {
        let mut pair = Pair::new();
        for (i, (ops_a, ops_b)) in rounds.iter().enumerate() {
            for op in ops_a { apply(&pair.a, op, i as u32 * 2); }
            for op in ops_b { apply(&pair.b, op, i as u32 * 2 + 1); }
            check_run(&mut pair, SyncMode::Mirror, ConflictPolicy::Newest, batch)?;
        }
    }

    #[test]
    fn runs_in_batches_end_as_runs_planned_whole(
        rounds in rounds(),
        policy in prop::sample::select(vec![ConflictPolicy::Source, ConflictPolicy::Target, ConflictPolicy::Manual]),
        mirror in any::<bool>(),
        batch in 1usize..4,
    ) {
        let mode = if mirror { SyncMode::Mirror } else { SyncMode::Bidirectional };
        batched_equals_whole(&rounds, mode, policy, batch)?;
    }
}
