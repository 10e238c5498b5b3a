//! Hashing + chunking speed on one core, on data already in memory (the "cached data"
//! case): `cargo run --release -p ferry-core --example hash_speed [MiB]`.
//! Prints GB/s for ferry's single-pass digest (BLAKE3 of the whole + FastCDC chunks
//! named by BLAKE3) and, for comparison, for BLAKE3 alone.

use std::time::Instant;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let data: Vec<u8> = (0..mib << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let gbps = |secs: f64| data.len() as f64 / secs / 1e9;
    let mut buf = Vec::new();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let d = ferry_core::model::digest_reader_with(&data[..], &mut buf).expect("in memory");
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(d.size as usize, data.len());
    }
    let mut blake = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let h = blake3::hash(&data);
        blake = blake.min(t.elapsed().as_secs_f64());
        std::hint::black_box(h);
    }
    println!(
        "{{\"mib\": {mib}, \"digest_gbps\": {:.2}, \"blake3_only_gbps\": {:.2}}}",
        gbps(best),
        gbps(blake)
    );
}
