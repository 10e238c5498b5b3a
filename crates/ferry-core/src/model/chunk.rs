//! Content hashing and content-defined chunking in a single read.
//!
//! A file's content hash is BLAKE3 over its bytes. Its chunks are cut with FastCDC
//! (2020 variant, fastcdc pinned to an exact version because cut points must never
//! change under us) and named by their own BLAKE3. A file no larger than the minimum
//! chunk is one chunk whose hash is the file hash, so small files are hashed once.

use fastcdc::v2020::FastCDC;
use std::fmt;
use std::io::Read;

/// FastCDC parameters; recorded in the index so a change is detected, not silently mixed.
pub const CHUNK_MIN: usize = 16 * 1024;
pub const CHUNK_AVG: usize = 64 * 1024;
/// The largest chunk the chunker cuts (a piece asked for is never larger).
pub const CHUNK_MAX: usize = 256 * 1024;
/// Identifies the chunking scheme stored alongside chunk lists.
pub const CHUNKER_ID: &str = "fastcdc-5.0.0-v2020-16k-64k-256k-blake3";

const READ_BUF: usize = 4 * 1024 * 1024;

/// A BLAKE3 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The BLAKE3 of `data`.
    pub fn of(data: &[u8]) -> Hash {
        Hash(*blake3::hash(data).as_bytes())
    }

    /// A hash from its 32 bytes; `None` for any other length.
    pub fn from_slice(b: &[u8]) -> Option<Hash> {
        <[u8; 32]>::try_from(b).ok().map(Hash)
    }

    /// Lower-case hex, as shown and stored.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Hash {
    /// Parses 64 hex digits.
    pub(crate) fn from_hex(s: &str) -> Option<Hash> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Hash(out))
    }
}

/// As 64 hex digits, the way people and JSON see a hash.
impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Hash, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Hash::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..12])
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// One content-defined chunk: its length and BLAKE3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chunk {
    /// Its length in bytes.
    pub len: u32,
    /// BLAKE3 of its bytes.
    pub hash: Hash,
}

/// Hash and chunk list of some content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub hash: Hash,
    pub size: u64,
    pub chunks: Vec<Chunk>,
}

/// Reads `reader` to its end once, hashing the whole and cutting chunks.
pub fn digest_reader(reader: impl Read) -> std::io::Result<Digest> {
    digest_reader_with(reader, &mut Vec::new())
}

/// As [`digest_reader`], reusing `buf` (grown as needed) so hashing many small files
/// does not allocate and zero a fresh buffer each time.
pub fn digest_reader_with(reader: impl Read, buf: &mut Vec<u8>) -> std::io::Result<Digest> {
    let mut whole = blake3::Hasher::new();
    let mut d = cut_and_hash(reader, buf, Some(&mut whole))?;
    d.hash = Hash(*whole.finalize().as_bytes());
    Ok(d)
}

