//! What a replica holds: entries, content hashes and chunks, version vectors, paths.
//! Plain data, no I/O beyond building an entry from a stat.

pub(crate) mod chunk;
pub(crate) mod entry;
pub(crate) mod file_hash;
pub(crate) mod rel_path;
pub(crate) mod version_vector;

pub use chunk::{digest_reader, digest_reader_with, Chunk, Hash, CHUNK_MAX};
pub use entry::{kind_of, Entry, EntryKind, FileState, Presence, StatInfo};
pub use rel_path::{display_key, encode, escape_os, key_under, RelPath};
pub use version_vector::VersionVector;
