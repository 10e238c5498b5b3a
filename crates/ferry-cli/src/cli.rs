//! Command-line arguments.

use clap::{Parser, Subcommand, ValueEnum};
#[cfg(feature = "net")]
use ferry_core::bandwidth::BandwidthLimit;
use ferry_core::conduit::Schedule;
use std::path::PathBuf;

/// What `ferry --help` and the man page say after the options.
const AFTER_HELP: &str = "\
Exit status:
  0  in sync (or the command did what was asked)
  1  an error, including per-file errors of a sync
  2  usage error
  3  conflicts left for the user (--conflict manual)
  130, 143  interrupted by SIGINT (Ctrl-C) or SIGTERM; run again to resume

Files:
  $FERRY_HOME (else $XDG_DATA_HOME/ferry, else ~/.local/share/ferry)
      the library: index.db, api-token, daemon.json; device.key and devices.db
      (this device's key and the devices it trusts)
  $XDG_CONFIG_HOME/ferry/config.toml (else ~/.config/ferry/config.toml)
      optional defaults: retention, conflict, schedule, [daemon] port
  FOLDER/.ferry/
      a synced folder's marker, lock and version store

Environment:
  FERRY_HOME, FERRY_CONFIG (another config file), NO_COLOR, RUST_LOG";

/// ferry keeps folders in step: safely, moving only what changed.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, long_about = None, after_long_help = AFTER_HELP)]
pub struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Say more: `sync -v` lists what it did, one line per path; logs on stderr at
    /// -v info, -vv debug, -vvv trace (RUST_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Say less: no progress bar, summary or notes; warnings and errors still go to
    /// stderr, and the exit code tells the outcome.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sync two folders (creating their conduit on first use).
    Sync(SyncArgs),
    /// Sync two demo folders (./ferry-demo/a and ./ferry-demo/b), creating them with sample files.
    Demo {
        /// Where to create the demo folders.
        #[arg(default_value = "ferry-demo")]
        dir: PathBuf,
        /// Start a demo folder over when its `.ferry` marker is gone (as `sync --yes`).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Index a folder (registering it as a location) and report what changed.
    Scan {
        dir: PathBuf,
        /// Index everything, including node_modules and OS clutter.
        #[arg(long)]
        index_everything: bool,
    },
    /// Show the daemon (if running), conduits, running jobs and last runs.
    Status,
    /// Manage saved conduits (folder pairs the daemon keeps in step).
    #[command(subcommand)]
    Conduit(ConduitCommand),
    /// Run continuous sync in the foreground: watch, schedule and run every enabled conduit,
    /// and serve the local API.
    Daemon(DaemonArgs),
    /// List conflicts: open ones and those settled in the last 7 days (--all: every one).
    Conflicts {
        /// Include every settled conflict, however old.
        #[arg(long)]
        all: bool,
    },
    /// Settle conflicts: `ferry resolve PATH --keep a|b|both|newest`, or `--all`; a
    /// conflict with another device: `--keep mine|theirs|both` (or a, b, newest).
    Resolve {
        /// The conflicting path, in either folder of its conduit.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        path: Option<PathBuf>,
        /// Settle every open conflict.
        #[arg(long)]
        all: bool,
        /// Which content survives (the other is versioned, or kept beside it with `both`).
        #[arg(long, value_enum)]
        keep: KeepArg,
    },
    /// List earlier contents of a file (in either folder of its conduit), or prune them.
    Versions {
        /// The file (it may be deleted).
        #[arg(required_unless_present = "prune")]
        path: Option<PathBuf>,
        /// Drop the versions each folder's retention policy no longer keeps.
        #[arg(long)]
        prune: bool,
    },
    /// Bring back an earlier content of a file; the next sync carries it over.
    Restore {
        /// The file (it may be deleted).
        path: PathBuf,
        /// Version ID, from `ferry versions PATH`.
        #[arg(long = "version")]
        version: i64,
        /// Restore to this path instead of PATH.
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Show or set a folder's version retention (overrides its conduit's).
    Retention {
        dir: PathBuf,
        /// simple:N, staggered, trashcan:DAYS or none.
        #[arg(value_parser = parse_retention)]
        spec: Option<String>,
    },
    /// List past runs (generations), newest first; `history show GEN` lists what one did.
    History(HistoryArgs),
    /// Print a shell completion script, e.g. `ferry completions bash > ~/.local/share/bash-completion/completions/ferry`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages (ferry.1 and one per subcommand) into DIR, or print ferry.1.
    Man {
        /// Folder to write the pages into, e.g. ~/.local/share/man/man1.
        dir: Option<PathBuf>,
    },
    /// Print a one-time login link to the running daemon's web dashboard.
    Dashboard,
    /// Keep PATH (a file, or everything under a folder) local whatever the quota.
    Pin {
        /// A path in the local side of a selective conduit.
        path: PathBuf,
    },
    /// Let PATH (and everything under it) be evicted again when space runs short.
    Unpin { path: PathBuf },
    /// Free up space: make PATH (and everything under it) online-only now, after
    /// re-reading the secondary's copy and checking its hash. Unpins it.
    FreeUp { path: PathBuf },
    /// Make PATH (and everything under it) available offline: pin it and bring its
    /// content back from the secondary now.
    KeepOffline { path: PathBuf },
    /// List PATH (default: the current folder) of a selective conduit's local side with
    /// each entry's state: local, online-only, pinned, syncing.
    Ls { path: Option<PathBuf> },
    /// Show the local side of a selective conduit at MOUNTPOINT: every file, online-only
    /// ones fetched from the secondary as they are read (FUSE). Runs until unmounted.
    #[cfg(feature = "fuse")]
    Mount(MountArgs),
    /// Unmount a `ferry mount` (also one whose process died).
    #[cfg(feature = "fuse")]
    Unmount { mountpoint: PathBuf },
    /// This device's ID, and the devices it talks to (trusted by ID).
    #[cfg(feature = "net")]
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Share a folder with other devices (`ferry share DIR --with DEVICE`), list shares
    /// and offers (`ferry share list`), add a device to a share.
    #[cfg(feature = "net")]
    Share(ShareArgs),
    /// Accept a share another device offered, into DIR (created if missing).
    #[cfg(feature = "net")]
    Accept {
        /// The share's ID, from `ferry share list` (or the other device's `ferry share`).
        share: String,
        dir: PathBuf,
    },
    /// The hub: run one (`ferry hub serve`), or tell this device about one (`ferry hub add`).
    #[cfg(feature = "hub")]
    #[command(subcommand)]
    Hub(HubCommand),
}

#[cfg(feature = "hub")]
#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Run a hub: an always-on member of shares that stores only ciphertext.
    Serve {
        /// The hub's home: its key, and by default its SQLite file and blob folder
        /// (default: `hub` in the ferry home).
        #[arg(long)]
        home: Option<PathBuf>,
        /// UDP address to listen on.
        #[arg(long, default_value = "0.0.0.0:22200")]
        listen: std::net::SocketAddr,
        /// Where blobs go: a directory, or s3://BUCKET?endpoint=URL (default: HOME/blobs).
        #[arg(long)]
        store: Option<String>,
        /// postgres://… for metadata in PostgreSQL (default: SQLite in HOME/hub.db).
        #[arg(long)]
        db: Option<String>,
        /// A device allowed to put shares on this hub (its members are served too);
        /// may be repeated.
        #[arg(long = "allow", value_name = "DEVICE_ID", value_parser = parse_device_id)]
        allow: Vec<ferry_net::DeviceId>,
        /// Bytes each share may store on this hub (its sealed objects and log records),
        /// e.g. 500M, 20G (0 or none: no limit). An upload past it is refused with an
        /// error and not stored.
        #[arg(long, value_name = "SIZE", value_parser = parse_bandwidth)]
        quota_per_share: Option<u64>,
        /// How often to delete objects no member's log references any more (0: never;
        /// `ferry hub gc` runs one collection), e.g. 1h, 30m.
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_wait)]
        gc_every: std::time::Duration,
        /// How long an unreferenced object is kept after it was last stored or asked
        /// for by an uploader (readers part-way through an older log may fetch it).
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_wait)]
        gc_grace: std::time::Duration,
    },
    /// Delete the objects no member's log references any more, once, and print what
    /// was freed. Runs against the hub's stores (a hub serving them may keep running).
    Gc {
        #[arg(long)]
        home: Option<PathBuf>,
        #[arg(long)]
        store: Option<String>,
        #[arg(long)]
        db: Option<String>,
        /// Keep objects stored or asked for within this long, e.g. 0s, 24h.
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_wait)]
        grace: std::time::Duration,
    },
    /// Print a hub's ID (creating its key on first use).
    Id {
        #[arg(long)]
        home: Option<PathBuf>,
    },
    /// Tell this device about a hub: where it listens and its ID. Adding the same ID
    /// again with another address adds a node of that hub: the daemon dials the next
    /// address when one fails or its connection drops.
    Add {
        /// HOST:PORT (UDP), e.g. 192.0.2.7:22200.
        addr: std::net::SocketAddr,
        /// The hub's ID, from `ferry hub id` where it runs.
        #[arg(long, value_parser = parse_device_id)]
        id: ferry_net::DeviceId,
    },
    /// The hubs this device knows.
    List,
    /// Wrap a hub share's keys for a passphrase too (every key epoch): a new device
    /// can then restore access with `ferry hub restore`, with no member online. The
    /// daemon does it at its next sync with the hub. A new key epoch (a device removed)
    /// drops it: set it again then.
    SetPassphrase {
        share: String,
        /// A file holding the passphrase (its line ending is not part of it). Without
        /// it, the passphrase is asked for on the terminal (twice, not echoed), or read
        /// as one line from standard input when that is not a terminal.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Restore access to a hub share on this device with its passphrase: the hub makes
    /// this device a member, and the share is offered (`ferry share list`, `ferry accept`).
    Restore {
        share: String,
        /// The hub holding the share (`ferry hub add` it first).
        #[arg(long, value_parser = parse_device_id)]
        hub: ferry_net::DeviceId,
        /// A file holding the passphrase (its line ending is not part of it). Without
        /// it, the passphrase is asked for on the terminal (not echoed), or read as one
        /// line from standard input when that is not a terminal.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
}

#[cfg(feature = "fuse")]
#[derive(Debug, clap::Args)]
pub struct MountArgs {
    /// The local side of a selective conduit.
    pub dir: PathBuf,
    /// An empty folder to show it at.
    pub mountpoint: PathBuf,
    /// How long a read of an online-only file may wait for the secondary before it
    /// fails with an I/O error (EIO), e.g. 10s, 500ms.
    #[arg(long, default_value = "10s", value_parser = parse_wait)]
    pub read_timeout: std::time::Duration,
}

/// `--read-timeout`, `--gc-grace`: `500ms`, `10s`, `2m`, `24h`.
#[cfg(any(feature = "fuse", feature = "hub"))]
fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (n, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let n: u64 = n
        .parse()
        .map_err(|_| format!("bad duration {s:?}; e.g. 500ms, 10s"))?;
    Ok(match unit {
        "ms" => std::time::Duration::from_millis(n),
        "s" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n.saturating_mul(60)),
        "h" => std::time::Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("bad duration {s:?}; e.g. 500ms, 10s, 24h")),
    })
}

