//! Who may see the dashboard: one-time login links, session cookies, CSRF tokens and
//! the same-origin rule.
//!
//! - A login link (`ferry dashboard`) is `/login?code=NONCE.EXPIRES.MAC`: the MAC is a
//!   keyed BLAKE3 over the nonce and expiry, keyed by the library's API token and the
//!   running daemon's pid and start time, so only someone who can read the token file
//!   can mint one, and a daemon restart voids every link. The daemon remembers the nonces
//!   it accepted: a link works once, for [`LINK_LIFETIME_SECS`].
//! - Logging in sets `ferry_session` (random, `HttpOnly; SameSite=Strict`); each session
//!   has its own CSRF token, carried by every form as the `csrf` field.
//! - State-changing requests are refused when the browser says they come from another
//!   origin (`Origin`, `Sec-Fetch-Site`), and every request must name the daemon by its
//!   loopback address in `Host` (no DNS rebinding).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// How long a login link stays valid.
pub const LINK_LIFETIME_SECS: i64 = 600;
/// How long a session lasts after login.
pub const SESSION_LIFETIME_SECS: i64 = 12 * 3600;
pub const COOKIE: &str = "ferry_session";

/// A logged-in browser, or a client with the bearer token.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The session's CSRF token; `None` for a bearer-token client (no ambient credential,
    /// so nothing to forge).
    pub csrf: Option<String>,
}

impl Viewer {
    /// Whether a form's `csrf` field matches this viewer's session.
    pub fn csrf_ok(&self, given: &str) -> bool {
        match &self.csrf {
            Some(want) => constant_time_eq(want.as_bytes(), given.as_bytes()),
            None => true,
        }
    }

    /// The hidden form field carrying the CSRF token.
    pub fn csrf_field(&self) -> String {
        format!(
            r#"<input type="hidden" name="csrf" value="{}">"#,
            self.csrf.as_deref().unwrap_or("")
        )
    }
}

struct Session {
    csrf: String,
    expires: i64,
}

/// Sessions and used login nonces, in memory (a daemon restart logs everyone out).
#[derive(Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    used_nonces: Mutex<HashSet<String>>,
}

impl Sessions {
    /// The viewer behind a session cookie value, if the session is live.
    pub fn viewer(&self, cookie: &str, now: i64) -> Option<Viewer> {
        let mut m = self.sessions.lock().ok()?;
        m.retain(|_, s| s.expires > now);
        m.get(cookie).map(|s| Viewer {
            csrf: Some(s.csrf.clone()),
        })
    }

    /// Accepts a login code once; returns the new session's cookie value.
    pub fn login(&self, key: &LinkKey, code: &str, now: i64) -> Option<String> {
        let nonce = key.check(code, now)?;
        {
            let mut used = self.used_nonces.lock().ok()?;
            if !used.insert(nonce) {
                return None;
            }
        }
        let id = random_token();
        let mut m = self.sessions.lock().ok()?;
        m.insert(
            id.clone(),
            Session {
                csrf: random_token(),
                expires: now + SESSION_LIFETIME_SECS,
            },
        );
        Some(id)
    }
}

/// The key login links are signed with: the API token bound to one daemon process.
pub struct LinkKey([u8; 32]);

impl LinkKey {
    pub fn new(api_token: &str, pid: u32, started_at: i64) -> LinkKey {
        let mut h = blake3::Hasher::new_derive_key("ferry dashboard login link v1");
        h.update(api_token.trim().as_bytes());
        h.update(&pid.to_le_bytes());
        h.update(&started_at.to_le_bytes());
        LinkKey(*h.finalize().as_bytes())
    }

    fn mac(&self, nonce: &str, expires: i64) -> String {
        blake3::keyed_hash(&self.0, format!("{nonce}.{expires}").as_bytes())
            .to_hex()
            .to_string()
    }

    /// A fresh login code valid until `now + LINK_LIFETIME_SECS`.
    pub fn mint(&self, now: i64) -> String {
        let nonce = random_token();
        let expires = now + LINK_LIFETIME_SECS;
        format!("{nonce}.{expires}.{}", self.mac(&nonce, expires))
    }

