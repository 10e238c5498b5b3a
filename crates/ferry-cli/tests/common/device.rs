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
    /// Runs (daemon and commands) in this network namespace, listening on this IP.
    netns: Option<(String, String)>,
    /// Finds devices by mDNS. Off unless a test is about it: daemons of parallel tests
    /// on one machine would otherwise find each other where a test means them not to
    /// meet (a device added without an address).
    pub local_discovery: bool,
    /// A relay server the daemon uses (`--relay URL`).
    pub relay: Option<String>,
    /// More environment for the daemon (test knobs).
    pub env: Vec<(String, String)>,
}

impl Device {
    pub fn new() -> Device {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        Device {
            tmp,
            home,
            daemon: None,
            netns: None,
            local_discovery: false,
            relay: None,
            env: Vec::new(),
        }
    }

    /// A device whose daemon and commands run in network namespace `ns`, its node
    /// listening on `ip`.
    pub fn in_netns(ns: &str, ip: &str) -> Device {
        let mut d = Device::new();
        d.netns = Some((ns.to_string(), ip.to_string()));
        d
    }

    /// `ferry` for this device (inside its namespace, if it has one).
    pub fn cmd(&self) -> std::process::Command {
        let inner = ferry_cmd(&self.home);
        let Some((ns, _)) = &self.netns else {
            return inner;
        };
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", ns]).arg(inner.get_program());
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c
    }

    /// Runs `ferry ARGS --json`, asserts success, returns its JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.cmd().args(args).arg("--json").output().unwrap();
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
        let listen = match &self.netns {
            Some((_, ip)) => format!("{ip}:0"),
            None => "127.0.0.1:0".to_string(),
        };
        let mut cmd = self.cmd();
        cmd.args(["daemon", "--listen", &listen]);
        if !self.local_discovery {
            cmd.arg("--no-local-discovery");
        }
        if let Some(url) = &self.relay {
            cmd.args(["--relay", url]);
        }
        cmd.env("RUST_LOG", "info");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let child = cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap();
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

