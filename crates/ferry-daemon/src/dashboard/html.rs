//! Small helpers for HTML rendered on the server: escaping, the page frame, numbers and
//! times for people.

use super::auth::Viewer;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The pages in the navigation bar: (path, label).
const NAV: [(&str, &str); 7] = [
    ("/", "Overview"),
    ("/transfers", "Transfers"),
    ("/conflicts", "Conflicts"),
    ("/history", "History"),
    ("/versions", "Versions"),
    ("/devices", "Devices"),
    ("/settings", "Settings"),
];

/// A whole page: head with the embedded assets, navigation, `body` in `<main>`.
pub fn page(title: &str, current: &str, viewer: Option<&Viewer>, body: &str) -> String {
    let nav = if viewer.is_some() {
        let links: String = NAV
            .iter()
            .map(|(href, label)| {
                let cur = if *href == current {
                    r#" aria-current="page""#
                } else {
                    ""
                };
                format!(r#"<li><a href="{href}"{cur}>{label}</a></li>"#)
            })
            .collect();
        format!(r#"<nav aria-label="Main"><ul>{links}</ul></nav>"#)
    } else {
        String::new()
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="htmx-config" content='{{"includeIndicatorStyles":false,"responseHandling":[{{"code":"204","swap":false}},{{"code":"[23]..","swap":true}},{{"code":"422","swap":true}},{{"code":"[45]..","swap":false,"error":true}},{{"code":"...","swap":false}}]}}'>
<title>{title} · ferry</title>
<link rel="stylesheet" href="/assets/style.css">
<script src="/assets/htmx.min.js" defer></script>
<script src="/assets/app.js" defer></script>
</head>
<body hx-boost="true">
<header><span class="brand">ferry</span>{nav}<span id="live" class="live" aria-live="polite"></span></header>
<main id="main">
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"#,
        title = esc(title),
    )
}

pub use ferry_core::conduit::format_bytes as bytes;

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A `<time>` element for a Unix time.
pub fn time_el(unix: i64) -> String {
    let t = time(unix);
    format!(
        r#"<time datetime="{}">{t}</time>"#,
        t.replace(' ', "T").replace("TUTC", "Z")
    )
}

/// A duration in seconds for people: `850 ms`, `12 s`, `3 min 4 s`, `2 h 5 min`.
pub fn duration(secs: f64) -> String {
    if secs < 1.0 {
        format!("{} ms", (secs * 1000.0).round() as u64)
    } else if secs < 60.0 {
        format!("{} s", secs.round() as u64)
    } else if secs < 3600.0 {
        let s = secs.round() as u64;
        format!("{} min {} s", s / 60, s % 60)
    } else {
        let m = (secs / 60.0).round() as u64;
        format!("{} h {} min", m / 60, m % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(1_764_550_800), "2025-12-01 01:00:00 UTC");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(duration(0.25), "250 ms");
        assert_eq!(duration(125.0), "2 min 5 s");
    }
}
