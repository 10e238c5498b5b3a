//! Everyday use through the real binary (issue 16, items 1, 2, 3 and 8): itemized dry
//! runs and history, pending work in `status`, one conduit per pair whichever order it
//! is named in, `conduit add` on a pair `sync` made, `.ferryignore` warnings, a missing
//! second folder created, `ferry demo` recovering, JSON errors and exit codes, and the
//! conduit knobs.

use ferry_testkit::Run;
use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// One test's world: a temp dir holding the library (`home/`) and folders `a/`, `b/`.
struct Env {
    dir: TempDir,
    home: PathBuf,
    a: PathBuf,
    b: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("ferry-everyday-")
            .tempdir()
            .unwrap();
        let root = dir.path().canonicalize().unwrap();
        let (home, a, b) = (root.join("home"), root.join("a"), root.join("b"));
        for d in [&home, &a, &b] {
            fs::create_dir(d).unwrap();
        }
        Env { dir, home, a, b }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    fn ferry<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .env("FERRY_HOME", &self.home)
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path())
            .args(args)
            .output()
            .unwrap();
        Run::from(out)
    }

    /// `ferry sync X Y EXTRA…`.
    fn sync_pair(&self, x: &Path, y: &Path, extra: &[&str]) -> Run {
        let mut args: Vec<&OsStr> = vec![OsStr::new("sync"), x.as_os_str(), y.as_os_str()];
        args.extend(extra.iter().map(OsStr::new));
        self.ferry(args)
    }

    /// `ferry sync A B EXTRA…`.
    fn sync(&self, extra: &[&str]) -> Run {
        self.sync_pair(&self.a, &self.b, extra)
    }

    /// `ferry conduit add A B EXTRA…`.
    fn add(&self, extra: &[&str]) -> Run {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("conduit"),
            OsStr::new("add"),
            self.a.as_os_str(),
            self.b.as_os_str(),
        ];
        args.extend(extra.iter().map(OsStr::new));
        self.ferry(args)
    }

    fn conduits(&self) -> Vec<Value> {
        let run = self.ferry(["--json", "conduit", "list"]);
        run.expect_code(0);
        run.document()["conduits"].as_array().unwrap().clone()
    }
}

fn write(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&p, content).unwrap();
}

/// The `(action, direction, path, to)` of each item of a JSON `actions` array, sorted.
fn actions(v: &Value) -> Vec<(String, String, String, String)> {
    let s = |x: &Value| x.as_str().unwrap_or("-").to_string();
    let mut out: Vec<_> = v
        .as_array()
        .unwrap_or_else(|| panic!("no actions array: {v:#}"))
        .iter()
        .map(|i| {
            (
                s(&i["action"]),
                s(&i["direction"]),
                s(&i["path"]),
                s(&i["to"]),
            )
        })
        .collect();
    out.sort();
    out
}

fn t(a: &str, d: &str, p: &str, to: &str) -> (String, String, String, String) {
    (a.into(), d.into(), p.into(), to.into())
}

