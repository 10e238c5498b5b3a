//! The Transfers page: running jobs with their progress, and a small rate chart (inline
//! SVG, no chart library) drawn from the `job_progress` events of the last minutes.

use super::html::{bytes, duration, esc};
use crate::events::DaemonEvent;
use crate::shared::Shared;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How far back the chart looks.
const WINDOW_SECS: f64 = 300.0;
/// At most this many samples are kept (one per running job per second).
const MAX_SAMPLES: usize = 2000;

/// One reading of a job's copy rate.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: f64,
    conduit: i64,
    rate: u64,
}

/// Rate samples collected from the event stream.
#[derive(Default)]
pub struct RateLog {
    samples: Mutex<VecDeque<Sample>>,
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl RateLog {
    fn push(&self, s: Sample) {
        if let Ok(mut q) = self.samples.lock() {
            q.push_back(s);
            while q.len() > MAX_SAMPLES || q.front().is_some_and(|f| f.at < s.at - WINDOW_SECS) {
                q.pop_front();
            }
        }
    }

    fn recent(&self) -> Vec<Sample> {
        let since = now_secs() - WINDOW_SECS;
        self.samples
            .lock()
            .map(|q| q.iter().filter(|s| s.at >= since).copied().collect())
            .unwrap_or_default()
    }

    /// Follows the daemon's events for as long as the daemon runs (needs a tokio
    /// runtime; without one nothing is collected).
    pub fn follow(self: &Arc<Self>, shared: &Shared) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut rx = shared.events.subscribe();
        let log = self.clone();
        rt.spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(DaemonEvent::JobProgress { conduit, progress }) => log.push(Sample {
                        at: now_secs(),
                        conduit,
                        rate: progress["rate_bytes_per_sec"].as_u64().unwrap_or(0),
                    }),
                    Ok(DaemonEvent::JobFinished { conduit, .. })
                    | Ok(DaemonEvent::JobFailed { conduit, .. }) => log.push(Sample {
                        at: now_secs(),
                        conduit,
                        rate: 0,
                    }),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }
}

/// Line colours come from the style sheet (`.c0` … `.c5`): the CSP allows no inline
/// styles.
const COLORS: usize = 6;

