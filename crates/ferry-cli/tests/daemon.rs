//! Tests that start the real `ferry daemon` process, each with its own library and
//! folders. Conditions are awaited by polling with a generous deadline; nothing asserts
//! on timing. Every daemon is killed when its test ends (the `Daemon` guard).

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{ferry_cmd, files, folders, readable_files};

const DEADLINE: Duration = Duration::from_secs(30);

struct Env {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    a: PathBuf,
    b: PathBuf,
}

impl Env {
    fn new() -> Env {
        let (tmp, [home, a, b]) = folders(["home", "a", "b"]);
        Env {
            _tmp: tmp,
            home,
            a,
            b,
        }
    }

    fn cmd(&self) -> Command {
        ferry_cmd(&self.home)
    }

    fn ferry(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn add_conduit(&self, extra: &[&str]) {
        let mut args = vec![
            "conduit",
            "add",
            self.a.to_str().unwrap(),
            self.b.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = self.ferry(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&self, env: &[(&str, &str)]) -> Daemon {
        let _ = std::fs::remove_file(self.home.join("daemon.json"));
        let mut c = self.cmd();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.join("daemon.log"))
            .unwrap();
        c.arg("daemon")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c.spawn().unwrap();
        let d = Daemon {
            child,
            home: self.home.clone(),
        };
        wait_for("daemon.json", || d.port().is_some());
        d
    }
}

/// The daemon process; killed (and reaped) when dropped.
struct Daemon {
    child: Child,
    home: PathBuf,
}

impl Daemon {
    fn port(&self) -> Option<u16> {
        let text = std::fs::read_to_string(self.home.join("daemon.json")).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        (v["pid"].as_u64()? == self.child.id() as u64).then_some(v["port"].as_u64()? as u16)
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.home.join("api-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// (status code, body) of a request to the API.
    fn request(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port().unwrap())).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let code = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = raw
            .split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or("")
            .to_string();
        (code, body)
    }

    fn api(&self, path: &str) -> Value {
        let (code, body) = self.request("GET", path, Some(&self.token()));
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The event stream, subscribed to before this returns: every event the daemon
    /// emits from now on is in it, in order.
    fn events(&self) -> Events {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port().unwrap())).unwrap();
        write!(
            stream,
            "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
            self.token()
        )
        .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut events = Events {
            stream,
            text: String::new(),
        };
        // The handler subscribes before it answers, so the status line is the barrier.
        wait_for("the event stream's response", || {
            events.read();
            events.text.starts_with("HTTP/1.1 200")
        });
        events
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for the daemon to exit; returns its exit code.
    fn terminate(mut self) -> Option<i32> {
        // SAFETY: plain kill(2) of our own child.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) },
            0
        );
        self.child.wait().unwrap().code()
    }

    /// Everything daemons of this library logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("daemon.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon's server-sent events, as read so far.
struct Events {
    stream: TcpStream,
    text: String,
}

impl Events {
    /// Appends whatever arrived (waiting up to the read timeout for something).
    fn read(&mut self) {
        let mut buf = [0u8; 4096];
        if let Ok(k) = self.stream.read(&mut buf) {
            self.text.push_str(&String::from_utf8_lossy(&buf[..k]));
        }
    }

    /// The events so far, in the order the daemon emitted them: (name, data).
    fn list(&self) -> Vec<(&str, Value)> {
        let mut out: Vec<(&str, Value)> = Vec::new();
        for line in self.text.lines() {
            if let Some(name) = line.strip_prefix("event: ") {
                out.push((name, Value::Null));
            } else if let (Some(data), Some(last)) = (line.strip_prefix("data: "), out.last_mut()) {
                last.1 = serde_json::from_str(data).unwrap_or(Value::Null);
            }
        }
        out
    }

    fn wait_for(&mut self, what: &str, mut cond: impl FnMut(&[(&str, Value)]) -> bool) {
        wait_for(what, || {
            self.read();
            cond(&self.list())
        });
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}

#[test]
fn edits_propagate_both_ways_and_changes_made_while_down_are_found() {
    let env = Env::new();
    std::fs::write(env.a.join("before.txt"), "made before the daemon").unwrap();
    env.add_conduit(&[]);
    let d = env.start(&[]);
    wait_for("initial sync", || {
        read(&env.b.join("before.txt")).as_deref() == Some(&b"made before the daemon"[..])
    });
    std::fs::create_dir_all(env.a.join("dir/sub")).unwrap();
    std::fs::write(env.a.join("dir/sub/new.txt"), "new on a").unwrap();
    wait_for("a → b", || {
        read(&env.b.join("dir/sub/new.txt")).as_deref() == Some(&b"new on a"[..])
    });
    std::fs::write(env.b.join("from-b.txt"), "new on b").unwrap();
    wait_for("b → a", || {
        read(&env.a.join("from-b.txt")).as_deref() == Some(&b"new on b"[..])
    });
    std::fs::write(env.a.join("before.txt"), "edited").unwrap();
    wait_for("edit", || {
        read(&env.b.join("before.txt")).as_deref() == Some(&b"edited"[..])
    });
    std::fs::remove_file(env.b.join("from-b.txt")).unwrap();
    wait_for("deletion", || !env.a.join("from-b.txt").exists());
    // Changes made while the daemon is down are found at start.
    d.kill9();
    std::fs::write(env.a.join("while-down.txt"), "offline edit").unwrap();
    let d = env.start(&[]);
    wait_for("catch-up at start", || {
        read(&env.b.join("while-down.txt")).as_deref() == Some(&b"offline edit"[..])
    });
    wait_for("converged", || {
        readable_files(&env.a) == readable_files(&env.b)
    });
    let status = d.api("/api/status");
    assert_eq!(status["conduits"][0]["schedule"], "instant", "{status:#}");
    let history = d.api("/api/history")["history"].clone();
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["trigger"] == "watch"),
        "{history:#}"
    );
    // One run with what it did, path by path.
    let copied = history
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["files_copied"].as_u64() > Some(0))
        .unwrap_or_else(|| panic!("no run copied anything: {history:#}"));
    let run = d.api(&format!("/api/history/{}", copied["generation"]));
    let actions = run["actions"].as_array().unwrap();
    assert!(actions.iter().any(|i| i["action"] == "copy"), "{run:#}");
}