/// A pair in step, then one change of each kind: a new file and folder on A, a file
/// deleted on B, a file renamed on A, and a file edited on both sides (keep-both).
fn changed_pair() -> Env {
    let env = Env::new();
    write(&env.a, "keep.txt", "keep");
    write(&env.a, "gone.txt", "gone");
    write(&env.a, "old-name.txt", "renamed content");
    write(&env.a, "both.txt", "base");
    env.sync(&[]).expect_code(0);
    write(&env.a, "new/fresh.txt", "fresh!");
    fs::remove_file(env.b.join("gone.txt")).unwrap();
    fs::rename(env.a.join("old-name.txt"), env.a.join("new-name.txt")).unwrap();
    write(&env.a, "both.txt", "edited on a");
    write(&env.b, "both.txt", "edited on b, later");
    // Later for certain: two writes in a row can share one clock tick, and a tie is
    // decided by content, not by order.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(10);
    fs::File::options()
        .write(true)
        .open(env.b.join("both.txt"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    env
}

/// The items of an `actions` array with conflict-copy names cut after `.conflict-`
/// (they carry the time of the run).
fn normalized(v: &Value) -> Vec<(String, String, String, String)> {
    let cut = |s: &mut String| {
        if let Some(i) = s.find(".conflict-") {
            s.truncate(i + ".conflict-".len());
        }
    };
    let mut out = actions(v);
    for i in &mut out {
        cut(&mut i.2);
        cut(&mut i.3);
    }
    out.sort();
    out
}

/// `--dry-run` lists every action, one line per path (text) or one object per path
/// (`--json`, beside the summary counts); the real run's `-v` lists what it did, and
/// `history show` keeps it.
#[test]
fn dry_run_itemizes_and_the_run_and_its_history_list_what_was_done() {
    let env = changed_pair();
    let dry = env.sync(&["--dry-run", "--json", "--conflict", "keep-both"]);
    dry.expect_code(0);
    let dry = dry.document();
    let planned = normalized(&dry["actions"]);
    for want in [
        t("conflict", "-", "both.txt", "-"),
        t("copy", "a->b", "new/fresh.txt", "-"),
        t("delete", "b->a", "gone.txt", "-"),
        t("mkdir", "a->b", "new", "-"),
        t("move_aside", "-", "both.txt", "both.conflict-"),
        t("copy", "a->b", "both.conflict-", "-"),
        t("copy", "b->a", "both.txt", "-"),
        t("rename", "a->b", "old-name.txt", "new-name.txt"),
    ] {
        assert!(planned.contains(&want), "{want:?} in {planned:#?}");
    }
    // The summary counts stay, and agree with the list.
    for (count, action) in [("copy", "copy"), ("delete", "delete"), ("rename", "rename")] {
        let listed = planned.iter().filter(|i| i.0 == action).count() as u64;
        assert_eq!(dry["planned"][count].as_u64(), Some(listed), "{dry:#}");
    }
    assert_eq!(dry["conflicts"].as_u64(), Some(1), "{dry:#}");
    assert_eq!(dry["generation"], Value::Null);
    let fresh = dry["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == "new/fresh.txt")
        .unwrap();
    assert_eq!(
        (&fresh["size"], &fresh["side"]),
        (&Value::from(6), &Value::from("b"))
    );

    let text = env.sync(&["--dry-run", "--conflict", "keep-both"]);
    text.expect_code(0);
    for line in [
        "copy       a→b  new/fresh.txt  (6 B)",
        "delete     b→a  gone.txt  (4 B)",
        "mkdir      a→b  new/",
        "rename     a→b  old-name.txt → new-name.txt  (15 B)",
        "conflict   a⇄b  both.txt  (keep-both: b wins",
        "move-aside a    both.txt → both.conflict-",
    ] {
        assert!(text.stdout.contains(line), "{line:?} in\n{}", text.stdout);
    }
    assert_eq!(
        text.stdout.lines().count(),
        planned.len() + 1,
        "{}",
        text.stdout
    );
    assert_eq!(
        fs::read(env.b.join("both.txt")).unwrap(),
        b"edited on b, later"
    );

    // The real run with -v lists what it did: what the dry run showed.
    let run = env.sync(&["-v", "--json", "--conflict", "keep-both"]);
    run.expect_code(0);
    let run = run.document();
    assert_eq!(normalized(&run["actions"]), planned, "{run:#}");
    let quiet = env.sync(&["--json"]).document();
    assert_eq!(quiet["actions"], Value::Null, "listed only with -v");
    let text_run = env.sync(&["-v"]);
    text_run.expect_code(0);
    assert_eq!(
        text_run.stdout.lines().count(),
        1,
        "nothing to do: {}",
        text_run.stdout
    );

    // Its generation keeps them.
    let generation = run["generation"].as_i64().unwrap().to_string();
    let shown = env.ferry(["--json", "history", "show", &generation]);
    shown.expect_code(0);
    let shown = shown.document();
    assert_eq!(normalized(&shown["actions"]), planned, "{shown:#}");
    assert_eq!(shown["files_copied"], run["files_copied"], "{shown:#}");
    assert_eq!(shown["generation"], run["generation"]);
    let text = env.ferry(["history", "show", &generation]);
    text.expect_code(0);
    assert!(
        text.stdout
            .contains("rename     a→b  old-name.txt → new-name.txt  (15 B)"),
        "{}",
        text.stdout
    );
    let listed = env.ferry(["history"]);
    assert!(
        listed.stdout.contains(&format!("#{generation} conduit 1")),
        "{}",
        listed.stdout
    );
    env.ferry(["history", "show", "999"]).expect_code(1);
}

/// A run of more actions than a generation keeps records the first 10,000 and counts
/// the rest.
#[test]
fn a_generation_keeps_a_bounded_number_of_actions() {
    let env = Env::new();
    for i in 0..10_003 {
        write(&env.a, &format!("f{i:05}"), "");
    }
    let run = env.sync(&["--json"]);
    run.expect_code(0);
    let run = run.document();
    assert_eq!(run["files_copied"], 10_003);
    let g = run["generation"].as_i64().unwrap().to_string();
    let shown = env.ferry(["--json", "history", "show", &g]).document();
    assert_eq!(shown["actions"].as_array().unwrap().len(), 10_000);
    assert_eq!(shown["actions_omitted"], 3, "{}", shown["actions_omitted"]);
    let text = env.ferry(["history", "show", &g]);
    assert!(text.stdout.contains("… and 3 more"), "{}", text.stdout);
}

/// `ferry status` shows what a conduit has not synced yet, as far as the index knows.
#[test]
fn status_shows_pending_work() {
    let env = Env::new();
    write(&env.a, "one.txt", "1");
    env.add(&["--schedule", "manual"]).expect_code(0);
    let status = env.ferry(["--json", "status"]).document();
    assert_eq!(
        status["conduits"][0]["pending"],
        Value::Null,
        "never synced: unknown"
    );
    env.sync(&[]).expect_code(0);
    let status = env.ferry(["--json", "status"]).document();
    assert_eq!(
        status["conduits"][0]["pending"],
        serde_json::json!({"files": 0, "bytes": 0})
    );
    write(&env.a, "two.txt", "22");
    write(&env.a, "three.txt", "333");
    env.ferry([OsStr::new("scan"), env.a.as_os_str()])
        .expect_code(0);
    let status = env.ferry(["--json", "status"]).document();
    assert_eq!(
        status["conduits"][0]["pending"],
        serde_json::json!({"files": 2, "bytes": 5}),
        "{status:#}"
    );
    let text = env.ferry(["status"]);
    assert!(
        text.stdout.contains("pending: 2 files (5 B)"),
        "{}",
        text.stdout
    );
    env.sync(&[]).expect_code(0);
    let status = env.ferry(["--json", "status"]).document();
    assert_eq!(status["conduits"][0]["pending"]["files"], 0);
}

/// A pair is one conduit whichever order it is named in: reversed, a mirror is refused
/// (it would copy the target's own files into the source), a two-way conduit is used as
/// it is, and a direction-bound setting asked in reverse is refused.
#[test]
fn a_pair_named_the_other_way_round_is_the_same_conduit() {
    let env = Env::new();
    write(&env.a, "source.txt", "from a");
    env.sync(&["--mode", "mirror"]).expect_code(0);
    write(&env.b, "only-on-b.txt", "b's own");
    let reversed = env.sync_pair(&env.b, &env.a, &["--json"]);
    reversed.expect_code(1);
    assert!(
        reversed.stderr.contains("mirror") && reversed.stderr.contains("conduit 1"),
        "{}",
        reversed.stderr
    );
    assert_eq!(reversed.document()["error"]["kind"], "refused");
    assert!(
        !env.a.join("only-on-b.txt").exists(),
        "nothing copied into the source"
    );
    assert_eq!(env.conduits().len(), 1);

    let two_way = Env::new();
    write(&two_way.a, "x.txt", "x");
    two_way.sync(&[]).expect_code(0);
    write(&two_way.b, "from-b.txt", "b");
    let run = two_way.sync_pair(&two_way.b, &two_way.a, &["--json"]);
    run.expect_code(0);
    assert!(
        run.stderr
            .contains("the same pair, named the other way round"),
        "{}",
        run.stderr
    );
    let v = run.document();
    assert_eq!(v["conduit"], 1);
    assert_eq!(
        v["a"].as_str(),
        two_way.a.to_str(),
        "shown in the conduit's order"
    );
    assert_eq!(fs::read(two_way.a.join("from-b.txt")).unwrap(), b"b");
    assert_eq!(two_way.conduits().len(), 1);
    for setting in [["--mode", "mirror"], ["--conflict", "source"]] {
        let run = two_way.sync_pair(&two_way.b, &two_way.a, &setting);
        run.expect_code(1);
        assert!(run.stderr.contains(setting[1]), "{}", run.stderr);
    }
    let c = &two_way.conduits()[0];
    assert_eq!(c["mode"], "bidirectional");
    assert_eq!(c["conflict_policy"], "newest");
}

/// `conduit add` on a pair a plain `ferry sync` made (manual) makes it instant and says
/// so, unless a schedule is given; it also takes `--retention`.
#[test]
fn conduit_add_on_a_synced_pair_makes_it_instant() {
    let env = Env::new();
    write(&env.a, "x.txt", "x");
    env.sync(&[]).expect_code(0);
    assert_eq!(env.conduits()[0]["schedule"], "manual");
    let run = env.add(&["--retention", "simple:3"]);
    run.expect_code(0);
    assert!(run.stderr.contains("now instant"), "{}", run.stderr);
    let c = &env.conduits()[0];
    assert_eq!(c["schedule"], "instant");
    assert_eq!(c["retention"], "simple:3");
    assert_eq!(env.conduits().len(), 1);

    env.add(&["--schedule", "manual"]).expect_code(0);
    assert_eq!(env.conduits()[0]["schedule"], "manual");
    let other = Env::new();
    other.sync(&[]).expect_code(0);
    let run = other.add(&["--schedule", "every:10m"]);
    run.expect_code(0);
    assert!(!run.stderr.contains("now instant"), "{}", run.stderr);
    assert_eq!(other.conduits()[0]["schedule"], "every:10m");
}

/// `.ferryignore` lines ferry cannot use are skipped with a warning naming the file and
/// line; every other line still applies (a lone `!` un-ignores nothing, a line that is
/// not UTF-8 drops nothing after it).
#[test]
fn unusable_ignore_lines_warn_and_the_rest_applies() {
    let env = Env::new();
    let mut rules = b"*.log\n!\ncaf\xe9\n*.tmp\n".to_vec();
    rules.extend_from_slice(b"{unclosed\nsecret/\n");
    write(&env.a, ".ferryignore", rules);
    for f in [
        "keep.txt",
        "debug.log",
        "scratch.tmp",
        "secret/key",
        "sub/x.log",
    ] {
        write(&env.a, f, f);
    }
    let run = env.sync(&["--json"]);
    run.expect_code(0);
    for line in [".ferryignore:2", ".ferryignore:3", ".ferryignore:5"] {
        assert!(run.stderr.contains(line), "{line} in {}", run.stderr);
    }
    let notes = run.document()["notes"].to_string();
    assert!(notes.contains(".ferryignore:3: not valid UTF-8"), "{notes}");
    assert!(env.b.join("keep.txt").exists());
    for ignored in ["debug.log", "scratch.tmp", "secret", "sub/x.log"] {
        assert!(!env.b.join(ignored).exists(), "{ignored} was synced");
    }
    // Said again at the next run, which has nothing to do.
    let again = env.sync(&[]);
    again.expect_code(0);
    assert!(again.stderr.contains(".ferryignore:2"), "{}", again.stderr);
    let scan = env.ferry([OsStr::new("scan"), env.a.as_os_str()]);
    scan.expect_code(0);
    assert!(scan.stderr.contains(".ferryignore:3"), "{}", scan.stderr);
}

/// A second folder that does not exist is created (with a note), as rsync and Unison
/// do; a dry run only says it would be. One ferry synced before and is gone is not
/// recreated without `--yes`.
#[test]
fn a_missing_second_folder_is_created() {
    let env = Env::new();
    write(&env.a, "d/x.txt", "x");
    let target = env.root().join("new-target");
    let dry = env.sync_pair(&env.a, &target, &["--dry-run", "--json"]);
    dry.expect_code(0);
    assert!(dry.stderr.contains("does not exist"), "{}", dry.stderr);
    let v = dry.document();
    assert_eq!(
        actions(&v["actions"]),
        vec![
            t("copy", "a->b", "d/x.txt", "-"),
            t("mkdir", "a->b", "d", "-")
        ]
    );
    assert_eq!(v["b"].as_str(), target.to_str());
    assert!(!target.exists(), "a dry run creates nothing");

    let run = env.sync_pair(&env.a, &target, &[]);
    run.expect_code(0);
    assert!(run.stderr.contains("created"), "{}", run.stderr);
    assert_eq!(fs::read(target.join("d/x.txt")).unwrap(), b"x");

    fs::remove_dir_all(&target).unwrap();
    let refused = env.sync_pair(&env.a, &target, &[]);
    refused.expect_code(1);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert!(!target.exists());
    env.sync_pair(&env.a, &target, &["--yes"]).expect_code(0);
    assert_eq!(fs::read(target.join("d/x.txt")).unwrap(), b"x");
    assert_eq!(fs::read(env.a.join("d/x.txt")).unwrap(), b"x");
}

/// `ferry demo` works again after its second (or first) folder was deleted.
#[test]
fn demo_recovers_after_a_folder_is_deleted() {
    let env = Env::new();
    let demo = env.root().join("ferry-demo");
    env.ferry(["demo"]).expect_code(0);
    fs::write(demo.join("a/mine.txt"), "mine").unwrap();
    env.ferry(["demo"]).expect_code(0);
    fs::remove_dir_all(demo.join("b")).unwrap();
    let run = env.ferry(["demo"]);
    run.expect_code(0);
    assert_eq!(fs::read(demo.join("b/mine.txt")).unwrap(), b"mine");
    assert!(demo.join("b/notes/todo.md").exists());
    fs::remove_dir_all(demo.join("a")).unwrap();
    env.ferry(["demo"]).expect_code(0);
    assert_eq!(fs::read(demo.join("a/mine.txt")).unwrap(), b"mine");
    // A folder that lost only its marker is the user's to start over: the refusal's
    // advice (--yes) works.
    fs::remove_dir_all(demo.join("b/.ferry")).unwrap();
    let refused = env.ferry(["demo"]);
    refused.expect_code(1);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    env.ferry(["demo", "--yes"]).expect_code(0);
    assert!(demo.join("b/.ferry/location").is_file());
}

/// With `--json`, errors and safety stops are a JSON object on stdout as well as text on
/// stderr; usage errors (including bad values) exit 2; listings exit 0.
#[test]
fn json_errors_and_exit_codes() {
    let env = Env::new();
    let missing = env.root().join("missing");
    let run = env.sync_pair(&missing, &env.b, &["--json"]);
    run.expect_code(1);
    assert!(run.stderr.contains("ferry: error"), "{}", run.stderr);
    let e = run.document();
    assert_eq!(e["error"]["kind"], "location", "{e:#}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("missing"),
        "{e:#}"
    );

    // A safety stop: a run that would delete most of a side.
    for i in 0..12 {
        write(&env.a, &format!("f{i}"), "x");
    }
    env.sync(&[]).expect_code(0);
    for i in 0..12 {
        fs::remove_file(env.a.join(format!("f{i}"))).unwrap();
    }
    let stop = env.sync(&["--json"]);
    stop.expect_code(1);
    assert_eq!(stop.document()["error"]["kind"], "refused");
    assert!(stop.stderr.contains("--yes"), "{}", stop.stderr);

    let shown = env.ferry(["--json", "conduit", "show", "99"]);
    shown.expect_code(1);
    assert_eq!(shown.document()["error"]["kind"], "not_found");

    let a = env.a.to_str().unwrap();
    let b = env.b.to_str().unwrap();
    for args in [
        vec!["conduit", "add", a, b, "--schedule", "sometimes"],
        vec!["conduit", "add", a, b, "--bandwidth-limit", "fast"],
        vec!["conduit", "add", a, b, "--parallel", "1000"],
        vec!["conduit", "add", a, b, "--retention", "forever"],
        vec!["sync", a, b, "--parallel", "65"],
        vec!["sync", a, b, "--bandwidth-limit", "-3"],
        vec!["sync", a, b, "--retention", "simple:x"],
        vec!["retention", a, "bogus"],
        vec!["sync", a, b, "--mode", "sideways"],
        vec!["history", "show", "not-a-number"],
    ] {
        let run = env.ferry(&args);
        run.expect_code(2);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        let mut with_json = vec!["--json"];
        with_json.extend(&args);
        let run = env.ferry(&with_json);
        run.expect_code(2);
        assert_eq!(run.document()["error"]["kind"], "usage", "{args:?}");
    }
    assert_eq!(
        env.conduits()[0]["schedule"],
        "manual",
        "nothing was stored"
    );
    env.ferry(["--help"]).expect_code(0);
}

/// Every `--json` document carries `schema_version`, and the counters have the same
/// names in `sync`, `history` and the conduit listings.
#[test]
fn json_documents_carry_a_schema_version_and_shared_names() {
    let env = Env::new();
    write(&env.a, "x.txt", "12345");
    let sync = env.sync(&["--json"]);
    sync.expect_code(0);
    let sync = sync.document();
    let history = env.ferry(["--json", "history"]).document();
    let g = &history["generations"][0];
    for field in [
        "files_copied",
        "files_deleted",
        "files_renamed",
        "dirs_created",
        "bytes_transferred",
        "conflicts",
        "conflicts_resolved",
        "files_archived",
        "bytes_freed",
        "error_count",
        "conduit",
        "generation",
    ] {
        assert_eq!(sync[field], g[field], "{field}: {sync:#} vs {g:#}");
        assert!(!sync[field].is_null(), "{field} missing: {sync:#}");
    }
    assert_eq!(sync["bytes_transferred"], 5);
    for args in [
        vec!["--json", "status"],
        vec!["--json", "conflicts"],
        vec!["--json", "conduit", "list"],
        vec!["--json", "conduit", "show", "1"],
        vec!["--json", "history", "show", "1"],
    ] {
        env.ferry(&args).expect_code(0).document();
    }
    let versions = env.ferry([
        OsStr::new("--json"),
        OsStr::new("versions"),
        env.a.join("x.txt").as_os_str(),
    ]);
    versions.expect_code(0).document();
}

/// The conduit knobs: `--index-everything` and `--no-index-everything`, `--parallel` and
/// `--bandwidth-limit` on a plain `ferry sync` (stored with the conduit, like `--mode`).
#[test]
fn conduit_knobs() {
    let env = Env::new();
    write(&env.a, "node_modules/pkg/index.js", "js");
    write(&env.a, "app.js", "app");
    env.sync(&[
        "--index-everything",
        "--parallel",
        "3",
        "--bandwidth-limit",
        "10M",
    ])
    .expect_code(0);
    assert!(env.b.join("node_modules/pkg/index.js").exists());
    let c = &env.conduits()[0];
    assert_eq!(c["index_everything"], true);
    assert_eq!(c["parallel"], 3);
    assert_eq!(c["bandwidth_limit"], 10 << 20);

    env.sync(&[
        "--no-index-everything",
        "--parallel",
        "auto",
        "--bandwidth-limit",
        "0",
    ])
    .expect_code(0);
    let c = &env.conduits()[0];
    assert_eq!(c["index_everything"], false);
    assert_eq!(c["parallel"], 0);
    assert_eq!(c["bandwidth_limit"], 0);
    // No longer indexed: left alone on both sides, and an edit there does not sync.
    write(&env.a, "node_modules/pkg/index.js", "js, edited");
    env.sync(&[]).expect_code(0);
    assert_eq!(
        fs::read(env.b.join("node_modules/pkg/index.js")).unwrap(),
        b"js"
    );
    let status = env.ferry(["--json", "status"]).document();
    assert_eq!(status["conduits"][0]["files"]["a"], 1, "{status:#}");

    env.add(&["--no-index-everything", "--index-everything"])
        .expect_code(0);
    assert_eq!(env.conduits()[0]["index_everything"], true, "last one wins");
}
