//! What a replica holds: entries, content hashes and chunks, version vectors, paths.
//! Plain data, no I/O beyond building an entry from a stat.

pub mod chunk;
pub mod entry;
pub mod rel_path;
pub mod version_vector;
