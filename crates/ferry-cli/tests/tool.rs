//! ferry as a Unix tool: signals, output, install, config (issue 16, items 4–6).
//! Every test runs the real binary with its own library; kill points are chosen from
//! what the run has done on disk, never by a delay.

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{ferry_cmd, files, folders};

const DEADLINE: Duration = Duration::from_secs(60);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `cmd`, returning (exit code, stdout, stderr).
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out: Output = cmd.output().unwrap();
    (
        out.status.code().expect("killed by a signal"),
        text(&out.stdout),
        text(&out.stderr),
    )
}

fn ok(cmd: &mut Command) -> String {
    let (code, stdout, stderr) = run(cmd);
    assert_eq!(code, 0, "--- stdout\n{stdout}\n--- stderr\n{stderr}");
    stdout
}

fn json(cmd: &mut Command) -> Value {
    let out = ok(cmd);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Whether a file of ferry's (a temp file) is anywhere below `dir`.
fn temp_files_below(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with(".ferry.tmp.") {
                n += 1;
            } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    n
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ------------------------------------------------------------------ signals

/// A slow run (bandwidth-limited, one copy at a time) of `n` distinct files.
fn slow_pair(n: usize) -> (tempfile::TempDir, [PathBuf; 3]) {
    let (tmp, [home, a, b]) = folders(["home", "a", "b"]);
    for i in 0..n {
        let dir = a.join(format!("d{}", i % 7));
        std::fs::create_dir_all(&dir).unwrap();
        let body: Vec<u8> = (0..20_000 + i)
            .map(|j| (j as u8).wrapping_mul(31) ^ i as u8)
            .collect();
        std::fs::write(dir.join(format!("f{i}")), body).unwrap();
    }
    ok(ferry_cmd(&home)
        .args(["conduit", "add"])
        .args([&a, &b])
        .args([
            "--schedule",
            "manual",
            "--bandwidth-limit",
            "1M",
            "--parallel",
            "1",
        ]));
    (tmp, [home, a, b])
}

/// `signal` while the run stages its copies: it stops at a safe point, says so, exits
/// 128 + the signal, and its generation is `interrupted` in `history` and `status`.
/// Nothing is torn or left behind, and the next run copies exactly the rest.
fn interrupted_by(signal: libc::c_int) {
    const N: usize = 300;
    let (_tmp, [home, a, b]) = slow_pair(N);
    let mut cmd = ferry_cmd(&home);
    cmd.args(["sync", "--conduit", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // As a foreground process gets it: a test run started in the background by a
    // non-interactive shell inherits SIGINT ignored, and ferry (rightly) leaves an
    // ignored SIGINT alone — the run then never saw this test's Ctrl-C.
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    wait_for("the run to stage its first copy", || {
        temp_files_below(&b) > 0
    });
    // SAFETY: plain kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(128 + signal),
        "stdout: {}\nstderr: {stderr}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains("interrupted — run again to resume"),
        "{stderr}"
    );

    // Safe point: every file on b is a complete copy, no temp file is left.
    let want = files(&a);
    let got = files(&b);
    for (path, bytes) in &got {
        assert_eq!(
            want.get(path),
            Some(bytes),
            "{path} on b is not a complete copy"
        );
    }
    assert_eq!(temp_files_below(&b), 0, "temp files left on b");
    assert!(got.len() < N, "the run was not interrupted: all {N} copied");

    let history = json(ferry_cmd(&home).args(["--json", "history"]))["generations"].take();
    let first = &history[0];
    assert_eq!(first["status"], "interrupted", "{history:#}");
    assert_eq!(first["files_copied"], got.len() as u64, "{history:#}");
    let status = json(ferry_cmd(&home).args(["--json", "status"]));
    assert_eq!(
        status["conduits"][0]["last_run"]["status"], "interrupted",
        "{status:#}"
    );
    let text_status = ok(ferry_cmd(&home).arg("status"));
    assert!(text_status.contains("last: interrupted"), "{text_status}");

    // The next run resumes: it copies what is missing and nothing twice.
    ok(ferry_cmd(&home)
        .args(["conduit", "add"])
        .args([&a, &b])
        .args(["--bandwidth-limit", "0"]));
    ok(ferry_cmd(&home).args(["sync", "--conduit", "1"]));
    assert_eq!(files(&b), want);
    let history = json(ferry_cmd(&home).args(["--json", "history"]))["generations"].take();
    assert_eq!(history[0]["status"], "ok", "{history:#}");
    assert_eq!(
        history[0]["resumes"], history[1]["generation"],
        "{history:#}"
    );
    assert_eq!(
        history[0]["files_copied"].as_u64().unwrap() + history[1]["files_copied"].as_u64().unwrap(),
        N as u64,
        "copies lost or redone: {history:#}"
    );
}

#[test]
fn sigint_stops_the_run_at_a_safe_point_and_marks_it_interrupted() {
    interrupted_by(libc::SIGINT);
}

#[test]
fn sigterm_stops_the_run_at_a_safe_point_too() {
    interrupted_by(libc::SIGTERM);
}

// ------------------------------------------------------------------ output

/// Logs carry no colour codes when stderr is not a terminal; on a terminal they do,
/// unless NO_COLOR is set.
#[test]
fn no_ansi_codes_off_a_terminal_or_with_no_color() {
    let (_tmp, [home, a, b]) = folders(["home", "a", "b"]);
    std::fs::write(a.join("f.txt"), "x").unwrap();
    let (code, _, stderr) = run(ferry_cmd(&home).args(["-vv", "sync"]).args([&a, &b]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("DEBUG"), "-vv logs debug lines: {stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "escape codes in piped logs: {stderr:?}"
    );

    // A terminal, through script(1): colour, unless NO_COLOR.
    let on_tty = |no_color: bool| -> String {
        let bin = env!("CARGO_BIN_EXE_ferry");
        let line = format!("{bin} -vv sync {} {}", a.display(), b.display());
        let mut c = Command::new("script");
        c.args(["-qec", &line, "/dev/null"])
            .env("FERRY_HOME", &home)
            .env("FERRY_CONFIG", home.join("no-config.toml"))
            .env("TERM", "xterm")
            .env_remove("NO_COLOR");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        ok(&mut c)
    };
    let coloured = on_tty(false);
    assert!(coloured.contains("DEBUG"), "{coloured:?}");
    assert!(
        has_colour(&coloured),
        "no colour on a terminal: {coloured:?}"
    );
    let plain = on_tty(true);
    assert!(plain.contains("DEBUG"), "{plain:?}");
    assert!(!has_colour(&plain), "NO_COLOR ignored: {plain:?}");
}

/// Whether `s` holds an SGR (colour or style) sequence, `ESC [ digits/; m`; cursor
/// movement (the progress bar redrawing itself on a terminal) is not colour.
fn has_colour(s: &str) -> bool {
    s.split('\x1b').skip(1).any(|rest| {
        rest.strip_prefix('[').is_some_and(|r| {
            let params = r.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';');
            params.starts_with('m')
        })
    })
}

/// `-q` prints nothing on success; the default prints the summary, `-v` adds logs.
#[test]
fn quiet_and_verbose() {
    let (_tmp, [home, a, b]) = folders(["home", "a", "b"]);
    std::fs::write(a.join("f.txt"), "x").unwrap();
    let (code, stdout, stderr) = run(ferry_cmd(&home).args(["-q", "sync"]).args([&a, &b]));
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (0, "", ""));
    assert!(b.join("f.txt").exists());
    let (_, stdout, stderr) = run(ferry_cmd(&home).arg("sync").args([&a, &b]));
    assert!(stdout.starts_with("synced "), "{stdout}");
    assert!(!stderr.contains("DEBUG"), "{stderr}");
    let (code, _, _) = run(ferry_cmd(&home).args(["-q", "-v", "status"]));
    assert_eq!(code, 2, "-q and -v together are a usage error");
}

/// Names with control characters are escaped in text output, so a newline in a name
/// cannot forge a line and escape sequences cannot reach the terminal.
#[test]
fn control_characters_in_names_are_escaped() {
    let (_tmp, [home, a, b]) = folders(["home", "a", "b"]);
    let names = ["two\nlines.txt", "\x1b[31mred.txt"];
    for n in names {
        std::fs::write(a.join(n), "from a").unwrap();
    }
    ok(ferry_cmd(&home).arg("sync").args([&a, &b]));
    for n in names {
        std::fs::write(a.join(n), "edited on a").unwrap();
        std::fs::write(b.join(n), "edited on b, differently").unwrap();
    }
    let (code, stdout, _) = run(ferry_cmd(&home)
        .args(["sync", "--conflict", "manual"])
        .args([&a, &b]));
    assert_eq!(code, 3, "{stdout}");
    let (_, listed, _) = run(ferry_cmd(&home).arg("conflicts"));
    for out in [&stdout, &listed] {
        assert!(!out.contains('\x1b'), "raw escape in {out:?}");
        assert!(out.contains(r"two\nlines.txt"), "{out}");
        assert!(out.contains(r"\x1b[31mred.txt"), "{out}");
        assert!(
            out.lines().all(|l| !l.starts_with("lines.txt")),
            "a name broke a line: {out}"
        );
    }
    let (_, _, stderr) = run(ferry_cmd(&home).args(["versions"]).arg(a.join("no\nsuch")));
    assert!(!stderr.contains("no\nsuch"), "{stderr}");
}

/// An error says its cause once (ferry-core's I/O errors already name it).
#[test]
fn errors_say_their_cause_once_with_a_hint() {
    // A folder ferry cannot write to: the marker cannot be created (as root, the binary
    // runs as nobody, for whom root's 0755 folder is read-only).
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (home, a, b) = (root.join("home"), root.join("a"), root.join("b"));
    for d in [&home, &a, &b] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(a.join("f.txt"), "x").unwrap();
    std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o555)).unwrap();
    let root_user = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root_user {
        for d in [&home, &a] {
            std::os::unix::fs::chown(d, Some(65534), Some(65534)).unwrap();
            std::os::unix::fs::chown(d.join("f.txt"), Some(65534), Some(65534)).ok();
        }
        let bin = root.join("ferry-as-nobody");
        std::fs::copy(env!("CARGO_BIN_EXE_ferry"), &bin).unwrap();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
    };
    cmd.env("FERRY_HOME", &home)
        .env("FERRY_CONFIG", home.join("no-config.toml"))
        .arg("sync")
        .args([&a, &b]);
    // The fresh copy can be "busy" for a moment when another test's process was forked
    // while it was open for writing (it is closed at that process's exec).
    let mut tries = 0;
    let (code, _, stderr) = loop {
        let (code, out, err) = run(&mut cmd);
        tries += 1;
        if !(err.contains("Text file busy") && tries < 20) {
            break (code, out, err);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{}/.ferry", b.display())),
        "the error names what could not be created: {stderr}"
    );
    assert_eq!(
        stderr.matches("Permission denied").count(),
        1,
        "the cause is said once: {stderr}"
    );
    assert!(stderr.contains("ferry: hint:"), "{stderr}");

    // A damaged index: what to do.
    let (_tmp, [home, a, b]) = folders(["home", "a", "b"]);
    std::fs::write(home.join("index.db"), vec![7u8; 4096]).unwrap();
    let (code, _, stderr) = run(ferry_cmd(&home).arg("sync").args([&a, &b]));
    assert_eq!(code, 1);
    assert_eq!(stderr.matches("not a database").count(), 1, "{stderr}");
    assert!(stderr.contains("move it aside"), "{stderr}");
    assert!(stderr.contains("index.db.broken"), "{stderr}");
    let (code, stdout, _) = run(ferry_cmd(&home).args(["--json", "status"]));
    assert_eq!(code, 1);
    let err: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(err["error"]["kind"], "library", "{err:#}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("move it aside"),
        "{err:#}"
    );

    // FERRY_HOME naming a file.
    let file = home.join("index.db");
    let (code, _, stderr) = run(ferry_cmd(&file).arg("status"));
    assert_eq!(code, 1);
    assert!(stderr.contains("is a file, not a folder"), "{stderr}");
    assert!(stderr.contains("FERRY_HOME"), "{stderr}");
    assert!(!stderr.contains("File exists"), "{stderr}");
}

// ------------------------------------------------------------------ library

/// Read-only commands create no library; a relative FERRY_HOME is made absolute and
/// said so.
#[test]
fn reading_creates_no_library_and_ferry_home_is_absolute() {
    let (tmp, [work]) = folders(["work"]);
    let home = tmp.path().join("not-yet");
    for args in [
        &["status"][..],
        &["--json", "status"],
        &["history"],
        &["conflicts"],
        &["conduit", "list"],
        &["conduit", "show", "1"],
        &["versions", "--prune"],
    ] {
        let _ = run(ferry_cmd(&home).args(args));
        assert!(
            !home.exists(),
            "`ferry {}` created the library",
            args.join(" ")
        );
    }

    let (a, b) = (work.join("a"), work.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let (code, _, stderr) = run(Command::new(env!("CARGO_BIN_EXE_ferry"))
        .current_dir(&work)
        .env("FERRY_HOME", "rel-home")
        .env("FERRY_CONFIG", work.join("no-config.toml"))
        .args(["sync", "a", "b"]));
    assert_eq!(code, 0, "{stderr}");
    let abs = work.canonicalize().unwrap().join("rel-home");
    assert!(
        stderr.contains("FERRY_HOME=rel-home is relative")
            && stderr.contains(&abs.display().to_string()),
        "{stderr}"
    );
    assert!(abs.join("index.db").exists());
    // The same library, named absolutely from elsewhere.
    let v = json(ferry_cmd(&abs).args(["--json", "conduit", "list"]))["conduits"].take();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v:#}");
}

// ------------------------------------------------------------------ install

#[test]
fn completions_for_each_shell() {
    let home = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef ferry"),
        ("fish", "complete -c ferry"),
    ] {
        let out = ok(ferry_cmd(home.path()).args(["completions", shell]));
        assert!(out.contains(marker), "{shell}: {out}");
        for sub in ["sync", "conduit", "history", "completions"] {
            assert!(out.contains(sub), "{shell} script lacks {sub}");
        }
    }
    let (code, _, _) = run(ferry_cmd(home.path()).args(["completions", "tcsh"]));
    assert_eq!(code, 2);
    assert!(!home.path().join("index.db").exists());
}

#[test]
fn man_pages_are_generated() {
    let (_tmp, [home, man]) = folders(["home", "man"]);
    let page = ok(ferry_cmd(&home).arg("man"));
    assert!(
        page.starts_with(".ie") || page.contains(".TH ferry 1"),
        "{page}"
    );
    assert!(page.contains("Exit status"), "{page}");
    ok(ferry_cmd(&home).args(["man"]).arg(&man));
    for name in [
        "ferry.1",
        "ferry-sync.1",
        "ferry-conduit.1",
        "ferry-conduit-add.1",
    ] {
        let p = man.join(name);
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.contains(".TH"), "{name}: {text}");
    }
    let sync = std::fs::read_to_string(man.join("ferry-sync.1")).unwrap();
    assert!(sync.contains("dry\\-run"), "{sync}");
}

