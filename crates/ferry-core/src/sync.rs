//! One run of a conduit: open both locations, scan, reconcile, check the safety
//! thresholds, execute, and record the generation.

use crate::batched::{Batching, OnePhase, Survey};
use crate::cancel::Cancel;
use crate::error::{Error, IoContext, Result};
use crate::execute::Executor;
use crate::index::{ConduitRow, GenerationStats, Index};
use crate::index::{ConflictStatus, RunStatus};
use crate::model::entry::Entry;
use crate::model::rel_path::RelPath;
use crate::plan::itemize::Item;
use crate::plan::reconcile::{reconcile, ReconcileInput};
use crate::plan::{ConflictPolicy, ConflictRecord, Plan, PlanCounts, Side, SyncMode};
use crate::problem::Problem;
use crate::progress::Progress;
use crate::replica::chunk_source::ChunkSource;
use crate::replica::ignore_rules::IndexRules;
use crate::replica::location::{canonical_root, open_location, open_location_dry, Location};
use crate::replica::overlap::{check_roots, DirId};
use crate::replica::scan::{scan_one, scan_pair_scoped, ScanReport, Scope};
use crate::replica::view::{IndexedReplica, ReplicaView};
use crate::replica::writer::{LocalFolder, ReplicaWriter};
use crate::throttle::RateLimiter;
use std::path::{Path, PathBuf};

use crate::plan::batches::{PathBatches, DEFAULT_BATCH_PATHS};

/// A run that would delete more than this many files of a side…
const MASS_DELETE_MIN: usize = 10;

/// Options of `ferry sync`.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Overrides (and updates) the conduit's stored mode.
    pub mode: Option<SyncMode>,
    /// Overrides (and updates) the conduit's stored conflict policy.
    pub policy: Option<ConflictPolicy>,
    /// Overrides (and updates) whether the conduit indexes everything (no ignore
    /// rules, `.ferryignore` files included).
    pub index_everything: Option<bool>,
    /// Overrides (and updates) the conduit's copies at once (0: one per core).
    pub parallel: Option<u32>,
    /// Overrides (and updates) the conduit's bandwidth limit in bytes/s (0: none).
    pub bandwidth_limit: Option<u64>,
    /// Sets the conduit's version retention (a spec `Retention::parse` accepts).
    pub retention: Option<String>,
    /// Plan only; change nothing: no file, no marker, no index row. [`sync`] and
    /// [`sync_conduit`] run the whole dry run inside [`Index::discarding`].
    pub dry_run: bool,
    /// Proceed past the safety stops (mass deletion, missing marker).
    pub yes: bool,
    /// Test hook: a failure injected at a named point (the `fault-injection` feature).
    #[cfg(feature = "fault-injection")]
    pub fault: crate::execute::FaultPoint,
    /// What started the run, recorded with its generation (`cli` when unset).
    pub trigger: Option<&'static str>,
    /// Record no generation for a run with nothing to do (the daemon's many no-op runs).
    pub skip_empty: bool,
    /// Scan only these paths of the conduit's location A and B (what file-system
    /// events touched) instead of both whole locations; `None` scans everything.
    /// Untouched entries keep their index rows, so the plan covers what changed.
    pub only: Option<[Vec<RelPath>; 2]>,
    /// Stops the run at its next safe point when set (see [`crate::cancel`]); the
    /// outcome then says `interrupted` and its generation is recorded as such.
    pub cancel: Option<Cancel>,
    /// Settings a conduit gets when this run creates it and no option above sets them
    /// (the CLI's config file); an existing conduit keeps its own.
    pub new_conduit: NewConduitDefaults,
    /// For a conduit with another device's copy of a shared folder: where that
    /// device's content is read from (a connection to it). Without one, copies from
    /// that device fail as unavailable and the next run retries.
    pub pull: Option<PullSource>,
    /// Paths planned and run per batch in a large run (default 20,000; see
    /// `plan/batches.rs`). Tests set it small so batch boundaries fall everywhere.
    pub batch_paths: Option<usize>,
}

/// Content of another device's files, by hash (see [`SyncOptions::pull`]).
#[derive(Clone)]
pub struct PullSource(pub std::sync::Arc<dyn ChunkSource + Send + Sync>);

impl std::fmt::Debug for PullSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PullSource")
    }
}

/// One side of a run: a folder on this device, or another device's copy of a shared
/// folder (its entries are the ones that device sent; it applies its own plan).
enum Replica {
    Here(Location),
    Peer(crate::index::LocationRow),
}

impl Replica {
    fn id(&self) -> i64 {
        match self {
            Replica::Here(l) => l.id(),
            Replica::Peer(r) => r.id,
        }
    }

    fn root(&self) -> PathBuf {
        match self {
            Replica::Here(l) => l.root.clone(),
            Replica::Peer(r) => r.root.clone(),
        }
    }

    fn here(&self) -> Option<&Location> {
        match self {
            Replica::Here(l) => Some(l),
            Replica::Peer(_) => None,
        }
    }
}

