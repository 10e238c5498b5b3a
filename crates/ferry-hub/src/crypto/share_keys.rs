//! A share's keys for one epoch: a random root key and the sub-keys derived from it.
//!
//! ```text
//! root key (32 random bytes, one per epoch)
//!  ├─ derive_key("ferry-hub 2026-12-01 share object-id key") → object-ID key
//!  ├─ derive_key("ferry-hub 2026-12-01 share wrap key")      → wrap key (object data keys)
//!  ├─ derive_key("ferry-hub 2026-12-01 share manifest key")  → manifest key
//!  └─ derive_key("ferry-hub 2026-12-01 share chunker key")   → chunker key (gear table)
//! ```
//!
//! Every sub-key comes from the epoch's root key, so after a rotation a removed
//! device can neither open new objects nor compute their IDs or chunk boundaries.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::device::DeviceRecipient;
use super::key_slot::{KeySlot, PassphraseParams};
use super::random::random_bytes;
use super::sealed::{self, Domain};
use super::{CryptoError, ObjectId};
use crate::ShareId;

const OBJECT_ID_CONTEXT: &str = "ferry-hub 2026-12-01 share object-id key";
const WRAP_CONTEXT: &str = "ferry-hub 2026-12-01 share wrap key";
const MANIFEST_CONTEXT: &str = "ferry-hub 2026-12-01 share manifest key";
const CHUNKER_CONTEXT: &str = "ferry-hub 2026-12-01 share chunker key";

/// A key epoch of a share. The first is 1; removing a device starts the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub u32);

impl Epoch {
    pub const FIRST: Epoch = Epoch(1);

    pub fn next(self) -> Result<Epoch, CryptoError> {
        self.0
            .checked_add(1)
            .map(Epoch)
            .ok_or(CryptoError::EpochOverflow)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// 32 secret bytes, wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct SecretKey(pub(crate) [u8; 32]);

/// One epoch of a share's keys. Holds the root key so the epoch can be wrapped for
/// another device or a passphrase; never printed.
#[derive(Clone)]
pub struct ShareKeys {
    share: ShareId,
    epoch: Epoch,
    root: SecretKey,
    object_id: SecretKey,
    wrap: SecretKey,
    manifest: SecretKey,
    chunker: SecretKey,
}

impl fmt::Debug for ShareKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShareKeys({} epoch {}, ..)", self.share, self.epoch)
    }
}

impl ShareKeys {
    /// Fresh keys for a new share (epoch 1) or a new epoch.
    pub fn generate(share: &ShareId, epoch: Epoch) -> Result<Self, CryptoError> {
        Ok(Self::from_root(
            share.clone(),
            epoch,
            SecretKey(random_bytes()?),
        ))
    }

    pub(crate) fn from_root(share: ShareId, epoch: Epoch, root: SecretKey) -> Self {
        let derive = |context| SecretKey(blake3::derive_key(context, &root.0));
        ShareKeys {
            share,
            epoch,
            object_id: derive(OBJECT_ID_CONTEXT),
            wrap: derive(WRAP_CONTEXT),
            manifest: derive(MANIFEST_CONTEXT),
            chunker: derive(CHUNKER_CONTEXT),
            root,
        }
    }

    pub fn share(&self) -> &ShareId {
        &self.share
    }

    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    pub(crate) fn root(&self) -> &SecretKey {
        &self.root
    }

    pub(crate) fn chunker_key(&self) -> &SecretKey {
        &self.chunker
    }

    /// Wraps this epoch's root key for a member device.
    pub fn slot_for_device(&self, device: &DeviceRecipient) -> Result<KeySlot, CryptoError> {
        KeySlot::for_device(self, device)
    }

    /// Wraps this epoch's root key under a passphrase (restores access on a new device).
    pub fn slot_for_passphrase(
        &self,
        passphrase: &str,
        params: PassphraseParams,
    ) -> Result<KeySlot, CryptoError> {
        KeySlot::for_passphrase(self, passphrase, params)
    }

