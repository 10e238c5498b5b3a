//! Validated location-relative paths (safety rule 4).
//!
//! Every path that reaches the executor, whether it came from a scan, an index row or a
//! plan, is a `RelPath`: relative, `/`-separated, normalised, with no `.`, `..` or empty
//! components and no NUL bytes. Building one is the only way to name a file inside a
//! location, so nothing can address a file outside the root by construction.
//!
//! # Names that are not valid UTF-8
//!
//! Linux names are bytes (anything but NUL and `/`). A `RelPath` holds its path as a
//! `String`, the *key* it is stored, sorted and compared under in the index: a name
//! that is valid UTF-8 is its own key, unchanged. Every byte of a name that is not part
//! of a valid UTF-8 sequence (always a byte of 0x80 or more) is written as NUL followed
//! by two lowercase hex digits: `b"caf\xe9.txt"` has the key `"caf\0e9.txt"`. A real
//! name never holds a NUL, so the encoding is injective and leaves every valid name
//! alone (no index migration). Keys are *canonical*: [`RelPath::new`] accepts a key
//! with escapes only if it is exactly what [`encode`] makes of its decoded bytes, so one
//! path has one key.
//!
//! Keys sort byte-wise, in Rust (`String`'s `Ord`) and SQLite (`BINARY` collation over
//! the whole length) alike, so the walk and the index rows still merge-join; escapes
//! are per byte and `/` is never escaped, so a path's key is its components' keys
//! joined by `/` and a subtree is still the key range `dir/` .. `dir0`.
//!
//! Which form goes where:
//! - the key ([`RelPath::as_str`], [`RelPath::file_name`], [`RelPath::ancestors`]) is for
//!   the index, maps, sorting and name arithmetic (conflict names, shortening). It is
//!   never a file-system path: joining it onto a root gives a path with a NUL in it,
//!   which every system call rejects, so such a mistake fails loudly instead of
//!   touching another file;
//! - the bytes ([`RelPath::under`], [`key_under`], [`decode`]) are for the file system;
//! - the escaped text (`Display`, [`display_key`], [`escape_os`]) is for people:
//!   `caf\xe9.txt`, never a raw NUL nor any other control character (`a\nb`).
//!
//! Symlink targets are stored with the same [`encode`]ing (a target is bytes too).

use crate::error::{Error, Result};
use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Starts the escape of one byte in a key (followed by two lowercase hex digits).
const ESCAPE: char = '\0';
const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_escape(out: &mut String, b: u8) {
    out.push(ESCAPE);
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0xf)] as char);
}

fn hex_value(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    }
}

/// The key of `bytes`: valid UTF-8 without NUL stays as it is (borrowed); every byte
/// outside a valid UTF-8 sequence, and a NUL byte, becomes NUL + two lowercase hex
/// digits. Injective over all byte strings; `decode` is its inverse.
pub fn encode(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.contains(ESCAPE) => Cow::Borrowed(s),
        _ => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                for c in chunk.valid().chars() {
                    if c == ESCAPE {
                        push_escape(&mut out, 0);
                    } else {
                        out.push(c);
                    }
                }
                for &b in chunk.invalid() {
                    push_escape(&mut out, b);
                }
            }
            Cow::Owned(out)
        }
    }
}

/// The byte escaped at `b[i]` (a NUL followed by two lowercase hex digits), if any.
fn escaped_byte(b: &[u8], i: usize) -> Option<u8> {
    if *b.get(i)? != 0 {
        return None;
    }
    Some(hex_value(*b.get(i + 1)?)? << 4 | hex_value(*b.get(i + 2)?)?)
}