/// Defaults for a conduit created by [`open_conduit`].
#[derive(Debug, Clone, Default)]
pub struct NewConduitDefaults {
    /// The conflict policy (else the mode's default).
    pub policy: Option<ConflictPolicy>,
    /// A version retention spec (`Retention::parse`).
    pub retention: Option<String>,
}

impl SyncOptions {
    fn cancelled(&self) -> bool {
        crate::cancel::is_cancelled(self.cancel.as_ref())
    }
}

/// What a run did (or, with `dry_run`, would do).
#[derive(Debug, Clone)]
pub struct SyncOutcome {
    /// The conduit that ran.
    pub conduit_id: i64,
    /// The run's generation (`ferry history`); `None` for a dry run or a skipped
    /// empty run.
    pub generation_id: Option<i64>,
    /// The mode the run used.
    pub mode: SyncMode,
    /// The conflict policy the run used.
    pub policy: ConflictPolicy,
    /// What scanning side A found.
    pub scan_a: ScanReport,
    /// What scanning side B found.
    pub scan_b: ScanReport,
    /// The plan: every action of a run planned whole; only the conflicts of a large
    /// run planned and run in batches (`planned` counts its actions either way).
    pub plan: Plan,
    /// How many actions of each kind the run planned.
    pub planned: PlanCounts,
    /// What the run carried out: files copied, deleted, renamed, bytes moved, errors.
    pub stats: GenerationStats,
    /// The conduit's two folders as the user knows them, in the conduit's order (a
    /// pair named the other way round is shown as the conduit has it).
    pub roots: [PathBuf; 2],
    /// What the run carried out, one item per path (conflicts last); empty for a dry
    /// run, whose plan says what it would do ([`crate::plan::itemize::plan_items`]).
    pub done: Vec<Item>,
    /// Items carried out but not in `done`: a run in batches keeps the first 10,000
    /// there; its generation's record (`ferry history show`) has them all.
    pub done_omitted: u64,
    /// What could not be done, path by path (nothing was lost; see [`Problem`]).
    pub problems: Vec<Problem>,
    /// Things left alone on purpose (e.g. a path ignored on one side); not errors.
    pub notes: Vec<String>,
    /// Things the user should be told that need nothing done (a moved folder followed
    /// to its new root); unlike notes, they do not keep the conduit from converging.
    pub info: Vec<String>,
    /// The run only planned (see [`SyncOptions::dry_run`]).
    pub dry_run: bool,
    /// The run was asked to stop and did at a safe point (after the scan, or part-way
    /// through executing the plan): what completed is recorded, the rest is left for
    /// the next run. Its generation, if one was started, is `interrupted`.
    pub interrupted: bool,
    /// Selective mode: files of A made online-only after the run to meet its quota or
    /// free-space floor (least recently accessed first), and their bytes.
    pub dehydrated: Vec<String>,
    /// Bytes of `dehydrated`.
    pub bytes_dehydrated: u64,
}

impl SyncOutcome {
    /// Conflicts left for the user.
    pub fn open_conflicts(&self) -> usize {
        self.plan
            .conflicts
            .iter()
            .filter(|c| c.winner.is_none())
            .count()
    }
}

/// A conduit opened by [`open_conduit`], with its two locations.
pub struct OpenedConduit {
    /// The conduit's row, with the options of the run applied.
    pub conduit: ConduitRow,
    /// Its side A, opened (not locked).
    pub a: Location,
    /// Its side B, opened (not locked).
    pub b: Location,
    /// The folders as the user knows them, in the conduit's order.
    pub roots: [PathBuf; 2],
    /// What to tell the user: a folder created, a pair named the other way round.
    pub info: Vec<String>,
    /// A dry run over a second folder that does not exist yet plans against an empty
    /// stand-in folder, removed when this is dropped.
    _stand_in: Option<StandIn>,
}

/// An empty private folder standing in for one a real run would create.
struct StandIn(PathBuf);