    /// The nonce of a valid, unexpired code.
    fn check(&self, code: &str, now: i64) -> Option<String> {
        let mut parts = code.split('.');
        let (nonce, expires, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || nonce.len() < 32 {
            return None;
        }
        let expires: i64 = expires.parse().ok()?;
        if expires < now || expires > now + LINK_LIFETIME_SECS {
            return None;
        }
        constant_time_eq(self.mac(nonce, expires).as_bytes(), mac.as_bytes())
            .then(|| nonce.to_string())
    }
}

/// 244 random bits as 64 hex digits (two v4 UUIDs, from the OS's generator).
fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Whether `host` (a `Host` header) names this daemon on loopback.
pub fn host_ok(host: &str, port: u16) -> bool {
    host == format!("127.0.0.1:{port}") || host == format!("localhost:{port}")
}

/// Whether a state-changing request may come from where the browser says it comes from:
/// no `Origin` (not a browser, or a same-origin navigation in an old one) or our own,
/// and no `Sec-Fetch-Site` other than `same-origin` / `none`. A plain form post (no
/// JavaScript) from our own page carries `Origin: null`, because the pages are served
/// with `Referrer-Policy: no-referrer`; it passes only when the browser also says
/// `Sec-Fetch-Site: same-origin` (a header no page can set).
pub fn same_origin(origin: Option<&str>, fetch_site: Option<&str>, host: &str) -> bool {
    let origin_ok = match origin {
        None => true,
        Some("null") => fetch_site == Some("same-origin"),
        Some(o) => o == format!("http://{host}"),
    };
    let site_ok = fetch_site.is_none_or(|s| s == "same-origin" || s == "none");
    origin_ok && site_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_form_post_from_our_page_passes_and_others_do_not() {
        let host = "127.0.0.1:8384";
        assert!(same_origin(
            Some("http://127.0.0.1:8384"),
            Some("same-origin"),
            host
        ));
        assert!(same_origin(Some("null"), Some("same-origin"), host));
        assert!(same_origin(None, None, host));
        assert!(!same_origin(Some("null"), None, host));
        assert!(!same_origin(Some("null"), Some("cross-site"), host));
        assert!(!same_origin(Some("null"), Some("none"), host));
        assert!(!same_origin(
            Some("http://evil.example"),
            Some("same-origin"),
            host
        ));
        assert!(!same_origin(
            Some("http://127.0.0.1:8384"),
            Some("cross-site"),
            host
        ));
    }

    #[test]
    fn a_link_works_once_and_only_before_it_expires() {
        let key = LinkKey::new("tok", 7, 100);
        let s = Sessions::default();
        let code = key.mint(1000);
        assert!(s
            .login(&key, &code, 1000 + LINK_LIFETIME_SECS + 1)
            .is_none());
        let cookie = s.login(&key, &code, 1001).expect("first use");
        assert!(s.login(&key, &code, 1002).is_none(), "second use refused");
        let v = s.viewer(&cookie, 1003).expect("session");
        assert!(v.csrf_ok(v.csrf.as_deref().unwrap()));
        assert!(!v.csrf_ok(""));
        assert!(s
            .viewer(&cookie, 1001 + SESSION_LIFETIME_SECS + 1)
            .is_none());
    }

    #[test]
    fn a_link_from_another_key_or_tampered_is_refused() {
        let key = LinkKey::new("tok", 7, 100);
        let other = LinkKey::new("tok", 8, 100);
        let s = Sessions::default();
        assert!(s.login(&key, &other.mint(1000), 1000).is_none());
        let code = key.mint(1000);
        let (head, _) = code.rsplit_once('.').unwrap();
        let later = head.replace(&format!(".{}", 1000 + LINK_LIFETIME_SECS), ".99999");
        assert!(s
            .login(&key, &format!("{later}.{}", key.mac("x", 1)), 1000)
            .is_none());
        assert!(s.login(&key, "garbage", 1000).is_none());
    }

    #[test]
    fn origins() {
        let h = "127.0.0.1:5000";
        assert!(same_origin(None, None, h));
        assert!(same_origin(
            Some("http://127.0.0.1:5000"),
            Some("same-origin"),
            h
        ));
        assert!(!same_origin(Some("http://evil.example"), None, h));
        assert!(!same_origin(None, Some("cross-site"), h));
        assert!(host_ok("localhost:5000", 5000));
        assert!(!host_ok("evil.example:5000", 5000));
        assert_eq!(cookie_value("a=1; ferry_session=xyz", COOKIE), Some("xyz"));
    }
}
