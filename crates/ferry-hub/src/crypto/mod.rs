//! End-to-end encryption of a share: keys, key slots, object IDs, sealed objects and
//! manifests, and the keyed chunker. Nothing here does I/O.

mod chunker;
mod device;
mod error;
mod key_ring;
mod key_slot;
mod object_id;
mod random;
mod sealed;
mod share_keys;

pub use chunker::KeyedChunker;
pub use device::{DeviceIdentity, DeviceRecipient};
pub use error::CryptoError;
pub use key_ring::KeyRing;
pub use key_slot::{restore_token, restore_verifier, KeySlot, PassphraseParams};
pub use object_id::ObjectId;
pub use sealed::{plausible_sealed_len, SEALED_HEADER_LEN, SEALED_OVERHEAD};
pub use share_keys::{Epoch, ShareKeys};
