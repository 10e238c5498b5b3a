//! Real services for the store tests: a throwaway PostgreSQL cluster and moto's S3
//! server, each on a free loopback port, stopped on drop. A missing service fails the
//! test with a message saying what to install; nothing is skipped.

#![allow(dead_code)] // each test binary uses part of this

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free loopback port")
        .port()
}

/// Polls `ready` until it is true; panics after the timeout, naming the service and
/// showing its log.
fn wait_until(what: &str, log: &Path, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > START_TIMEOUT {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not answer within {START_TIMEOUT:?}; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A program on PATH, or (PostgreSQL on Debian) in /usr/lib/postgresql/<version>/bin,
/// newest version first.
fn find_program(name: &str, install: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name));
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .collect();
    debian.sort_by_key(|p| {
        std::cmp::Reverse(
            p.components()
                .nth(4)
                .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok()),
        )
    });
    on_path
        .chain(debian)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` not found on PATH; install {install} (see .ci/run)"))
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PostgreSQL cluster in a temp dir with trust auth, listening on 127.0.0.1.
/// PostgreSQL refuses to run as root, so as root it runs as `nobody` (via runuser).
pub struct Postgres {
    dir: tempfile::TempDir,
    pg_ctl: PathBuf,
    port: u16,
}

fn as_postgres_user(program: &Path) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "nobody", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn running_as_root() -> bool {
    // The effective UID from /proc: no libc dependency for one call.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl Postgres {
    pub fn start() -> Postgres {
        let install = "PostgreSQL (Debian: apt-get install postgresql)";
        let initdb = find_program("initdb", install);
        let pg_ctl = find_program("pg_ctl", install);
        let dir = tempfile::tempdir().expect("temp dir");
        // The cluster's user must be able to create its data directory in here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod temp dir");
        let data = dir.path().join("data");
        run(
            as_postgres_user(&initdb).arg("-D").arg(&data).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ]),
            "initdb",
        );
        let port = free_port();
        let log = dir.path().join("postgres.log");
        std::fs::write(&log, "").expect("log file");
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).expect("chmod log");
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            dir.path().display()
        );
        run(
            as_postgres_user(&pg_ctl)
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o", &options, "start"]),
            "pg_ctl start",
        );
        let pg = Postgres { dir, pg_ctl, port };
        wait_until("PostgreSQL", &log, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        pg
    }

    /// A tokio-postgres connection string.
    pub fn config(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres_user(&self.pg_ctl)
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// moto's S3 server on a free loopback port, with one empty bucket.
pub struct Moto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// One HTTP/1.0 request over a plain socket (moto checks no signatures); the status line.
fn http(port: u16, request_line: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{request_line} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.lines().next().unwrap_or_default().to_owned())
}

impl Moto {
    pub fn start(bucket: &str) -> Moto {
        let program = find_program("moto_server", "moto's server (pip install 'moto[server]')");
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("moto.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let port = free_port();
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("start moto_server");
        let mut moto = Moto {
            child,
            port,
            _dir: dir,
        };
        wait_until("moto_server", &log, || {
            if let Ok(Some(status)) = moto.child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("moto_server exited ({status}):\n{log}");
            }
            http(port, "GET /").is_ok_and(|status| status.contains(" 200"))
        });
        let created = http(port, &format!("PUT /{bucket}")).expect("create bucket");
        assert!(created.contains(" 200"), "creating bucket: {created}");
        moto
    }

    /// A blob store URL for `bucket`, credentials in the query (moto accepts any).
    pub fn url(&self, bucket: &str) -> String {
        format!(
            "s3://{bucket}?endpoint=http://127.0.0.1:{}&region=us-east-1&access_key_id=test&secret_access_key=test",
            self.port
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
