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
/// about 4 MiB in flight per file: a 100 ms link at 300 Mbit/s for one file alone; the
/// source bounds what it holds over all files).
const PREFETCH: usize = 64;

/// Where an assembled content's bytes came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assembled {
    /// Bytes read from each source, in the order the sources were given.
    pub bytes_from: Vec<u64>,
    /// Pieces that were already in a partial copy (resumed, not read again).
    pub resumed: usize,
}

/// Where assembled pieces go: a plain writer (in order), or a partial copy that keeps
/// verified pieces across attempts (`replica/partial.rs`).
pub(crate) trait PieceSink {
    /// Whether pieces may arrive out of order and the sink keeps them across attempts:
    /// then a failed piece does not stop the others already on their way.
    fn resumable(&self) -> bool {
        false
    }
    /// Whether piece `i` is in already (verified by an earlier attempt).
    fn has(&self, _i: usize) -> bool {
        false
    }
    /// Takes piece `i`'s verified bytes.
    fn put(&mut self, i: usize, piece: &Piece, bytes: &[u8]) -> Result<()>;
    /// The attempt is over (whether or not every piece is in).
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A plain writer, hashing what it is given.
pub(crate) struct InOrder<'w> {
    out: &'w mut dyn Write,
    hasher: blake3::Hasher,
    written: u64,
}

impl<'w> InOrder<'w> {
    pub(crate) fn new(out: &'w mut dyn Write) -> InOrder<'w> {
        InOrder {
            out,
            hasher: blake3::Hasher::new(),
            written: 0,
        }
    }
}

impl PieceSink for InOrder<'_> {
    fn put(&mut self, _i: usize, _piece: &Piece, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.out
            .write_all(bytes)
            .map_err(|e| Error::Other(format!("writing assembled content: {e}")))?;
        self.written += bytes.len() as u64;
        Ok(())
    }
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
    let mut sink = InOrder::new(out);
    let report = assemble_into(want, known, sources, &mut sink)?;
    if sink.written != want.size || Hash(*sink.hasher.finalize().as_bytes()) != content {
        return Err(Error::Corrupt(format!(
            "assembled content does not match {content}; not used"
        )));
    }
    Ok(report)
}

/// As [`assemble`], into any sink; pieces the sink has already are skipped. A
/// resumable sink gets every piece that can be had, even after one failed (those on
/// their way arrived already: they are kept, not fetched again), and the first failure
/// is returned at the end. The caller checks the whole content's hash.
pub(crate) fn assemble_into(
    want: &FileState,
    known: &[&FileState],
    sources: &[&dyn ChunkSource],
    sink: &mut dyn PieceSink,
) -> Result<Assembled> {
    let content = want
        .hash
        .ok_or_else(|| Error::Corrupt("a file to assemble has no content hash".into()))?;
    let done = assemble_pieces(want, content, known, sources, sink);
    // Built or given up: what was fetched ahead for it is not wanted any more.
    sources.iter().for_each(|s| s.forget(&content));
    let ended = sink.end();
    let report = done?;
    ended?;
    Ok(report)
}

fn assemble_pieces(
    want: &FileState,
    content: Hash,
    known: &[&FileState],
    sources: &[&dyn ChunkSource],
    sink: &mut dyn PieceSink,
) -> Result<Assembled> {
    let mut elsewhere: HashMap<Hash, Piece> = HashMap::new();
    for k in known {
        for p in pieces_of(k) {
            elsewhere.entry(p.hash).or_insert(p);
        }
    }
    let mut report = Assembled {
        bytes_from: vec![0; sources.len()],
        resumed: 0,
    };
    let mut buf = Vec::new();
    let pieces = pieces_of(want);
    let resumable = sink.resumable();
    // The first failure, and how many more pieces may still be taken after it (those
    // announced ahead, which may have arrived).
    let mut failed: Option<(Error, usize)> = None;
    for (i, &piece) in pieces.iter().enumerate() {
        if sink.has(i) {
            report.resumed += 1;
            continue;
        }
        if let Some((_, left)) = &mut failed {
            if *left == 0 {
                break;
            }
            *left -= 1;
        } else {
            // The next pieces no content here holds: far sources start on them now.
            let upcoming: Vec<Piece> = (pieces[i..].iter().enumerate())
                .filter(|(j, p)| !elsewhere.contains_key(&p.hash) && !sink.has(i + j))
                .map(|(_, p)| *p)
                .take(PREFETCH)
                .collect();
            if !upcoming.is_empty() {
                sources.iter().for_each(|s| s.prefetch(&upcoming));
            }
        }
        let candidates = elsewhere.get(&piece.hash).into_iter().chain([&piece]);
        let candidates: Vec<&Piece> = candidates.collect();
        let mut found = false;
        let mut error = None;
        'sources: for (s, source) in sources.iter().enumerate() {
            for c in &candidates {
                match source.read(c, &mut buf) {
                    Ok(true) => {
                        report.bytes_from[s] += u64::from(c.len);
                        found = true;
                        break 'sources;
                    }
                    Ok(false) => {}
                    Err(e) if resumable => {
                        error = Some(e);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if !found {
            let e = error.unwrap_or_else(|| {
                Error::Unavailable(format!(
                    "no source has the {} bytes at {} of content {content}",
                    piece.len, piece.offset
                ))
            });
            if !resumable {
                return Err(e);
            }
            if failed.is_none() {
                failed = Some((e, PREFETCH));
            }
            continue;
        }
        sink.put(i, &piece, &buf)?;
    }
    match failed {
        Some((e, _)) => Err(e),
        None => Ok(report),
    }
}
