//! Tunables of the daemon, with environment overrides (used by tests and benchmarks).

use ferry_core::conduit::parse_duration;
use std::time::Duration;

/// Timing and limits the daemon runs with.
#[derive(Debug, Clone)]
pub struct Tunables {
    /// Debounce window of file-system events (`FERRY_DEBOUNCE`, default 100ms).
    pub debounce: Duration,
    /// Backstop full rescan of watched conduits (`FERRY_RESCAN_INTERVAL`, default 1h).
    pub rescan_interval: Duration,
    /// Rescan interval of an `instant` conduit that could not be watched
    /// (`FERRY_FALLBACK_INTERVAL`, default 60s).
    pub fallback_interval: Duration,
    /// Retry delay when a location is busy (`FERRY_BUSY_RETRY`, default 2s).
    pub busy_retry: Duration,
    /// How often saved conduit settings are re-read as a backstop
    /// (`FERRY_RELOAD_INTERVAL`, default 30s); `ferry conduit` and `ferry sync` ask a
    /// running daemon to re-read them at once (`POST /api/reload`).
    pub reload_interval: Duration,
    /// How often the local side of a selective conduit with a quota or free-space
    /// floor is checked between runs, dehydrating cold files when it is over
    /// (`FERRY_EVICT_INTERVAL`, default 30s).
    pub evict_interval: Duration,
    /// Cap on directory watches per conduit, below the OS limit (`FERRY_MAX_WATCHES`).
    pub max_watches: Option<usize>,
}

impl Tunables {
    pub fn from_env() -> Tunables {
        let dur = |name: &str, default: Duration| {
            std::env::var(name)
                .ok()
                .and_then(|v| parse_duration(&v).ok())
                .filter(|d| !d.is_zero())
                .unwrap_or(default)
        };
        Tunables {
            debounce: dur("FERRY_DEBOUNCE", Duration::from_millis(100)),
            rescan_interval: dur("FERRY_RESCAN_INTERVAL", Duration::from_secs(3600)),
            fallback_interval: dur("FERRY_FALLBACK_INTERVAL", Duration::from_secs(60)),
            busy_retry: dur("FERRY_BUSY_RETRY", Duration::from_secs(2)),
            reload_interval: dur("FERRY_RELOAD_INTERVAL", Duration::from_secs(30)),
            evict_interval: dur("FERRY_EVICT_INTERVAL", Duration::from_secs(30)),
            max_watches: std::env::var("FERRY_MAX_WATCHES")
                .ok()
                .and_then(|v| v.parse().ok()),
        }
    }
}