#[cfg(feature = "net")]
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ShareArgs {
    /// The folder to share.
    pub dir: Option<PathBuf>,
    /// A device to offer it to, by ID or name (`ferry device list`); may be repeated.
    #[arg(long = "with", value_name = "DEVICE")]
    pub with: Vec<String>,
    /// bidirectional (default), mirror (this device is the source) or archive (files
    /// leave this device once the other device reports its verified copy).
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// What wins when both devices changed a file (default newest).
    #[arg(long, value_enum)]
    pub conflict: Option<PolicyArg>,
    /// Also keep the share on this hub (its ID, see `ferry hub list`), so devices that
    /// are never online together stay in step.
    #[cfg(feature = "hub")]
    #[arg(long, value_parser = parse_device_id)]
    pub hub: Option<ferry_net::DeviceId>,
    /// Bytes per second for this share's transfers on this device, each way, e.g.
    /// 500K, 10M (0 = unlimited), or a schedule of local times, e.g.
    /// '10M 09:00-18:00, 50M 18:00-23:00' (unlimited outside the windows) or
    /// '10M 09:00-18:00, 1M' (1M outside); with a folder shared already, changes its limit.
    #[arg(long, value_parser = parse_bandwidth_limit)]
    pub bandwidth_limit: Option<BandwidthLimit>,
    #[command(subcommand)]
    pub command: Option<ShareCommand>,
}