// ------------------------------------------------------------------ config

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The config file seeds new conduits (conflict policy, retention, schedule) and the
/// daemon's port; flags and a conduit's own settings win over it; a broken file is an
/// error naming it.
#[test]
fn config_file_defaults() {
    let (tmp, [home, a, b, c, d, e, f]) = folders(["home", "a", "b", "c", "d", "e", "f"]);
    let config = tmp.path().join("config.toml");
    let port = free_port();
    std::fs::write(
        &config,
        format!(
            "# defaults\nconflict = \"keep-both\"\nretention = \"simple:2\"\nschedule = \"every:10m\"\n\n[daemon]\nport = {port}\n"
        ),
    )
    .unwrap();
    let ferry = |args: &[&std::ffi::OsStr]| {
        let mut c = ferry_cmd(&home);
        c.env("FERRY_CONFIG", &config).args(args);
        c
    };
    let os = |p: &PathBuf| p.as_os_str().to_owned();
    ok(&mut ferry(&["sync".as_ref(), &os(&a), &os(&b)]));
    ok(&mut ferry(&[
        "sync".as_ref(),
        &os(&e),
        &os(&f),
        "--conflict".as_ref(),
        "newest".as_ref(),
    ]));
    ok(&mut ferry(&[
        "conduit".as_ref(),
        "add".as_ref(),
        &os(&c),
        &os(&d),
    ]));
    let list = json(&mut ferry(&[
        "--json".as_ref(),
        "conduit".as_ref(),
        "list".as_ref(),
    ]))["conduits"]
        .take();
    let by_a = |p: &PathBuf| -> Value {
        let root = p.canonicalize().unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["a"] == root.to_str().unwrap())
            .cloned()
            .unwrap_or_else(|| panic!("no conduit from {}: {list:#}", root.display()))
    };
    assert_eq!(by_a(&a)["conflict_policy"], "keep-both", "{list:#}");
    assert_eq!(by_a(&a)["schedule"], "manual", "plain sync stays manual");
    assert_eq!(by_a(&e)["conflict_policy"], "newest", "the flag wins");
    assert_eq!(by_a(&c)["schedule"], "every:10m", "{list:#}");
    assert_eq!(by_a(&c)["conflict_policy"], "keep-both");
    let ret = json(&mut ferry(&[
        "--json".as_ref(),
        "retention".as_ref(),
        &os(&a),
    ]));
    assert_eq!(ret["retention"], "simple:2", "{ret:#}");

    // A conduit keeps its own settings when the file changes.
    std::fs::write(&config, "conflict = \"source\"\n").unwrap();
    ok(&mut ferry(&["sync".as_ref(), &os(&a), &os(&b)]));
    let list = json(&mut ferry(&[
        "--json".as_ref(),
        "conduit".as_ref(),
        "list".as_ref(),
    ]))["conduits"]
        .take();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|c| c["conflict_policy"] != "source"),
        "{list:#}"
    );

    // The daemon's port.
    std::fs::write(&config, format!("[daemon]\nport = {port}\n")).unwrap();
    let mut daemon = ferry(&["daemon".as_ref()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let info = home.join("daemon.json");
    let start = Instant::now();
    let found = loop {
        if let Some(v) = std::fs::read_to_string(&info)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            break v;
        }
        if start.elapsed() > DEADLINE || daemon.try_wait().unwrap().is_some() {
            let _ = daemon.kill();
            panic!("the daemon did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(found["port"], port, "{found:#}");

    // Broken files are errors that name the file.
    for bad in [
        "conflict = \"sometimes\"\n",
        "retention = 3\n",
        "colour = \"blue\"\n",
    ] {
        std::fs::write(&config, bad).unwrap();
        let (code, _, stderr) = run(&mut ferry(&["status".as_ref()]));
        assert_eq!(code, 1, "{bad}: {stderr}");
        assert!(stderr.contains("config.toml"), "{bad}: {stderr}");
    }
}
