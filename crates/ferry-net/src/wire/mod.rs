//! What devices say to each other: prost messages (derived, no protoc) inside
//! length-prefixed frames.
//!
//! - `messages`: the messages; a field tag is never reused, so an older device skips
//!   the fields a newer one adds.
//! - `share`: sharing folders: share lists, index exchange, pieces of content.
//! - `frame`: u32 big-endian length + message, with a size cap checked before any
//!   allocation.

mod frame;
mod messages;
pub mod share;

pub use frame::{decode_frame, encode_frame, read_frame, write_frame, MAX_FRAME};
pub use messages::{Body, Close, Envelope, Hello, FEATURES, PIPELINED, PROTOCOL_VERSION, ZSTD};