/// Watched changes are rescanned by path: a file changed where the watcher cannot see
/// it (written through a hard link outside the root, so no event names it) is left for
/// the next full rescan ("sync now" here), while a watched edit propagates at once.
/// The daemon handles events in order, so once a later watched edit's run has finished,
/// every run the first edit (or ferry's own writes on b) queued has finished too.
#[test]
fn watched_changes_rescan_only_the_touched_paths() {
    let env = Env::new();
    std::fs::write(env.a.join("linked.txt"), "v1").unwrap();
    let outside = env._tmp.path().join("outside-link.txt");
    std::fs::hard_link(env.a.join("linked.txt"), &outside).unwrap();
    env.add_conduit(&[]);
    let d = env.start(&[]);
    wait_for("initial sync", || {
        read(&env.b.join("linked.txt")).as_deref() == Some(&b"v1"[..])
    });
    std::fs::write(&outside, "v2, unseen by the watcher").unwrap();
    std::fs::write(env.a.join("seen.txt"), "watched").unwrap();
    wait_for("watched edit", || {
        read(&env.b.join("seen.txt")).as_deref() == Some(&b"watched"[..])
    });
    std::fs::write(env.a.join("seen-later.txt"), "watched too").unwrap();
    wait_for("later watched edit", || {
        read(&env.b.join("seen-later.txt")).as_deref() == Some(&b"watched too"[..])
    });
    // The run that installed it was on the job board when it did; gone means finished.
    wait_for("its run finished", || {
        d.api("/api/jobs")["jobs"].as_array().unwrap().is_empty()
    });
    assert_eq!(
        read(&env.b.join("linked.txt")).as_deref(),
        Some(&b"v1"[..]),
        "a targeted rescan does not look at untouched paths"
    );
    let (code, body) = d.request("POST", "/api/conduits/1/sync", Some(&d.token()));
    assert!(code == 200 || code == 202, "{code} {body}");
    wait_for("full rescan finds it", || {
        read(&env.b.join("linked.txt")).as_deref() == Some(&b"v2, unseen by the watcher"[..])
    });
}

