//! The hub's foundation: end-to-end encryption of a share and the stores a hub keeps.
//!
//! A hub holds only what this crate produces: sealed objects (chunks) and sealed
//! manifests, named by keyed IDs, plus key slots only member devices can open. The
//! server, the wire protocol and the CLI sit on top of this crate (issue 13).
//!
//! - Encryption: [`ShareKeys`] (one key epoch of a share), [`KeySlot`], [`KeyRing`],
//!   [`ObjectId`], [`KeyedChunker`], [`DeviceIdentity`] and [`DeviceRecipient`].
//! - Stores: [`BlobStore`] (immutable blobs on object storage) and [`MetaStore`]
//!   (mutable metadata; [`SqliteMeta`] and [`PostgresMeta`]).

pub mod client;
mod crypto;
pub mod gc;
pub mod protocol;
pub mod server;
mod share_id;
mod store;

pub use crypto::{
    plausible_sealed_len, restore_token, restore_verifier, CryptoError, DeviceIdentity,
    DeviceRecipient, Epoch, KeyRing, KeySlot, KeyedChunker, ObjectId, PassphraseParams, ShareKeys,
    SEALED_HEADER_LEN, SEALED_OVERHEAD,
};
pub use share_id::{BadShareId, ShareId};
pub use store::{
    AppendOutcome, BlobStore, CasOutcome, CompactOutcome, DeviceRecord, GcPlan, LogRecord,
    ManifestHead, MetaStore, ObjectState, PostgresMeta, PutOutcome, SlotRecord, SqliteMeta,
    StoreError,
};
