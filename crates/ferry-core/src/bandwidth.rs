//! A bandwidth limit that may change with the time of day: `10M`, or a schedule such
//! as `10M 09:00-18:00, 50M 18:00-23:00` (outside every window: unlimited) or
//! `10M 09:00-18:00, 1M` (a rate without a window is the rate outside the windows).
//!
//! Times are the device's local wall clock, minutes of the day; a window may run past
//! midnight (`22:00-06:00`) and may end at `24:00`. Windows may not overlap. Pure: the
//! caller says what minute it is ([`BandwidthLimit::rate_at`]), so the logic is tested
//! without a clock; [`local_minute`] reads the real one.

use std::fmt;

use crate::conduit_edit::{format_bandwidth, parse_bandwidth};

/// Minutes in a day.
pub const DAY: u16 = 24 * 60;

/// What is wrong with a bandwidth limit's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BandwidthError {
    /// A rate that is not a rate.
    #[error("bandwidth limit {text:?}: bad rate {rate:?}; use e.g. 500K, 10M, 1G (per second) or unlimited")]
    Rate {
        /// The whole text.
        text: String,
        /// The part taken for a rate.
        rate: String,
    },
    /// A window that is not `HH:MM-HH:MM`.
    #[error("bandwidth limit {text:?}: bad time window {window:?}; use e.g. 09:00-18:00 (24-hour clock, 24:00 ends a day)")]
    Window {
        /// The whole text.
        text: String,
        /// The part taken for a window.
        window: String,
    },
    /// A window that starts where it ends.
    #[error("bandwidth limit {text:?}: the window {window} is empty (it starts where it ends)")]
    Empty {
        /// The whole text.
        text: String,
        /// The window.
        window: String,
    },
    /// Two windows covering the same minute.
    #[error("bandwidth limit {text:?}: the windows {a} and {b} overlap")]
    Overlap {
        /// The whole text.
        text: String,
        /// One window.
        a: String,
        /// The other.
        b: String,
    },
    /// More than one rate without a window.
    #[error("bandwidth limit {text:?}: more than one rate without a time window (only one can apply outside the windows)")]
    TwoDefaults {
        /// The whole text.
        text: String,
    },
    /// Something else in a part.
    #[error("bandwidth limit {text:?}: cannot read {part:?}; expected RATE or RATE HH:MM-HH:MM, parts separated by commas")]
    Part {
        /// The whole text.
        text: String,
        /// The part.
        part: String,
    },
}

/// A time window of the day with its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Bytes per second inside the window (0: unlimited).
    pub rate: u64,
    /// First minute of the day inside the window (0..1440).
    pub from: u16,
    /// First minute after the window (1..=1440); below `from` when it runs past midnight.
    pub to: u16,
}

impl Window {
    /// Whether `minute` (of the day) is inside.
    pub fn contains(&self, minute: u16) -> bool {
        let m = minute % DAY;
        let to = self.to % DAY;
        if self.from < to {
            self.from <= m && m < to
        } else {
            // Past midnight (or to = 24:00 read as 0).
            m >= self.from || m < to
        }
    }

    fn span(&self) -> String {
        format!("{}-{}", hhmm(self.from), hhmm(self.to))
    }
}

/// A bandwidth limit: a rate outside any window and rates inside time windows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BandwidthLimit {
    /// Bytes per second outside every window (0: unlimited).
    pub base: u64,
    /// The windows, in the order written.
    pub windows: Vec<Window>,
}

impl BandwidthLimit {
    /// One rate at all times (0: unlimited).
    pub fn fixed(rate: u64) -> BandwidthLimit {
        BandwidthLimit {
            base: rate,
            windows: Vec::new(),
        }
    }

    /// Reads `10M`, `unlimited`, `10M 09:00-18:00, 50M 18:00-23:00`, `… , 1M`.
    pub fn parse(text: &str) -> Result<BandwidthLimit, BandwidthError> {
        let t = text.to_string();
        let mut base = None;
        let mut windows: Vec<Window> = Vec::new();
        for part in text.split(',') {
            let words: Vec<&str> = part.split_whitespace().collect();
            let rate_of = |r: &str| {
                parse_bandwidth(r).map_err(|_| BandwidthError::Rate {
                    text: t.clone(),
                    rate: r.to_string(),
                })
            };
            match words.as_slice() {
                [rate] => {
                    if base.is_some() {
                        return Err(BandwidthError::TwoDefaults { text: t });
                    }
                    base = Some(rate_of(rate)?);
                }
                [rate, window] => {
                    let rate = rate_of(rate)?;
                    let (from, to) =
                        parse_window(window).ok_or_else(|| BandwidthError::Window {
                            text: t.clone(),
                            window: window.to_string(),
                        })?;
                    let w = Window { rate, from, to };
                    if from == to {
                        return Err(BandwidthError::Empty {
                            text: t,
                            window: w.span(),
                        });
                    }
                    if let Some(o) = windows.iter().find(|o| overlap(o, &w)) {
                        return Err(BandwidthError::Overlap {
                            text: t,
                            a: o.span(),
                            b: w.span(),
                        });
                    }
                    windows.push(w);
                }
                _ => {
                    return Err(BandwidthError::Part {
                        text: t,
                        part: part.trim().to_string(),
                    })
                }
            }
        }
        Ok(BandwidthLimit {
            base: base.unwrap_or(0),
            windows,
        })
    }

    /// The rate at `minute` of the day (bytes per second, 0: unlimited).
    pub fn rate_at(&self, minute: u16) -> u64 {
        self.windows
            .iter()
            .find(|w| w.contains(minute))
            .map_or(self.base, |w| w.rate)
    }

    /// Whether the rate depends on the time of day.
    pub fn is_scheduled(&self) -> bool {
        !self.windows.is_empty()
    }

