//! Test content.

/// `len` deterministic bytes from `seed` that neither compress nor repeat (xorshift),
/// so content-defined chunking cuts them as it would real data.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