#[test]
fn api_requires_the_token_and_reports_state() {
    let env = Env::new();
    std::fs::write(env.a.join("f.txt"), "x").unwrap();
    env.add_conduit(&[
        "--schedule",
        "every:1h",
        "--parallel",
        "2",
        "--bandwidth-limit",
        "10M",
    ]);
    let d = env.start(&[]);
    for path in ["/api/status", "/api/conduits", "/api/jobs", "/api/events"] {
        let (code, _) = d.request("GET", path, None);
        assert_eq!(code, 401, "{path} without token");
        let (code, _) = d.request("GET", path, Some("wrong-token"));
        assert_eq!(code, 401, "{path} with a wrong token");
    }
    let (code, _) = d.request("POST", "/api/conduits/1/pause", None);
    assert_eq!(code, 401);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(env.home.join("api-token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    wait_for("start-up run", || read(&env.b.join("f.txt")).is_some());
    let c = d.api("/api/conduits/1");
    assert_eq!(c["schedule"], "every:1h", "{c:#}");
    assert_eq!(c["parallel"], 2);
    assert_eq!(c["bandwidth_limit"], 10 << 20);
    assert_eq!(c["watch"], "timer");
    let locs = d.api("/api/locations")["locations"].clone();
    assert_eq!(locs.as_array().unwrap().len(), 2);
    assert!(locs[0]["free_bytes"].as_u64().unwrap() > 0, "{locs:#}");
    assert!(d.api("/api/jobs")["jobs"].is_array());
    // Every answer is one document with the schema version, as the CLI's.
    for path in [
        "/api/jobs",
        "/api/conflicts",
        "/api/history",
        "/api/locations",
        "/api/conduits",
    ] {
        assert_eq!(d.api(path)["schema_version"], 1, "{path}");
    }
    assert!(d.api("/api/conflicts")["conflicts"].is_array());
    // Errors are JSON: an unknown route, a known one with the wrong method, an unknown
    // conduit; without the token, 401 before anything else.
    for (method, path, want) in [
        ("GET", "/api/nope", 404),
        ("POST", "/api/status", 405),
        ("GET", "/api/conduits/abc", 404),
        ("GET", "/api/conduits/99", 404),
        ("POST", "/api/conduits/99/sync", 404),
    ] {
        let (code, body) = d.request(method, path, Some(&d.token()));
        assert_eq!(code, want, "{method} {path}: {body}");
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {body:?}"));
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|e| !e.is_empty()),
            "{v:#}"
        );
    }
    assert_eq!(d.request("GET", "/api/nope", None).0, 401);
    // Run now through the API.
    std::fs::write(env.a.join("g.txt"), "y").unwrap();
    let (code, body) = d.request("POST", "/api/conduits/1/sync", Some(&d.token()));
    assert_eq!(code, 200, "{body}");
    wait_for("API-requested run", || read(&env.b.join("g.txt")).is_some());
    // The event stream announces runs (it is subscribed before the run is asked for).
    let mut events = d.events();
    std::fs::write(env.a.join("h.txt"), "z").unwrap();
    let (code, body) = d.request("POST", "/api/conduits/1/sync", Some(&d.token()));
    assert_eq!(code, 200, "{body}");
    events.wait_for("job_finished on the event stream", |list| {
        list.iter()
            .any(|(name, data)| *name == "job_finished" && data["conduit"] == 1)
    });
    // `ferry status` talks to the daemon.
    let out = env.ferry(&["--json", "status"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["daemon"]["pid"].as_u64(),
        Some(d.child.id() as u64),
        "{v:#}"
    );
    assert_eq!(v["conduits"][0]["conduit"], 1);
    assert_eq!(v["shares"], serde_json::json!([]), "{v:#}");
    assert_eq!(v["offers"], serde_json::json!([]), "{v:#}");

    // Shares and devices, with or without the `net` feature: the token first; none
    // here; bad requests answered in JSON.
    for (method, path) in [
        ("GET", "/api/shares"),
        ("POST", "/api/shares/abc/accept"),
        ("POST", "/api/devices"),
        ("DELETE", "/api/devices/laptop"),
    ] {
        assert_eq!(d.request(method, path, None).0, 401, "{method} {path}");
    }
    let v = d.api("/api/shares");
    assert_eq!(v["shares"], serde_json::json!([]), "{v}");
    assert_eq!(v["offers"], serde_json::json!([]), "{v}");
    let token = d.token();
    let (code, body) = d.request("POST", "/api/shares/abc/accept", Some(&token));
    assert_eq!(code, 400, "no folder given: {body}");
    assert!(body.contains("\"usage\""), "{body}");
    let (code, body) = d.request("POST", "/api/devices", Some(&token));
    assert_eq!(code, 400, "no device given: {body}");
    let (code, body) = d.request("DELETE", "/api/devices/laptop", Some(&token));
    assert_eq!(code, 404, "no such device: {body}");
}

#[test]
fn pause_and_resume() {
    let env = Env::new();
    env.add_conduit(&[]);
    let d = env.start(&[]);
    wait_for("watching", || {
        d.api("/api/conduits/1")["watch"] == "watching"
    });
    let out = env.ferry(&["conduit", "pause", "1"]);
    assert!(out.status.success());
    // At once: `ferry conduit pause` goes through the API (no settings poll to wait for).
    let c = d.api("/api/conduits/1");
    assert_eq!(c["paused"], true, "{c:#}");
    assert_eq!(c["state"], "paused", "{c:#}");
    assert_eq!(c["watch"], "off", "{c:#}");
    let mut events = d.events();
    std::fs::write(env.a.join("during-pause.txt"), "wait").unwrap();
    // Nothing moves while paused, and a request to sync says why it is refused.
    let (code, body) = d.request("POST", "/api/conduits/1/sync", Some(&d.token()));
    assert_eq!(code, 409, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("paused"),
        "{answer:#}"
    );
    let out = env.ferry(&["conduit", "resume", "1"]);
    assert!(out.status.success());
    wait_for("resumed sync", || env.b.join("during-pause.txt").exists());
    let after_resume = |list: &[(&str, Value)]| {
        list.iter()
            .skip_while(|(name, _)| *name != "conduit_resumed")
            .find(|(name, _)| *name == "job_finished")
            .map(|(_, data)| data.clone())
    };
    events.wait_for("the resumed run on the event stream", |list| {
        after_resume(list).is_some()
    });
    let list = events.list();
    let names: Vec<&str> = list.iter().map(|(name, _)| *name).collect();
    assert!(
        !names
            .iter()
            .take_while(|name| **name != "conduit_resumed")
            .any(|name| name.starts_with("job_")),
        "ran while paused: {names:?}"
    );
    let resumed = after_resume(&list).unwrap();
    assert_eq!(
        resumed["stats"]["files_copied"], 1,
        "the file written while paused was not copied by the run after the resume: {resumed:#}"
    );
    // Pause and resume through the API too.
    let (code, _) = d.request("POST", "/api/conduits/1/pause", Some(&d.token()));
    assert_eq!(code, 200);
    wait_for("paused via API", || {
        d.api("/api/conduits/1")["paused"] == true
    });
    let (code, _) = d.request("POST", "/api/conduits/1/resume", Some(&d.token()));
    assert_eq!(code, 200);
    std::fs::write(env.a.join("after.txt"), "go").unwrap();
    wait_for("sync after API resume", || env.b.join("after.txt").exists());
}

#[test]
fn watch_limit_falls_back_to_periodic_scans() {
    let env = Env::new();
    for i in 0..5 {
        std::fs::create_dir_all(env.a.join(format!("d{i}"))).unwrap();
    }
    env.add_conduit(&[]);
    let d = env.start(&[
        ("FERRY_MAX_WATCHES", "3"),
        ("FERRY_FALLBACK_INTERVAL", "1s"),
    ]);
    wait_for("fallback state", || {
        d.api("/api/conduits/1")["watch"] == "periodic (watch limit)"
    });
    std::fs::write(env.a.join("d3/late.txt"), "found by a periodic scan").unwrap();
    wait_for("periodic sync", || env.b.join("d3/late.txt").exists());
    std::fs::write(env.a.join("d4/later.txt"), "again").unwrap();
    wait_for("second periodic sync", || {
        env.b.join("d4/later.txt").exists()
    });
    let log = d.log();
    assert_eq!(
        log.matches("cannot watch for changes").count(),
        1,
        "the limit should be reported once:\n{log}"
    );
}

#[test]
fn kill_9_mid_run_then_restart_converges_without_loss() {
    let env = Env::new();
    const N: usize = 200;
    let content = |i: usize, g: u8| -> Vec<u8> {
        (0..(50_000 + i * 997 % 100_000))
            .map(|j| (j as u8).wrapping_mul(31).wrapping_add(i as u8 ^ g))
            .collect()
    };
    for i in 0..N {
        let dir = env.a.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{i}")), content(i, 0)).unwrap();
    }
    let before_a = files(&env.a);
    // A slow conduit (bandwidth-limited, one copy at a time), so the kill lands mid-run.
    env.add_conduit(&["--bandwidth-limit", "4M", "--parallel", "1"]);
    let d = env.start(&[]);
    wait_for("a run in progress", || {
        let jobs = d.api("/api/jobs")["jobs"].clone();
        jobs.as_array()
            .unwrap()
            .iter()
            .any(|j| j["phase"] == "copy" && j["files_done"].as_u64().unwrap_or(0) > 3)
    });
    d.kill9();
    // Nothing writes anymore: every file must be readable.
    for (path, bytes) in files(&env.b) {
        assert_eq!(
            before_a.get(&path),
            Some(&bytes),
            "{path} on b is not a complete copy after kill -9"
        );
    }
    let copied_before = files(&env.b).len();
    assert!(copied_before < N, "the run finished before the kill");
    // Remove the limit so the resumed run is quick, then restart.
    env.add_conduit(&["--bandwidth-limit", "0", "--parallel", "0"]);
    let d = env.start(&[]);
    wait_for("converged after restart", || {
        readable_files(&env.b) == before_a
    });
    assert_eq!(readable_files(&env.a), before_a, "the source changed");
    let history = d.api("/api/history")["history"].clone();
    let gens = history.as_array().unwrap();
    let interrupted = gens
        .iter()
        .find(|g| g["status"] == "interrupted")
        .expect("interrupted run recorded");
    let resumed = gens
        .iter()
        .find(|g| g["resumes"] == interrupted["generation"])
        .unwrap_or_else(|| panic!("no run resumes the interrupted one: {history:#}"));
    // Verified work is not redone: the resumed run copies only what was missing.
    wait_for("resumed run finished", || {
        d.api("/api/history")["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["generation"] == resumed["generation"] && g["status"] == "ok")
    });
    let resumed = d.api("/api/history")["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["generation"] == resumed["generation"])
        .cloned()
        .unwrap();
    assert!(
        resumed["files_copied"].as_u64().unwrap() <= (N - copied_before) as u64,
        "resumed run redid verified copies: {resumed:#}, {copied_before} were already there"
    );
}

#[test]
fn sync_by_conduit_id_and_conduit_management() {
    let env = Env::new();
    std::fs::write(env.a.join("one.txt"), "1").unwrap();
    env.add_conduit(&["--schedule", "manual", "--mode", "mirror"]);
    let out = env.ferry(&["--json", "conduit", "list"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["conduits"][0]["schedule"], "manual");
    assert_eq!(list["conduits"][0]["mode"], "mirror");
    let out = env.ferry(&["sync", "--conduit", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read(&env.b.join("one.txt")).as_deref(), Some(&b"1"[..]));
    let out = env.ferry(&["conduit", "show", "1"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("manual"));
    let out = env.ferry(&["conduit", "add", "x", "y", "--schedule", "sometimes"]);
    assert!(!out.status.success());
    let out = env.ferry(&["conduit", "remove", "1"]);
    assert!(out.status.success());
    let out = env.ferry(&["sync", "--conduit", "1"]);
    assert!(!out.status.success());
    assert!(env.a.join("one.txt").exists() && env.b.join("one.txt").exists());
}

/// Asks the daemon to run conduit 1 now and waits for that run's end on the event
/// stream (the `n`th run the stream has seen end); returns its event name and data.
fn run_now(d: &Daemon, events: &mut Events, n: usize) -> (String, Value) {
    let (code, body) = d.request("POST", "/api/conduits/1/sync", Some(&d.token()));
    assert_eq!(code, 200, "{body}");
    let ended = |list: &[(&str, Value)]| -> Vec<(String, Value)> {
        list.iter()
            .filter(|(name, _)| *name == "job_finished" || *name == "job_failed")
            .map(|(name, data)| (name.to_string(), data.clone()))
            .collect()
    };
    events.wait_for(&format!("the end of run {n}"), |list| {
        ended(list).len() >= n
    });
    ended(&events.list()).swap_remove(n - 1)
}

/// A folder that is unplugged (its marker gone, then the whole root) makes the daemon
/// refuse the conduit's runs: that is logged as a warning once per reason, not at
/// every refused run; the folder's return is logged once too, and the run then syncs
/// what changed meanwhile.
#[test]
fn unplugged_folder_is_logged_once_per_state() {
    let env = Env::new();
    std::fs::write(env.a.join("f.txt"), "x").unwrap();
    env.add_conduit(&["--schedule", "manual"]);
    let d = env.start(&[]);
    let mut events = d.events();
    let refusals = |d: &Daemon| d.log().matches("conduit 1: refused:").count();
    assert_eq!(run_now(&d, &mut events, 1).0, "job_finished");
    assert!(env.b.join("f.txt").exists());

    // Marker gone: every run is refused, the reason is logged once.
    let marker = env.a.join(".ferry/location");
    let away = env.a.join(".ferry/location.unplugged");
    std::fs::rename(&marker, &away).unwrap();
    std::fs::write(env.b.join("g.txt"), "made while A was away").unwrap();
    for n in 2..=4 {
        let (name, data) = run_now(&d, &mut events, n);
        assert_eq!(name, "job_failed", "{data:#}");
        assert!(
            data["error"].as_str().unwrap().contains("marker"),
            "{data:#}"
        );
    }
    let log = d.log();
    assert_eq!(
        refusals(&d),
        1,
        "one warning for three refused runs:\n{log}"
    );
    assert!(log.contains("WARN"), "{log}");
    let line = log.lines().find(|l| l.contains("refused:")).unwrap();
    assert!(line.contains(&env.a.display().to_string()), "{line}");
    assert!(line.contains("marker"), "{line}");

    // A new reason (the whole root gone) is a new state: logged again, once.
    let gone = env.a.with_file_name("a-unplugged");
    std::fs::rename(&env.a, &gone).unwrap();
    for n in 5..=6 {
        assert_eq!(run_now(&d, &mut events, n).0, "job_failed");
    }
    let log = d.log();
    assert_eq!(refusals(&d), 2, "{log}");
    assert!(
        log.lines()
            .filter(|l| l.contains("refused:"))
            .nth(1)
            .is_some_and(|l| l.contains("not reachable")),
        "{log}"
    );

    // Plugged back in: the next run goes through, and says so once.
    std::fs::rename(&gone, &env.a).unwrap();
    std::fs::rename(&away, &marker).unwrap();
    assert_eq!(run_now(&d, &mut events, 7).0, "job_finished");
    assert_eq!(run_now(&d, &mut events, 8).0, "job_finished");
    assert_eq!(
        read(&env.a.join("g.txt")).as_deref(),
        Some(&b"made while A was away"[..])
    );
    let log = d.log();
    assert_eq!(log.matches("its folders are back").count(), 1, "{log}");
    assert_eq!(refusals(&d), 2, "{log}");
    assert!(!log.contains("run failed"), "{log}");
}

/// `ferry sync` follows a moved folder while the daemon runs: the daemon picks up the
/// conduit's new root from the index, says so, watches there and keeps syncing.
#[test]
fn daemon_follows_a_folder_moved_and_resynced_by_the_cli() {
    let env = Env::new();
    std::fs::write(env.a.join("f.txt"), "x").unwrap();
    env.add_conduit(&[]);
    let d = env.start(&[]);
    wait_for("initial sync", || env.b.join("f.txt").exists());
    let moved = env.a.with_file_name("a-moved");
    std::fs::rename(&env.a, &moved).unwrap();
    // The daemon may be running the conduit right then (busy): try again.
    wait_for("`ferry sync` of the moved folder", || {
        env.ferry(&["sync", moved.to_str().unwrap(), env.b.to_str().unwrap()])
            .status
            .success()
    });
    wait_for("the daemon to take the new root", || {
        d.log()
            .contains(&format!("its folders are now {}", moved.display()))
    });
    std::fs::write(moved.join("after-the-move.txt"), "y").unwrap();
    wait_for("a change in the moved folder to reach b", || {
        read(&env.b.join("after-the-move.txt")).as_deref() == Some(&b"y"[..])
    });
    let out = env.ferry(&["--json", "conduit", "list"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["conduits"].as_array().unwrap().len(), 1, "{list:#}");
}

/// Places `content` at `path` in one step (written beside the folders, then renamed
/// in), so the watcher sees one event for it, never a half-written file.
fn place(env: &Env, path: &Path, content: &str) {
    let staging = env._tmp.path().join("staging");
    std::fs::write(&staging, content).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

/// The daemon's own writes come back as file-system events once its run is over; they
/// queue no run (there used to be an extra, empty run after every change). Every run
/// the event stream announces records a generation, i.e. had something to do, through
/// new files, a new folder, an edit of a file the daemon itself wrote (which must not
/// be taken for its own write) and a deletion. Its log, written to a file, carries no
/// colour codes.
#[test]
fn own_writes_queue_no_extra_run() {
    let env = Env::new();
    std::fs::create_dir_all(env.a.join("dir")).unwrap();
    std::fs::write(env.a.join("dir/first.txt"), "1").unwrap();
    env.add_conduit(&[]);
    let d = env.start(&[("FERRY_DEBOUNCE", "20ms")]);
    wait_for("initial sync", || {
        read(&env.b.join("dir/first.txt")).is_some()
    });
    let idle = || d.api("/api/jobs")["jobs"].as_array().unwrap().is_empty();
    wait_for("the initial run to end", idle);
    let mut events = d.events();

    place(&env, &env.a.join("new.txt"), "new on a");
    wait_for("a new file", || read(&env.b.join("new.txt")).is_some());
    wait_for("its run to end", idle);
    let tree = env._tmp.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/deep.txt"), "deep").unwrap();
    std::fs::rename(&tree, env.a.join("tree")).unwrap();
    wait_for("a new folder", || {
        read(&env.b.join("tree/sub/deep.txt")).is_some()
    });
    wait_for("its run to end", idle);
    place(&env, &env.b.join("new.txt"), "edited on b");
    wait_for("an edit of a file the daemon wrote", || {
        read(&env.a.join("new.txt")).as_deref() == Some(&b"edited on b"[..])
    });
    wait_for("its run to end", idle);
    std::fs::remove_file(env.a.join("dir/first.txt")).unwrap();
    wait_for("a deletion", || !env.b.join("dir/first.txt").exists());
    wait_for("its run to end", idle);
    // A last change: its run ends after every event written before it was handled.
    place(&env, &env.a.join("last.txt"), "last");
    events.wait_for("the last run", |list| {
        list.iter().any(|(name, data)| {
            *name == "job_finished" && data["stats"]["files_copied"].as_u64() == Some(1) && {
                read(&env.b.join("last.txt")).is_some()
            }
        })
    });
    wait_for("its run to end", idle);
    events.read();
    let list = events.list();
    let finished: Vec<&Value> = list
        .iter()
        .filter(|(name, _)| *name == "job_finished")
        .map(|(_, data)| data)
        .collect();
    assert!(finished.len() >= 5, "{list:#?}");
    for run in &finished {
        assert!(
            !run["generation"].is_null(),
            "a run with nothing to do (the daemon's own writes?): {run:#}\nall events: {list:#?}"
        );
    }
    assert_eq!(readable_files(&env.a), readable_files(&env.b));
    let log = d.log();
    assert!(log.contains("INFO"), "{log}");
    assert!(
        !log.contains('\x1b'),
        "colour codes in the log file: {log:?}"
    );
}

/// A slow conduit (bandwidth-limited, one copy at a time) over `n` distinct files.
fn slow_conduit(env: &Env, n: usize) -> std::collections::BTreeMap<String, Vec<u8>> {
    for i in 0..n {
        let dir = env.a.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&dir).unwrap();
        let body: Vec<u8> = (0..(40_000 + i * 97))
            .map(|j| (j as u8).wrapping_mul(13) ^ i as u8)
            .collect();
        std::fs::write(dir.join(format!("f{i}")), body).unwrap();
    }
    env.add_conduit(&["--bandwidth-limit", "2M", "--parallel", "1"]);
    files(&env.a)
}

/// Waits until conduit 1's run is copying.
fn wait_until_copying(d: &Daemon) {
    wait_for("a run in its copy phase", || {
        d.api("/api/jobs")["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["phase"] == "copy" && j["phase_files_done"].as_u64().unwrap_or(0) > 3)
    });
}

/// After a run stopped at a safe point: only complete copies on b, no temp file, and
/// the latest generation is `interrupted`. Returns (its ID, files on b).
fn check_stopped(env: &Env, want: &std::collections::BTreeMap<String, Vec<u8>>) -> (u64, usize) {
    let on_b = files(&env.b);
    for (path, bytes) in &on_b {
        assert_eq!(
            want.get(path),
            Some(bytes),
            "{path} on b is not a complete copy"
        );
    }
    assert!(
        on_b.len() < want.len(),
        "the run finished before it was stopped"
    );
    let history: Value = serde_json::from_slice::<Value>(&env.ferry(&["--json", "history"]).stdout)
        .unwrap()["generations"]
        .take();
    assert_eq!(history[0]["status"], "interrupted", "{history:#}");
    (history[0]["generation"].as_u64().unwrap(), on_b.len())
}

/// The run after a stopped one resumes it and copies only what was missing.
fn wait_resumed(d: &Daemon, stopped: u64, copied_before: usize, n: usize) {
    wait_for("the resumed run", || {
        d.api("/api/history")["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["resumes"] == stopped && g["status"] == "ok")
    });
    let history = d.api("/api/history")["history"].clone();
    let resumed = history
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["resumes"] == stopped)
        .unwrap();
    assert_eq!(
        resumed["files_copied"].as_u64().unwrap() as usize + copied_before,
        n,
        "copies lost or redone: {history:#}"
    );
}

/// Pausing a conduit stops its running job at the next safe point (not after the whole
/// run): the generation is `interrupted`, and resuming picks up where it stopped.
#[test]
fn pause_stops_a_running_job_at_a_safe_point() {
    const N: usize = 150;
    let env = Env::new();
    let want = slow_conduit(&env, N);
    let d = env.start(&[]);
    wait_until_copying(&d);
    let out = env.ferry(&["conduit", "pause", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the job to stop", || {
        d.api("/api/jobs")["jobs"].as_array().unwrap().is_empty()
    });
    let (stopped, copied) = check_stopped(&env, &want);
    assert_eq!(d.api("/api/conduits/1")["state"], "paused");
    env.add_conduit(&["--bandwidth-limit", "0"]);
    let out = env.ferry(&["conduit", "resume", "1"]);
    assert!(out.status.success());
    wait_for("converged", || readable_files(&env.b) == want);
    wait_resumed(&d, stopped, copied, N);
}

/// SIGTERM stops the daemon's running job at a safe point before it exits; the next
/// start resumes the run.
#[test]
fn sigterm_stops_the_daemon_after_its_job_reaches_a_safe_point() {
    const N: usize = 150;
    let env = Env::new();
    let want = slow_conduit(&env, N);
    let d = env.start(&[]);
    wait_until_copying(&d);
    assert_eq!(d.terminate(), Some(0));
    let (stopped, copied) = check_stopped(&env, &want);
    env.add_conduit(&["--bandwidth-limit", "0"]);
    let d = env.start(&[]);
    wait_for("converged", || readable_files(&env.b) == want);
    wait_resumed(&d, stopped, copied, N);
}

/// A run's notes (here an ignore-file line ferry cannot use) reach the daemon's log,
/// as the CLI prints them.
#[test]
fn a_runs_notes_reach_the_daemon_log() {
    let env = Env::new();
    std::fs::write(env.a.join("f.txt"), "x").unwrap();
    std::fs::write(env.a.join(".ferryignore"), "*.log\n!\n").unwrap();
    env.add_conduit(&["--schedule", "manual"]);
    let d = env.start(&[]);
    let mut events = d.events();
    assert_eq!(run_now(&d, &mut events, 1).0, "job_finished");
    let log = d.log();
    assert!(
        log.contains("note:") && log.contains(".ferryignore"),
        "{log}"
    );
}

#[test]
fn a_selective_conduit_evicts_after_its_runs_and_says_so() {
    let env = Env::new();
    env.add_conduit(&["--mode", "selective", "--local-quota", "150000"]);
    let d = env.start(&[]);
    let mut events = d.events();
    // Two 100,000-byte files: over the quota once both are synced, so the colder goes.
    let (old, new) = (env.a.join("old.bin"), env.a.join("new.bin"));
    std::fs::write(&old, vec![1u8; 100_000]).unwrap();
    std::fs::write(&new, vec![2u8; 100_000]).unwrap();
    for (p, secs) in [(&old, 1_000), (&new, 2_000)] {
        let f = std::fs::File::options().write(true).open(p).unwrap();
        let m = f.metadata().unwrap();
        f.set_times(
            std::fs::FileTimes::new()
                .set_accessed(std::time::UNIX_EPOCH + Duration::from_secs(secs))
                .set_modified(m.modified().unwrap()),
        )
        .unwrap();
    }
    let (code, body) = d.request("POST", "/api/conduits/1/sync", Some(&d.token()));
    assert_eq!(code, 200, "{body}");
    events.wait_for("files_dehydrated on the event stream", |list| {
        list.iter().any(|(name, data)| {
            *name == "files_dehydrated" && data["conduit"] == 1 && data["bytes"] == 100_000
        })
    });
    assert!(!old.exists(), "the colder file is online-only");
    assert!(new.exists());
    assert_eq!(read(&env.b.join("old.bin")).unwrap(), vec![1u8; 100_000]);
    let fod = &d.api("/api/status")["conduits"][0]["files_on_demand"];
    assert_eq!(fod["bytes_online_only"], 100_000, "{fod}");
    assert_eq!(fod["bytes_local"], 100_000, "{fod}");
    assert_eq!(fod["local_quota"], 150_000, "{fod}");
    // The eviction's own removal is not a change: no run deletes it from B.
    std::thread::sleep(Duration::from_millis(500));
    let (code, body) = d.request("POST", "/api/conduits/1/sync", Some(&d.token()));
    assert_eq!(code, 200, "{body}");
    events.wait_for("a second run", |list| {
        list.iter()
            .filter(|(name, _)| *name == "job_finished")
            .count()
            >= 2
    });
    assert!(env.b.join("old.bin").exists());
    assert_eq!(d.terminate(), Some(0));
}

/// Sets a file's access time (its modification time kept), as a read long ago would.
fn set_atime(p: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    let m = f.metadata().unwrap();
    f.set_times(
        std::fs::FileTimes::new()
            .set_accessed(std::time::UNIX_EPOCH + Duration::from_secs(secs))
            .set_modified(m.modified().unwrap()),
    )
    .unwrap();
}

/// The `files_dehydrated` events so far: (by, paths).
fn dehydrations(list: &[(&str, Value)]) -> Vec<(String, Vec<String>)> {
    list.iter()
        .filter(|(name, _)| *name == "files_dehydrated")
        .map(|(_, d)| {
            let paths = d["paths"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            (d["by"].as_str().unwrap_or("").to_string(), paths)
        })
        .collect()
}

#[test]
fn the_daemon_evicts_between_runs_as_files_are_written_never_open_pinned_or_unsynced_ones() {
    let env = Env::new();
    // A manual conduit: no run happens unless asked, so whatever goes below is the
    // daemon's check between runs.
    env.add_conduit(&[
        "--mode",
        "selective",
        "--schedule",
        "manual",
        "--local-quota",
        "450000",
    ]);
    let names = ["cold.bin", "warm.bin", "pinned.bin", "open.bin"];
    for (i, n) in names.iter().enumerate() {
        std::fs::write(env.a.join(n), vec![i as u8 + 1; 100_000]).unwrap();
    }
    // Oldest access first: pinned, open, cold, warm (set before the scan: changing a
    // time changes the ctime, and a file changed since its scan is never dehydrated).
    for (n, secs) in [
        ("pinned.bin", 500),
        ("open.bin", 600),
        ("cold.bin", 1_000),
        ("warm.bin", 2_000),
    ] {
        set_atime(&env.a.join(n), secs);
    }
    let d = env.start(&[("FERRY_EVICT_INTERVAL", "200ms")]);
    let mut events = d.events();
    assert_eq!(run_now(&d, &mut events, 1).0, "job_finished");
    let out = env.ferry(&["pin", env.a.join("pinned.bin").to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let held = std::fs::File::open(env.a.join("open.bin")).unwrap();
    assert!(
        dehydrations(&events.list()).is_empty(),
        "400,000 bytes: under the quota"
    );

    // A new file (not synced) takes A to 550,000 bytes: 100,000 over. The coldest
    // closed, unpinned, synced file goes; the pinned and the open one are older.
    std::fs::write(env.a.join("new.bin"), vec![9u8; 150_000]).unwrap();
    events.wait_for("a dehydration by the quota check", |list| {
        !dehydrations(list).is_empty()
    });
    assert_eq!(
        dehydrations(&events.list()),
        vec![("quota".to_string(), vec!["cold.bin".to_string()])]
    );
    assert!(!env.a.join("cold.bin").exists());
    for n in ["warm.bin", "pinned.bin", "open.bin", "new.bin"] {
        assert!(env.a.join(n).exists(), "{n} stays");
    }
    assert_eq!(read(&env.b.join("cold.bin")).unwrap(), vec![1u8; 100_000]);
    let fod = &d.api("/api/status")["conduits"][0]["files_on_demand"];
    assert_eq!(fod["bytes_online_only"], 100_000, "{fod}");
    assert_eq!(fod["files_online_only"], 1, "{fod}");

    // 200,000 more: only warm.bin can go; the rest is pinned, open or not synced.
    std::fs::write(env.a.join("newer.bin"), vec![8u8; 200_000]).unwrap();
    events.wait_for("a second dehydration", |list| dehydrations(list).len() >= 2);
    wait_for("the shortfall in the log", || {
        d.log()
            .contains("over its quota or free-space floor: too few")
    });
    assert_eq!(
        dehydrations(&events.list())[1],
        ("quota".to_string(), vec!["warm.bin".to_string()])
    );
    for n in ["pinned.bin", "open.bin", "new.bin", "newer.bin"] {
        assert!(env.a.join(n).exists(), "{n} stays");
    }
    assert_eq!(read(&env.b.join("warm.bin")).unwrap(), vec![2u8; 100_000]);
    // None of this was a run: the new files are not on B, and only the first run ran.
    assert!(!env.b.join("new.bin").exists());
    let runs = events
        .list()
        .iter()
        .filter(|(name, _)| *name == "job_started")
        .count();
    assert_eq!(runs, 1);
    drop(held);
    // Once closed, the open file is the coldest candidate: the next check takes it.
    events.wait_for("the closed file's dehydration", |list| {
        dehydrations(list)
            .iter()
            .any(|(by, p)| by == "quota" && p == &vec!["open.bin".to_string()])
    });
    assert!(env.a.join("pinned.bin").exists());
    assert_eq!(read(&env.b.join("open.bin")).unwrap(), vec![4u8; 100_000]);
    // The dehydrated files are not deletions: a run leaves B as it was.
    assert_eq!(run_now(&d, &mut events, 2).0, "job_finished");
    for n in ["cold.bin", "warm.bin", "open.bin"] {
        assert!(env.b.join(n).exists(), "{n} kept on B");
    }
    assert_eq!(read(&env.b.join("new.bin")).unwrap(), vec![9u8; 150_000]);
    assert_eq!(d.terminate(), Some(0));
}

/// The names and data of the files-on-demand events so far, in order.
fn on_demand_events(list: &[(&str, Value)]) -> Vec<(String, Value)> {
    list.iter()
        .filter(|(name, _)| name.starts_with("hydration_") || *name == "files_dehydrated")
        .map(|(name, d)| (name.to_string(), d.clone()))
        .collect()
}

#[test]
fn free_up_and_keep_offline_reach_the_event_stream_and_status_counts_them() {
    let env = Env::new();
    env.add_conduit(&["--mode", "selective", "--schedule", "manual"]);
    std::fs::write(env.a.join("x.bin"), vec![7u8; 50_000]).unwrap();
    std::fs::write(env.a.join("y.bin"), vec![8u8; 30_000]).unwrap();
    let d = env.start(&[]);
    let mut events = d.events();
    assert_eq!(run_now(&d, &mut events, 1).0, "job_finished");
    let x = env.a.join("x.bin");
    let y = env.a.join("y.bin");
    let ferry_ok = |args: &[&str]| {
        let out = env.ferry(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    ferry_ok(&["free-up", x.to_str().unwrap()]);
    events.wait_for("free-up's dehydration", |l| !on_demand_events(l).is_empty());
    let (name, data) = on_demand_events(&events.list()).remove(0);
    assert_eq!(name, "files_dehydrated");
    assert_eq!(
        (
            &data["conduit"],
            &data["by"],
            &data["files"],
            &data["bytes"]
        ),
        (
            &Value::from(1),
            &Value::from("free-up"),
            &Value::from(1),
            &Value::from(50_000)
        )
    );
    assert_eq!(data["paths"], serde_json::json!(["x.bin"]));
    let fod = &d.api("/api/status")["conduits"][0]["files_on_demand"];
    assert_eq!(
        (
            &fod["bytes_online_only"],
            &fod["bytes_local"],
            &fod["files_online_only"]
        ),
        (&Value::from(50_000), &Value::from(30_000), &Value::from(1)),
        "{fod}"
    );

    ferry_ok(&["keep-offline", x.to_str().unwrap()]);
    events.wait_for("the hydration's end", |l| on_demand_events(l).len() >= 3);
    let got = on_demand_events(&events.list());
    assert_eq!(got[1].0, "hydration_started");
    assert_eq!(got[2].0, "hydration_finished");
    for (_, d) in &got[1..3] {
        assert_eq!(
            (&d["path"], &d["bytes"]),
            (&Value::from("x.bin"), &Value::from(50_000))
        );
        assert_eq!(d["by"], "keep-offline");
    }
    assert_eq!(read(&x).unwrap(), vec![7u8; 50_000]);
    let fod = &d.api("/api/status")["conduits"][0]["files_on_demand"];
    assert_eq!(
        (
            &fod["bytes_online_only"],
            &fod["bytes_local"],
            &fod["pinned"]
        ),
        (&Value::from(0), &Value::from(80_000), &Value::from(1)),
        "{fod}"
    );
    assert_eq!(fod["hydrations_in_progress"], 0, "{fod}");

    // The secondary's copy damaged (same size, other bytes): the hydration fails, is
    // said on the stream, and the file stays online-only.
    ferry_ok(&["free-up", y.to_str().unwrap()]);
    std::fs::write(env.b.join("y.bin"), vec![9u8; 30_000]).unwrap();
    let out = env.ferry(&["keep-offline", y.to_str().unwrap()]);
    assert!(!out.status.success());
    events.wait_for("the failed hydration", |l| {
        on_demand_events(l)
            .iter()
            .any(|(n, _)| n == "hydration_failed")
    });
    let got = on_demand_events(&events.list());
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "files_dehydrated",
            "hydration_started",
            "hydration_finished",
            "files_dehydrated",
            "hydration_started",
            "hydration_failed"
        ]
    );
    let failed = &got[5].1;
    assert_eq!(
        (&failed["path"], &failed["by"]),
        (&Value::from("y.bin"), &Value::from("keep-offline"))
    );
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    assert!(!y.exists(), "still online-only");
    let fod = &d.api("/api/status")["conduits"][0]["files_on_demand"];
    assert_eq!(fod["bytes_online_only"], 30_000, "{fod}");

    // Only this library's token may report: without it, 401 and nothing on the stream.
    let (code, _) = d.request("POST", "/api/ondemand/events", None);
    assert_eq!(code, 401);
    assert_eq!(d.terminate(), Some(0));
}