/// The bytes a key stands for, or `None` when an escape is malformed (a NUL not
/// followed by two lowercase hex digits).
fn decode_strict(key: &str) -> Option<Vec<u8>> {
    let b = key.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == 0 {
            out.push(escaped_byte(b, i)?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The bytes a key (or an encoded symlink target) stands for; borrowed when it has no
/// escapes. A malformed escape (only in a key that was never [`encode`]d) is kept as a
/// raw NUL byte, which every system call refuses.
pub fn decode(key: &str) -> Cow<'_, [u8]> {
    if !key.contains(ESCAPE) {
        return Cow::Borrowed(key.as_bytes());
    }
    let b = key.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match escaped_byte(b, i) {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// The bytes of a key (or an encoded symlink target) as an `OsString`.
pub(crate) fn decode_os(key: &str) -> std::ffi::OsString {
    OsStr::from_bytes(&decode(key)).to_os_string()
}

/// The file-system path of a key (a [`RelPath`]'s, or one of its [`RelPath::ancestors`])
/// under `root`.
pub fn key_under(root: &Path, key: &str) -> PathBuf {
    root.join(OsStr::from_bytes(&decode(key)))
}

/// How many bytes the name or path a key stands for has on disk.
pub(crate) fn decoded_len(key: &str) -> usize {
    decode(key).len()
}

/// A key as people read it: each escaped byte as `\xNN` (`caf\xe9.txt`), never a raw
/// NUL; control characters escaped too, so a name cannot break a line of output or
/// drive a terminal: `\n`, `\r`, `\t`, other ASCII ones as `\x1b` (below `\x80`, so
/// never mistaken for an escaped byte), C1 ones as `\u{85}`. Other valid UTF-8 is shown
/// as it is, so a name that really is `caf\xe9.txt` looks the same; the bytes on disk
/// (and the key) still tell them apart.
pub fn display_key(key: &str) -> Cow<'_, str> {
    if !key.contains(char::is_control) {
        return Cow::Borrowed(key); // ESCAPE (NUL) is a control character too
    }
    let bytes = key.as_bytes();
    let mut out = String::with_capacity(key.len() + 8);
    let mut chars = key.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            ESCAPE => match escaped_byte(bytes, i) {
                Some(_) => {
                    out.push_str("\\x");
                    out.push_str(&key[i + 1..i + 3]);
                    chars.nth(1); // the two hex digits
                }
                None => out.push_str("\\0"),
            },
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A file-system path (or name) for messages: valid UTF-8 as it is, other bytes as
/// `\xNN`, like [`display_key`] (`Path::display` would show them all as U+FFFD).
pub fn escape_os(p: impl AsRef<OsStr>) -> String {
    display_key(&encode(p.as_ref().as_bytes())).into_owned()
}

/// Serializes a key (a path from an index row) as [`display_key`] shows it.
pub(crate) fn serialize_key<S: serde::Serializer>(key: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&display_key(key))
}

/// Like [`serialize_key`], for an optional key.
pub(crate) fn serialize_opt_key<S: serde::Serializer>(
    key: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match key {
        Some(k) => s.serialize_some(&display_key(k)),
        None => s.serialize_none(),
    }
}

/// Serializes a file-system path as [`escape_os`] shows it (serde's own impl fails on
/// a path that is not valid UTF-8).
pub(crate) fn serialize_os_path<S: serde::Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&escape_os(p))
}

/// A validated relative path inside a location, held as its key (see the module docs).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    /// Validates `s` as the key of a location-relative path: escapes (see the module
    /// docs) must be canonical.
    pub fn new(s: &str) -> Result<RelPath> {
        let bad = |reason| Error::InvalidPath {
            path: display_key(s).into_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(bad("empty path"));
        }
        if s.starts_with('/') {
            return Err(bad("absolute path"));
        }
        if s.contains(ESCAPE) {
            let bytes = decode_strict(s).ok_or_else(|| bad("NUL byte in path"))?;
            if bytes.contains(&0) {
                return Err(bad("NUL byte in path"));
            }
            if encode(&bytes) != s {
                return Err(bad(
                    "escaped bytes that are valid UTF-8 (not a canonical key)",
                ));
            }
        }
        for comp in s.split('/') {
            match comp {
                "" => return Err(bad("empty component (double or trailing slash)")),
                "." => return Err(bad("'.' component")),
                ".." => return Err(bad("'..' component")),
                _ => {}
            }
        }
        Ok(RelPath(s.to_string()))
    }

    /// Builds a `RelPath` from a path relative to a root, e.g. from a directory walk.
    /// Any bytes are accepted (except NUL, which no real path holds).
    pub fn from_path(p: &Path) -> Result<RelPath> {
        RelPath::from_bytes(p.as_os_str().as_bytes())
    }

    /// Builds a `RelPath` from the bytes of a relative path (`/`-separated).
    pub fn from_bytes(b: &[u8]) -> Result<RelPath> {
        if b.contains(&0) {
            return Err(Error::InvalidPath {
                path: display_key(&encode(b)).into_owned(),
                reason: "NUL byte in path",
            });
        }
        RelPath::new(&encode(b))
    }

    /// The key: what the index stores and sorts by, and what name arithmetic works on.
    /// Not a file-system path (use [`RelPath::under`]) and not for people (use
    /// `Display`) when the path has bytes that are not UTF-8.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's bytes on disk.
    pub fn to_bytes(&self) -> Cow<'_, [u8]> {
        decode(&self.0)
    }

    /// Whether every name of the path is valid UTF-8 (its key is the path itself).
    #[cfg(test)]
    pub(crate) fn is_utf8(&self) -> bool {
        !self.0.contains(ESCAPE)
    }

    /// The path under `root`.
    pub fn under(&self, root: &Path) -> PathBuf {
        key_under(root, &self.0)
    }

    /// The parent path, `None` for a top-level name.
    pub fn parent(&self) -> Option<RelPath> {
        self.0.rfind('/').map(|i| RelPath(self.0[..i].to_string()))
    }

    /// The last component's key.
    pub fn file_name(&self) -> &str {
        match self.0.rfind('/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// A sibling with another file name (the key of a single valid component).
    pub fn with_file_name(&self, name: &str) -> Result<RelPath> {
        match self.parent() {
            Some(p) => RelPath::new(&format!("{}/{}", p.0, name)),
            None => RelPath::new(name),
        }
    }

    /// Appends one or more components (given as a key).
    pub fn join(&self, rest: &str) -> Result<RelPath> {
        RelPath::new(&format!("{}/{}", self.0, rest))
    }

    /// Whether `self` lies strictly below `ancestor`.
    pub fn is_strictly_under(&self, ancestor: &RelPath) -> bool {
        self.0.len() > ancestor.0.len()
            && self.0.starts_with(&ancestor.0)
            && self.0.as_bytes()[ancestor.0.len()] == b'/'
    }

    /// Number of components.
    pub fn depth(&self) -> usize {
        self.0.split('/').count()
    }

    /// The keys of all proper ancestors, nearest first (on disk: [`key_under`]).
    pub fn ancestors(&self) -> impl Iterator<Item = &str> {
        let s = self.0.as_str();
        s.char_indices()
            .rev()
            .filter(|(_, c)| *c == '/')
            .map(move |(i, _)| &s[..i])
    }
}

/// Longest file name most file systems accept, in bytes.
pub const NAME_MAX: usize = 255;

/// The units of a key that name arithmetic must not split: one character, or one
/// escaped byte. Each with the number of bytes it stands for on disk.
fn key_units(key: &str) -> impl Iterator<Item = (&str, usize)> {
    let mut rest = key;
    std::iter::from_fn(move || {
        let c = rest.chars().next()?;
        let (len, disk) = if c == ESCAPE && rest.len() >= 3 {
            (3, 1)
        } else {
            (c.len_utf8(), c.len_utf8())
        };
        let (unit, tail) = rest.split_at(len);
        rest = tail;
        Some((unit, disk))
    })
}

/// Shortens the name whose key is `name` to at most `max_bytes` bytes on disk (never
/// splitting a character or an escaped byte) when it is longer, ending it with a short
/// hash of the full name so shortened names stay distinct. Returns a key.
pub(crate) fn shorten_name(name: &str, max_bytes: usize) -> String {
    let bytes = decode(name);
    if bytes.len() <= max_bytes {
        return name.to_string();
    }
    let tag = format!("~{}", &blake3::hash(&bytes).to_hex()[..8]);
    let mut out = String::new();
    let mut used = 0;
    for (unit, disk) in key_units(name) {
        if used + disk + tag.len() > max_bytes {
            break;
        }
        out.push_str(unit);
        used += disk;
    }
    out + &tag
}

impl fmt::Display for RelPath {
    /// The escaped form for people (see [`display_key`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&display_key(&self.0))
    }
}