impl StandIn {
    fn create() -> Result<StandIn> {
        use std::os::unix::fs::DirBuilderExt;
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ferry-dry-run-{}-{n}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&p)
            .ctx("create a stand-in folder", &p)?;
        Ok(StandIn(p))
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Opens (or creates) the conduit between roots `a` and `b` and its two locations.
///
/// - A pair is one conduit whichever order it is named in: named the other way round,
///   the existing conduit is used as it is (said in `info`) when that changes nothing
///   about its direction — it is bidirectional and no direction-bound setting (mirror
///   or archive mode, `source`/`target` policy) is asked for; otherwise it is refused.
/// - A second folder `b` that does not exist is created (said in `info`); its parent
///   must exist, and one the index knows (an unplugged or deleted folder) is created
///   only with `opts.yes`. A dry run creates nothing and plans against an empty folder.
///
/// Roots that overlap (by directory identity, see [`crate::replica::overlap`]) are refused
/// before anything is written. A changed mode that would undo an archive conduit is
/// refused ([`crate::plan::archive::check_mode_change`]), in a dry run too. With `opts.dry_run` this
/// must run inside [`Index::discarding`]: it stores settings, locations and the conduit
/// as a real run would, and the transaction's rollback forgets them.
pub fn open_conduit(
    index: &mut Index,
    a: &Path,
    b: &Path,
    opts: &SyncOptions,
) -> Result<OpenedConduit> {
    let mut info = Vec::new();
    let ra = canonical_root(a)?;
    let mut stand_in = None;
    let (rb, shown_b) = match missing_folder(index, &ra, b, opts.yes)? {
        None => {
            let rb = canonical_root(b)?;
            (rb.clone(), rb)
        }
        Some(would_be) if opts.dry_run => {
            info.push(format!(
                "{} does not exist; a real run creates it",
                would_be.display()
            ));
            let s = StandIn::create()?;
            let rb = s.0.clone();
            stand_in = Some(s);
            (rb, would_be)
        }
        Some(would_be) => {
            std::fs::create_dir(&would_be).ctx("create", &would_be)?;
            info.push(format!("created {} (it did not exist)", would_be.display()));
            let rb = canonical_root(&would_be)?;
            if let Err(e) = check_roots(&ra, &rb) {
                let _ = std::fs::remove_dir(&would_be);
                return Err(e);
            }
            (rb.clone(), rb)
        }
    };
    check_roots(&ra, &rb)?;
    let open = if opts.dry_run {
        open_location_dry
    } else {
        open_location
    };
    let la = open(index, &ra, opts.yes)?;
    let lb = open(index, &rb, opts.yes)?;
    let mut roots = [ra, shown_b];
    let (la, lb) = match index.conduit_between(la.id(), lb.id())? {
        Some(_) => (la, lb),
        None => match index.conduit_between(lb.id(), la.id())? {
            Some(reverse) => {
                check_reversed(&reverse, opts, &roots[0], &roots[1])?;
                info.push(format!(
                    "using conduit {} ({} ⇄ {}): the same pair, named the other way round",
                    reverse.id,
                    roots[1].display(),
                    roots[0].display()
                ));
                roots.swap(0, 1);
                (lb, la)
            }
            None => (la, lb),
        },
    };
    let existing = index.conduit_between(la.id(), lb.id())?;
    if let (Some(c), Some(mode)) = (&existing, opts.mode) {
        crate::plan::archive::check_mode_change(c.id, c.mode, mode, &la.root, &lb.root)?;
    }
    let created = existing.is_none();
    let conduit = match existing {
        Some(c) => {
            let mode = opts.mode.unwrap_or(c.mode);
            let policy = opts.policy.unwrap_or(c.conflict_policy);
            let everything = opts.index_everything.unwrap_or(c.index_everything);
            if mode != c.mode || policy != c.conflict_policy || everything != c.index_everything {
                index.update_conduit_settings(c.id, mode, policy, everything)?;
            }
            ConduitRow {
                mode,
                conflict_policy: policy,
                index_everything: everything,
                ..c
            }
        }
        None => index.insert_conduit(
            la.id(),
            lb.id(),
            opts.mode.unwrap_or(SyncMode::Bidirectional),
            (opts.policy.or(opts.new_conduit.policy)).unwrap_or(ConflictPolicy::Newest),
            opts.index_everything.unwrap_or(false),
        )?,
    };
    let retention = match &opts.retention {
        Some(spec) => Some(spec),
        None if created => opts.new_conduit.retention.as_ref(),
        None => None,
    };
    let conduit = match retention {
        Some(spec) => {
            crate::retention::Retention::parse(spec)?;
            index.set_conduit_retention(conduit.id, Some(spec))?;
            ConduitRow {
                retention: Some(spec.clone()),
                ..conduit
            }
        }
        _ => conduit,
    };
    let conduit = if opts.parallel.is_some() || opts.bandwidth_limit.is_some() {
        let parallel = opts.parallel.unwrap_or(conduit.parallel);
        let bandwidth_limit = opts.bandwidth_limit.unwrap_or(conduit.bandwidth_limit);
        index.set_conduit_transfer(conduit.id, parallel, bandwidth_limit)?;
        ConduitRow {
            parallel,
            bandwidth_limit,
            ..conduit
        }
    } else {
        conduit
    };
    Ok(OpenedConduit {
        conduit,
        a: la,
        b: lb,
        roots,
        info,
        _stand_in: stand_in,
    })
}

/// When `b` does not exist, where it would be (its parent's canonical path and its
/// name); `None` when it exists (or cannot be judged: opening it then says why).
/// Refuses a folder the index knows (unplugged? deleted?) unless `yes`, and one that
/// would lie inside `ra`.
fn missing_folder(index: &Index, ra: &Path, b: &Path, yes: bool) -> Result<Option<PathBuf>> {
    match std::fs::symlink_metadata(b) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        _ => return Ok(None),
    }
    let name = match b.file_name() {
        Some(n) if b.components().next_back() == Some(std::path::Component::Normal(n)) => n,
        _ => return Ok(None),
    };
    let parent = match b.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent = canonical_root(parent).map_err(|_| Error::Location {
        root: b.to_path_buf(),
        reason: format!(
            "does not exist, and neither does its parent folder {}; create it first",
            parent.display()
        ),
    })?;
    let would_be = parent.join(name);
    if !yes && index.location_by_root(&would_be)?.is_some() {
        return Err(Error::Location {
            root: would_be,
            reason: "was synced before but is gone (unplugged disk? deleted folder?); not \
                     syncing. To start it over as an empty folder, run again with --yes"
                .into(),
        });
    }
    let source = DirId::at(ra)?;
    for p in would_be.ancestors().skip(1) {
        if DirId::at(p)? == source {
            return Err(Error::Refused(format!(
                "{} would lie inside {}; a folder cannot be synced with its own subfolder",
                would_be.display(),
                ra.display()
            )));
        }
    }
    Ok(Some(would_be))
}

