//! Key slots: a share epoch's root key wrapped for one member device (age, X25519) or
//! under a passphrase (Argon2id, then XChaCha20-Poly1305). The hub stores slots; it
//! cannot open any.
//!
//! Both kinds wrap `share ID length (u8) ‖ share ID ‖ epoch (u32 BE) ‖ root key`, so a
//! slot served for another share or epoch is refused. Encoding (`to_bytes`):
//!
//! ```text
//! device:     0x01 ‖ age file (binary, one X25519 recipient stanza)
//! passphrase: 0x02 ‖ m_cost KiB u32 ‖ t_cost u32 ‖ p_cost u32 ‖ salt 16 ‖ nonce 24 ‖ sealed
//! ```

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::device::{DeviceIdentity, DeviceRecipient};
use super::random::random_bytes;
use super::share_keys::SecretKey;
use super::{CryptoError, Epoch, ShareKeys};
use crate::ShareId;

const KIND_DEVICE: u8 = 1;
const KIND_PASSPHRASE: u8 = 2;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const PASSPHRASE_AAD: &[u8] = b"ferry passphrase slot v1\0";

/// Argon2id cost. The default follows RFC 9106's second recommendation with one lane
/// (64 MiB, 3 passes). Limits on reading stop a hostile store from making a device
/// spend unbounded memory on a forged slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassphraseParams {
    pub memory_kib: u32,
    pub passes: u32,
    pub lanes: u32,
}

impl Default for PassphraseParams {
    fn default() -> Self {
        PassphraseParams {
            memory_kib: 64 * 1024,
            passes: 3,
            lanes: 1,
        }
    }
}

const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
const MAX_PASSES: u32 = 64;
const MAX_LANES: u32 = 16;

impl PassphraseParams {
    fn argon2(&self) -> Result<Argon2<'static>, CryptoError> {
        if self.memory_kib > MAX_MEMORY_KIB || self.passes > MAX_PASSES || self.lanes > MAX_LANES {
            return Err(CryptoError::BadParams(format!(
                "{self:?} is above the limits ({MAX_MEMORY_KIB} KiB, {MAX_PASSES} passes, {MAX_LANES} lanes)"
            )));
        }
        let params = Params::new(self.memory_kib, self.passes, self.lanes, Some(32))
            .map_err(|e| CryptoError::BadParams(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    fn to_bytes(self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[..4].copy_from_slice(&self.memory_kib.to_be_bytes());
        out[4..8].copy_from_slice(&self.passes.to_be_bytes());
        out[8..].copy_from_slice(&self.lanes.to_be_bytes());
        out
    }
}

/// One wrapped copy of an epoch's root key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySlot(Slot);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Slot {
    Device {
        age_file: Vec<u8>,
    },
    Passphrase {
        params: PassphraseParams,
        salt: [u8; SALT_LEN],
        nonce: [u8; NONCE_LEN],
        sealed: Vec<u8>,
    },
}

fn plaintext(keys: &ShareKeys) -> Zeroizing<Vec<u8>> {
    let share = keys.share().as_str().as_bytes();
    let mut plain = Zeroizing::new(Vec::with_capacity(1 + share.len() + 4 + 32));
    // A share ID is at most 64 bytes (`ShareId`), so its length fits a byte.
    plain.push(share.len() as u8);
    plain.extend_from_slice(share);
    plain.extend_from_slice(&keys.epoch().0.to_be_bytes());
    plain.extend_from_slice(&keys.root().0);
    plain
}

/// Checks the share and epoch inside an unwrapped slot and rebuilds the keys.
fn keys_from_plaintext(
    share: &ShareId,
    epoch: Epoch,
    plain: &[u8],
) -> Result<ShareKeys, CryptoError> {
    let malformed = CryptoError::MalformedSlot("wrong plaintext length");
    let (&share_len, rest) = plain.split_first().ok_or(malformed.clone())?;
    let (sealed_share, rest) = rest
        .split_at_checked(share_len.into())
        .ok_or(malformed.clone())?;
    if rest.len() != 4 + 32 {
        return Err(malformed);
    }
    if sealed_share != share.as_str().as_bytes() {
        return Err(CryptoError::ShareMismatch {
            sealed: String::from_utf8_lossy(sealed_share).into_owned(),
            keys: share.to_string(),
        });
    }
    let sealed = Epoch(u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]));
    if sealed != epoch {
        return Err(CryptoError::EpochMismatch {
            sealed,
            keys: epoch,
        });
    }
    let mut root = SecretKey([0; 32]);
    root.0.copy_from_slice(&rest[4..]);
    Ok(ShareKeys::from_root(share.clone(), epoch, root))
}

/// What a device proves it knows the share's passphrase with, to be let into the share
/// by a hub (`ferry hub restore`): Argon2id (default cost) of the passphrase with a
/// salt derived from the share ID. The hub keeps only its BLAKE3 hash
/// ([`restore_verifier`]); the token unlocks no key.
pub fn restore_token(
    share: &ShareId,
    passphrase: &str,
) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let salt = blake3::derive_key(
        "ferry-hub 2026-12-01 share restore token salt",
        share.as_str().as_bytes(),
    );
    passphrase_key(passphrase, &PassphraseParams::default(), &salt[..16])
}