#[cfg(feature = "net")]
#[derive(Debug, Subcommand)]
pub enum ShareCommand {
    /// This device's shares with their members, and offers waiting to be accepted.
    List,
    /// Offer a share to one more device.
    AddDevice {
        share: String,
        #[arg(value_name = "DEVICE")]
        device: String,
    },
    /// Remove a device from a share: it is no longer sent the share's changes; through
    /// a hub, the hub stops serving it the share and a new key epoch starts that it
    /// cannot read (what it had already stays readable to it).
    RemoveDevice {
        share: String,
        #[arg(value_name = "DEVICE")]
        device: String,
    },
    /// Decline a share another device offered: it is no longer listed, and that
    /// device's next share list does not bring it back (`ferry accept` still takes it).
    Decline { share: String },
}

#[cfg(feature = "net")]
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Print this device's ID (creating its key on first use), to give to other devices.
    Id,
    /// Trust a device by its ID (accepting it if it is pending); the daemon dials it.
    Add {
        /// Its ID, from `ferry device id` on it (dashes and case do not matter).
        #[arg(value_parser = parse_device_id)]
        id: ferry_net::DeviceId,
        /// What to call it (default: the name it gives when it connects).
        #[arg(long)]
        name: Option<String>,
        /// Where to reach it, HOST:PORT (UDP); may be given more than once.
        #[arg(long = "addr", value_name = "HOST:PORT", value_parser = parse_host_port)]
        addrs: Vec<String>,
        /// Bytes per second exchanged with it, each way, over all shares, e.g. 500K,
        /// 10M (0 = unlimited), or a schedule of local times, e.g.
        /// '10M 09:00-18:00, 50M 18:00-23:00' (unlimited outside the windows).
        #[arg(long, value_parser = parse_bandwidth_limit)]
        bandwidth_limit: Option<BandwidthLimit>,
    },
    /// List known devices (with live state when the daemon runs) and pending ones.
    List,
    /// Stop trusting a device (known or pending), by ID or name.
    Remove {
        #[arg(value_name = "ID|NAME")]
        device: String,
    },
}

