//! Every epoch of a share a device holds keys for. Objects keep the epoch they were
//! sealed in, so after a rotation old objects still open with the old epoch's keys and
//! new ones are sealed under the newest.

use std::collections::BTreeMap;

use super::sealed::sealed_epoch;
use super::{CryptoError, Epoch, ObjectId, ShareKeys};
use crate::ShareId;

/// One share's epochs.
#[derive(Clone, Debug)]
pub struct KeyRing {
    share: ShareId,
    epochs: BTreeMap<Epoch, ShareKeys>,
}

impl KeyRing {
    pub fn new(share: ShareId) -> Self {
        KeyRing {
            share,
            epochs: BTreeMap::new(),
        }
    }

    /// Adds an epoch's keys; keys of another share are refused.
    pub fn insert(&mut self, keys: ShareKeys) -> Result<(), CryptoError> {
        if keys.share() != &self.share {
            return Err(CryptoError::ShareMismatch {
                sealed: keys.share().to_string(),
                keys: self.share.to_string(),
            });
        }
        self.epochs.insert(keys.epoch(), keys);
        Ok(())
    }

    pub fn share(&self) -> &ShareId {
        &self.share
    }

    /// Every epoch's keys, oldest first.
    pub fn epochs(&self) -> impl Iterator<Item = &ShareKeys> {
        self.epochs.values()
    }

    /// The newest epoch: what new objects and manifests are sealed under.
    pub fn current(&self) -> Option<&ShareKeys> {
        self.epochs.values().next_back()
    }

    pub fn get(&self, epoch: Epoch) -> Option<&ShareKeys> {
        self.epochs.get(&epoch)
    }

    fn keys_for(&self, sealed: &[u8]) -> Result<&ShareKeys, CryptoError> {
        let epoch = sealed_epoch(sealed)?;
        self.get(epoch).ok_or(CryptoError::UnknownEpoch(epoch))
    }

    /// Opens an object under the epoch its header names.
    pub fn open_object(&self, id: &ObjectId, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.keys_for(sealed)?.open_object(id, sealed)
    }

    /// Opens a manifest under the epoch its header names.
    pub fn open_manifest(&self, version: u64, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.keys_for(sealed)?.open_manifest(version, sealed)
    }
}
