//! Building a file's content from pieces pulled by hash. A small change to a big file
//! moves only the chunks that changed: the others are read from contents the writer
//! already has (the old version of the same file, a copy elsewhere), nearest source
//! first. Each piece is verified by its source, and the whole content against its hash
//! at the end, before anything is installed.

use crate::error::{Error, Result};
use crate::model::chunk::Hash;
use crate::model::entry::FileState;
use crate::replica::chunk_source::{pieces_of, ChunkSource, Piece};
use std::collections::HashMap;
use std::io::Write;

/// How many pieces ahead a far source is asked for (with chunks of 64 KiB on average,
/// about 1 MiB in flight per file: enough to fill a long link, bounded in memory).
const PREFETCH: usize = 16;

/// Where an assembled content's bytes came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assembled {
    /// Bytes read from each source, in the order the sources were given.
    pub bytes_from: Vec<u64>,
}

/// Writes `want`'s content to `out`. For each of its pieces, the sources are asked in
/// order; each is offered first the same chunk as a piece of a `known` content (one
/// the writer already has, e.g. the file's old version), then the piece of `want`
/// itself. Fails, having written part of `out`, when no source has a piece or the
/// result does not hash to `want.hash`; the caller discards `out` then.
pub fn assemble(
    want: &FileState,
    known: &[&FileState],
    sources: &[&dyn ChunkSource],
    out: &mut dyn Write,
) -> Result<Assembled> {
    let content = want
        .hash
        .ok_or_else(|| Error::Corrupt("a file to assemble has no content hash".into()))?;
    let mut elsewhere: HashMap<Hash, Piece> = HashMap::new();
    for k in known {
        for p in pieces_of(k) {
            elsewhere.entry(p.hash).or_insert(p);
        }
    }
    let mut report = Assembled {
        bytes_from: vec![0; sources.len()],
    };
    let mut hasher = blake3::Hasher::new();
    let mut buf = Vec::new();
    let mut written = 0u64;
    let pieces = pieces_of(want);
    for (i, &piece) in pieces.iter().enumerate() {
        // The next pieces no content here holds: far sources start on them now.
        let upcoming: Vec<Piece> = (pieces[i..].iter())
            .filter(|p| !elsewhere.contains_key(&p.hash))
            .take(PREFETCH)
            .copied()
            .collect();
        if !upcoming.is_empty() {
            sources.iter().for_each(|s| s.prefetch(&upcoming));
        }
        let candidates = elsewhere.get(&piece.hash).into_iter().chain([&piece]);
        let candidates: Vec<&Piece> = candidates.collect();
        let mut found = false;
        'sources: for (i, source) in sources.iter().enumerate() {
            for c in &candidates {
                if source.read(c, &mut buf)? {
                    report.bytes_from[i] += u64::from(c.len);
                    found = true;
                    break 'sources;
                }
            }
        }
        if !found {
            return Err(Error::Unavailable(format!(
                "no source has the {} bytes at {} of content {content}",
                piece.len, piece.offset
            )));
        }
        hasher.update(&buf);
        out.write_all(&buf)
            .map_err(|e| Error::Other(format!("writing assembled content: {e}")))?;
        written += buf.len() as u64;
    }
    if written != want.size || Hash(*hasher.finalize().as_bytes()) != content {
        return Err(Error::Corrupt(format!(
            "assembled content does not match {content}; not used"
        )));
    }
    Ok(report)
}