impl fmt::Debug for RelPath {
    /// Quoted like `OsStr`'s `Debug`: `"caf\xE9.txt"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", OsStr::from_bytes(&self.to_bytes()))
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_and_odd_names() {
        for ok in [
            "a",
            "a/b",
            "-rf",
            "with space/x y",
            "ünï/çødé",
            "new\nline",
            ".hidden/..x",
        ] {
            assert!(RelPath::new(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn rejects_escapes_and_malformed() {
        for bad in [
            "",
            "/etc/passwd",
            "..",
            "a/../b",
            "a/./b",
            "a//b",
            "a/",
            "a\0b",
            "../x",
        ] {
            assert!(RelPath::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shorten_name_fits_and_stays_distinct() {
        assert_eq!(shorten_name("short", 10), "short");
        let a = shorten_name(&"é".repeat(200), 100);
        let b = shorten_name(&format!("{}x", "é".repeat(200)), 100);
        assert!(a.len() <= 100 && b.len() <= 100);
        assert_ne!(a, b);
    }

    #[test]
    fn structure_helpers() {
        let p = RelPath::new("a/b/c.txt").unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "a/b");
        assert_eq!(p.file_name(), "c.txt");
        assert_eq!(p.depth(), 3);
        assert_eq!(p.ancestors().collect::<Vec<_>>(), vec!["a/b", "a"]);
        let a = RelPath::new("a").unwrap();
        assert!(p.is_strictly_under(&a));
        assert!(!RelPath::new("ab/c").unwrap().is_strictly_under(&a));
        assert!(!a.is_strictly_under(&a));
        assert_eq!(p.with_file_name("d").unwrap().as_str(), "a/b/d");
        assert!(p.with_file_name("../x").is_err());
    }

    fn key(b: &[u8]) -> String {
        RelPath::from_bytes(b).unwrap().as_str().to_string()
    }

    #[test]
    fn latin1_names_get_escaped_keys_and_keep_their_bytes() {
        let p = RelPath::from_bytes(b"dir\xff/caf\xe9.txt").unwrap();
        assert_eq!(p.as_str(), "dir\0ff/caf\0e9.txt");
        assert_eq!(&p.to_bytes()[..], b"dir\xff/caf\xe9.txt");
        assert_eq!(p.file_name(), "caf\0e9.txt");
        assert_eq!(&p.parent().unwrap().to_bytes()[..], b"dir\xff");
        assert_eq!(p.to_string(), r"dir\xff/caf\xe9.txt");
        assert_eq!(format!("{p:?}"), r#""dir\xFF/caf\xE9.txt""#);
        assert!(!p.is_utf8());
        let root = Path::new("/r");
        assert_eq!(
            p.under(root).as_os_str().as_bytes(),
            b"/r/dir\xff/caf\xe9.txt"
        );
        assert_eq!(
            p.ancestors()
                .map(|a| key_under(root, a))
                .collect::<Vec<_>>(),
            vec![PathBuf::from(OsStr::from_bytes(b"/r/dir\xff"))]
        );
        // An incomplete sequence before a valid character: only its bytes are escaped.
        assert_eq!(key(b"\xe2\x82x\xe2\x82\xac"), "\0e2\082x€");
        // The key itself is accepted again (index rows), and means the same path.
        assert_eq!(RelPath::new(p.as_str()).unwrap(), p);
        assert_eq!(
            RelPath::from_path(p.under(root).strip_prefix(root).unwrap()).unwrap(),
            p
        );
    }

    #[test]
    fn valid_names_are_their_own_keys() {
        for ok in ["a", "a/b", "ünï/çødé", "new\nline", "back\\xe9slash"] {
            assert_eq!(key(ok.as_bytes()), ok);
            assert!(RelPath::new(ok).unwrap().is_utf8());
            assert!(matches!(encode(ok.as_bytes()), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn rejects_keys_that_are_not_canonical() {
        for bad in [
            "\0",           // escape without digits
            "a\0e",         // one digit
            "a\0E9",        // upper case
            "a\0zz",        // not hex
            "a\x0000",      // a NUL byte
            "a\x002f",      // '/' escaped: would hide a separator
            "\x002e\x002e", // ".." escaped
            "a\x0061",      // 'a' escaped: valid UTF-8 stays as it is
            "\0c3\0a9",     // 'é' escaped
        ] {
            assert!(RelPath::new(bad).is_err(), "{bad:?}");
        }
        assert!(RelPath::from_bytes(b"a\0e9").is_err(), "a real NUL byte");
        assert!(RelPath::from_bytes(b"a/\xe9/../b").is_err());
        assert!(RelPath::from_bytes(b"/\xe9").is_err());
        // Messages show escapes, never raw NULs.
        let e = RelPath::from_bytes(b"\xe9/..").unwrap_err().to_string();
        assert!(e.contains(r"\xe9/..") && !e.contains('\0'), "{e}");
    }

    #[test]
    fn shorten_name_counts_bytes_on_disk_and_never_splits_an_escape() {
        let name = key(&[0xe9; 200]); // 200 bytes on disk, 600 in the key
        assert_eq!(shorten_name(&name, 200), name);
        let short = shorten_name(&name, 100);
        assert_eq!(decoded_len(&short), 100);
        assert!(RelPath::new(&short).is_ok(), "{short:?}");
        assert_ne!(short, shorten_name(&key(&[0xe8; 200]), 100));
    }

    #[test]
    fn display_of_odd_strings() {
        assert_eq!(display_key("plain"), "plain");
        assert_eq!(display_key("a\0e9b"), r"a\xe9b");
        assert_eq!(display_key("a\0"), r"a\0");
        assert_eq!(display_key("two\nlines"), r"two\nlines");
        assert_eq!(display_key("\x1b[31mred\t\r"), r"\x1b[31mred\t\r");
        assert_eq!(display_key("del\x7f c1\u{85}"), r"del\x7f c1\u{85}");
        assert_eq!(display_key("caf\0e9\n"), r"caf\xe9\n");
        assert_eq!(escape_os(OsStr::from_bytes(b"/x/a\nb")), r"/x/a\nb");
        assert_eq!(escape_os(OsStr::from_bytes(b"/x/caf\xe9")), r"/x/caf\xe9");
    }

    /// One name: any bytes but NUL and `/`, not `.` or `..`; mostly high bytes so that
    /// most names are not valid UTF-8.
    fn name_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let byte = prop_oneof![
            3 => 0x80u8..=0xff,
            2 => prop::sample::select(b"a.-~0 \\".to_vec()),
            1 => 1u8..=0xff,
        ]
        .prop_filter("no '/'", |b| *b != b'/');
        prop::collection::vec(byte, 1..12).prop_filter("not . or ..", |n| n != b"." && n != b"..")
    }

    fn path_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop::collection::vec(name_bytes(), 1..4).prop_map(|v| v.join(&b'/'))
    }

    proptest::proptest! {
        #[test]
        fn bytes_round_trip_through_keys(p in path_bytes()) {
            use proptest::prop_assert_eq;
            let rel = RelPath::from_bytes(&p).unwrap();
            prop_assert_eq!(&rel.to_bytes()[..], &p[..]);
            let abs = rel.under(Path::new("/root"));
            let want = [&b"/root/"[..], &p].concat();
            prop_assert_eq!(abs.as_os_str().as_bytes(), &want[..]);
            prop_assert_eq!(&RelPath::new(rel.as_str()).unwrap(), &rel);
            prop_assert_eq!(rel.is_utf8(), std::str::from_utf8(&p).is_ok());
            proptest::prop_assert!(!rel.to_string().contains(char::is_control));
            // The key is the components' keys joined by '/'.
            let parts: Vec<String> =
                p.split(|b| *b == b'/').map(|c| encode(c).into_owned()).collect();
            prop_assert_eq!(rel.as_str(), parts.join("/"));
            let last = p.split(|b| *b == b'/').next_back().unwrap();
            prop_assert_eq!(decoded_len(rel.file_name()), last.len());
        }

        #[test]
        fn keys_are_injective(a in path_bytes(), b in path_bytes()) {
            let (ka, kb) = (RelPath::from_bytes(&a).unwrap(), RelPath::from_bytes(&b).unwrap());
            proptest::prop_assert_eq!(a == b, ka == kb);
        }

        /// Subtrees stay contiguous key ranges (`dir/` .. `dir0`) and a directory sorts
        /// before everything below it, as the scan's merge-join and
        /// `Index::stat_rows_under` rely on.
        #[test]
        fn subtrees_are_key_ranges(
            dir in path_bytes(),
            other in path_bytes(),
            below in path_bytes(),
        ) {
            use proptest::{prop_assert, prop_assert_eq};
            let d = RelPath::from_bytes(&dir).unwrap();
            let inside = RelPath::from_bytes(&[&dir[..], b"/", &below].concat()).unwrap();
            let o = RelPath::from_bytes(&other).unwrap();
            prop_assert!(inside.is_strictly_under(&d));
            prop_assert!(d < inside);
            let (lo, hi) = (format!("{}/", d.as_str()), format!("{}0", d.as_str()));
            let in_range = |k: &RelPath| k.as_str() >= lo.as_str() && k.as_str() < hi.as_str();
            prop_assert!(in_range(&inside));
            let o_under = other.starts_with(&[&dir[..], b"/"].concat());
            prop_assert_eq!(o.is_strictly_under(&d), o_under);
            prop_assert_eq!(in_range(&o), o_under);
        }

        /// Name arithmetic on keys (shortening, then adding ASCII and a suffix cut at a
        /// `.`, as conflict names do) gives canonical keys of the expected bytes.
        #[test]
        fn name_arithmetic_stays_canonical(
            parts in proptest::collection::vec(name_bytes(), 1..4),
            max in 10usize..30,
        ) {
            use proptest::{prop_assert, prop_assert_eq};
            let k = encode(&parts.concat()).into_owned();
            let (stem, ext) = match k.rfind('.') {
                Some(i) if i > 0 => (&k[..i], &k[i..]),
                _ => (&k[..], ""),
            };
            let short = shorten_name(stem, max);
            prop_assert!(decoded_len(&short) <= max);
            let made = format!("{short}.conflict-x{ext}");
            let rel = RelPath::new(&made);
            prop_assert!(rel.is_ok(), "{:?}", made);
            let want = [&decode(&short)[..], b".conflict-x", &decode(ext)].concat();
            let rel = rel.unwrap();
            prop_assert_eq!(&rel.to_bytes()[..], &want[..]);
        }
    }
}