/// The chart: one line per conduit, time on x (last 5 minutes), rate on y.
fn chart(samples: &[Sample]) -> String {
    let (w, h) = (640.0, 160.0);
    let now = now_secs();
    let max = samples.iter().map(|s| s.rate).max().unwrap_or(0).max(1);
    let mut conduits: Vec<i64> = samples.iter().map(|s| s.conduit).collect();
    conduits.sort_unstable();
    conduits.dedup();
    let mut lines = String::new();
    let mut legend = String::new();
    for (n, c) in conduits.iter().enumerate() {
        let color = n % COLORS;
        let points: Vec<String> = samples
            .iter()
            .filter(|s| s.conduit == *c)
            .map(|s| {
                let x = w - (now - s.at).clamp(0.0, WINDOW_SECS) / WINDOW_SECS * w;
                let y = h - s.rate as f64 / max as f64 * (h - 8.0);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        lines.push_str(&format!(
            r#"<polyline class="rate c{color}" data-conduit="{c}" points="{}"/>"#,
            points.join(" ")
        ));
        legend.push_str(&format!(
            r#"<li><span class="swatch c{color}"></span>conduit #{c}</li>"#
        ));
    }
    let peak = samples.iter().map(|s| s.rate).max().unwrap_or(0);
    let desc = if samples.is_empty() {
        "No transfers in the last 5 minutes.".to_string()
    } else {
        format!("Copy rate over the last 5 minutes; peak {}/s.", bytes(peak))
    };
    format!(
        r#"<figure class="chart">
<svg viewBox="0 0 {w} {h}" role="img" aria-labelledby="rate-desc" preserveAspectRatio="none">
<line x1="0" y1="{h}" x2="{w}" y2="{h}" class="axis"/>
{lines}
</svg>
<figcaption id="rate-desc">{desc} <span class="scale">Top of the chart: {top}/s; right edge: now.</span></figcaption>
<ul class="legend">{legend}</ul>
</figure>"#,
        top = bytes(max),
    )
}

/// The live part of the Transfers page.
pub fn fragment(shared: &Shared, log: &RateLog) -> String {
    let jobs: Vec<serde_json::Value> = (shared.jobs.snapshot().iter())
        .filter_map(super::pages::as_value)
        .collect();
    let mut out = chart(&log.recent());
    if jobs.is_empty() {
        out.push_str(r#"<p id="no-jobs">Nothing is transferring now.</p>"#);
        return out;
    }
    out.push_str(r#"<table class="jobs"><caption>Running jobs</caption><thead><tr><th scope="col">Conduit</th><th scope="col">Phase</th><th scope="col">Progress</th><th scope="col">Copied</th><th scope="col">Rate</th><th scope="col">ETA</th><th scope="col">Queue</th></tr></thead><tbody>"#);
    for j in &jobs {
        let id = j["conduit"].as_i64().unwrap_or(0);
        let done = j["phase_bytes_done"].as_u64().unwrap_or(0);
        let total = j["phase_bytes_total"].as_u64().unwrap_or(0);
        let (fdone, ftotal) = (
            j["phase_files_done"].as_u64().unwrap_or(0),
            j["phase_files_total"].as_u64().unwrap_or(0),
        );
        let mut progress = String::new();
        if total > 0 {
            progress.push_str(&format!(
                r#"<progress class="bytes" max="{total}" value="{done}" aria-label="conduit {id}: {d} of {t}">{d} of {t}</progress> {d} of {t}"#,
                d = bytes(done),
                t = bytes(total),
            ));
        }
        if ftotal > 0 {
            if !progress.is_empty() {
                progress.push_str("<br>");
            }
            progress.push_str(&format!(
                r#"<progress class="files" max="{ftotal}" value="{fdone}" aria-label="conduit {id}: {fdone} of {ftotal} files">{fdone} of {ftotal} files</progress> {fdone} of {ftotal} files"#
            ));
        }
        if progress.is_empty() {
            progress = format!("{fdone} of {ftotal} items");
        }
        out.push_str(&format!(
            r#"<tr id="job-{id}" data-done="{done}"><th scope="row"><a href="/history">#{id}</a> <span class="roots">{trigger}</span></th><td>{phase}</td><td>{progress}</td><td>{files} files, {copied}</td><td class="rate">{rate}/s</td><td>{eta}</td><td class="queue">{queue} files</td></tr>"#,
            trigger = esc(j["trigger"].as_str().unwrap_or("")),
            phase = esc(j["phase"].as_str().unwrap_or("")),
            files = j["files_done"].as_u64().unwrap_or(0),
            copied = bytes(j["bytes_done"].as_u64().unwrap_or(0)),
            rate = bytes(j["rate_bytes_per_sec"].as_u64().unwrap_or(0)),
            eta = j["eta_seconds"]
                .as_f64()
                .map(duration)
                .unwrap_or_else(|| "—".into()),
            queue = j["queue_depth"].as_u64().unwrap_or(0),
        ));
    }
    out.push_str("</tbody></table>");
    out.push_str(&in_flight(&jobs));
    out
}

/// The files being copied now, each with its own progress bar.
fn in_flight(jobs: &[serde_json::Value]) -> String {
    let mut rows = String::new();
    for j in jobs {
        let id = j["conduit"].as_i64().unwrap_or(0);
        for f in j["in_flight"].as_array().into_iter().flatten() {
            let path = f["path"].as_str().unwrap_or("");
            let (done, size) = (
                f["bytes_done"].as_u64().unwrap_or(0),
                f["size"].as_u64().unwrap_or(0),
            );
            rows.push_str(&format!(
                r#"<tr data-path="{p}" data-done="{done}"><td>#{id}</td><th scope="row">{p}</th><td><progress max="{max}" value="{done}" aria-label="{p}: {d} of {s}">{d} of {s}</progress> {d} of {s}</td></tr>"#,
                p = esc(path),
                max = size.max(1),
                d = bytes(done),
                s = bytes(size),
            ));
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    format!(
        r#"<table id="in-flight" class="jobs"><caption>Files in flight</caption><thead><tr><th scope="col">Conduit</th><th scope="col">File</th><th scope="col">Progress</th></tr></thead><tbody>{rows}</tbody></table>"#
    )
}

pub fn page(shared: &Shared, log: &RateLog) -> String {
    format!(
        r#"<section id="transfers" aria-label="Transfers, updated live" hx-get="/fragment/transfers" hx-trigger="ferry-event from:body delay:150ms" hx-sync="this:queue last" hx-swap="innerHTML">
{}
</section>
<p class="help">Each running job shows its current phase's bytes and files; below it, every file being copied now with how far it has got.</p>"#,
        fragment(shared, log)
    )
}