    /// Starts the next epoch: a new root key, wrapped only for `members`. Used when a
    /// device is removed; the removed device's slot is simply not made. A passphrase
    /// slot, if the share has one, is made anew with `slot_for_passphrase`.
    pub fn rotate(
        &self,
        members: &[DeviceRecipient],
    ) -> Result<(ShareKeys, Vec<KeySlot>), CryptoError> {
        let next = ShareKeys::generate(&self.share, self.epoch.next()?)?;
        let slots = members
            .iter()
            .map(|m| next.slot_for_device(m))
            .collect::<Result<_, _>>()?;
        Ok((next, slots))
    }

    /// The ID of a chunk, from its plaintext BLAKE3 hash: equal chunks in one share
    /// (and epoch) get equal IDs, so they are stored once; other shares learn nothing.
    pub fn object_id_of_hash(&self, chunk_hash: &[u8; 32]) -> ObjectId {
        ObjectId::from_bytes(*blake3::keyed_hash(&self.object_id.0, chunk_hash).as_bytes())
    }

    /// The ID of a chunk's plaintext (hashes it first).
    pub fn object_id(&self, chunk: &[u8]) -> ObjectId {
        self.object_id_of_hash(blake3::hash(chunk).as_bytes())
    }

    /// Seals a chunk as the object named `id` (see `sealed.rs` for the format).
    pub fn seal_object(&self, id: &ObjectId, chunk: &[u8]) -> Result<Vec<u8>, CryptoError> {
        sealed::seal(&self.wrap, self.epoch, Domain::Object, id.as_bytes(), chunk)
    }

    /// Opens the object named `id`. Fails if it was sealed under another epoch, other
    /// keys, another ID, or altered in any byte.
    pub fn open_object(&self, id: &ObjectId, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        sealed::open(
            &self.wrap,
            self.epoch,
            Domain::Object,
            id.as_bytes(),
            sealed,
        )
    }

    /// Seals a manifest (opaque bytes here) as version `version` of the share's
    /// manifest; the version is authenticated, so an old manifest cannot be served as
    /// a newer one.
    pub fn seal_manifest(&self, version: u64, manifest: &[u8]) -> Result<Vec<u8>, CryptoError> {
        sealed::seal(
            &self.manifest,
            self.epoch,
            Domain::Manifest,
            &version.to_be_bytes(),
            manifest,
        )
    }

    pub fn open_manifest(&self, version: u64, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        sealed::open(
            &self.manifest,
            self.epoch,
            Domain::Manifest,
            &version.to_be_bytes(),
            sealed,
        )
    }
}

#[cfg(test)]
mod tests {
    //! Pinned outputs: if one of these changes, every share stored so far breaks.

    use super::*;
    use crate::KeyedChunker;

    fn fixed() -> ShareKeys {
        let share = "pinned".parse().unwrap();
        ShareKeys::from_root(share, Epoch(1), SecretKey([7; 32]))
    }

    fn from_hex(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn object_ids_and_chunk_boundaries_are_pinned() {
        let keys = fixed();
        assert_eq!(
            keys.object_id(b"ferry").to_hex(),
            "43efe8bf12ce1746990649a81753616e8c0c0cb394834f4d28d4ebc1e28726a2"
        );
        let mut data = vec![0u8; 1 << 20];
        blake3::Hasher::new()
            .update(b"pinned")
            .finalize_xof()
            .fill(&mut data);
        let ends: Vec<usize> = KeyedChunker::new(&keys)
            .chunks(&data)
            .map(|r| r.end)
            .collect();
        assert_eq!(
            ends,
            [
                67686, 179905, 253192, 346275, 444117, 511169, 600115, 677575, 750318, 783638,
                808359, 829225, 906644, 982051, 1048576
            ]
        );
    }

    #[test]
    fn an_object_sealed_by_format_1_still_opens() {
        // Sealed once by this code with `fixed()`; 1142 bytes in hex, 64 digits a line.
        const SEALED: &str = include_str!("testdata/object-format-1.hex");
        let keys = fixed();
        let plain = b"ferry hub object, format 1";
        let id = keys.object_id(plain);
        let hex: String = SEALED.split_whitespace().collect();
        let sealed = from_hex(&hex);
        assert_eq!(sealed.len(), 1142);
        assert_eq!(keys.open_object(&id, &sealed).unwrap(), plain);
    }
}