/// Whether the conduit `reverse` (`b` → `a`) may run when named as `a`, `b`: only as
/// it is, and only when that direction does not matter.
fn check_reversed(reverse: &ConduitRow, opts: &SyncOptions, a: &Path, b: &Path) -> Result<()> {
    let (a, b, id) = (a.display(), b.display(), reverse.id);
    if reverse.mode != SyncMode::Bidirectional {
        return Err(Error::Refused(format!(
            "conduit {id} already runs {b} → {a} in {mode} mode; named the other way round \
             ({a} first) it would work against it. Name the folders in its order (`ferry sync \
             {b} {a}`); to sync either folder with another one, use a different folder (a new \
             conduit); or remove conduit {id} first (`ferry conduit remove {id}`) to start a \
             new one {a} → {b}",
            mode = reverse.mode,
        )));
    }
    let asked = match (opts.mode, opts.policy) {
        (Some(m), _) if m != SyncMode::Bidirectional => Some(format!("--mode {}", m.as_str())),
        (_, Some(p @ (ConflictPolicy::Source | ConflictPolicy::Target))) => {
            Some(format!("--conflict {}", p.as_str()))
        }
        _ => None,
    };
    match asked {
        Some(what) => Err(Error::Refused(format!(
            "conduit {id} already syncs {b} ⇄ {a}, with {b} as its first folder; {what} names \
             a direction, and the folders are named the other way round. Name them in its \
             order (`ferry sync {b} {a} {what}`), or remove conduit {id} first (`ferry \
             conduit remove {id}`) to start a new one with {a} first"
        ))),
        None => Ok(()),
    }
}

/// Runs the conduit between `a` and `b` once.
pub fn sync(
    index: &mut Index,
    a: &Path,
    b: &Path,
    opts: &SyncOptions,
    progress: &dyn Progress,
) -> Result<SyncOutcome> {
    let run = |index: &mut Index| {
        let opened = open_conduit(index, a, b, opts)?;
        let replicas = [Replica::Here(opened.a), Replica::Here(opened.b)];
        let mut outcome = run_conduit(index, opened.conduit, replicas, opts, progress)?;
        outcome.roots = opened.roots;
        outcome.info.splice(0..0, opened.info);
        Ok(outcome)
    };
    if opts.dry_run {
        index.discarding(run)
    } else {
        run(index)
    }
}

/// Runs a saved conduit once by its ID, with its stored settings.
pub fn sync_conduit(
    index: &mut Index,
    id: i64,
    opts: &SyncOptions,
    progress: &dyn Progress,
) -> Result<SyncOutcome> {
    let conduit = index
        .conduit(id)?
        .ok_or_else(|| Error::Other(format!("no conduit {id}; see `ferry conduit list`")))?;
    let rows = [
        index.location(conduit.location_a)?,
        index.location(conduit.location_b)?,
    ];
    if rows.iter().all(|r| r.peer.is_none()) {
        check_roots(
            &canonical_root(&rows[0].root)?,
            &canonical_root(&rows[1].root)?,
        )?;
    }
    let open = if opts.dry_run {
        open_location_dry
    } else {
        open_location
    };
    let run = |index: &mut Index| {
        let [ra, rb] = rows.clone();
        let mut side = |row: crate::index::LocationRow| -> Result<Replica> {
            Ok(match row.peer {
                Some(_) => Replica::Peer(row),
                None => Replica::Here(open(index, &row.root, opts.yes)?),
            })
        };
        let replicas = [side(ra)?, side(rb)?];
        run_conduit(index, conduit, replicas, opts, progress)
    };
    if opts.dry_run {
        index.discarding(run)
    } else {
        run(index)
    }
}

