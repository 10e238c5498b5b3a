//! Conduit settings that drive continuous sync: schedule, parallelism and bandwidth
//! limit, with their text forms (`instant`, `every:5m`, `manual`; `10M`, `500KiB/s`);
//! and adding and changing saved conduits, the one code path of every front end.

pub use crate::conduit_edit::{
    add_conduit, change_conduit, format_bandwidth, parse_bandwidth, parse_mode, parse_parallel,
    parse_percent, parse_policy, parse_size, Added, ConduitDefaults, ConduitSettings,
    SettingsChange, MAX_PARALLEL,
};

use crate::error::{Error, Result};
use std::fmt;
use std::time::Duration;

/// When the daemon runs a conduit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Watch both roots and sync within moments of a change.
    Instant,
    /// Sync on a timer.
    Every(Duration),
    /// Only when asked (`ferry sync --conduit ID`).
    Manual,
}

impl Schedule {
    /// Reads the text form (`instant`, `every:10m`, `manual`); an interval under 1s is
    /// refused.
    pub fn parse(s: &str) -> Result<Schedule> {
        match s {
            "instant" => Ok(Schedule::Instant),
            "manual" => Ok(Schedule::Manual),
            _ => match s.strip_prefix("every:") {
                Some(d) => {
                    let d = parse_duration(d)?;
                    if d < Duration::from_secs(1) {
                        return Err(Error::Other(format!(
                            "schedule {s:?}: the interval must be at least 1s"
                        )));
                    }
                    Ok(Schedule::Every(d))
                }
                None => Err(Error::Other(format!(
                    "unknown schedule {s:?}; expected instant, every:DURATION (e.g. every:10m) or manual"
                ))),
            },
        }
    }
}

impl serde::Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Schedule::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Instant => f.write_str("instant"),
            Schedule::Manual => f.write_str("manual"),
            Schedule::Every(d) => write!(f, "every:{}", format_duration(*d)),
        }
    }
}

/// Parses `500ms`, `30s`, `5m`, `2h`, `1d` (a bare number means seconds).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || Error::Other(format!("bad duration {s:?}; use e.g. 30s, 5m, 2h, 1d"));
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(bad()),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Shortest exact text form of a duration.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    for (unit, n) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if s >= n && s % n == 0 {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

/// Parses a rate in bytes per second: `1048576`, `500K`, `10M`, `1G`, optionally with
/// `B`, `iB` and `/s` (`10MiB/s`). Units are binary (K = 1024).
pub(crate) fn parse_rate(s: &str) -> Result<u64> {
    let bad = || {
        Error::Other(format!(
            "bad rate {s:?}; use e.g. 500K, 10M, 1G (per second)"
        ))
    };
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('K') | Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') | Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('G') | Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    let v = n * mult as f64;
    if !v.is_finite() || v < 1.0 {
        return Err(bad());
    }
    Ok(v as u64)
}

/// Bytes for people: B, KiB, MiB, GiB, TiB (`1.5 KiB`).
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Text form of a rate for display (`10.0 MiB/s`).
pub fn format_rate(bytes_per_sec: u64) -> String {
    let mut v = bytes_per_sec as f64;
    let mut unit = "B/s";
    for u in ["KiB/s", "MiB/s", "GiB/s"] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if unit == "B/s" {
        format!("{bytes_per_sec} B/s")
    } else {
        format!("{v:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_roundtrip() {
        for s in [
            "instant",
            "manual",
            "every:30s",
            "every:5m",
            "every:2h",
            "every:1d",
        ] {
            assert_eq!(Schedule::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(
            Schedule::parse("every:90s").unwrap(),
            Schedule::Every(Duration::from_secs(90))
        );
        assert!(Schedule::parse("every:0s").is_err());
        assert!(Schedule::parse("sometimes").is_err());
        assert!(Schedule::parse("every:5x").is_err());
        let every = Schedule::Every(Duration::from_secs(600));
        assert_eq!(serde_json::to_value(every).unwrap(), "every:10m");
        assert_eq!(
            serde_json::from_value::<Schedule>("every:10m".into()).unwrap(),
            every
        );
        assert!(serde_json::from_value::<Schedule>("hourly".into()).is_err());
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("1000").unwrap(), 1000);
        assert_eq!(parse_rate("500K").unwrap(), 500 * 1024);
        assert_eq!(parse_rate("10MiB/s").unwrap(), 10 << 20);
        assert_eq!(parse_rate("1.5M").unwrap(), 3 << 19);
        assert_eq!(parse_rate("2G").unwrap(), 2 << 30);
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0").is_err());
        assert_eq!(format_rate(10 << 20), "10.0 MiB/s");
    }
}
