//! A share's recovery key: how a passphrase opens every key epoch, including those
//! started after it was set.
//!
//! Setting a passphrase makes a fresh age X25519 key pair. Its secret is sealed under
//! the passphrase (Argon2id, then XChaCha20-Poly1305, with the share ID and the cost in
//! the associated data); its public half is a recipient like a member device's. So a
//! member starting a new epoch wraps the new root key to it without knowing the
//! passphrase, and restoring opens the sealed secret with the passphrase, then the
//! slots. Who set it (a signature by that device's key) is the client's business: this
//! module does no signing.
//!
//! Sealed form: `m_cost KiB u32 ‖ t_cost u32 ‖ p_cost u32 ‖ salt 16 ‖ nonce 24 ‖ sealed`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::device::{DeviceIdentity, DeviceRecipient};
use super::key_slot::{passphrase_key, PassphraseParams};
use super::random::random_bytes;
use super::CryptoError;
use crate::ShareId;

const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const AAD: &[u8] = b"ferry recovery key v1\0";

/// A recovery key pair and its secret sealed under the passphrase.
pub struct RecoveryKey {
    identity: DeviceIdentity,
    sealed: Vec<u8>,
}

fn aad(share: &ShareId, params: &[u8; 12]) -> Vec<u8> {
    [AAD, params, share.as_str().as_bytes()].concat()
}

impl RecoveryKey {
    /// A new key pair for `share`, its secret sealed under `passphrase`.
    pub fn generate(
        share: &ShareId,
        passphrase: &str,
        params: PassphraseParams,
    ) -> Result<RecoveryKey, CryptoError> {
        let identity = DeviceIdentity::generate();
        let salt = random_bytes::<SALT_LEN>()?;
        let nonce = random_bytes::<NONCE_LEN>()?;
        let key = passphrase_key(passphrase, &params, &salt)?;
        let p = params.to_bytes();
        let secret = identity.to_secret_string();
        let sealed = XChaCha20Poly1305::new(Key::from_slice(key.as_ref()))
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: &aad(share, &p),
                },
            )
            .map_err(|_| CryptoError::MalformedSlot("sealing failed"))?;
        Ok(RecoveryKey {
            identity,
            sealed: [&p[..], &salt, &nonce, &sealed].concat(),
        })
    }

    /// What members wrap each epoch's root key to.
    pub fn recipient(&self) -> DeviceRecipient {
        self.identity.recipient()
    }

    /// The secret, sealed under the passphrase: what the hub keeps.
    pub fn sealed(&self) -> &[u8] {
        &self.sealed
    }

    /// Opens a sealed recovery secret of `share` with `passphrase`.
    pub fn open(
        share: &ShareId,
        sealed: &[u8],
        passphrase: &str,
    ) -> Result<DeviceIdentity, CryptoError> {
        if sealed.len() <= 12 + SALT_LEN + NONCE_LEN + TAG_LEN {
            return Err(CryptoError::MalformedSlot("recovery key too short"));
        }
        let mut p = [0u8; 12];
        p.copy_from_slice(&sealed[..12]);
        let params = PassphraseParams::from_bytes(&p);
        let salt = &sealed[12..12 + SALT_LEN];
        let nonce = &sealed[12 + SALT_LEN..12 + SALT_LEN + NONCE_LEN];
        let key = passphrase_key(passphrase, &params, salt)?;
        let plain = Zeroizing::new(
            XChaCha20Poly1305::new(Key::from_slice(key.as_ref()))
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: &sealed[12 + SALT_LEN + NONCE_LEN..],
                        aad: &aad(share, &p),
                    },
                )
                .map_err(|_| CryptoError::WrongPassphrase)?,
        );
        let text = std::str::from_utf8(&plain)
            .map_err(|_| CryptoError::MalformedSlot("recovery key is not text"))?;
        text.parse()
    }
}