/// One run of an opened conduit: lock, scan, reconcile, check, execute, record.
fn run_conduit(
    index: &mut Index,
    conduit: ConduitRow,
    replicas: [Replica; 2],
    opts: &SyncOptions,
    progress: &dyn Progress,
) -> Result<SyncOutcome> {
    let (mode, policy) = (conduit.mode, conduit.conflict_policy);
    let [ra, rb] = &replicas;
    let lock_a = ra.here().map(Location::lock).transpose()?;
    let lock_b = rb.here().map(Location::lock).transpose()?;
    let roots = [ra.root(), rb.root()];
    let moved_notes = || -> Vec<String> {
        (replicas.iter())
            .filter_map(|r| r.here().and_then(|l| l.moved_note()))
            .collect()
    };
    let rules = IndexRules {
        index_everything: conduit.index_everything,
    };

    let started = std::time::Instant::now();
    let [scope_a, scope_b] = match &opts.only {
        Some([a, b]) => [Scope::paths(a), Scope::paths(b)],
        None => [Scope::All, Scope::All],
    };
    let progress = &Stoppable {
        inner: progress,
        cancel: opts.cancel.as_ref(),
    };
    let scanned =
        match (
            ra.here().zip(lock_a.as_ref()),
            rb.here().zip(lock_b.as_ref()),
        ) {
            (Some(a), Some(b)) => {
                scan_pair_scoped(index, [a, b], rules, [&scope_a, &scope_b], progress)
            }
            (Some((la, held)), None) => scan_one(index, la, held, rules, &scope_a, progress)
                .map(|s| [s, ScanReport::default()]),
            (None, Some((lb, held))) => scan_one(index, lb, held, rules, &scope_b, progress)
                .map(|s| [ScanReport::default(), s]),
            (None, None) => Ok([ScanReport::default(), ScanReport::default()]),
        };
    let [scan_a, scan_b] = match scanned {
        Err(Error::Interrupted) => {
            // Stopped mid-scan: what it recorded is true, nothing else was written.
            return Ok(SyncOutcome {
                conduit_id: conduit.id,
                generation_id: None,
                mode,
                policy,
                scan_a: ScanReport::default(),
                scan_b: ScanReport::default(),
                plan: Plan::default(),
                planned: PlanCounts::default(),
                stats: GenerationStats::default(),
                roots: roots.clone(),
                done: Vec::new(),
                done_omitted: 0,
                problems: Vec::new(),
                notes: Vec::new(),
                info: moved_notes(),
                dry_run: opts.dry_run,
                interrupted: true,
                dehydrated: Vec::new(),
                bytes_dehydrated: 0,
            });
        }
        r => r?,
    };
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        targeted = opts.only.is_some(),
        "scanned both sides"
    );
    // Index-based short cut: when neither location's entries changed since this conduit
    // last converged, the plan is empty without loading or reconciling anything.
    let converged_at = |index: &Index| -> Result<(u64, u64)> {
        Ok((
            index.location_sequence(ra.id())?,
            index.location_sequence(rb.id())?,
        ))
    };
    let clean_point = index.conduit_clean_point(conduit.id)?;
    // Where the plan starts from. Another device's entries can arrive while the run
    // goes on (nothing locks them); a convergence point recorded at the end must not
    // cover those, or the next run would take them as synced and never plan them. A
    // local folder is locked for the run, so its end point is the run's own writes.
    let planned_at = converged_at(index)?;
    let settled_at = |index: &Index| -> Result<(u64, u64)> {
        let now = converged_at(index)?;
        Ok((
            if ra.here().is_some() {
                now.0
            } else {
                planned_at.0
            },
            if rb.here().is_some() {
                now.1
            } else {
                planned_at.1
            },
        ))
    };
    // Nothing to plan when stopping, or when nothing changed since the conduit converged.
    let nothing_to_plan =
        opts.cancelled() || (clean_point.is_some() && clean_point == Some(planned_at));
    // A large run is planned and run in batches when it can be (`batched.rs`).
    let batching = Batching {
        locations: [ra.id(), rb.id()],
        mode,
        policy,
        size: opts.batch_paths.unwrap_or(DEFAULT_BATCH_PATHS).max(1),
        point: clean_point,
    };
    let survey: Option<Survey> = if nothing_to_plan || opts.dry_run || !batching.worth_it(index)? {
        None
    } else {
        batching.survey(index)?
    };
    if let Some(surveyed) = &survey {
        // Before anything of a run in batches is done, as for a run planned whole.
        refuse_mass_deletion(index, [ra, rb], surveyed.file_deletions, opts.yes)?;
    }
    let plan = if nothing_to_plan || survey.is_some() {
        Plan::default()
    } else {
        plan_run(index, [ra, rb], mode, policy, opts.yes, clean_point)?
    };
    let planned = match &survey {
        Some(s) => s.counts,
        None => PlanCounts::of(&plan),
    };
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        actions = planned.total(),
        batched = survey.is_some(),
        "planned"
    );

    let mut outcome = SyncOutcome {
        conduit_id: conduit.id,
        generation_id: None,
        mode,
        policy,
        scan_a,
        scan_b,
        plan,
        planned,
        stats: GenerationStats::default(),
        roots: roots.clone(),
        done: Vec::new(),
        done_omitted: 0,
        problems: Vec::new(),
        notes: Vec::new(),
        info: moved_notes(),
        dry_run: opts.dry_run,
        interrupted: false,
        dehydrated: Vec::new(),
        bytes_dehydrated: 0,
    };
    for (side, scan) in [(Side::A, &outcome.scan_a), (Side::B, &outcome.scan_b)] {
        let mut found = scan.errors.clone();
        found.iter_mut().for_each(|p| p.side = Some(side));
        outcome.problems.extend(found);
    }
    // Said every run, but not a reason to plan the next one from scratch: what they
    // name is never indexed.
    let scan_notes: Vec<String> = (outcome.scan_a.notes.iter())
        .chain(&outcome.scan_b.notes)
        .cloned()
        .collect();
    if opts.dry_run || opts.cancelled() {
        // Asked to stop before anything was planned: the scan's rows are true
        // observations, nothing else was written, and no generation was started.
        outcome.interrupted = opts.cancelled();
        outcome.notes.extend(scan_notes);
        return Ok(outcome);
    }
    let no_conflicts = match &survey {
        Some(s) => !s.conflicts,
        None => outcome.plan.conflicts.is_empty(),
    };
    if opts.skip_empty && outcome.planned.total() == 0 && no_conflicts {
        // Nothing to do and nothing wrong: the conduit is in step, so the next run can
        // plan from what changes after this point.
        if outcome.problems.is_empty() && conduit.id != 0 {
            index.set_conduit_clean_point(conduit.id, Some(settled_at(index)?))?;
        }
        outcome.notes.extend(scan_notes);
        evict_selective(index, &conduit, [ra, rb], &mut outcome)?;
        sweep_partial_copies(index, [ra, rb]);
        return Ok(outcome);
    }

    let generation = index.begin_generation(conduit.id, opts.trigger.unwrap_or("cli"))?;
    outcome.generation_id = Some(generation);
    let limiter = (conduit.bandwidth_limit > 0).then(|| RateLimiter::new(conduit.bandwidth_limit));
    // A run in batches announces one copy phase with the survey's totals; the
    // batches' own announcements would restart the bar each time.
    let quiet = OnePhase(progress);
    let exec_progress: &dyn Progress = match &survey {
        Some(s) => {
            progress.phase("copy", Some(s.copy_bytes));
            progress.items_total(s.counts.copy);
            &quiet
        }
        None => progress,
    };
    let pull = (opts.pull.as_ref()).map(|p| &*p.0 as &(dyn ChunkSource + Sync));
    let plan_rest = |index: &Index| plan_run(index, [ra, rb], mode, policy, opts.yes, clean_point);
    let report = match (ra.here(), rb.here()) {
        // One side here, the other another device's copy: this folder applies its own
        // side of the plan, its copies' content pulled by hash from that device.
        (Some(here), None) | (None, Some(here)) => {
            let (side, other) = match ra.here() {
                Some(_) => (Side::A, rb.id()),
                None => (Side::B, ra.id()),
            };
            let mut writer = LocalFolder {
                index: &mut *index,
                location: here,
                side,
                other,
                workers: conduit.parallel as usize,
                limiter: limiter.as_ref(),
                generation: Some(generation),
                cancel: opts.cancel.as_ref(),
                #[cfg(feature = "fault-injection")]
                fault: opts.fault,
            };
            match &survey {
                Some(surveyed) => batched(
                    &mut outcome,
                    writer.apply_in_batches(
                        &batching,
                        surveyed,
                        &plan_rest,
                        pull,
                        exec_progress,
                    )?,
                ),
                None => writer.apply(&outcome.plan, pull, exec_progress)?,
            }
        }
        _ => {
            let mut exec = Executor {
                index: &mut *index,
                a: ra.here(),
                b: rb.here(),
                peer_b: rb.here().is_none().then(|| rb.id()),
                pull,
                progress: exec_progress,
                #[cfg(feature = "fault-injection")]
                fault: opts.fault,
                workers: conduit.parallel as usize,
                limiter: limiter.as_ref(),
                generation: Some(generation),
                cancel: opts.cancel.as_ref(),
            };
            match &survey {
                Some(surveyed) => {
                    batched(&mut outcome, batching.run(&mut exec, surveyed, &plan_rest)?)
                }
                None => exec.run(&outcome.plan)?,
            }
        }
    };
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        interrupted = report.interrupted,
        "executed the plan"
    );
    if report.interrupted {
        // Stopped at a safe point: the index holds what completed; the plan's conflicts
        // are recorded by the run that finishes the work.
        outcome.interrupted = true;
        outcome.done = report.done;
        outcome.done_omitted = report.done_omitted;
        outcome.stats = report.stats;
        outcome.problems.extend(report.problems);
        outcome.notes.extend(report.notes);
        outcome.stats.errors = outcome.problems.len() as u64;
        index.set_conduit_clean_point(conduit.id, None)?;
        index.record_generation_problems(generation, &outcome.problems)?;
        index.finish_generation(generation, RunStatus::Interrupted, &outcome.stats)?;
        index.prune_generation_actions(conduit.id)?;
        outcome.notes.extend(scan_notes);
        return Ok(outcome);
    }
    index.close_open_conflicts(conduit.id, ConflictStatus::Superseded)?;
    for c in &outcome.plan.conflicts {
        record_conflict(index, conduit.id, generation, c)?;
    }
    let conflict_items: Vec<Item> = outcome
        .plan
        .conflicts
        .iter()
        .map(Item::of_conflict)
        .collect();
    index.record_generation_actions(generation, &conflict_items)?;
    outcome.done = report.done;
    outcome.done_omitted = report.done_omitted;
    outcome.done.extend(conflict_items);
    outcome.stats = report.stats;
    outcome.stats.conflicts = outcome.plan.conflicts.len() as u64;
    outcome.stats.conflicts_resolved = outcome
        .plan
        .conflicts
        .iter()
        .filter(|c| c.winner.is_some())
        .count() as u64;
    outcome.problems.extend(report.problems);
    outcome.notes.extend(report.notes);
    outcome.stats.errors = outcome.problems.len() as u64;
    let converged = outcome.problems.is_empty()
        && outcome.notes.is_empty()
        && outcome.plan.conflicts.iter().all(|c| c.winner.is_some());
    let point = if converged {
        Some(settled_at(index)?)
    } else {
        None
    };
    index.set_conduit_clean_point(conduit.id, point)?;
    let status = if outcome.problems.is_empty() {
        RunStatus::Ok
    } else {
        RunStatus::Partial
    };
    index.record_generation_problems(generation, &outcome.problems)?;
    index.finish_generation(generation, status, &outcome.stats)?;
    index.prune_generation_actions(conduit.id)?;
    outcome.notes.extend(scan_notes);
    evict_selective(index, &conduit, [ra, rb], &mut outcome)?;
    sweep_partial_copies(index, [ra, rb]);
    Ok(outcome)
}

