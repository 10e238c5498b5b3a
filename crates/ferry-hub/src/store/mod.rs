//! What a hub keeps: immutable blobs (sealed objects) on object storage, and mutable
//! metadata (devices, key slots, manifest heads, change counters) in a database.

mod blob;
mod error;
mod meta;
mod postgres;
mod sqlite;

pub use blob::{BlobStore, PutOutcome};
pub use error::StoreError;
pub use meta::{
    AppendOutcome, CasOutcome, CompactOutcome, DeviceRecord, GcPlan, LogRecord, ManifestHead,
    MetaStore, ObjectState, SlotRecord,
};
pub use postgres::PostgresMeta;
pub use sqlite::SqliteMeta;
