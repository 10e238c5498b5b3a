//! Messages of shared folders, and their conversion to and from the engine's types.
//! Everything received is checked on the way in: a path must be a valid relative path,
//! a hash 32 bytes, a kind and a presence known ones; anything else is a
//! [`WireError::Invalid`] naming what was wrong, and the message is not used.

use crate::error::WireError;
use ferry_core::model::RelPath;
use ferry_core::model::VersionVector;
use ferry_core::model::{Chunk, Hash};
use ferry_core::model::{EntryKind, FileState, Presence};
use ferry_core::replica::Piece;

/// The shares the sender has with the receiver: sent when a connection opens and
/// whenever they change. A share the receiver does not have is an offer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ShareList {
    #[prost(message, repeated, tag = "1")]
    pub shares: Vec<ShareInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ShareInfo {
    #[prost(string, tag = "1")]
    pub share_id: String,
    /// The folder's name on the sender (a suggestion for the receiver).
    #[prost(string, tag = "2")]
    pub folder_name: String,
    #[prost(string, tag = "3")]
    pub mode: String,
    #[prost(string, tag = "4")]
    pub conflict_policy: String,
    /// The sender's folder ID (its location UUID): the receiver's peer location.
    #[prost(string, tag = "5")]
    pub folder_id: String,
}

/// "Send me your entries of this share changed after sequence `after`."
#[derive(Clone, PartialEq, prost::Message)]
pub struct IndexRequest {
    #[prost(string, tag = "1")]
    pub share_id: String,
    #[prost(uint64, tag = "2")]
    pub after: u64,
}

/// One batch of the answer to an [`IndexRequest`]; `done` on the last.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IndexBatch {
    #[prost(string, tag = "1")]
    pub share_id: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<WireEntry>,
    /// The sender's sequence number these entries reach.
    #[prost(uint64, tag = "3")]
    pub upto: u64,
    #[prost(bool, tag = "4")]
    pub done: bool,
}

/// "My entries of this share changed": the receiver asks for them (push, no polling).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Changed {
    #[prost(string, tag = "1")]
    pub share_id: String,
}

/// "Send me `len` bytes at `offset` of the content with BLAKE3 `content`; their own
/// BLAKE3 is `hash`."
#[derive(Clone, PartialEq, prost::Message)]
pub struct PieceRequest {
    #[prost(string, tag = "1")]
    pub share_id: String,
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
    #[prost(uint64, tag = "3")]
    pub offset: u64,
    #[prost(uint32, tag = "4")]
    pub len: u32,
    #[prost(bytes = "vec", tag = "5")]
    pub hash: Vec<u8>,
}

/// The answer to a [`PieceRequest`]: the bytes, or `found = false`. A stream may carry
/// several requests one after the other (a peer announcing [`crate::wire::PIPELINED`]
/// answers each in the order asked); `data` is the piece's bytes as `encoding` says.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PieceReply {
    #[prost(bool, tag = "1")]
    pub found: bool,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
    /// 0: the bytes as they are; 1: zstd-compressed (sent only to a device that
    /// announced [`crate::wire::ZSTD`]); the receiver decompresses to at most the
    /// piece's length.
    #[prost(uint32, tag = "3")]
    pub encoding: u32,
}

/// [`PieceReply::encoding`]: raw bytes.
pub const ENCODING_RAW: u32 = 0;
/// [`PieceReply::encoding`]: one zstd frame.
pub const ENCODING_ZSTD: u32 = 1;