/// After a run (the folders' locks held, so no copy of this run is under way): removes
/// partial copies no conduit of the folder wants any more, [`PARTIAL_GRACE`] after
/// they were last written. A failure is logged, not a problem of the run.
///
/// [`PARTIAL_GRACE`]: crate::replica::PARTIAL_GRACE
fn sweep_partial_copies(index: &Index, replicas: [&Replica; 2]) {
    for loc in replicas.into_iter().filter_map(|r| r.here()) {
        let mut wanted = |h: &crate::model::Hash| index.content_wanted(loc.id(), h);
        match crate::replica::sweep_partials(
            loc,
            crate::replica::PARTIAL_GRACE,
            std::time::SystemTime::now(),
            &mut wanted,
        ) {
            Ok(gone) if !gone.is_empty() => {
                tracing::info!(
                    count = gone.len(),
                    "removed partial copies no longer wanted"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("sweeping partial copies: {e}"),
        }
    }
}

/// After a run of a selective conduit (both folders here, their locks held): dehydrates
/// the coldest files of A until it meets its quota and free-space floor.
fn evict_selective(
    index: &mut Index,
    conduit: &ConduitRow,
    [ra, rb]: [&Replica; 2],
    outcome: &mut SyncOutcome,
) -> Result<()> {
    if conduit.mode != SyncMode::Selective {
        return Ok(());
    }
    let (Some(a), Some(b)) = (ra.here(), rb.here()) else {
        return Ok(());
    };
    let pair = crate::selective::SelectivePair {
        conduit: conduit.clone(),
        a: Location::from_row(a.row.clone()),
        b: Location::from_row(b.row.clone()),
    };
    let ev = crate::selective::evict(index, &pair)?;
    outcome.bytes_dehydrated = ev.bytes;
    outcome.dehydrated = ev.dehydrated.clone();
    if !ev.dehydrated.is_empty() {
        outcome.info.push(format!(
            "freed {} bytes of {}: {} cold file(s) are now online-only (kept on {})",
            ev.bytes,
            a.root.display(),
            ev.dehydrated.len(),
            b.root.display()
        ));
    }
    if ev.bytes < ev.needed {
        outcome.info.push(format!(
            "{} is still {} bytes over its quota or free-space floor: too few cold, \
             unpinned, synced files to dehydrate",
            a.root.display(),
            ev.needed - ev.bytes
        ));
    }
    Ok(())
}

/// The caller's progress sink, answering `cancelled` from the run's [`Cancel`] too, so
/// the scan stops between batches when asked.
struct Stoppable<'a> {
    inner: &'a dyn Progress,
    cancel: Option<&'a Cancel>,
}

impl Progress for Stoppable<'_> {
    fn phase(&self, name: &str, total_bytes: Option<u64>) {
        self.inner.phase(name, total_bytes)
    }
    fn items_total(&self, total: u64) {
        self.inner.items_total(total)
    }
    fn more_work(&self, files: u64, bytes: u64) {
        self.inner.more_work(files, bytes)
    }
    fn bytes(&self, n: u64) {
        self.inner.bytes(n)
    }
    fn item(&self) {
        self.inner.item()
    }
    fn file_progress(&self, path: &crate::model::RelPath, done: u64, size: u64) {
        self.inner.file_progress(path, done, size)
    }
    fn file_finished(&self, path: &crate::model::RelPath) {
        self.inner.file_finished(path)
    }
    fn cancelled(&self) -> bool {
        crate::cancel::is_cancelled(self.cancel) || self.inner.cancelled()
    }
}