    /// Whether it never limits anything.
    pub fn is_unlimited(&self) -> bool {
        self.base == 0 && self.windows.iter().all(|w| w.rate == 0)
    }
}

impl fmt::Display for BandwidthLimit {
    /// The text [`BandwidthLimit::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .windows
            .iter()
            .map(|w| format!("{} {}", format_bandwidth(w.rate), w.span()))
            .collect();
        if self.base != 0 || parts.is_empty() {
            parts.push(format_bandwidth(self.base));
        }
        f.write_str(&parts.join(", "))
    }
}

/// The local wall clock's minute of the day (the device's time zone).
pub fn local_minute() -> u16 {
    use chrono::Timelike;
    let now = chrono::Local::now();
    (now.hour() * 60 + now.minute()) as u16 % DAY
}

fn hhmm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// `HH:MM-HH:MM` → (from, to) in minutes; `to` may be 24:00 (1440).
fn parse_window(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let from = parse_time(a)?;
    let to = parse_time(b)?;
    (from < DAY).then_some((from, to))
}

fn parse_time(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    match (h, m) {
        (24, 0) => Some(DAY),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// Whether two windows share a minute (each is a set of one or two intervals).
fn overlap(a: &Window, b: &Window) -> bool {
    let parts = |w: &Window| -> Vec<(u16, u16)> {
        let to = if w.to == DAY { DAY } else { w.to % DAY };
        if w.from < to {
            vec![(w.from, to)]
        } else {
            vec![(w.from, DAY), (0, to)]
        }
    };
    parts(a)
        .iter()
        .any(|x| parts(b).iter().any(|y| x.0 < y.1 && y.0 < x.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u16, m: u16) -> u16 {
        h * 60 + m
    }

    #[test]
    fn windows_apply_inside_and_the_base_outside() {
        let l = BandwidthLimit::parse("10M 09:00-18:00, 50M 18:00-23:00").unwrap();
        assert!(l.is_scheduled() && !l.is_unlimited());
        assert_eq!(
            l.rate_at(at(8, 59)),
            0,
            "before the first window: unlimited"
        );
        assert_eq!(
            l.rate_at(at(9, 0)),
            10 << 20,
            "a window starts on its minute"
        );
        assert_eq!(l.rate_at(at(17, 59)), 10 << 20);
        assert_eq!(
            l.rate_at(at(18, 0)),
            50 << 20,
            "and ends where the next starts"
        );
        assert_eq!(l.rate_at(at(22, 59)), 50 << 20);
        assert_eq!(l.rate_at(at(23, 0)), 0);
        let l = BandwidthLimit::parse("10M 09:00-18:00, 1M").unwrap();
        assert_eq!(
            (l.rate_at(at(3, 0)), l.rate_at(at(12, 0))),
            (1 << 20, 10 << 20)
        );
    }

    #[test]
    fn a_window_may_run_past_midnight_or_to_the_end_of_the_day() {
        let l = BandwidthLimit::parse("2M 22:00-06:00").unwrap();
        for (m, r) in [(at(21, 59), 0), (at(22, 0), 2 << 20), (at(0, 0), 2 << 20)] {
            assert_eq!(l.rate_at(m), r, "{}", hhmm(m));
        }
        assert_eq!((l.rate_at(at(5, 59)), l.rate_at(at(6, 0))), (2 << 20, 0));
        let l = BandwidthLimit::parse("1M 00:00-24:00").unwrap();
        assert!((0..DAY).all(|m| l.rate_at(m) == 1 << 20), "all day");
        let l = BandwidthLimit::parse("1M 20:00-24:00").unwrap();
        assert_eq!((l.rate_at(at(23, 59)), l.rate_at(0)), (1 << 20, 0));
    }

    #[test]
    fn text_reads_back() {
        for t in [
            "10M",
            "unlimited",
            "10M 09:00-18:00, 50M 18:00-23:00",
            "512K 22:00-06:00, 1M",
        ] {
            let l = BandwidthLimit::parse(t).unwrap();
            assert_eq!(l.to_string(), t);
            assert_eq!(BandwidthLimit::parse(&l.to_string()).unwrap(), l);
        }
        assert_eq!(
            BandwidthLimit::parse("10M").unwrap(),
            BandwidthLimit::fixed(10 << 20)
        );
        assert!(BandwidthLimit::parse("0").unwrap().is_unlimited());
        assert!(BandwidthLimit::parse("0 09:00-10:00")
            .unwrap()
            .is_unlimited());
    }

    #[test]
    fn bad_text_is_refused_with_what_is_wrong() {
        let err = |t: &str| BandwidthLimit::parse(t).unwrap_err().to_string();
        assert!(err("fast").contains("bad rate \"fast\""), "{}", err("fast"));
        assert!(err("10M 9-18").contains("bad time window \"9-18\""));
        assert!(err("10M 09:00-25:00").contains("bad time window"));
        assert!(err("10M 09:60-10:00").contains("bad time window"));
        assert!(err("10M 24:00-01:00").contains("bad time window"));
        assert!(err("10M 09:00-09:00").contains("is empty"));
        assert!(
            err("10M 09:00-18:00, 5M 17:00-19:00").contains("09:00-18:00 and 17:00-19:00 overlap")
        );
        assert!(err("10M 22:00-06:00, 5M 05:00-07:00").contains("overlap"));
        assert!(err("10M, 5M").contains("more than one rate without"));
        assert!(err("10M 09:00-18:00 daily").contains("cannot read"));
        assert!(err("10M 09:00-18:00,").contains("cannot read"));
        // Adjacent windows are fine, also across midnight.
        BandwidthLimit::parse("1M 22:00-06:00, 2M 06:00-22:00").unwrap();
    }
}