/// One entry of a folder: its path and synced state (never the local stat cache).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WireEntry {
    #[prost(string, tag = "1")]
    pub path: String,
    /// 1 file, 2 directory, 3 symlink.
    #[prost(uint32, tag = "2")]
    pub kind: u32,
    #[prost(uint64, tag = "3")]
    pub size: u64,
    #[prost(sint64, tag = "4")]
    pub mtime_ns: i64,
    #[prost(uint32, tag = "5")]
    pub mode: u32,
    #[prost(bytes = "vec", tag = "6")]
    pub hash: Vec<u8>,
    #[prost(message, repeated, tag = "7")]
    pub chunks: Vec<WireChunk>,
    #[prost(string, optional, tag = "8")]
    pub link_target: Option<String>,
    #[prost(message, repeated, tag = "9")]
    pub version: Vec<WireCounter>,
    /// 0 live, 1 deleted, 2 dehydrated.
    #[prost(uint32, tag = "10")]
    pub presence: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WireChunk {
    #[prost(uint32, tag = "1")]
    pub len: u32,
    #[prost(bytes = "vec", tag = "2")]
    pub hash: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WireCounter {
    #[prost(uint64, tag = "1")]
    pub replica: u64,
    #[prost(uint64, tag = "2")]
    pub counter: u64,
}

fn invalid(what: impl Into<String>) -> WireError {
    WireError::Invalid(what.into())
}

fn hash_from(b: &[u8], what: &str) -> Result<Hash, WireError> {
    Hash::from_slice(b).ok_or_else(|| invalid(format!("{what}: a hash of {} bytes", b.len())))
}

impl WireEntry {
    pub fn from_state(path: &RelPath, s: &FileState) -> WireEntry {
        WireEntry {
            path: path.as_str().to_string(),
            kind: match s.kind {
                EntryKind::File => 1,
                EntryKind::Dir => 2,
                EntryKind::Symlink => 3,
            },
            size: s.size,
            mtime_ns: s.mtime_ns,
            mode: s.mode,
            hash: s.hash.map(|h| h.0.to_vec()).unwrap_or_default(),
            chunks: (s.chunks.iter())
                .map(|c| WireChunk {
                    len: c.len,
                    hash: c.hash.0.to_vec(),
                })
                .collect(),
            link_target: s.link_target.clone(),
            version: (s.version.iter())
                .map(|(replica, counter)| WireCounter { replica, counter })
                .collect(),
            presence: match s.presence {
                Presence::Live => 0,
                Presence::Tombstone => 1,
                Presence::Dehydrated => 2,
            },
        }
    }

    /// The path and state this entry says, checked.
    pub fn to_state(&self) -> Result<(RelPath, FileState), WireError> {
        let path =
            RelPath::new(&self.path).map_err(|e| invalid(format!("path {:?}: {e}", self.path)))?;
        let kind = match self.kind {
            1 => EntryKind::File,
            2 => EntryKind::Dir,
            3 => EntryKind::Symlink,
            k => return Err(invalid(format!("{path}: unknown kind {k}"))),
        };
        let presence = match self.presence {
            0 => Presence::Live,
            1 => Presence::Tombstone,
            2 => Presence::Dehydrated,
            p => return Err(invalid(format!("{path}: unknown presence {p}"))),
        };
        let hash = match self.hash.len() {
            0 => None,
            _ => Some(hash_from(&self.hash, path.as_str())?),
        };
        let mut chunks = Vec::with_capacity(self.chunks.len());
        for c in &self.chunks {
            chunks.push(Chunk {
                len: c.len,
                hash: hash_from(&c.hash, path.as_str())?,
            });
        }
        let mut version = VersionVector::new();
        for c in &self.version {
            if version.get(c.replica) != 0 {
                return Err(invalid(format!("{path}: replica {} twice", c.replica)));
            }
            version.set(c.replica, c.counter);
        }
        let state = FileState {
            kind,
            size: self.size,
            mtime_ns: self.mtime_ns,
            mode: self.mode & 0o7777,
            hash,
            chunks,
            link_target: self.link_target.clone(),
            version,
            presence,
        };
        Ok((path, state))
    }
}

impl PieceRequest {
    pub fn of(share_id: &str, p: &Piece) -> PieceRequest {
        PieceRequest {
            share_id: share_id.to_string(),
            content: p.content.0.to_vec(),
            offset: p.offset,
            len: p.len,
            hash: p.hash.0.to_vec(),
        }
    }

    pub fn piece(&self) -> Result<Piece, WireError> {
        Ok(Piece {
            content: hash_from(&self.content, "piece content")?,
            offset: self.offset,
            len: self.len,
            hash: hash_from(&self.hash, "piece")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::model::Entry;
    use proptest::prelude::*;

    fn file() -> (RelPath, FileState) {
        let mut e = Entry::at(
            RelPath::new("dir/f.txt").unwrap(),
            EntryKind::File,
            Default::default(),
        );
        e.state.size = 5;
        e.state.mtime_ns = 1_700_000_000_123_456_789;
        e.state.mode = 0o640;
        e.state.hash = Some(Hash::of(b"hello"));
        e.state.version.set(42, 3);
        (e.path, e.state)
    }

    #[test]
    fn a_state_round_trips() {
        let (p, s) = file();
        assert_eq!(WireEntry::from_state(&p, &s).to_state().unwrap(), (p, s));
    }

    #[test]
    fn what_cannot_be_true_is_refused() {
        let (p, s) = file();
        let good = WireEntry::from_state(&p, &s);
        let cases: Vec<(&str, WireEntry)> = vec![
            (
                "..",
                WireEntry {
                    path: "../etc/passwd".into(),
                    ..good.clone()
                },
            ),
            (
                "absolute",
                WireEntry {
                    path: "/etc/passwd".into(),
                    ..good.clone()
                },
            ),
            (
                "nul",
                WireEntry {
                    path: "a\u{0}b".into(),
                    ..good.clone()
                },
            ),
            (
                "kind",
                WireEntry {
                    kind: 9,
                    ..good.clone()
                },
            ),
            (
                "presence",
                WireEntry {
                    presence: 7,
                    ..good.clone()
                },
            ),
            (
                "hash",
                WireEntry {
                    hash: vec![1; 31],
                    ..good.clone()
                },
            ),
            (
                "chunk hash",
                WireEntry {
                    chunks: vec![WireChunk {
                        len: 1,
                        hash: vec![],
                    }],
                    ..good.clone()
                },
            ),
            (
                "replica twice",
                WireEntry {
                    version: vec![
                        WireCounter {
                            replica: 1,
                            counter: 1,
                        },
                        WireCounter {
                            replica: 1,
                            counter: 2,
                        },
                    ],
                    ..good.clone()
                },
            ),
        ];
        for (what, e) in cases {
            assert!(e.to_state().is_err(), "{what} accepted");
        }
    }

    #[test]
    fn mode_bits_beyond_permissions_are_dropped() {
        let (p, s) = file();
        let mut w = WireEntry::from_state(&p, &s);
        w.mode = 0o170644;
        assert_eq!(w.to_state().unwrap().1.mode, 0o644);
    }

    proptest! {
        #[test]
        fn arbitrary_entries_never_panic(
            path in ".{0,40}", kind in 0u32..5, hash in proptest::collection::vec(any::<u8>(), 0..40),
            presence in 0u32..4, size in any::<u64>(), mtime in any::<i64>(),
        ) {
            let w = WireEntry {
                path, kind, size, mtime_ns: mtime, mode: 0, hash, chunks: vec![],
                link_target: None, version: vec![], presence,
            };
            let _ = w.to_state();
        }
    }
}
