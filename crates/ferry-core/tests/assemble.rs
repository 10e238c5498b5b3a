//! Assembling a file from pieces pulled by hash: a small change to a big file takes
//! only the changed chunks from the far source; the rest comes from the old version
//! on this side. A source that lies is never believed.

mod common;

use common::folders;
use ferry_core::model::RelPath;
use ferry_core::model::VersionVector;
use ferry_core::model::{digest_reader, Hash};
use ferry_core::model::{EntryKind, FileState, Presence};
use ferry_core::replica::assemble;
use ferry_core::replica::open_location;
use ferry_core::replica::scan_location;
use ferry_core::replica::IndexRules;
use ferry_core::replica::{ChunkSource, LocalContent, Piece};
use ferry_core::NoProgress;
use ferry_core::Result;
use ferry_testkit::noise;
use std::cell::Cell;

fn state_of(bytes: &[u8]) -> FileState {
    let d = digest_reader(bytes).unwrap();
    FileState {
        kind: EntryKind::File,
        size: d.size,
        mtime_ns: 0,
        mode: 0o644,
        hash: Some(d.hash),
        chunks: d.chunks,
        link_target: None,
        version: VersionVector::new(),
        presence: Presence::Live,
    }
}

/// A far source holding the new content in memory; counts what it serves. With
/// `lie`, it serves wrong bytes for every piece.
struct Far {
    content: Vec<u8>,
    hash: Hash,
    served: Cell<u64>,
    lie: bool,
}

impl ChunkSource for Far {
    fn read(&self, piece: &Piece, buf: &mut Vec<u8>) -> Result<bool> {
        if piece.content != self.hash {
            return Ok(false);
        }
        let start = piece.offset as usize;
        let Some(bytes) = self.content.get(start..start + piece.len as usize) else {
            return Ok(false);
        };
        buf.clear();
        buf.extend_from_slice(bytes);
        if self.lie {
            buf[0] ^= 0xff;
        }
        // What a careful client does with any source: check before use.
        if Hash::of(buf) != piece.hash {
            return Ok(false);
        }
        self.served.set(self.served.get() + u64::from(piece.len));
        Ok(true)
    }
}

#[test]
fn an_insert_at_the_start_pulls_only_the_changed_chunks_from_afar() {
    let (_tmp, [a], mut index) = folders(["A"]);
    let old = noise(4 << 20, 7);
    std::fs::write(a.join("big.bin"), &old).unwrap();
    let loc = open_location(&mut index, &a, false).unwrap();
    let lock = loc.lock().unwrap();
    scan_location(&mut index, &loc, &lock, IndexRules::default(), &NoProgress).unwrap();
    let old_entry = index
        .entry(loc.id(), &RelPath::new("big.bin").unwrap())
        .unwrap()
        .unwrap();
    assert!(old_entry.state.chunks.len() > 10, "a many-chunk file");

    let mut new =
        b"100 bytes inserted at the start of the file........................................!!"
            .to_vec();
    new.extend_from_slice(&old);
    let want = state_of(&new);
    let far = Far {
        hash: want.hash.unwrap(),
        content: new.clone(),
        served: Cell::new(0),
        lie: false,
    };
    let local = LocalContent::new(&index, &loc);
    let mut out = Vec::new();
    let got = assemble(&want, &[&old_entry.state], &[&local, &far], &mut out).unwrap();
    assert_eq!(out, new, "the assembled bytes are the new content");
    assert_eq!(got.bytes_from[1], far.served.get());
    assert_eq!(got.bytes_from[0] + got.bytes_from[1], new.len() as u64);
    // Content-defined chunks re-synchronise after the insert: only the first chunk or
    // two differ, so almost everything comes from the old version on this side.
    assert!(
        far.served.get() < 600 * 1024,
        "{} bytes pulled from afar for a 100-byte insert",
        far.served.get()
    );
}

#[test]
fn a_lying_source_is_never_believed_and_a_missing_piece_is_an_error() {
    let (_tmp, [a], mut index) = folders(["A"]);
    let loc = open_location(&mut index, &a, false).unwrap();
    let new = noise(1 << 20, 9);
    let want = state_of(&new);
    let liar = Far {
        hash: want.hash.unwrap(),
        content: new.clone(),
        served: Cell::new(0),
        lie: true,
    };
    let local = LocalContent::new(&index, &loc);
    let mut out = Vec::new();
    let r = assemble(&want, &[], &[&local, &liar], &mut out);
    assert!(r.is_err(), "nothing had the content: {r:?}");
    assert_eq!(liar.served.get(), 0);

    // The same content present locally (a copy under another name) is used as is.
    std::fs::write(a.join("copy.bin"), &new).unwrap();
    let lock = loc.lock().unwrap();
    scan_location(&mut index, &loc, &lock, IndexRules::default(), &NoProgress).unwrap();
    let local = LocalContent::new(&index, &loc);
    let mut out = Vec::new();
    let got = assemble(&want, &[], &[&local, &liar], &mut out).unwrap();
    assert_eq!(out, new);
    assert_eq!(got.bytes_from, vec![new.len() as u64, 0]);

    // A local file changed behind the index is not a source any more.
    std::fs::write(a.join("copy.bin"), noise(1 << 20, 10)).unwrap();
    let local = LocalContent::new(&index, &loc);
    let r = assemble(&want, &[], &[&local], &mut Vec::new());
    assert!(r.is_err(), "{r:?}");
}