/// Loads both sides' entries, reconciles them, and applies the mass-deletion stop.
/// With a `clean_point` (the sequences when the conduit last converged) only the paths
/// changed since then on either side are loaded and reconciled: every other path was
/// in step then and neither side has touched it since.
fn plan_run(
    index: &Index,
    [ra, rb]: [&Replica; 2],
    mode: SyncMode,
    policy: ConflictPolicy,
    yes: bool,
    clean_point: Option<(u64, u64)>,
) -> Result<Plan> {
    let views = [
        IndexedReplica::new(index, ra.id()),
        IndexedReplica::new(index, rb.id()),
    ];
    let [va, vb] = &views;
    let (ea, eb) = match clean_point {
        Some(point) => changed_entries([va, vb], point)?,
        None => (va.entries()?, vb.entries()?),
    };
    let plan = reconcile(ReconcileInput {
        a: &ea,
        b: &eb,
        mode,
        policy,
        now: crate::index::unix_now(),
        occupied: &|p| {
            // Only consulted when naming a conflict copy; a failed look-up counts as
            // taken, so a name is never reused.
            views.iter().any(|v| !matches!(v.entry(p), Ok(None)))
        },
    })?;
    refuse_mass_deletion(index, [ra, rb], plan.file_deletions_per_side(), yes)?;
    Ok(plan)
}