#[cfg(feature = "net")]
fn parse_device_id(s: &str) -> Result<ferry_net::DeviceId, String> {
    s.parse()
        .map_err(|e: ferry_net::IdentityError| e.to_string())
}

#[cfg(feature = "net")]
/// `HOST:PORT`: a host name or IP (IPv6 in brackets) and a port.
fn parse_host_port(s: &str) -> Result<String, String> {
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(s.to_string())
        }
        _ => Err("expected HOST:PORT, e.g. 192.168.1.20:22100".into()),
    }
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HistoryArgs {
    /// How many runs to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[command(subcommand)]
    pub command: Option<HistoryCommand>,
}

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// What one run did, one line per path (GEN: the run's generation, from `ferry history`).
    Show {
        #[arg(value_name = "GEN")]
        generation: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConduitCommand {
    /// Save a conduit between two folders (or update the settings of an existing one).
    Add(ConduitAddArgs),
    /// Change a saved conduit's mode, schedule, conflict policy or transfer settings.
    Set(ConduitSetArgs),
    /// List saved conduits.
    List,
    /// Show one conduit's settings and recent runs.
    Show { id: i64 },
    /// Stop the daemon from running a conduit.
    Pause { id: i64 },
    /// Let the daemon run a paused conduit again.
    Resume { id: i64 },
    /// Remove a conduit (its folders, files and version stores stay).
    Remove { id: i64 },
}

#[derive(Debug, clap::Args)]
pub struct ConduitAddArgs {
    /// First folder (side a; the source in mirror mode).
    pub a: PathBuf,
    /// Second folder (side b; the target in mirror mode). Created if missing.
    pub b: PathBuf,
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// instant (watch for changes), every:DURATION (e.g. every:10m) or manual. Default
    /// instant, also for a pair that `ferry sync` made (manual until then).
    #[arg(long, value_parser = parse_schedule)]
    pub schedule: Option<Schedule>,
    #[arg(long = "conflict", value_enum)]
    pub conflict: Option<PolicyArg>,
    #[command(flatten)]
    pub transfer: TransferArgs,
    #[command(flatten)]
    pub indexing: IndexingArgs,
    /// Version retention of both folders: simple:N, staggered, trashcan:DAYS or none.
    #[arg(long, value_parser = parse_retention)]
    pub retention: Option<String>,
    /// Selective mode: most bytes of content to keep in the first folder (e.g. 20G);
    /// beyond, the least recently read files become online-only.
    #[arg(long, value_parser = parse_size)]
    pub local_quota: Option<u64>,
    /// Selective mode: percent of the first folder's disk to keep free; below, the least
    /// recently read files become online-only.
    #[arg(long, value_parser = parse_percent)]
    pub min_free: Option<u8>,
}

/// `--local-quota`: a size such as 500M or 20G.
fn parse_size(s: &str) -> Result<u64, String> {
    ferry_core::conduit::parse_size(s).map_err(|e| e.to_string())
}

/// `--min-free`: a percentage, 0 to 99.
fn parse_percent(s: &str) -> Result<u8, String> {
    ferry_core::conduit::parse_percent(s).map_err(|e| e.to_string())
}

#[derive(Debug, clap::Args)]
pub struct ConduitSetArgs {
    /// The conduit's ID (see `ferry conduit list`).
    pub id: i64,
    /// A new mode; an archive conduit cannot become mirror or bidirectional.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// instant (watch for changes), every:DURATION (e.g. every:10m) or manual.
    #[arg(long, value_parser = parse_schedule)]
    pub schedule: Option<Schedule>,
    #[arg(long = "conflict", value_enum)]
    pub conflict: Option<PolicyArg>,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

/// How a conduit's copies run; stored with the conduit.
#[derive(Debug, clap::Args)]
pub struct TransferArgs {
    /// Copies at once: 1 to 64, or auto (one per core, up to 8; the default; also 0).
    #[arg(long, value_parser = parse_parallel)]
    pub parallel: Option<u32>,
    /// Bytes per second for this conduit's copies, e.g. 500K, 10M (0 = unlimited).
    #[arg(long, value_parser = parse_bandwidth)]
    pub bandwidth_limit: Option<u64>,
}

/// What a conduit indexes; stored with the conduit.
#[derive(Debug, clap::Args)]
pub struct IndexingArgs {
    /// Index everything, including node_modules and OS clutter.
    #[arg(long, overrides_with = "no_index_everything")]
    pub index_everything: bool,
    /// Leave node_modules and OS clutter out again (the default).
    #[arg(long, overrides_with = "index_everything")]
    pub no_index_everything: bool,
}

impl IndexingArgs {
    /// The setting asked for, if any.
    pub fn index_everything(&self) -> Option<bool> {
        if self.index_everything {
            Some(true)
        } else if self.no_index_everything {
            Some(false)
        } else {
            None
        }
    }
}

/// `--schedule`: checked here, so a bad one is a usage error.
fn parse_schedule(s: &str) -> Result<Schedule, String> {
    Schedule::parse(s).map_err(|e| e.to_string())
}

/// `--bandwidth-limit`: bytes per second; `0`, `none` or `unlimited` for no limit.
fn parse_bandwidth(s: &str) -> Result<u64, String> {
    if s.contains(':') {
        return Err(
            "a schedule (RATE HH:MM-HH:MM) is set on a share or a device \
                    (`ferry share DIR --bandwidth-limit …`, `ferry device add ID \
                    --bandwidth-limit …`); a conduit's limit is one rate"
                .into(),
        );
    }
    ferry_core::conduit::parse_bandwidth(s).map_err(|e| e.to_string())
}

/// `--bandwidth-limit` of a share or a device: a rate or a schedule.
#[cfg(feature = "net")]
fn parse_bandwidth_limit(s: &str) -> Result<BandwidthLimit, String> {
    BandwidthLimit::parse(s).map_err(|e| e.to_string())
}

/// `--parallel`: 1 to `ferry_core::conduit::MAX_PARALLEL`, or `auto` / `0` (one per core, stored as 0).
fn parse_parallel(s: &str) -> Result<u32, String> {
    ferry_core::conduit::parse_parallel(s).map_err(|e| e.to_string())
}

/// A retention spec: simple:N, staggered, trashcan:DAYS or none.
fn parse_retention(s: &str) -> Result<String, String> {
    ferry_core::versions::Retention::parse(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// Port of the local API on 127.0.0.1 (default: the config file's [daemon] port, else
    /// any free port; either is written to daemon.json).
    #[arg(long)]
    pub port: Option<u16>,
    /// Start the device node on this UDP address (default 0.0.0.0:22100 when given
    /// without a value): accept known devices, dial them, list unknown ones as pending.
    #[cfg(feature = "net")]
    #[arg(long, value_name = "HOST:PORT", num_args = 0..=1, default_missing_value = "0.0.0.0:22100")]
    pub listen: Option<std::net::SocketAddr>,
    /// Also reach devices through this relay server (a self-hosted iroh-relay URL);
    /// without it, only direct addresses are used.
    #[cfg(feature = "net")]
    #[arg(long, value_name = "URL", requires = "listen")]
    pub relay: Option<String>,
    /// Do not find known devices on the local network by mDNS (nor announce this one);
    /// then a device is reached only at the addresses it was added with (or a relay).
    #[cfg(feature = "net")]
    #[arg(long, requires = "listen")]
    pub no_local_discovery: bool,
}

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// First folder (side a; the source in mirror mode).
    #[arg(required_unless_present_any = ["conduit", "share"])]
    pub a: Option<PathBuf>,
    /// Second folder (side b; the target in mirror mode). Created if missing.
    #[arg(required_unless_present_any = ["conduit", "share"])]
    pub b: Option<PathBuf>,
    /// Sync a shared folder with its members that are online, once, without a daemon
    /// (a running daemon is asked to run it instead). Exits when both sides agree, or
    /// at --timeout.
    #[arg(long, value_name = "SHARE_ID", conflicts_with_all = ["a", "b", "conduit", "mode",
        "conflict", "dry_run", "index_everything", "no_index_everything", "parallel",
        "bandwidth_limit", "retention"])]
    pub share: Option<String>,
    /// With --share: seconds to try before giving up on members not reached or not in step.
    #[arg(long, requires = "share", default_value_t = 120)]
    pub timeout: u64,
    /// With --share: the UDP address to use (default: any free port).
    #[arg(long, requires = "share", value_name = "HOST:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// With --share: reach members through this relay server too (as `ferry daemon --relay`).
    #[arg(long, requires = "share", value_name = "URL")]
    pub relay: Option<String>,
    /// With --share: do not look for members on the local network by mDNS.
    #[arg(long, requires = "share")]
    pub no_local_discovery: bool,
    /// Run a saved conduit by its ID instead of naming two folders.
    #[arg(long, conflicts_with_all = ["a", "b", "share", "mode", "conflict", "index_everything",
        "no_index_everything", "parallel", "bandwidth_limit", "retention"])]
    pub conduit: Option<i64>,
    /// How changes move; stored with the conduit for later runs.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Who wins when both sides changed a file; stored with the conduit.
    #[arg(long = "conflict", value_enum)]
    pub conflict: Option<PolicyArg>,
    /// Show what would happen, one line per path; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Proceed past safety stops: a run deleting most of a side, a folder whose marker is gone.
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub indexing: IndexingArgs,
    #[command(flatten)]
    pub transfer: TransferArgs,
    /// Version retention of both folders: simple:N, staggered, trashcan:DAYS or none.
    #[arg(long, value_parser = parse_retention)]
    pub retention: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// b becomes an exact copy of a (b's own edits are versioned, then overwritten).
    Mirror,
    /// Changes flow both ways; concurrent edits go to the conflict policy.
    Bidirectional,
    /// Copy a to b, verify the copy on b, then remove it from a.
    Archive,
    /// Both ways, with a the local side and b the secondary that keeps everything:
    /// cold files of a become online-only (see --local-quota, --min-free, ferry mount).
    Selective,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeepArg {
    /// The first folder's content.
    A,
    /// The second folder's content.
    B,
    /// Both: the first folder's moves beside the other as name.conflict-DATE-a.ext
    /// (with another device: this device's moves aside, the other's takes the path).
    Both,
    /// The later-modified content.
    Newest,
    /// This device's content (a conflict with another device; it reaches that device
    /// as a newer edit).
    Mine,
    /// The other device's content (a conflict with another device; pulled from it by
    /// the next run, this device's copy versioned).
    Theirs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PolicyArg {
    /// Last writer (by mtime) wins; the loser is kept in the version store.
    Newest,
    /// As newest, and the loser also stays visible as name.conflict-DATE-SIDE.ext.
    KeepBoth,
    /// Side a wins.
    Source,
    /// Side b wins.
    Target,
    /// Touch nothing; record the conflict and exit 3.
    Manual,
}

impl ModeArg {
    pub fn mode(self) -> ferry_core::plan::SyncMode {
        match self {
            ModeArg::Mirror => ferry_core::plan::SyncMode::Mirror,
            ModeArg::Bidirectional => ferry_core::plan::SyncMode::Bidirectional,
            ModeArg::Archive => ferry_core::plan::SyncMode::Archive,
            ModeArg::Selective => ferry_core::plan::SyncMode::Selective,
        }
    }
}

impl PolicyArg {
    pub fn policy(self) -> ferry_core::plan::ConflictPolicy {
        use ferry_core::plan::ConflictPolicy as P;
        match self {
            PolicyArg::Newest => P::Newest,
            PolicyArg::KeepBoth => P::KeepBoth,
            PolicyArg::Source => P::Source,
            PolicyArg::Target => P::Target,
            PolicyArg::Manual => P::Manual,
        }
    }
}