/// The hash of a restore token the hub stores.
pub fn restore_verifier(token: &[u8]) -> [u8; 32] {
    *blake3::keyed_hash(
        &blake3::derive_key("ferry-hub 2026-12-01 restore verifier", b""),
        token,
    )
    .as_bytes()
}

fn passphrase_key(
    passphrase: &str,
    params: &PassphraseParams,
    salt: &[u8],
) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let mut key = Zeroizing::new([0u8; 32]);
    params
        .argon2()?
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|e| CryptoError::BadParams(e.to_string()))?;
    Ok(key)
}

fn passphrase_aad(params: &PassphraseParams) -> Vec<u8> {
    [PASSPHRASE_AAD, &params.to_bytes()].concat()
}

impl KeySlot {
    pub(crate) fn for_device(
        keys: &ShareKeys,
        device: &DeviceRecipient,
    ) -> Result<Self, CryptoError> {
        let age_file = age::encrypt(&device.0, &plaintext(keys))
            .map_err(|_| CryptoError::BadDeviceKey("age refused the recipient"))?;
        Ok(KeySlot(Slot::Device { age_file }))
    }

    pub(crate) fn for_passphrase(
        keys: &ShareKeys,
        passphrase: &str,
        params: PassphraseParams,
    ) -> Result<Self, CryptoError> {
        let salt = random_bytes::<SALT_LEN>()?;
        let nonce = random_bytes::<NONCE_LEN>()?;
        let key = passphrase_key(passphrase, &params, &salt)?;
        let sealed = XChaCha20Poly1305::new(Key::from_slice(key.as_ref()))
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext(keys),
                    aad: &passphrase_aad(&params),
                },
            )
            .map_err(|_| CryptoError::MalformedSlot("sealing failed"))?;
        Ok(KeySlot(Slot::Passphrase {
            params,
            salt,
            nonce,
            sealed,
        }))
    }

    pub fn is_passphrase(&self) -> bool {
        matches!(self.0, Slot::Passphrase { .. })
    }

    fn kind(&self) -> &'static str {
        match self.0 {
            Slot::Device { .. } => "device",
            Slot::Passphrase { .. } => "passphrase",
        }
    }

    /// Opens a device slot of `share` and `epoch` with this device's identity.
    pub fn open_with_device(
        &self,
        share: &ShareId,
        epoch: Epoch,
        identity: &DeviceIdentity,
    ) -> Result<ShareKeys, CryptoError> {
        let Slot::Device { age_file } = &self.0 else {
            return Err(CryptoError::WrongSlotKind {
                wanted: "device",
                actual: self.kind(),
            });
        };
        let plain = Zeroizing::new(age::decrypt(&identity.0, age_file).map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => CryptoError::NotForThisDevice,
            _ => CryptoError::MalformedSlot("not a valid age file"),
        })?);
        keys_from_plaintext(share, epoch, &plain)
    }

    /// Opens a passphrase slot of `share` and `epoch`.
    pub fn open_with_passphrase(
        &self,
        share: &ShareId,
        epoch: Epoch,
        passphrase: &str,
    ) -> Result<ShareKeys, CryptoError> {
        let Slot::Passphrase {
            params,
            salt,
            nonce,
            sealed,
        } = &self.0
        else {
            return Err(CryptoError::WrongSlotKind {
                wanted: "passphrase",
                actual: self.kind(),
            });
        };
        let key = passphrase_key(passphrase, params, salt)?;
        let plain = Zeroizing::new(
            XChaCha20Poly1305::new(Key::from_slice(key.as_ref()))
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: &passphrase_aad(params),
                    },
                )
                .map_err(|_| CryptoError::WrongPassphrase)?,
        );
        keys_from_plaintext(share, epoch, &plain)
    }

    /// The stored form (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.0 {
            Slot::Device { age_file } => [&[KIND_DEVICE][..], age_file].concat(),
            Slot::Passphrase {
                params,
                salt,
                nonce,
                sealed,
            } => [
                &[KIND_PASSPHRASE][..],
                &params.to_bytes(),
                salt,
                nonce,
                sealed,
            ]
            .concat(),
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let (&kind, rest) = bytes
            .split_first()
            .ok_or(CryptoError::MalformedSlot("empty"))?;
        match kind {
            KIND_DEVICE => Ok(KeySlot(Slot::Device {
                age_file: rest.to_vec(),
            })),
            KIND_PASSPHRASE => {
                if rest.len() <= 12 + SALT_LEN + NONCE_LEN + TAG_LEN {
                    return Err(CryptoError::MalformedSlot("passphrase slot too short"));
                }
                let u32_at =
                    |i: usize| u32::from_be_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
                let params = PassphraseParams {
                    memory_kib: u32_at(0),
                    passes: u32_at(4),
                    lanes: u32_at(8),
                };
                let mut salt = [0u8; SALT_LEN];
                salt.copy_from_slice(&rest[12..12 + SALT_LEN]);
                let mut nonce = [0u8; NONCE_LEN];
                nonce.copy_from_slice(&rest[12 + SALT_LEN..12 + SALT_LEN + NONCE_LEN]);
                Ok(KeySlot(Slot::Passphrase {
                    params,
                    salt,
                    nonce,
                    sealed: rest[12 + SALT_LEN + NONCE_LEN..].to_vec(),
                }))
            }
            _ => Err(CryptoError::MalformedSlot("unknown slot kind")),
        }
    }
}
