//! The sealed format shared by objects (chunks) and manifests.
//!
//! ```text
//! offset  len  field
//!      0    1  format = 1
//!      1    4  key epoch, u32 big-endian
//!      5    1  flags: bit 0 = body is zstd-compressed; other bits must be 0
//!      6   24  key nonce (random)
//!     30   48  data key (32 random bytes, fresh per seal) sealed by the wrap key
//!              (objects) or manifest key (manifests) with XChaCha20-Poly1305
//!     78   24  body nonce (random)
//!    102  p+16 body: XChaCha20-Poly1305 under the data key over the padded payload:
//!              payload length (u32 BE) ‖ payload (zstd frame or raw chunk) ‖ zeros,
//!              p = max(1 KiB, Padmé(4 + payload length))
//! ```
//!
//! Padding hides exact sizes: Padmé (Nikitin et al., PURBs, 2019) rounds a length to
//! one with at most about log2(log2(length)) significant bits (≤ 12 % overhead), and
//! every payload under 1 KiB looks alike (Syncthing pads blocks to 1 KiB likewise).
//!
//! Associated data: the data key's is `domain ‖ bytes 0..6`; the body's is
//! `domain ‖ id ‖ bytes 0..102`, where the domain tells objects from manifests and the
//! id is the object ID (objects) or the manifest version (manifests). So any changed
//! header bit, a body moved under another ID, or an object served as a manifest fails.

use std::borrow::Cow;
use std::io::Read;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::random::random_bytes;
use super::share_keys::SecretKey;
use super::{CryptoError, Epoch};

const FORMAT_V1: u8 = 1;
const FLAG_ZSTD: u8 = 0b1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const PREFIX_LEN: usize = 6;
const WRAPPED_KEY_LEN: usize = 32 + TAG_LEN;
const ZSTD_LEVEL: i32 = 3;

/// Bytes before the body.
pub const SEALED_HEADER_LEN: usize = PREFIX_LEN + NONCE_LEN + WRAPPED_KEY_LEN + NONCE_LEN;
/// Sealed size minus padded payload size: header plus the body's tag.
pub const SEALED_OVERHEAD: usize = SEALED_HEADER_LEN + TAG_LEN;
/// The smallest padded payload.
const MIN_PADDED: usize = 1024;
const LEN_PREFIX: usize = 4;

/// Largest plaintext a sealed body may decompress to: a bound on what a malicious
/// member's zstd bomb can make a reader allocate (chunks are ≤ 256 KiB; manifests of
/// very large shares need room).
const MAX_PLAINTEXT: usize = 1 << 30;

#[derive(Clone, Copy)]
pub(crate) enum Domain {
    Object,
    Manifest,
}

impl Domain {
    fn tag(self) -> &'static [u8] {
        match self {
            Domain::Object => b"ferry object v1\0",
            Domain::Manifest => b"ferry manifest v1\0",
        }
    }
}

fn cipher(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(Key::from_slice(key))
}

pub(crate) fn seal(
    key_wrap: &SecretKey,
    epoch: Epoch,
    domain: Domain,
    id: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let too_large = CryptoError::TooLarge {
        limit: MAX_PLAINTEXT,
    };
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(too_large);
    }
    let compressed =
        zstd::bulk::compress(plaintext, ZSTD_LEVEL).map_err(|_| CryptoError::Compress)?;
    let (flags, body): (u8, Cow<[u8]>) = if compressed.len() < plaintext.len() {
        (FLAG_ZSTD, Cow::Owned(compressed))
    } else {
        (0, Cow::Borrowed(plaintext))
    };

    let data_key = Zeroizing::new(random_bytes::<32>()?);
    let key_nonce = random_bytes::<NONCE_LEN>()?;
    let body_nonce = random_bytes::<NONCE_LEN>()?;

    let padded_len = padded(LEN_PREFIX + body.len());
    let mut padded_body = Vec::with_capacity(padded_len);
    let body_len = u32::try_from(body.len()).map_err(|_| too_large.clone())?;
    padded_body.extend_from_slice(&body_len.to_be_bytes());
    padded_body.extend_from_slice(&body);
    padded_body.resize(padded_len, 0);

    let mut out = Vec::with_capacity(SEALED_OVERHEAD + padded_len);
    out.push(FORMAT_V1);
    out.extend_from_slice(&epoch.0.to_be_bytes());
    out.push(flags);
    let key_aad = [domain.tag(), &out[..PREFIX_LEN]].concat();
    let wrapped = cipher(&key_wrap.0)
        .encrypt(
            XNonce::from_slice(&key_nonce),
            Payload {
                msg: data_key.as_slice(),
                aad: &key_aad,
            },
        )
        .map_err(|_| too_large.clone())?;
    out.extend_from_slice(&key_nonce);
    out.extend_from_slice(&wrapped);
    out.extend_from_slice(&body_nonce);
    let body_aad = [domain.tag(), id, &out[..SEALED_HEADER_LEN]].concat();
    let ciphertext = cipher(&data_key)
        .encrypt(
            XNonce::from_slice(&body_nonce),
            Payload {
                msg: &padded_body,
                aad: &body_aad,
            },
        )
        .map_err(|_| too_large)?;
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