/// As [`digest_reader_with`] for the open file `f` (read from its current offset, which
/// must be its start). A big file's whole hash is taken on a second core
/// (`file_hash`) while this one cuts and hashes its chunks: the two read the file at
/// once. Had it changed meanwhile, the two would not have read the same bytes; they
/// are then taken again in one pass.
pub(crate) fn digest_file(f: &std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<Digest> {
    use crate::model::file_hash::{hash_range, two_cores, PARALLEL_MIN};
    let len = f.metadata()?.len();
    if len < PARALLEL_MIN || !two_cores() {
        return digest_reader_with(f, buf);
    }
    let started = std::thread::scope(|s| {
        let whole = std::thread::Builder::new().spawn_scoped(s, || {
            let mut h = blake3::Hasher::new();
            let n = hash_range(f, &mut h, 0, None, &mut vec![0u8; 1 << 20])?;
            Ok::<_, std::io::Error>((n, Hash(*h.finalize().as_bytes())))
        });
        let Ok(whole) = whole else {
            return Ok(None);
        };
        let chunks = cut_and_hash(f, buf, None);
        let whole = whole
            .join()
            .map_err(|_| std::io::Error::other("a hashing thread panicked"))?;
        Ok::<_, std::io::Error>(Some((chunks?, whole?)))
    })?;
    match started {
        Some((mut d, (n, hash))) if n == d.size && n == len => {
            d.hash = hash;
            Ok(d)
        }
        // No thread, or a file that changed while it was read.
        _ => {
            std::io::Seek::rewind(&mut &*f)?;
            digest_reader_with(f, buf)
        }
    }
}

/// Cuts `reader`'s bytes into chunks and hashes each, feeding them to `whole` too where
/// given. The digest's `hash` is left zero for the caller.
fn cut_and_hash(
    mut reader: impl Read,
    buf: &mut Vec<u8>,
    mut whole: Option<&mut blake3::Hasher>,
) -> std::io::Result<Digest> {
    if buf.len() < READ_BUF {
        buf.resize(READ_BUF, 0);
    }
    let buf = &mut buf[..READ_BUF];
    let mut filled = 0usize;
    let mut eof = false;
    let mut chunks = Vec::new();
    let mut size = 0u64;
    loop {
        while !eof && filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => eof = true,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let cdc = FastCDC::new(&buf[..filled], CHUNK_MIN, CHUNK_AVG, CHUNK_MAX);
        let mut start = 0;
        // A cut depends only on the bytes up to CHUNK_MAX ahead; keep that much buffered
        // unless the file has ended.
        while start < filled && (eof || filled - start >= CHUNK_MAX) {
            let (_, end) = cdc.cut(start, filled - start);
            let piece = &buf[start..end];
            if let Some(w) = whole.as_deref_mut() {
                w.update(piece);
            }
            chunks.push(Chunk {
                len: piece.len() as u32,
                hash: Hash::of(piece),
            });
            size += piece.len() as u64;
            start = end;
        }
        if eof {
            break;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
    }
    if chunks.len() <= 1 {
        // One chunk: its hash is the file hash (or there are no bytes at all).
        chunks.clear();
    }
    Ok(Digest {
        hash: Hash([0; 32]),
        size,
        chunks,
    })
}

/// Encodes a chunk list for the index (36 bytes a chunk).
pub(crate) fn encode_chunks(chunks: &[Chunk]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunks.len() * 36);
    for c in chunks {
        out.extend_from_slice(&c.len.to_le_bytes());
        out.extend_from_slice(&c.hash.0);
    }
    out
}

/// Decodes a chunk list written by [`encode_chunks`].
pub(crate) fn decode_chunks(b: &[u8]) -> Option<Vec<Chunk>> {
    if b.len() % 36 != 0 {
        return None;
    }
    b.chunks_exact(36)
        .map(|c| {
            Some(Chunk {
                len: u32::from_le_bytes(c[..4].try_into().ok()?),
                hash: Hash::from_slice(&c[4..])?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use ferry_testkit::noise as pseudo_random;

    /// A reader that returns at most `step` bytes a call, to exercise buffer refills.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(out.len()).min(self.1);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn whole_hash_is_blake3_and_chunks_cover_file() {
        let data = pseudo_random(3 * READ_BUF + 12345, 7);
        let d = digest_reader(&data[..]).unwrap();
        assert_eq!(d.hash, Hash::of(&data));
        assert_eq!(d.size, data.len() as u64);
        let total: u64 = d.chunks.iter().map(|c| c.len as u64).sum();
        assert_eq!(total, data.len() as u64);
        let mut off = 0;
        for c in &d.chunks {
            assert!(c.len as usize <= CHUNK_MAX);
            assert_eq!(c.hash, Hash::of(&data[off..off + c.len as usize]));
            off += c.len as usize;
        }
    }

    #[test]
    fn chunking_does_not_depend_on_read_sizes() {
        let data = pseudo_random(2 * READ_BUF + 777, 3);
        let a = digest_reader(&data[..]).unwrap();
        let b = digest_reader(Trickle(&data, 100_003)).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn insertion_keeps_most_chunks() {
        let data = pseudo_random(4 * 1024 * 1024, 11);
        let mut shifted = data.clone();
        shifted.splice(1000..1000, [42u8; 100]);
        let a = digest_reader(&data[..]).unwrap();
        let b = digest_reader(&shifted[..]).unwrap();
        let set: std::collections::HashSet<_> = a.chunks.iter().map(|c| c.hash).collect();
        let shared = b.chunks.iter().filter(|c| set.contains(&c.hash)).count();
        assert!(
            shared + 3 >= b.chunks.len(),
            "{shared} of {}",
            b.chunks.len()
        );
    }

    #[test]
    fn small_and_empty_files_have_implicit_single_chunk() {
        assert!(digest_reader(&b""[..]).unwrap().chunks.is_empty());
        let d = digest_reader(&b"hello"[..]).unwrap();
        assert!(d.chunks.is_empty());
        assert_eq!(d.hash, Hash::of(b"hello"));
    }

    #[test]
    fn chunk_list_roundtrip() {
        let d = digest_reader(&pseudo_random(1 << 20, 5)[..]).unwrap();
        assert_eq!(decode_chunks(&encode_chunks(&d.chunks)).unwrap(), d.chunks);
        assert!(decode_chunks(&[1, 2, 3]).is_none());
    }
}