/// The mass-deletion stop: a run that would delete more than half of a side's files
/// (and more than a few) is refused unless asked with `--yes`. `deleting` counts the
/// files the run deletes on A and on B, from its whole plan or its survey's pages.
/// Another device's copy is that device's to guard: it plans its own deletions.
fn refuse_mass_deletion(
    index: &Index,
    replicas: [&Replica; 2],
    deleting: [usize; 2],
    yes: bool,
) -> Result<()> {
    for (replica, deleting) in replicas.into_iter().zip(deleting) {
        let Some(here) = replica.here() else {
            continue;
        };
        if yes || deleting <= MASS_DELETE_MIN {
            continue;
        }
        let live = IndexedReplica::new(index, replica.id()).live_files()? as usize;
        if deleting * 2 > live {
            return Err(Error::Refused(format!(
                "this run would delete {deleting} of {live} files in {}; run again with --yes if that is intended",
                here.root.display()
            )));
        }
    }
    Ok(())
}

/// Above this many changed paths, whole locations are loaded instead of path by path.
const POINT_LOAD_LIMIT: usize = 5000;

/// Both sides' entries at the paths either side changed since `point`.
fn changed_entries(
    [va, vb]: [&dyn ReplicaView; 2],
    point: (u64, u64),
) -> Result<(Vec<Entry>, Vec<Entry>)> {
    let mut paths: Vec<RelPath> = va.changed_since(point.0)?;
    paths.extend(vb.changed_since(point.1)?);
    paths.sort_unstable();
    paths.dedup();
    if paths.len() > POINT_LOAD_LIMIT {
        // Too many for a look-up each: one walk over both sides in pages, keeping the
        // changed paths (memory grows with what changed, not with the tree).
        drop(paths);
        let mut pages = PathBatches::new(DEFAULT_BATCH_PATHS, Some(point));
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        while let Some((a, b)) = pages.next_batch([va, vb])? {
            ea.extend(a);
            eb.extend(b);
        }
        return Ok((ea, eb));
    }
    let mut ea = Vec::new();
    let mut eb = Vec::new();
    for p in &paths {
        ea.extend(va.entry(p)?);
        eb.extend(vb.entry(p)?);
    }
    Ok((ea, eb))
}

fn record_conflict(index: &Index, conduit: i64, generation: i64, c: &ConflictRecord) -> Result<()> {
    index.insert_conflict(
        conduit,
        generation,
        &c.path,
        c.a.as_ref(),
        c.b.as_ref(),
        c.policy,
        c.winner,
        c.loser_kept_at.as_deref(),
        if c.winner.is_some() {
            ConflictStatus::Settled
        } else {
            ConflictStatus::Open
        },
    )
}

/// The report of a run planned in batches; its counts and conflicts become the
/// outcome's (those of the batches run).
fn batched(
    outcome: &mut SyncOutcome,
    run: crate::batched::BatchedRun,
) -> crate::execute::ExecReport {
    outcome.planned = run.counts;
    outcome.plan.conflicts = run.conflicts;
    run.report
}