    /// Kills the daemon (SIGKILL): no chance to stop at a safe point.
    pub fn kill(&mut self) {
        let mut child = self.daemon.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
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

/// A UDP relay between a device and another, impairing the link in user space: each
/// datagram is held for `delay` and dropped with probability `loss` (a fixed-seed
/// generator), and everything is dropped while it is down. (This machine's kernel has
/// no `netem`, so the impairment is done here; it works on any machine.) Forwards
/// between the first address that sends to it and `target`.
pub struct UdpLink {
    pub addr: std::net::SocketAddr,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub carried: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl UdpLink {
    /// Listens on `front_ip` (where the device that dials reaches it) and forwards to
    /// `target` from `back_ip`.
    pub fn new(
        front_ip: &str,
        back_ip: &str,
        target: std::net::SocketAddr,
        delay: Duration,
        loss: f64,
    ) -> UdpLink {
        use std::net::UdpSocket;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::{Arc, Mutex};
        let front = UdpSocket::bind((front_ip, 0)).unwrap();
        let back = UdpSocket::bind((back_ip, 0)).unwrap();
        let addr = front.local_addr().unwrap();
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        }
        let down = Arc::new(AtomicBool::new(false));
        let carried = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let client: Arc<Mutex<Option<std::net::SocketAddr>>> = Arc::new(Mutex::new(None));
        // (due, forward to the target?, bytes), sent by one thread in due order.
        let queue: Arc<Mutex<Vec<Held>>> = Arc::new(Mutex::new(Vec::new()));
        let (front, back) = (Arc::new(front), Arc::new(back));
        for to_target in [true, false] {
            let (sock, queue, down, stop, client) = (
                if to_target {
                    front.clone()
                } else {
                    back.clone()
                },
                queue.clone(),
                down.clone(),
                stop.clone(),
                client.clone(),
            );
            let mut lose = coin(if to_target { 0x9e37_79b9 } else { 0x2545_f491 }, loss);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    if to_target {
                        *client.lock().unwrap() = Some(from);
                    }
                    if down.load(Ordering::Relaxed) || lose() {
                        continue;
                    }
                    let due = Instant::now() + delay;
                    queue
                        .lock()
                        .unwrap()
                        .push((due, to_target, buf[..n].to_vec()));
                }
            });
        }
        {
            let (queue, stop, client, carried) =
                (queue.clone(), stop.clone(), client.clone(), carried.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    let ready: Vec<Held> = {
                        let mut q = queue.lock().unwrap();
                        let (ready, wait): (Vec<_>, Vec<_>) =
                            q.drain(..).partition(|(d, ..)| *d <= now);
                        *q = wait;
                        ready
                    };
                    for (_, to_target, bytes) in ready {
                        carried.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        if to_target {
                            let _ = back.send_to(&bytes, target);
                        } else if let Some(c) = *client.lock().unwrap() {
                            let _ = front.send_to(&bytes, c);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        }
        UdpLink {
            addr,
            down,
            carried,
            stop,
        }
    }

    /// Drops everything (down) or carries again (up).
    pub fn set_up(&self, up: bool) {
        self.down.store(!up, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A datagram held back: when it is due, whether it goes to the target, its bytes.
type Held = (Instant, bool, Vec<u8>);

/// Says true with probability `p`, from a fixed seed (the same losses every run).
fn coin(mut seed: u64, p: f64) -> impl FnMut() -> bool + Send {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 10_000) as f64 / 10_000.0 < p
    }
}

impl Drop for UdpLink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Two network namespaces, each joined to this one by a veth pair and nothing else:
/// a device in one cannot reach a device in the other except through something this
/// namespace runs (a [`UdpLink`]). Removed when dropped.
pub struct Island {
    pub ns: [String; 2],
    /// Each namespace's address, and this namespace's address facing it.
    pub inner: [String; 2],
    pub outer: [String; 2],
}

pub fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Island {
    pub fn new() -> Island {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}x{n}", std::process::id());
        let net = (std::process::id() * 7 + n * 2) % 250;
        let island = Island {
            ns: [format!("fa{tag}"), format!("fb{tag}")],
            inner: [format!("10.201.{net}.2"), format!("10.201.{}.2", net + 1)],
            outer: [format!("10.201.{net}.1"), format!("10.201.{}.1", net + 1)],
        };
        for i in 0..2 {
            let (ns, out_dev, in_dev) = (&island.ns[i], format!("o{i}{tag}"), format!("i{i}{tag}"));
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&[
                "link", "add", &out_dev, "type", "veth", "peer", "name", &in_dev,
            ]);
            ip(&["link", "set", &in_dev, "netns", ns]);
            ip(&[
                "addr",
                "add",
                &format!("{}/24", island.outer[i]),
                "dev",
                &out_dev,
            ]);
            ip(&["link", "set", &out_dev, "up"]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", island.inner[i]),
                "dev",
                &in_dev,
            ]);
            ip(&["-n", ns, "link", "set", &in_dev, "up"]);
        }
        island
    }
}

impl Drop for Island {
    fn drop(&mut self) {
        for n in &self.ns {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .output();
        }
    }
}

/// Two network namespaces on one link (a veth pair, one subnet), like two machines on
/// a home network: multicast (mDNS) reaches from one to the other. Removed when
/// dropped.
pub struct Lan {
    pub ns: [String; 2],
    pub ip: [String; 2],
    devs: [String; 2],
}

impl Lan {
    pub fn new() -> Lan {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}l{n}", std::process::id());
        let net = (std::process::id() * 3 + n) % 250;
        let devs = [format!("va{tag}"), format!("vb{tag}")];
        let lan = Lan {
            ns: [format!("la{tag}"), format!("lb{tag}")],
            ip: [format!("10.203.{net}.1"), format!("10.203.{net}.2")],
            devs: devs.clone(),
        };
        for ns in &lan.ns {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "link", "add", &devs[0], "netns", &lan.ns[0], "type", "veth", "peer", "name", &devs[1],
            "netns", &lan.ns[1],
        ]);
        for ((ns, dev), addr) in lan.ns.iter().zip(&devs).zip(&lan.ip) {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up", "multicast", "on"]);
            // No default route in a fresh namespace: multicast needs one of its own.
            ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", dev]);
        }
        lan
    }
}

impl Lan {
    /// Takes the link down (both ends: nothing crosses) or up again.
    #[allow(dead_code)]
    pub fn set_up(&self, up: bool) {
        for (ns, dev) in self.ns.iter().zip(&self.devs) {
            ip(&["-n", ns, "link", "set", dev, if up { "up" } else { "down" }]);
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for n in &self.ns {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .output();
        }
    }
}
