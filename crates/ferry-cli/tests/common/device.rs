//! A device for tests: a library and, once started, a `ferry daemon --listen` on a free
//! loopback port. Conditions are polled with a generous deadline; nothing asserts on
//! timing.

use super::ferry_cmd;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(90);

/// One device: a library and, once started, its daemon (killed when dropped).
pub struct Device {
    pub tmp: tempfile::TempDir,
    pub home: PathBuf,
    daemon: Option<Child>,
}

impl Device {
    pub fn new() -> Device {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        Device {
            tmp,
            home,
            daemon: None,
        }
    }

    /// Runs `ferry ARGS --json`, asserts success, returns its JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = ferry_cmd(&self.home)
            .args(args)
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ferry {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn id(&self) -> String {
        self.json(&["device", "id"])["device_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Starts the daemon with a device node on a free loopback port; returns that
    /// address once the daemon answers.
    pub fn start(&mut self) -> String {
        std::fs::create_dir_all(&self.home).unwrap();
        let log = std::fs::File::create(self.home.join("daemon.log")).unwrap();
        let child = ferry_cmd(&self.home)
            .args(["daemon", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let mut addr = None;
        wait_for("the daemon's device node", || {
            let v = self.list();
            addr = v["node"]["listen"][0].as_str().map(str::to_string);
            addr.is_some()
        });
        addr.unwrap()
    }

    pub fn list(&self) -> Value {
        self.json(&["device", "list"])
    }

    pub fn row(&self, id: &str) -> Option<Value> {
        self.list()["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
    }

    pub fn connected_to(&self, id: &str) -> bool {
        self.row(id).is_some_and(|r| r["connected"] == true)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("daemon.log")).unwrap_or_default()
    }

    /// Stops the daemon (SIGTERM) and checks it neither panicked nor failed.
    pub fn stop(&mut self) {
        let mut child = self.daemon.take().unwrap();
        // SAFETY: plain kill(2) of our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        let status = child.wait().unwrap();
        let log = self.log();
        assert!(!log.contains("panicked"), "{log}");
        assert!(status.success(), "daemon exited with {status}: {log}");
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
