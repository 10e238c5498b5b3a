//! A chunker keyed per share epoch, so chunk sizes (visible to the hub) do not
//! fingerprint known files.
//!
//! fastcdc 5.0.0 offers `FastCDC::with_level_and_seed`, but its seed is one u64 XORed
//! into every entry of the public gear table. The gear hash only carries upward
//! (`hash = (hash << 1) + gear[byte]`), so whether a position is a cut depends only
//! on the seed's bits up to the mask's highest bit (bit 47 at 64 KiB), and those can be
//! recovered bit by bit from the cut points of one known file. Instead the whole
//! 256-entry table is secret: 2 KiB from BLAKE3's XOF keyed by the chunker sub-key,
//! run through fastcdc's public `cut_gear` with its own masks. Parameters are ferry-core's
//! (16/64/256 KiB, normalization level 1), so only the boundaries differ.

use std::ops::Range;

use fastcdc::v2020::{cut_gear, select_masks, Normalization};

use super::ShareKeys;

const MIN: usize = 16 * 1024;
const AVG: usize = 64 * 1024;
const MAX: usize = 256 * 1024;

pub struct KeyedChunker {
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
}

impl std::fmt::Debug for KeyedChunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedChunker(..)")
    }
}

impl KeyedChunker {
    pub fn new(keys: &ShareKeys) -> Self {
        let mut bytes = [0u8; 256 * 8];
        blake3::Hasher::new_keyed(&keys.chunker_key().0)
            .update(b"ferry gear table v1")
            .finalize_xof()
            .fill(&mut bytes);
        let mut gear = Box::new([0u64; 256]);
        for (entry, b) in gear.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(b);
            *entry = u64::from_le_bytes(word);
        }
        // fastcdc's second table is the first shifted left by one (FastCDC 2020, §3.7).
        let mut gear_ls = Box::new([0u64; 256]);
        for (ls, g) in gear_ls.iter_mut().zip(gear.iter()) {
            *ls = g << 1;
        }
        let (mask_s, mask_l) = select_masks(AVG, Normalization::Level1);
        KeyedChunker {
            gear,
            gear_ls,
            mask_s,
            mask_l,
        }
    }

    /// The largest chunk: a stream cut with [`KeyedChunker::cut`] over a buffer that
    /// holds at least this many bytes (or the rest of the stream) cuts exactly where
    /// [`KeyedChunker::chunks`] cuts the whole.
    pub const MAX_CHUNK: usize = MAX;

    /// The length of the first chunk of `data` (all of it when shorter than a chunk).
    pub fn cut(&self, data: &[u8]) -> usize {
        if data.is_empty() {
            return 0;
        }
        cut_gear(
            data,
            MIN,
            AVG,
            MAX,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear[..],
            &self.gear_ls[..],
        )
        .1
    }

    /// The chunks of `data` as byte ranges, in order, covering all of it.
    pub fn chunks<'a>(&'a self, data: &'a [u8]) -> impl Iterator<Item = Range<usize>> + 'a {
        let mut start = 0;
        std::iter::from_fn(move || {
            if start >= data.len() {
                return None;
            }
            let (_, len) = cut_gear(
                &data[start..],
                MIN,
                AVG,
                MAX,
                self.mask_s,
                self.mask_l,
                self.mask_s << 1,
                self.mask_l << 1,
                &self.gear[..],
                &self.gear_ls[..],
            );
            let range = start..start + len;
            start += len;
            Some(range)
        })
    }
}
