//! The web dashboard against a real `ferry daemon`: security rules over plain HTTP, and
//! the pages in a real headless Chromium driven through chromedriver's WebDriver HTTP
//! protocol (a few JSON requests over std's TcpStream: no browser-driver crate).
//!
//! Chromium and chromedriver must be installed (Debian `chromium chromium-driver`, as
//! `.ci/run` does); without them the browser test FAILS rather than skipping.
//! `FERRY_CHROMIUM` / `FERRY_CHROMEDRIVER` override their paths. With
//! `FERRY_DASHBOARD_SCREENSHOTS=DIR` the test saves the main pages as PNG there
//! (`docs/` holds the ones README shows).
//!
//! Conditions are awaited by polling with a generous deadline; nothing asserts on timing.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{ferry_cmd, folders};

const DEADLINE: Duration = Duration::from_secs(30);

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------- a minimal HTTP/1.1 client ----------

struct Reply {
    code: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    // Read the head, then exactly the body (chromedriver keeps connections open).
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let split = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the answer's head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let lower = head.to_ascii_lowercase();
    let length = lower.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    if let Some(len) = length {
        while body.len() < len {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed mid-body");
            body.extend_from_slice(&buf[..n]);
        }
    } else if lower.contains("transfer-encoding: chunked") {
        while !body.ends_with(b"0\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed mid-body");
            body.extend_from_slice(&buf[..n]);
        }
        body = dechunk(&body);
    } else {
        s.read_to_end(&mut body).unwrap();
    }
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply { code, head, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

// ---------- the daemon under test ----------

struct Env {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    a: PathBuf,
    b: PathBuf,
    scratch: PathBuf,
}

impl Env {
    fn new() -> Env {
        let (tmp, [home, a, b, scratch]) = folders(["home", "a", "b", "scratch"]);
        Env {
            _tmp: tmp,
            home,
            a,
            b,
            scratch,
        }
    }

    fn ferry(&self, args: &[&str]) -> std::process::Output {
        ferry_cmd(&self.home).args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ferry(args);
        assert!(
            out.status.success(),
            "ferry {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn a(&self) -> &str {
        self.a.to_str().unwrap()
    }
    fn b(&self) -> &str {
        self.b.to_str().unwrap()
    }

    /// A conduit with open conflicts on `x.txt` and `y.txt` (policy `manual`).
    fn with_conflict(&self) {
        std::fs::write(self.a.join("x.txt"), "first\n").unwrap();
        std::fs::write(self.a.join("y.txt"), "first y\n").unwrap();
        self.ok(&["conduit", "add", self.a(), self.b(), "--conflict", "manual"]);
        self.ok(&["sync", self.a(), self.b(), "--conflict", "manual"]);
        std::fs::write(self.a.join("x.txt"), "edited on A\n").unwrap();
        std::fs::write(self.b.join("x.txt"), "edited on B, longer\n").unwrap();
        std::fs::write(self.a.join("y.txt"), "y edited on A\n").unwrap();
        std::fs::write(self.b.join("y.txt"), "y edited on B\n").unwrap();
        let out = self.ferry(&["sync", self.a(), self.b(), "--conflict", "manual"]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "a conflict: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    fn start(&self) -> Daemon {
        let _ = std::fs::remove_file(self.home.join("daemon.json"));
        let log = std::fs::File::create(self.home.join("daemon.log")).unwrap();
        let child = ferry_cmd(&self.home)
            .arg("daemon")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut d = Daemon {
            child,
            home: self.home.clone(),
            port: 0,
        };
        wait_for("daemon.json", || {
            d.port = d.read_port().unwrap_or(0);
            d.port != 0
        });
        d
    }

    /// A fresh one-time login link from `ferry dashboard --json`.
    fn login_link(&self) -> String {
        let v: Value = serde_json::from_str(&self.ok(&["--json", "dashboard"])).unwrap();
        v["login_link"].as_str().unwrap().to_string()
    }
}

struct Daemon {
    child: Child,
    home: PathBuf,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn read_port(&self) -> Option<u16> {
        let text = std::fs::read_to_string(self.home.join("daemon.json")).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        (v["pid"].as_u64()? == self.child.id() as u64).then_some(v["port"].as_u64()? as u16)
    }

    fn api(&self, path: &str) -> Value {
        let token = std::fs::read_to_string(self.home.join("api-token")).unwrap();
        let r = http(
            self.port,
            "GET",
            path,
            &[("Authorization", &format!("Bearer {}", token.trim()))],
            b"",
        );
        assert_eq!(r.code, 200, "{}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    }

    /// An API request with the token and a JSON body; the answer's code and JSON.
    fn api_send(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let token = std::fs::read_to_string(self.home.join("api-token")).unwrap();
        let r = http(
            self.port,
            method,
            path,
            &[
                ("Authorization", &format!("Bearer {}", token.trim())),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        );
        let v = serde_json::from_slice(&r.body)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {}", r.text()));
        (r.code, v)
    }

    fn conduit_count(&self) -> usize {
        self.api("/api/conduits")["conduits"]
            .as_array()
            .unwrap()
            .len()
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Logs in over plain HTTP: the session cookie (`name=value`) and its CSRF token.
    fn session(&self, link: &str) -> (String, String) {
        let path = link.strip_prefix(&self.base()).unwrap();
        let r = http(self.port, "GET", path, &[], b"");
        assert_eq!(r.code, 303, "{}", r.text());
        let set = r.header("set-cookie").expect("a session cookie");
        assert!(set.contains("HttpOnly"), "{set}");
        assert!(set.contains("SameSite=Strict"), "{set}");
        let cookie = set.split(';').next().unwrap().to_string();
        let page = http(self.port, "GET", "/settings", &[("Cookie", &cookie)], b"");
        assert_eq!(page.code, 200);
        let text = page.text();
        let csrf = text
            .split(r#"name="csrf" value=""#)
            .nth(1)
            .and_then(|t| t.split('"').next())
            .expect("a CSRF field")
            .to_string();
        (cookie, csrf)
    }
}

// ---------- security over plain HTTP ----------

#[test]
fn no_page_without_a_session_and_no_post_without_csrf_or_from_another_origin() {
    let env = Env::new();
    env.with_conflict();
    let out = env.ferry(&["dashboard"]);
    assert!(!out.status.success(), "no daemon, no link");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ferry daemon"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = env.start();
    let p = d.port;
    let form = [("Content-Type", "application/x-www-form-urlencoded")];

    // No session: pages redirect to /login, which says how to get in; POSTs get 401.
    for path in ["/", "/conflicts", "/history", "/settings", "/history/1"] {
        let r = http(p, "GET", path, &[], b"");
        assert_eq!(r.code, 303, "{path}");
        assert_eq!(r.header("location").as_deref(), Some("/login"), "{path}");
    }
    let r = http(p, "GET", "/login", &[], b"");
    assert_eq!(r.code, 401);
    assert!(r.text().contains("ferry dashboard"), "{}", r.text());
    assert_eq!(http(p, "GET", "/events", &[], b"").code, 401);
    assert_eq!(
        http(p, "POST", "/conduits/1/pause", &form, b"csrf=x").code,
        401
    );
    let r = http(p, "GET", "/login?code=forged.1.2", &[], b"");
    assert_eq!(r.code, 401);
    assert!(r.header("set-cookie").is_none());

    // A link works once.
    let link = env.login_link();
    let (cookie, csrf) = d.session(&link);
    let path = link.strip_prefix(&d.base()).unwrap();
    let again = http(p, "GET", path, &[], b"");
    assert_eq!(again.code, 401, "a used link is refused");
    assert!(again.header("set-cookie").is_none());
    let r = http(p, "GET", "/", &[("Cookie", &cookie)], b"");
    assert_eq!(r.code, 200);
    assert!(r.text().contains(env.a()), "the overview lists the conduit");

    // POST without (or with a wrong) CSRF token: 403, nothing changes.
    let with_cookie = [form[0], ("Cookie", cookie.as_str())];
    for body in ["", "csrf=", "csrf=0123456789abcdef"] {
        let r = http(
            p,
            "POST",
            "/conduits/1/pause",
            &with_cookie,
            body.as_bytes(),
        );
        assert_eq!(r.code, 403, "body {body:?}: {}", r.text());
    }
    let r = http(p, "POST", "/conflicts/1/resolve", &with_cookie, b"keep=a");
    assert_eq!(r.code, 403);
    for path in [
        "/conflicts/resolve",
        "/versions/1/restore",
        "/conduits/1/sync",
    ] {
        let r = http(p, "POST", path, &with_cookie, b"keep=a&id=1");
        assert_eq!(r.code, 403, "{path}");
    }
    assert_eq!(d.api("/api/conduits/1")["paused"], false);
    assert_eq!(
        d.api("/api/conflicts")["conflicts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Cross-origin POSTs are refused even with the cookie and the token.
    let good = format!("csrf={csrf}");
    for extra in [
        ("Origin", "http://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
        ("Sec-Fetch-Site", "same-site"),
    ] {
        let mut h = with_cookie.to_vec();
        h.push(extra);
        let r = http(p, "POST", "/conduits/1/pause", &h, good.as_bytes());
        assert_eq!(r.code, 403, "{extra:?}");
    }
    // A foreign Host (DNS rebinding) is refused.
    let mut h = with_cookie.to_vec();
    h.push(("Host", "evil.example"));
    assert_eq!(http(p, "GET", "/", &h, b"").code, 403);
    assert_eq!(d.api("/api/conduits/1")["paused"], false);

    // The same request from our own origin goes through.
    let mut h = with_cookie.to_vec();
    let origin = d.base();
    h.push(("Origin", origin.as_str()));
    h.push(("Sec-Fetch-Site", "same-origin"));
    let r = http(p, "POST", "/conduits/1/pause", &h, good.as_bytes());
    assert_eq!(r.code, 303, "{}", r.text());
    assert_eq!(d.api("/api/conduits/1")["paused"], true);

    // The bearer token reads pages too (no cookie, so no CSRF needed).
    let token = std::fs::read_to_string(env.home.join("api-token")).unwrap();
    let bearer = format!("Bearer {}", token.trim());
    let r = http(p, "GET", "/history", &[("Authorization", &bearer)], b"");
    assert_eq!(r.code, 200);
    assert!(r.text().contains("run-1"), "{}", r.text());
}

// ---------- a real browser ----------

fn tool(env_var: &str, default: &str) -> PathBuf {
    let p = std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        p.exists(),
        "{} not found: install Debian's `chromium chromium-driver` (as .ci/run does) or set {env_var}",
        p.display()
    );
    p
}

/// chromedriver and one headless Chromium session; both end when dropped.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start(profile: &Path) -> Browser {
        let chromium = tool("FERRY_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = tool("FERRY_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut b = Browser {
            driver,
            port,
            session: String::new(),
        };
        wait_for("chromedriver", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
                && b.call("GET", "/status", None)["ready"] == true
        });
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,860",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let v = b.call("POST", "/session", Some(caps));
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        b
    }

    /// One WebDriver command; its `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let r = http(
            self.port,
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        let v: Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|_| panic!("{method} {path}: {}", r.text()));
        v["value"].clone()
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = self.call(method, &format!("/session/{}{path}", self.session), body);
        assert!(v.get("error").is_none(), "{method} {path}: {v}");
        v
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap().to_string()
    }

    fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// The text of the first element matching `css`, or `None`.
    fn text(&self, css: &str) -> Option<String> {
        let v = self.js(&format!(
            "var e = document.querySelector({}); return e ? e.textContent : null;",
            json!(css)
        ));
        v.as_str().map(str::to_string)
    }

    fn wait_text(&self, css: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let mut last = None;
        wait_for(what, || {
            last = self.text(css);
            last.as_deref().is_some_and(&pred)
        });
        last.unwrap()
    }

    fn click(&self, css: &str) {
        let e = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        let id = e[ELEMENT].as_str().unwrap().to_string();
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        let id = e[ELEMENT].as_str().unwrap().to_string();
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Saves a PNG of the page when `FERRY_DASHBOARD_SCREENSHOTS` names a folder; checks
    /// that a screenshot can be taken either way.
    fn screenshot(&self, name: &str) {
        let png = base64_decode(self.cmd("GET", "/screenshot", None).as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        if let Some(dir) = std::env::var_os("FERRY_DASHBOARD_SCREENSHOTS") {
            std::fs::write(Path::new(&dir).join(name), png).unwrap();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let data: Vec<u8> = chunk.iter().copied().filter(|&c| c != b'=').collect();
        let mut n = 0u32;
        for (i, &c) in data.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        for i in 0..data.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn browser_logs_in_sees_live_runs_resolves_a_conflict_and_pauses() {
    let env = Env::new();
    env.with_conflict();
    let d = env.start();
    let browser = Browser::start(&env.scratch.join("profile"));

    // Without a session the dashboard sends the browser to the login page.
    browser.goto(&d.base());
    assert!(browser.url().ends_with("/login"), "{}", browser.url());
    assert_eq!(browser.text("h1").as_deref(), Some("Log in"));

    // The one-time link logs in and lands on the overview.
    browser.goto(&env.login_link());
    browser.wait_text("h1", "the overview", |t| t == "Overview");
    let row = browser.text("#conduit-1").expect("conduit 1 listed");
    assert!(row.contains(env.a()) && row.contains(env.b()), "{row}");
    assert!(row.contains("bidirectional"), "{row}");
    assert!(row.contains("2 open"), "the open conflicts: {row}");
    let last = browser.text("#conduit-1 .last").unwrap();
    assert!(last.contains("UTC"), "its last run: {last}");
    browser.wait_text("#live", "the event stream", |t| t == "live");
    browser.screenshot("dashboard-overview.png");

    // Live: a new file is synced by the daemon and the row's last run changes, no reload.
    let marker = browser.js("document.body.dataset.marker = 'same page'; return 1;");
    assert_eq!(marker, 1);
    let href = |b: &Browser| {
        b.js("var a = document.querySelector('#conduit-1 .last a'); return a ? a.getAttribute('href') : null;")
    };
    let before = href(&browser);
    std::fs::write(env.a.join("new.txt"), "live\n").unwrap();
    wait_for("new.txt on B", || env.b.join("new.txt").exists());
    // The run that copied it (or a later one) is what the row shows, once the event
    // stream has told the page.
    let mut shown = Value::Null;
    wait_for("the overview to show the newest run", || {
        let newest = d.api("/api/conduits/1")["last_run"]["generation"].clone();
        shown = href(&browser);
        shown == json!(format!("/history/{newest}"))
    });
    assert_ne!(shown, before, "a new run is shown");
    assert_eq!(
        browser.js("return document.body.dataset.marker || null;"),
        "same page",
        "updated in place, not reloaded"
    );

    // Conflicts: keep B for x.txt by its own button, then keep A for y.txt by selecting
    // it and using the bulk buttons; the files on disk follow.
    browser.click("nav a[href='/conflicts']");
    browser.wait_text("h1", "the conflicts page", |t| t == "Conflicts");
    let rows = browser.text("table.conflicts").expect("the open conflicts");
    assert!(
        rows.contains("x.txt") && rows.contains("y.txt") && rows.contains("manual"),
        "{rows}"
    );
    browser.screenshot("dashboard-conflicts.png");
    let row_of = |path: &str| -> Option<String> {
        browser
            .js(&format!(
                "var r = Array.from(document.querySelectorAll('tr[id^=conflict-]')).find(r => r.querySelector('th code').textContent === {}); return r ? r.id : null;",
                json!(path)
            ))
            .as_str()
            .map(str::to_string)
    };
    // A run of the daemon between showing the page and the click records a conflict
    // anew (the old row is superseded) and the click is refused with the page showing
    // the current one; a person would click again, so does the test (a few times).
    let settle = |clicks: &[String]| {
        let mut notice = String::new();
        for _ in 0..5 {
            browser.js(
                "document.querySelectorAll('[role=status]').forEach(e => e.remove()); return 1;",
            );
            for c in clicks {
                let css = c.replace("{x}", &row_of("x.txt").unwrap_or_default());
                let css = css.replace("{y}", &row_of("y.txt").unwrap_or_default());
                browser.click(&css);
            }
            notice = browser.wait_text("[role=status]", "the resolution notice", |_| true);
            if !notice.contains("not settled") {
                break;
            }
        }
        assert!(
            notice.contains("settled") && !notice.contains("not settled"),
            "{notice}"
        );
    };
    settle(&["#{x} button[value=b]".to_string()]);
    for side in [&env.a, &env.b] {
        assert_eq!(
            std::fs::read_to_string(side.join("x.txt")).unwrap(),
            "edited on B, longer\n"
        );
    }
    assert!(row_of("x.txt").is_none(), "x.txt settled");
    settle(&[
        "#{y} input[type=checkbox]".to_string(),
        "#bulk button[value=a]".to_string(),
    ]);
    assert_eq!(
        std::fs::read_to_string(env.a.join("y.txt")).unwrap(),
        "y edited on A\n"
    );
    wait_for("y.txt synced to B by the daemon", || {
        std::fs::read_to_string(env.b.join("y.txt")).unwrap() == "y edited on A\n"
    });
    // The page follows the daemon's events: it may show the last row a moment longer.
    wait_for("no open conflict left on the page", || {
        browser.text("tr[id^=conflict-]").is_none()
    });
    assert!(d.api("/api/conflicts")["conflicts"]
        .as_array()
        .unwrap()
        .is_empty());

    // Versions: keeping B moved A's x.txt into A's version store; restore it by clicking.
    browser.click("nav a[href='/versions']");
    browser.wait_text("h1", "the versions page", |t| t == "Versions");
    let href = browser.js(&format!(
        "var a = Array.from(document.querySelectorAll('.folders a')).find(a => a.textContent === {}); return a.getAttribute('href');",
        json!(env.a())
    ));
    browser.click(&format!(".folders a[href='{}']", href.as_str().unwrap()));
    browser.wait_text(".folders a[aria-current]", "folder A shown", |t| {
        t == env.a()
    });
    let row = browser.js(
        "var r = Array.from(document.querySelectorAll('tr[id^=version-]')).find(r => r.querySelector('th code').textContent === 'x.txt' && r.cells[2].textContent === '12 B'); return r ? r.id : null;",
    );
    let row = row
        .as_str()
        .expect("A's x.txt kept as a version")
        .to_string();
    browser.screenshot("dashboard-versions.png");
    // Restored elsewhere (a path typed beside the button), so the synced x.txt stays.
    let elsewhere = env.scratch.join("x-as-on-A.txt");
    browser.type_into(
        &format!("#{row} input[name=to]"),
        elsewhere.to_str().unwrap(),
    );
    browser.click(&format!("#{row} button"));
    let notice = browser.wait_text("[role=status]", "the restore notice", |_| true);
    assert!(notice.contains("restored to"), "{notice}");
    assert_eq!(
        std::fs::read_to_string(&elsewhere).unwrap(),
        "edited on A\n"
    );
    assert_eq!(
        std::fs::read_to_string(env.a.join("x.txt")).unwrap(),
        "edited on B, longer\n"
    );

    // History lists the runs; a run shows its per-file actions.
    browser.click("nav a[href='/history']");
    browser.wait_text("h1", "the history page", |t| t == "History");
    browser.screenshot("dashboard-history.png");
    browser.click("#run-1 a");
    browser.wait_text("h1", "run 1", |t| t == "Run #1");
    let actions = browser.text("table.actions").expect("per-file actions");
    assert!(actions.contains("x.txt"), "{actions}");

    // Settings: pause, then resume, by clicking.
    browser.click("nav a[href='/settings']");
    browser.wait_text("h1", "the settings page", |t| t == "Settings");
    browser.js("document.querySelectorAll('[role=status]').forEach(e => e.remove()); return 1;");
    browser.click("#settings-1 button[formaction$='/pause']");
    browser.wait_text("[role=status]", "paused notice", |t| t.contains("paused"));
    assert_eq!(d.api("/api/conduits/1")["paused"], true);
    assert_eq!(
        browser.text("#settings-1 .state").as_deref(),
        Some("paused")
    );
    browser.js("document.querySelectorAll('[role=status]').forEach(e => e.remove()); return 1;");
    browser.click("#settings-1 button[formaction$='/resume']");
    browser.wait_text("[role=status]", "resumed notice", |t| t.contains("resumed"));
    assert_eq!(d.api("/api/conduits/1")["paused"], false);

    // The dark theme follows the system's preference.
    let bg = |b: &Browser| b.js("return getComputedStyle(document.body).backgroundColor;");
    assert_eq!(bg(&browser), "rgb(251, 251, 250)", "light by default");
    browser.cmd(
        "POST",
        "/goog/cdp/execute",
        Some(json!({"cmd": "Emulation.setEmulatedMedia", "params": {
            "features": [{"name": "prefers-color-scheme", "value": "dark"}]}})),
    );
    browser.click("nav a[href='/']");
    browser.wait_text("h1", "the overview", |t| t == "Overview");
    assert_eq!(bg(&browser), "rgb(21, 23, 26)", "dark when the system is");
    let row = browser.text("#conduit-1").unwrap();
    assert!(row.contains("none"), "no open conflict: {row}");
    browser.screenshot("dashboard-overview-dark.png");
}

#[test]
fn browser_watches_a_transfer_live() {
    let env = Env::new();
    // A slow conduit (bandwidth limit) so the copy is seen while it runs.
    env.ok(&[
        "conduit",
        "add",
        env.a(),
        env.b(),
        "--bandwidth-limit",
        "256K",
    ]);
    let d = env.start();
    let browser = Browser::start(&env.scratch.join("profile"));
    browser.goto(&env.login_link());
    browser.wait_text("h1", "the overview", |t| t == "Overview");
    browser.click("nav a[href='/transfers']");
    browser.wait_text("h1", "the transfers page", |t| t == "Transfers");
    browser.wait_text("#live", "the event stream", |t| t == "live");
    assert!(browser.text("#no-jobs").is_some(), "nothing runs yet");
    browser.js("document.body.dataset.marker = 'same page'; return 1;");

    // Several files: a run's byte progress advances as each file completes. They are
    // written outside A and appear in it at once (one folder renamed in), so the first
    // run copies all of them: a run started while they were still being written would
    // end with a part of them, and its row would go before its queue could shrink.
    let incoming = env.scratch.join("incoming");
    std::fs::create_dir(&incoming).unwrap();
    let content =
        |n: u32| -> Vec<u8> { (0..200_000u32).map(|i| (i * 7 % 251 + n) as u8).collect() };
    for n in 0..6 {
        std::fs::write(incoming.join(format!("big{n}.bin")), content(n)).unwrap();
    }
    // And one file that takes several seconds at the limit, to watch on its own. Copies
    // go in path order: its name sorts first, so the queue is full while it is copied
    // and shrinks only after it, however late the page is first seen.
    const HUGE: u64 = 3_000_000;
    let huge: Vec<u8> = (0..HUGE).map(|i| (i * 13 % 241) as u8).collect();
    std::fs::write(incoming.join("a-huge.bin"), &huge).unwrap();
    std::fs::rename(&incoming, env.a.join("in")).unwrap();

    // The job's row appears and its copied bytes grow, without a reload.
    let done = |b: &Browser| -> Option<u64> {
        b.js("var r = document.querySelector('#job-1'); return r && r.cells[1].textContent === 'copy' ? r.dataset.done : null;")
            .as_str()
            .and_then(|s| s.parse().ok())
    };
    let mut first = None;
    wait_for("the copy to show progress", || {
        first = done(&browser);
        first.is_some()
    });
    let rate = browser.text("#job-1 .rate").unwrap();
    assert!(rate.ends_with("/s"), "{rate}");
    let queue = |b: &Browser| -> Option<u64> {
        b.text("#job-1 .queue")
            .and_then(|t| t.split(' ').next().and_then(|n| n.parse().ok()))
    };
    let first_queue = queue(&browser).expect("the queue depth");
    assert!(first_queue > 0, "files still to copy");
    // Totals of the phase with progress bars: bytes and files.
    let bars = browser.js(
        "var r = document.querySelector('#job-1'); return r ? Array.from(r.querySelectorAll('progress')).map(p => p.className).join(' ') : null;",
    );
    assert!(
        bars.as_str()
            .is_some_and(|b| b.contains("bytes") && b.contains("files")),
        "{bars}"
    );
    // The big file is listed in flight, and its own bar moves before it is done.
    let big_done = |b: &Browser| -> Option<u64> {
        b.js("var r = document.querySelector(\"#in-flight tr[data-path='in/a-huge.bin']\"); return r ? r.dataset.done : null;")
            .as_str()
            .and_then(|s| s.parse().ok())
    };
    let mut seen = None;
    wait_for("a-huge.bin in flight", || {
        seen = big_done(&browser).filter(|n| *n > 0);
        seen.is_some()
    });
    wait_for("a-huge.bin's own progress to grow", || {
        big_done(&browser).is_some_and(|n| n > seen.unwrap())
    });
    assert!(seen.unwrap() < HUGE, "seen while in flight");
    // The run's bytes grow as files complete, the big one first.
    wait_for("the progress to grow", || {
        done(&browser).is_some_and(|n| n > first.unwrap())
    });
    // After the big file the six small ones are copied, ~0.8 s each: the queue shrinks
    // while the job still runs.
    wait_for("the queue to shrink", || {
        queue(&browser).is_some_and(|n| n < first_queue)
    });
    browser.screenshot("dashboard-transfers.png");
    assert_eq!(
        browser.js("return document.body.dataset.marker || null;"),
        "same page"
    );

    // When it is done the row goes and the chart keeps the run's rate line.
    wait_for("the files on B", || {
        (0..6).all(|n| std::fs::read(env.b.join(format!("in/big{n}.bin"))).ok() == Some(content(n)))
            && std::fs::read(env.b.join("in/a-huge.bin")).ok().as_ref() == Some(&huge)
    });
    wait_for("the job to leave the page", || {
        browser.text("#no-jobs").is_some()
    });
    assert!(
        browser
            .js("return document.querySelectorAll(\"polyline[data-conduit='1']\").length;")
            .as_u64()
            == Some(1),
        "a rate line for conduit 1"
    );
    assert!(d.api("/api/jobs")["jobs"].as_array().unwrap().is_empty());
}

// ---------- steering conduits ----------

#[test]
fn api_adds_changes_and_removes_conduits() {
    let env = Env::new();
    let d = env.start();
    let p = d.port;
    let add = |body: Value| d.api_send("POST", "/api/conduits", &body.to_string());

    // Without the token: 401, nothing added.
    let body = json!({"a": env.a(), "b": env.b()}).to_string();
    let r = http(p, "POST", "/api/conduits", &[], body.as_bytes());
    assert_eq!(r.code, 401);
    assert_eq!(d.conduit_count(), 0);

    // Invalid adds: 400, typed error as the CLI's, nothing added.
    std::fs::create_dir(env.a.join("sub")).unwrap();
    let sub = env.a.join("sub");
    let cases = [
        (
            json!({"a": env.a(), "b": env.a()}),
            "refused",
            "same folder",
        ),
        (json!({"a": env.a(), "b": sub}), "refused", "lies inside"),
        (
            json!({"a": env.scratch.join("nope"), "b": env.b()}),
            "location",
            "not reachable",
        ),
        (
            json!({"a": env.a(), "b": env.scratch.join("no/such/b")}),
            "location",
            "create it first",
        ),
        (json!({"b": env.b()}), "usage", "folder A is required"),
        (json!({"a": "a", "b": env.b()}), "usage", "absolute"),
        (
            json!({"a": env.a(), "b": env.b(), "mode": "sideways"}),
            "usage",
            "mirror, bidirectional, archive or selective",
        ),
        (
            json!({"a": env.a(), "b": env.b(), "schedule": "sometimes"}),
            "usage",
            "schedule",
        ),
        (
            json!({"a": env.a(), "b": env.b(), "bandwidth_limit": "fast"}),
            "usage",
            "bandwidth limit",
        ),
        (
            json!({"a": env.a(), "b": env.b(), "policy": "manual"}),
            "usage",
            "unknown field `policy`",
        ),
    ];
    for (body, kind, text) in cases {
        let (code, v) = add(body.clone());
        assert_eq!(code, 400, "{body}: {v}");
        assert_eq!(v["schema_version"], 1, "{v}");
        assert_eq!(v["error"]["kind"], kind, "{body}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(text), "{body}: {msg}");
    }
    let (code, v) = d.api_send("POST", "/api/conduits", "{not json");
    assert_eq!((code, v["error"]["kind"].clone()), (400, json!("usage")));
    assert_eq!(d.conduit_count(), 0, "nothing added");
    assert!(!env.scratch.join("no").exists());

    // A good add: 201 with the conduit, as `ferry conduit list` shows it.
    let (code, v) = add(json!({
        "a": env.a(), "b": env.b(), "mode": "mirror", "conflict_policy": "manual",
        "schedule": "manual", "bandwidth_limit": "256K",
    }));
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["added"], true);
    assert_eq!(v["conduit"], 1);
    assert_eq!(v["mode"], "mirror");
    assert_eq!(v["conflict_policy"], "manual");
    assert_eq!(v["schedule"], "manual");
    assert_eq!(v["bandwidth_limit"], 256 * 1024);
    let list: Value = serde_json::from_str(&env.ok(&["--json", "conduit", "list"])).unwrap();
    assert_eq!(list["conduits"][0]["mode"], "mirror");
    assert_eq!(list["conduits"][0]["bandwidth_limit"], 256 * 1024);
    // The same pair again: 200, `added: false`, the settings given applied.
    // (A schedule is given: re-adding a manual pair without one makes it instant, as
    // `ferry conduit add` does, and its mirror run would race the changes below.)
    let (code, v) =
        add(json!({"a": env.a(), "b": env.b(), "bandwidth_limit": 0, "schedule": "manual"}));
    assert_eq!((code, v["added"].clone()), (200, json!(false)), "{v}");
    assert_eq!(v["bandwidth_limit"], 0);
    assert_eq!(v["mode"], "mirror", "kept");

    // Changes: PATCH and POST …/settings; the scheduler hears (a manual conduit made
    // instant syncs a new file by itself).
    let (code, v) = d.api_send(
        "PATCH",
        "/api/conduits/1",
        &json!({"mode": "bidirectional", "conflict_policy": "keep-both", "schedule": "instant"})
            .to_string(),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(
        (
            v["mode"].clone(),
            v["conflict_policy"].clone(),
            v["schedule"].clone()
        ),
        (json!("bidirectional"), json!("keep-both"), json!("instant"))
    );
    std::fs::write(env.b.join("from-b.txt"), "b\n").unwrap();
    let start = Instant::now();
    while !env.a.join("from-b.txt").exists() {
        assert!(
            start.elapsed() < DEADLINE,
            "from-b.txt not synced to A; B holds {:?}; daemon log:\n{}\nconduit: {}",
            std::fs::read_dir(&env.b)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect::<Vec<_>>(),
            std::fs::read_to_string(env.home.join("daemon.log")).unwrap_or_default(),
            d.api("/api/conduits/1")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, v) = d.api_send(
        "POST",
        "/api/conduits/1/settings",
        &json!({"bandwidth_limit": "1M", "schedule": "every:5m"}).to_string(),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["bandwidth_limit"], 1 << 20);
    assert_eq!(v["schedule"], "every:5m");
    let (code, v) = d.api_send("PATCH", "/api/conduits/1", r#"{"schedule": "often"}"#);
    assert_eq!(
        (code, v["error"]["kind"].clone()),
        (400, json!("usage")),
        "{v}"
    );
    let (code, v) = d.api_send("PATCH", "/api/conduits/1", r#"{"a": "/elsewhere"}"#);
    assert_eq!(code, 400, "{v}");
    let (code, v) = d.api_send("PATCH", "/api/conduits/9", r#"{"mode": "mirror"}"#);
    assert_eq!(
        (code, v["error"]["kind"].clone()),
        (404, json!("not_found"))
    );

    // An archive conduit stays one (ferry-core's archive check, as on the CLI).
    let (a2, b2) = (env.scratch.join("a2"), env.scratch.join("b2"));
    std::fs::create_dir(&a2).unwrap();
    std::fs::write(a2.join("keep.txt"), "kept\n").unwrap();
    let (code, v) = add(json!({"a": a2, "b": b2, "mode": "archive", "schedule": "manual"}));
    assert_eq!(code, 201, "{v}");
    assert!(b2.is_dir(), "folder B created");
    let id = v["conduit"].as_i64().unwrap();
    let (code, v) = d.api_send(
        "PATCH",
        &format!("/api/conduits/{id}"),
        r#"{"mode": "mirror"}"#,
    );
    assert_eq!(
        (code, v["error"]["kind"].clone()),
        (400, json!("refused")),
        "{v}"
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("archive"));
    assert_eq!(d.api(&format!("/api/conduits/{id}"))["mode"], "archive");

    // Removing: 200, gone from the API and the CLI, files untouched; again: 404.
    let (code, v) = d.api_send("DELETE", &format!("/api/conduits/{id}"), "");
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v,
        json!({"schema_version": 1, "conduit": id, "removed": true})
    );
    let (code, _) = d.api_send("GET", &format!("/api/conduits/{id}"), "");
    assert_eq!(code, 404);
    let (code, v) = d.api_send("DELETE", &format!("/api/conduits/{id}"), "");
    assert_eq!(
        (code, v["error"]["kind"].clone()),
        (404, json!("not_found"))
    );
    assert_eq!(
        std::fs::read_to_string(a2.join("keep.txt")).unwrap(),
        "kept\n"
    );
    let list: Value = serde_json::from_str(&env.ok(&["--json", "conduit", "list"])).unwrap();
    assert_eq!(list["conduits"].as_array().unwrap().len(), 1);

    // The dashboard's forms need the CSRF token like every other POST.
    let (cookie, csrf) = d.session(&env.login_link());
    let h = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", cookie.as_str()),
    ];
    let form = format!("a={}&b={}", a2.display(), b2.display());
    for path in ["/conduits", "/conduits/1/settings", "/conduits/1/remove"] {
        let r = http(p, "POST", path, &h, form.as_bytes());
        assert_eq!(r.code, 403, "{path}: {}", r.text());
    }
    assert_eq!(d.conduit_count(), 1, "nothing added or removed");
    let r = http(
        p,
        "POST",
        "/conduits",
        &h,
        format!("csrf={csrf}&{form}&mode=mirror").as_bytes(),
    );
    assert_eq!(r.code, 303, "{}", r.text());
    assert_eq!(d.conduit_count(), 2);
}

#[test]
fn dashboard_pause_stops_a_running_job_at_once() {
    let env = Env::new();
    // A slow conduit: its run takes far longer than the test waits.
    env.ok(&[
        "conduit",
        "add",
        env.a(),
        env.b(),
        "--bandwidth-limit",
        "64K",
    ]);
    for n in 0..16u8 {
        std::fs::write(env.a.join(format!("big{n}.bin")), vec![n; 128 << 10]).unwrap();
    }
    let d = env.start();
    wait_for("the run to copy", || {
        d.api("/api/jobs")["jobs"][0]["phase"] == "copy"
    });
    let (cookie, csrf) = d.session(&env.login_link());
    let r = http(
        d.port,
        "POST",
        "/conduits/1/pause",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", cookie.as_str()),
        ],
        format!("csrf={csrf}").as_bytes(),
    );
    assert_eq!(r.code, 303, "{}", r.text());
    // The job stops at its next safe point: the run is recorded interrupted, not done.
    wait_for("the job to stop", || {
        d.api("/api/jobs")["jobs"].as_array().unwrap().is_empty()
    });
    let c = d.api("/api/conduits/1");
    assert_eq!(c["paused"], true);
    assert_eq!(c["last_run"]["status"], "interrupted", "{c}");
}

#[test]
fn browser_adds_changes_and_removes_a_conduit() {
    let env = Env::new();
    std::fs::write(env.a.join("hello.txt"), "hello\n").unwrap();
    let d = env.start();
    let browser = Browser::start(&env.scratch.join("profile"));
    browser.goto(&env.login_link());
    browser.wait_text("h1", "the overview", |t| t == "Overview");
    browser.click("nav a[href='/settings']");
    browser.wait_text("h1", "the settings page", |t| t == "Settings");

    let set = |css: &str, value: &str| {
        browser.js(&format!(
            "document.querySelector({}).value = {}; return 1;",
            json!(css),
            json!(value)
        ));
    };
    let submit_add = |a: &str, b: &str| {
        browser.js("document.querySelectorAll('[role=status],[role=alert]').forEach(e => e.remove()); return 1;");
        set("#add-a", a);
        set("#add-b", b);
        browser.click("#add-conduit button[type=submit]");
    };

    // Invalid adds: a clear error, the form keeps what was typed, nothing is added.
    let sub = env.a.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let missing = env.scratch.join("missing");
    for (a, b, says) in [
        (env.a(), env.a(), "same folder"),
        (env.a(), sub.to_str().unwrap(), "lies inside"),
        (missing.to_str().unwrap(), env.b(), "not reachable"),
    ] {
        submit_add(a, b);
        let problem = browser.wait_text("[role=alert]", "the add's error", |_| true);
        assert!(
            problem.contains("No conduit added") && problem.contains(says),
            "{problem}"
        );
        let kept = browser.js("return document.querySelector('#add-b').value;");
        assert_eq!(kept, json!(b), "the form keeps the values");
        assert_eq!(d.conduit_count(), 0, "nothing added for {a} {b}");
    }

    // A good add, typed as a person would: it shows on the overview and the CLI, and
    // the daemon syncs it at once.
    browser.js("document.querySelectorAll('[role=status],[role=alert]').forEach(e => e.remove()); document.querySelector('#add-a').value = ''; document.querySelector('#add-b').value = ''; return 1;");
    browser.type_into("#add-a", env.a());
    browser.type_into("#add-b", env.b());
    set("#add-mode", "mirror");
    set("#add-policy", "manual");
    browser.type_into("#add-bandwidth", "10M");
    browser.click("#add-conduit button[type=submit]");
    let notice = browser.wait_text("[role=status]", "the add notice", |_| true);
    assert!(notice.contains("Conduit #1 added"), "{notice}");
    assert_eq!(browser.text("#settings-1 .mode").as_deref(), Some("mirror"));
    let list: Value = serde_json::from_str(&env.ok(&["--json", "conduit", "list"])).unwrap();
    let c = &list["conduits"][0];
    assert_eq!(
        (
            c["mode"].clone(),
            c["conflict_policy"].clone(),
            c["schedule"].clone()
        ),
        (json!("mirror"), json!("manual"), json!("instant")),
        "{c}"
    );
    assert_eq!(c["bandwidth_limit"], 10 << 20);
    wait_for("hello.txt mirrored to B", || {
        std::fs::read_to_string(env.b.join("hello.txt"))
            .ok()
            .as_deref()
            == Some("hello\n")
    });
    browser.click("nav a[href='/']");
    browser.wait_text("h1", "the overview", |t| t == "Overview");
    let row = browser
        .text("#conduit-1")
        .expect("the new conduit on the overview");
    assert!(row.contains("mirror") && row.contains(env.b()), "{row}");

    // Change its mode and policy.
    browser.click("nav a[href='/settings']");
    browser.wait_text("h1", "the settings page", |t| t == "Settings");
    browser.click("#settings-1 summary");
    set("#mode-1", "bidirectional");
    set("#policy-1", "keep-both");
    browser.js("document.querySelectorAll('[role=status],[role=alert]').forEach(e => e.remove()); return 1;");
    browser.click("#settings-1 form[action$='/settings'] button[type=submit]");
    let notice = browser.wait_text("[role=status]", "the change notice", |_| true);
    assert!(notice.contains("Conduit #1 changed"), "{notice}");
    assert_eq!(
        browser.text("#settings-1 .mode").as_deref(),
        Some("bidirectional")
    );
    assert_eq!(
        browser.text("#settings-1 .policy").as_deref(),
        Some("keep-both")
    );
    let c = d.api("/api/conduits/1");
    assert_eq!(
        (c["mode"].clone(), c["conflict_policy"].clone()),
        (json!("bidirectional"), json!("keep-both"))
    );
    browser.screenshot("dashboard-settings.png");
    // A bad value: the error is shown, nothing changes.
    browser.click("#settings-1 summary");
    set("#schedule-1", "sometimes");
    browser.click("#settings-1 form[action$='/settings'] button[type=submit]");
    let problem = browser.wait_text("[role=alert]", "the change's error", |_| true);
    assert!(
        problem.contains("not changed") && problem.contains("schedule"),
        "{problem}"
    );
    assert_eq!(d.api("/api/conduits/1")["schedule"], "instant");

    // Remove it: a confirmation step first; the files stay.
    browser.click("#settings-1 a[href$='/remove']");
    browser.wait_text("h1", "the confirmation", |t| t == "Remove conduit #1");
    let text = browser.text("#remove-1").unwrap();
    assert!(text.contains("No file is deleted"), "{text}");
    assert_eq!(d.conduit_count(), 1, "not before confirming");
    browser.click("#remove-1 button[type=submit]");
    let notice = browser.wait_text("[role=status]", "the removal notice", |_| true);
    assert!(notice.contains("removed"), "{notice}");
    assert_eq!(d.conduit_count(), 0);
    assert!(browser.text("#settings-1").is_none());
    for side in [&env.a, &env.b] {
        assert_eq!(
            std::fs::read_to_string(side.join("hello.txt")).unwrap(),
            "hello\n"
        );
    }
    let list: Value = serde_json::from_str(&env.ok(&["--json", "conduit", "list"])).unwrap();
    assert!(list["conduits"].as_array().unwrap().is_empty());
}

#[test]
fn a_file_changed_during_a_copy_shows_as_a_problem_that_will_be_retried() {
    let env = Env::new();
    // A slow conduit: the last file is edited after the scan, before its copy starts.
    env.ok(&[
        "conduit",
        "add",
        env.a(),
        env.b(),
        "--bandwidth-limit",
        "64K",
    ]);
    for n in 0..8u8 {
        std::fs::write(env.a.join(format!("big{n}.bin")), vec![n; 64 << 10]).unwrap();
    }
    let d = env.start();
    wait_for("the run to copy", || {
        d.api("/api/jobs")["jobs"][0]["phase"] == "copy"
    });
    std::fs::write(env.a.join("big7.bin"), b"edited during the copy\n").unwrap();
    // The first run skips it (rule 2) and says why, by kind; a later run syncs it.
    let mut run = Value::Null;
    // The engine keeps the run's problems with its row, when it finishes it.
    wait_for("the first run to finish with its problems", || {
        run = d.api("/api/history/1");
        run["status"] != "running"
            && run["status"] != "interrupted"
            && run["problems"].as_array().is_some_and(|p| !p.is_empty())
    });
    assert_eq!(run["status"], "partial", "{run}");
    let p = &run["problems"][0];
    assert_eq!(p["kind"], "changed", "{run}");
    assert_eq!(p["label"], "changed during sync, will retry");
    assert_eq!(p["retried"], true);
    assert_eq!(
        (p["side"].clone(), p["path"].clone()),
        (json!("B"), json!("big7.bin")),
        "{run}"
    );
    assert!(p["detail"].as_str().unwrap().contains("big7.bin"), "{run}");
    wait_for("big7.bin synced by a later run", || {
        std::fs::read(env.b.join("big7.bin")).ok().as_deref()
            == Some(b"edited during the copy\n".as_slice())
    });

    let browser = Browser::start(&env.scratch.join("profile"));
    browser.goto(&env.login_link());
    browser.wait_text("h1", "the overview", |t| t == "Overview");
    browser.goto(&format!("{}/history/1", d.base()));
    browser.wait_text("h1", "run 1", |t| t == "Run #1");
    let shown = browser
        .text("ul.problems li[data-kind=changed]")
        .expect("the problem, by kind");
    assert!(
        shown.starts_with("changed during sync, will retry") && shown.contains("big7.bin"),
        "{shown}"
    );

    // The index keeps a run's problems: a restarted daemon still shows them.
    drop(browser);
    drop(d);
    let d = env.start();
    let run = d.api("/api/history/1");
    assert_eq!(run["problems"][0]["kind"], "changed", "{run}");
    assert_eq!(run["problems"][0]["path"], "big7.bin", "{run}");
    assert_eq!(run["problems"].as_array().map(Vec::len), Some(1), "{run}");
    // And `ferry history show` lists them.
    let shown: Value = serde_json::from_str(&env.ok(&["--json", "history", "show", "1"])).unwrap();
    assert_eq!(shown["problems"][0]["kind"], "changed", "{shown}");
    let text = env.ok(&["history", "show", "1"]);
    assert!(
        text.contains("problems:\n  changed during sync, will retry: ")
            && text.contains("big7.bin"),
        "{text}"
    );
}

// ---------- devices and shares (two or three real daemons on loopback) ----------

/// The API port of the daemon running for library `home`.
#[cfg(feature = "net")]
fn api_port(home: &Path) -> u16 {
    let text = std::fs::read_to_string(home.join("daemon.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["port"].as_u64().unwrap() as u16
}

/// An API request to the daemon of `home` with its token: code and JSON answer.
#[cfg(feature = "net")]
fn api_call(home: &Path, method: &str, path: &str, body: &str) -> (u16, Value) {
    let token = std::fs::read_to_string(home.join("api-token")).unwrap();
    let r = http(
        api_port(home),
        method,
        path,
        &[
            ("Authorization", &format!("Bearer {}", token.trim())),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    let v = serde_json::from_slice(&r.body)
        .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {}", r.text()));
    (r.code, v)
}

/// Clicks the element in one script (a live part re-fetched between finding an element
/// and clicking it would leave WebDriver a stale element).
#[cfg(feature = "net")]
fn js_click(browser: &Browser, css: &str) {
    let v = browser.js(&format!(
        "var e = document.querySelector({}); if (!e) return false; e.click(); return true;",
        json!(css)
    ));
    assert_eq!(v, json!(true), "nothing to click at {css}");
}

#[cfg(feature = "net")]
#[test]
fn browser_shows_devices_accepts_a_pending_one_and_an_offered_share() {
    use common::device::{wait_for as wait_long, Device};
    // x: the device whose page we use; y: trusted both ways; z: knows x, x not it.
    let (mut x, mut y, mut z) = (Device::new(), Device::new(), Device::new());
    let (idx, idy, idz) = (x.id(), y.id(), z.id());
    let (ax, ay) = (x.start(), y.start());
    z.start();
    x.json(&["device", "add", &idy, "--name", "laptop", "--addr", &ay]);
    y.json(&["device", "add", &idx, "--name", "desktop", "--addr", &ax]);
    z.json(&["device", "add", &idx, "--name", "desktop", "--addr", &ax]);
    wait_long("x and y connected, z pending on x", || {
        x.connected_to(&idy)
            && y.connected_to(&idx)
            && x.row(&idz).is_some_and(|r| r["state"] == "pending")
    });

    // y offers a folder to x.
    let fy = y.tmp.path().join("photos");
    std::fs::create_dir_all(fy.join("2026")).unwrap();
    std::fs::write(fy.join("notes.txt"), "from the laptop").unwrap();
    std::fs::write(fy.join("2026/beach.raw"), ferry_testkit::noise(1 << 20, 7)).unwrap();
    let share = y.json(&["share", fy.to_str().unwrap(), "--with", "desktop"])["share"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // And another, which x declines.
    let fy2 = y.tmp.path().join("music");
    std::fs::create_dir_all(&fy2).unwrap();
    let unwanted = y.json(&["share", fy2.to_str().unwrap(), "--with", "desktop"])["share"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let offered = |x: &Device| -> Vec<String> {
        let (code, v) = api_call(&x.home, "GET", "/api/shares", "");
        assert_eq!(code, 200, "{v}");
        v["offers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["share"].as_str().unwrap().to_string())
            .collect()
    };
    wait_long("the offers on x", || {
        let o = offered(&x);
        o.contains(&share) && o.contains(&unwanted)
    });

    // The page lists the connected device and the pending one, live.
    let link = x.json(&["dashboard"])["login_link"]
        .as_str()
        .unwrap()
        .to_string();
    let browser = Browser::start(&x.tmp.path().join("profile"));
    browser.goto(&link);
    browser.wait_text("h1", "the overview", |t| t == "Overview");
    browser.click("nav a[href='/devices']");
    browser.wait_text("h1", "the devices page", |t| t == "Devices");
    let y_row = browser.wait_text(&format!("#device-{idy}"), "y connected on the page", |t| {
        // Connected, directly, with a round-trip time (once the path is chosen).
        t.contains("connected")
            && !t.contains("not connected")
            && t.contains("direct")
            && t.contains(" ms")
    });
    assert!(y_row.contains("laptop"), "{y_row}");
    let z_row = browser.wait_text(&format!("#device-{idz}"), "z pending on the page", |t| {
        t.contains("pending")
    });
    assert!(z_row.contains("refused"), "{z_row}");
    let offer = browser
        .text(&format!("#offer-{share}"))
        .expect("the offer on the page");
    assert!(
        offer.contains("laptop") && offer.contains("photos"),
        "{offer}"
    );
    // A hub this device knows is listed with its address and connection (none here:
    // nothing answers at that address).
    #[cfg(feature = "hub")]
    {
        let out = common::ferry_cmd(&x.home)
            .args(["hub", "id", "--home"])
            .arg(x.tmp.path().join("some-hub"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let hub_id = String::from_utf8(out.stdout).unwrap().trim().to_string();
        x.json(&["hub", "add", "127.0.0.1:9", "--id", &hub_id]);
        let row = browser.wait_text(&format!("#hub-{hub_id}"), "the hub on the page", |t| {
            t.contains("not connected")
        });
        assert!(row.contains("127.0.0.1:9"), "{row}");
        let (code, v) = api_call(&x.home, "GET", "/api/hubs", "");
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["hubs"][0]["id"], hub_id.as_str(), "{v}");
        assert_eq!(v["hubs"][0]["connected"], false, "{v}");
    }
    browser.screenshot("dashboard-devices.png");

    // Accept the pending device: it becomes known (and connects: z dials x).
    js_click(&browser, &format!("#device-{idz} button.accept"));
    browser.wait_text("[role=status]", "the accept notice", |t| {
        t.contains("Accepted device")
    });
    assert_eq!(x.row(&idz).unwrap()["state"], "known");
    wait_long("z connected to x", || x.connected_to(&idz));
    browser.wait_text(
        &format!("#device-{idz} .connection"),
        "z connected on the page",
        |t| t.starts_with("connected"),
    );

    // Accept the offered share into a folder typed on the page: the files arrive.
    let fx = x.tmp.path().join("photos-here");
    browser.js(&format!(
        "var i = document.querySelector({}); i.value = {}; i.form.querySelector('button').click(); return 1;",
        json!(format!("#accept-{share}")),
        json!(fx.to_str().unwrap())
    ));
    let notice = browser.wait_text("[role=status]", "the share accepted", |t| {
        t.contains("Accepted share") || t.contains("not accepted")
    });
    assert!(
        notice.contains("Accepted share") && notice.contains(fx.to_str().unwrap()),
        "{notice}"
    );
    wait_long("the shared folder on x", || {
        common::readable_files(&fx) == common::files(&fy)
    });
    let member = browser.wait_text(
        &format!("#share-{share} .members"),
        "the share's member on the page",
        |t| t.contains("joined"),
    );
    assert!(
        member.contains("laptop") && member.contains("connected"),
        "{member}"
    );
    assert!(
        browser.text(&format!("#offer-{share}")).is_none(),
        "the offer is gone"
    );

    // The share's conduit on the overview: the other device's side reads as that device.
    let (_, conduits) = api_call(&x.home, "GET", "/api/conduits", "");
    let c = conduits["conduits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["share"] == share.as_str())
        .cloned()
        .expect("the share's conduit");
    assert_eq!(c["peer_a"], idy.as_str(), "{c}");
    assert_eq!(c["peer_b"], Value::Null, "{c}");
    browser.click("nav a[href='/']");
    browser.wait_text("h1", "the overview", |t| t == "Overview");
    let row = browser.text(&format!("#conduit-{}", c["conduit"])).unwrap();
    assert!(
        row.contains("A: device laptop") && row.contains(&format!("B: {}", fx.display())),
        "{row}"
    );
    assert!(row.contains("A: on that device"), "{row}");
    assert!(!row.contains("ferry-peer:"), "{row}");
    browser.click("nav a[href='/devices']");
    browser.wait_text("h1", "the devices page", |t| t == "Devices");

    // Decline the other offer: it goes, from the page and the API.
    js_click(&browser, &format!("#offer-{unwanted} button.decline"));
    browser.wait_text("[role=status]", "the decline notice", |t| {
        t.contains("Declined share")
    });
    assert!(browser.text(&format!("#offer-{unwanted}")).is_none());
    assert_eq!(offered(&x), Vec::<String>::new());

    // Remove the device again from the page, after a confirmation that says what it does.
    js_click(&browser, &format!("#device-{idz} a.remove"));
    browser.wait_text("h1", "the confirmation", |t| t == "Remove device");
    let text = browser.text("#remove-device").unwrap();
    assert!(
        text.contains("No file is deleted") && text.contains("No folder is shared with it"),
        "{text}"
    );
    assert_eq!(
        x.row(&idz).unwrap()["state"],
        "known",
        "not before confirming"
    );
    browser.click("#remove-device button[type=submit]");
    browser.wait_text("[role=status]", "the removal notice", |t| {
        t.contains("Removed device")
    });
    assert!(
        x.row(&idz).is_none_or(|r| r["state"] == "pending"),
        "z is no longer known"
    );
    drop(browser);
    x.stop();
    y.stop();
    z.stop();
}

#[cfg(feature = "net")]
#[test]
fn api_trusts_and_removes_devices_and_accepts_shares() {
    use common::device::{wait_for as wait_long, Device};
    let (mut x, mut y) = (Device::new(), Device::new());
    let (idx, idy) = (x.id(), y.id());
    let (ax, ay) = (x.start(), y.start());

    // Refusals: a bad ID, an address that is not one, this device's own ID, an unknown
    // field; nothing is added.
    for (body, says) in [
        (json!({"id": "nonsense"}), "not a device ID"),
        (
            json!({"id": idy, "addresses": ["somewhere"]}),
            "not an address",
        ),
        (json!({"id": idx}), "own ID"),
        (json!({"id": idy, "colour": "red"}), "unknown field"),
    ] {
        let (code, v) = api_call(&x.home, "POST", "/api/devices", &body.to_string());
        assert_eq!(code, 400, "{body}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(says),
            "{v}"
        );
    }
    assert!(x.row(&idy).is_none());

    // Trust y through the API, y trusts x by the CLI: they connect.
    let body = json!({"id": idy, "name": "laptop", "addresses": [ay]}).to_string();
    let (code, v) = api_call(&x.home, "POST", "/api/devices", &body);
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["device"]["name"], "laptop");
    assert_eq!(v["accepted_pending"], false);
    y.json(&["device", "add", &idx, "--name", "desktop", "--addr", &ax]);
    wait_long("x and y connected", || {
        x.connected_to(&idy) && y.connected_to(&idx)
    });

    // A share offered by y shows on x with y's name; accepting it needs an absolute
    // folder and an offer that exists.
    let fy = y.tmp.path().join("docs");
    std::fs::create_dir_all(&fy).unwrap();
    std::fs::write(fy.join("a.txt"), "a").unwrap();
    let share = y.json(&["share", fy.to_str().unwrap(), "--with", "desktop"])["share"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_long("the offer on x", || {
        api_call(&x.home, "GET", "/api/shares", "").1["offers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["share"] == share.as_str() && o["name"] == "laptop")
    });
    let fx = x.tmp.path().join("docs-here");
    let (code, v) = api_call(
        &x.home,
        "POST",
        &format!("/api/shares/{share}/accept"),
        &json!({"folder": "relative/docs"}).to_string(),
    );
    assert_eq!(
        (code, v["error"]["kind"].clone()),
        (400, json!("usage")),
        "{v}"
    );
    let (code, v) = api_call(
        &x.home,
        "POST",
        "/api/shares/0123456789abcdef/accept",
        &json!({"folder": fx}).to_string(),
    );
    assert_eq!(code, 404, "{v}");
    assert!(!fx.exists());
    let (code, v) = api_call(&x.home, "POST", "/api/shares/0123456789abcdef/decline", "");
    assert_eq!(code, 404, "no such offer: {v}");
    let (code, v) = api_call(
        &x.home,
        "POST",
        &format!("/api/shares/{share}/accept"),
        &json!({"folder": fx}).to_string(),
    );
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["share"]["id"], share.as_str());
    assert_eq!(v["share"]["offered_by"], idy.as_str());
    assert_eq!(v["share"]["members"][0]["name"], "laptop");
    wait_long("the file on x", || {
        std::fs::read_to_string(fx.join("a.txt")).is_ok_and(|t| t == "a")
    });
    wait_long("x listed as joined on y", || {
        let v = api_call(&y.home, "GET", "/api/shares", "").1;
        let m = &v["shares"][0]["members"][0];
        m["joined"] == true && m["connected"] == true && m["name"] == "desktop"
    });
    // `ferry status` shows both, from the daemon.
    let st = x.json(&["status"]);
    assert_eq!(st["devices_live"], true, "{st}");
    let dev = &st["devices"][0];
    assert_eq!(
        (dev["name"].clone(), dev["connected"].clone()),
        (json!("laptop"), json!(true))
    );
    assert_eq!(
        st["shares"][0]["folder"],
        fx.canonicalize().unwrap().to_str().unwrap()
    );
    let out = common::ferry_cmd(&x.home).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("devices:") && text.contains("laptop: connected"),
        "{text}"
    );
    assert!(
        text.contains("shares:") && text.contains("laptop: joined, connected"),
        "{text}"
    );

    // Stop trusting y: by name; a second time it is not there.
    let (code, v) = api_call(&x.home, "DELETE", "/api/devices/laptop", "");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["removed"]["id"], idy.as_str());
    assert_eq!(v["removed"]["state"], "known");
    let (code, _) = api_call(&x.home, "DELETE", &format!("/api/devices/{idy}"), "");
    assert_eq!(code, 404);
    wait_long("y disconnected", || !x.connected_to(&idy));

    // The dashboard's forms need the session's CSRF token.
    let link = x.json(&["dashboard"])["login_link"]
        .as_str()
        .unwrap()
        .to_string();
    let port = api_port(&x.home);
    let path = link.split_once(&format!("127.0.0.1:{port}")).unwrap().1;
    let r = http(port, "GET", path, &[], b"");
    let cookie = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let form = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", cookie.as_str()),
    ];
    let body = format!("id={idy}");
    assert_eq!(
        http(port, "POST", "/devices", &form, body.as_bytes()).code,
        403
    );
    assert_eq!(
        http(port, "POST", &format!("/devices/{idy}/remove"), &form, b"").code,
        403
    );
    assert_eq!(
        http(
            port,
            "POST",
            &format!("/shares/{share}/accept"),
            &form,
            b"folder=/tmp"
        )
        .code,
        403
    );
    assert!(x.row(&idy).is_none(), "nothing trusted without the token");
    // Without the session, 401.
    let plain = [("Content-Type", "application/x-www-form-urlencoded")];
    assert_eq!(
        http(port, "POST", "/devices", &plain, body.as_bytes()).code,
        401
    );
    // With the page's token the same form trusts the device.
    let page = http(port, "GET", "/devices", &form, b"").text();
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("a CSRF field");
    let good = format!(
        "csrf={csrf}&id={idy}&name=laptop&addr={}",
        ay.replace(':', "%3A")
    );
    let r = http(port, "POST", "/devices", &form, good.as_bytes());
    assert_eq!(r.code, 303, "{}", r.text());
    assert_eq!(x.row(&idy).unwrap()["state"], "known");
    x.stop();
    y.stop();

    // Without a daemon `ferry status` shows the stored devices and the index's shares.
    let st = x.json(&["status"]);
    assert_eq!(st["devices_live"], false, "{st}");
    assert_eq!(st["devices"][0]["name"], "laptop", "{st}");
    assert_eq!(st["devices"][0]["connected"], false, "{st}");
    let m = &st["shares"][0]["members"][0];
    assert_eq!(
        (
            m["name"].clone(),
            m["joined"].clone(),
            m["connected"].clone()
        ),
        (json!("laptop"), json!(true), json!(false)),
        "{st}"
    );
    let out = common::ferry_cmd(&x.home).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("laptop: known (no daemon"), "{text}");
    assert!(text.contains("    laptop: joined\n"), "{text}");
}