pub(crate) fn open(
    key_wrap: &SecretKey,
    epoch: Epoch,
    domain: Domain,
    id: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let sealed_epoch = sealed_epoch(sealed)?;
    if sealed_epoch != epoch {
        return Err(CryptoError::EpochMismatch {
            sealed: sealed_epoch,
            keys: epoch,
        });
    }
    let flags = sealed[5];
    if flags & !FLAG_ZSTD != 0 {
        return Err(CryptoError::UnknownFlags(flags));
    }

    let (header, body) = sealed.split_at(SEALED_HEADER_LEN);
    let (key_nonce, rest) = header[PREFIX_LEN..].split_at(NONCE_LEN);
    let (wrapped, body_nonce) = rest.split_at(WRAPPED_KEY_LEN);

    let key_aad = [domain.tag(), &header[..PREFIX_LEN]].concat();
    let data_key = Zeroizing::new(
        cipher(&key_wrap.0)
            .decrypt(
                XNonce::from_slice(key_nonce),
                Payload {
                    msg: wrapped,
                    aad: &key_aad,
                },
            )
            .map_err(|_| CryptoError::WrongKey)?,
    );
    let data_key: &[u8; 32] = data_key
        .as_slice()
        .try_into()
        .map_err(|_| CryptoError::WrongKey)?;

    let body_aad = [domain.tag(), id, header].concat();
    let plain = cipher(data_key)
        .decrypt(
            XNonce::from_slice(body_nonce),
            Payload {
                msg: body,
                aad: &body_aad,
            },
        )
        .map_err(|_| CryptoError::Tampered)?;
    let payload = unpad(&plain)?;
    if flags & FLAG_ZSTD == 0 {
        return Ok(payload.to_vec());
    }
    decompress(payload)
}

/// The padded size of a payload of `len` bytes: Padmé, at least `MIN_PADDED`.
/// Whether `len` can be the length of a sealed object or manifest: the header, a
/// padded body (1 KiB at least, a Padmé length above) and the tag. A hub checks this
/// on upload; it cannot check more without the keys.
pub fn plausible_sealed_len(len: usize) -> bool {
    let Some(body) = len.checked_sub(SEALED_OVERHEAD) else {
        return false;
    };
    body >= MIN_PADDED && padded(body) == body
}

fn padded(len: usize) -> usize {
    if len <= MIN_PADDED {
        return MIN_PADDED;
    }
    let e = len.ilog2(); // floor(log2(len)), ≥ 10 here
    let s = e.ilog2() + 1; // bits needed for e
    let mask = (1usize << (e - s)) - 1;
    (len + mask) & !mask
}

/// The payload inside an authenticated padded body. A bad length can only come from a
/// member holding the keys, but it is checked all the same.
fn unpad(plain: &[u8]) -> Result<&[u8], CryptoError> {
    let (len, rest) = plain
        .split_first_chunk::<LEN_PREFIX>()
        .ok_or(CryptoError::BadPadding)?;
    rest.get(..u32::from_be_bytes(*len) as usize)
        .ok_or(CryptoError::BadPadding)
}

/// zstd with a ceiling on the output, read as a stream so nothing is allocated up
/// front for a frame that claims a huge size.
fn decompress(compressed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let decoder =
        zstd::stream::read::Decoder::new(compressed).map_err(|_| CryptoError::Decompress)?;
    let mut out = Vec::new();
    decoder
        .take(MAX_PLAINTEXT as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| CryptoError::Decompress)?;
    if out.len() > MAX_PLAINTEXT {
        return Err(CryptoError::TooLarge {
            limit: MAX_PLAINTEXT,
        });
    }
    Ok(out)
}

/// The epoch a sealed object or manifest names, so a reader can pick its keys.
pub(crate) fn sealed_epoch(sealed: &[u8]) -> Result<Epoch, CryptoError> {
    let format = *sealed.first().ok_or(CryptoError::Truncated)?;
    if format != FORMAT_V1 {
        return Err(CryptoError::UnknownFormat(format));
    }
    if sealed.len() < SEALED_OVERHEAD {
        return Err(CryptoError::Truncated);
    }
    Ok(Epoch(u32::from_be_bytes([
        sealed[1], sealed[2], sealed[3], sealed[4],
    ])))
}
