//! BLAKE3 of a file's bytes, using a second core for a big file: a changed big file is
//! hashed twice per sync (by the scan, and to verify its copy before it is installed),
//! and on one core each of those costs as much as the copy itself.
//!
//! BLAKE3 is a tree: the hash of `len` bytes is the root over a left subtree of
//! `left_subtree_len(len)` bytes and the right subtree of the rest. Each is hashed on
//! its own thread (positioned reads, so both read at once) and the two chaining values
//! merged, giving exactly `blake3::hash` of the bytes (`blake3::hazmat`).

use crate::model::chunk::Hash;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Files at least this long are hashed on two threads (where there are two cores):
/// below it a thread costs more than it saves.
pub(crate) const PARALLEL_MIN: u64 = 16 << 20;

/// Bytes read at a time: each copy worker keeps a buffer this size (16 workers pull
/// from a device), so 1 MiB each was 16 MiB of a receiving daemon's memory for no
/// measurable speed.
pub(crate) const BLOCK: usize = 256 << 10;

/// Whether this machine has a second core to hash with.
pub(crate) fn two_cores() -> bool {
    static TWO: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TWO.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// BLAKE3 of all of `f`'s bytes from its start (positioned reads: the file's own offset
/// does not matter). `buf` is reused across calls.
pub(crate) fn blake3_of_file(f: &File, buf: &mut Vec<u8>) -> io::Result<Hash> {
    if buf.len() < BLOCK {
        buf.resize(BLOCK, 0);
    }
    let len = f.metadata()?.len();
    if len >= PARALLEL_MIN && two_cores() {
        if let Some(h) = in_two(f, len, buf)? {
            return Ok(h);
        }
    }
    let mut h = blake3::Hasher::new();
    hash_range(f, &mut h, 0, None, buf)?;
    Ok(Hash(*h.finalize().as_bytes()))
}

/// Feeds `f`'s bytes from `from` to `to` (`None`: its end) to `h`. Returns how many
/// there were (fewer than asked when the file shrank).
pub(crate) fn hash_range(
    f: &File,
    h: &mut blake3::Hasher,
    from: u64,
    to: Option<u64>,
    buf: &mut [u8],
) -> io::Result<u64> {
    let mut off = from;
    loop {
        let want = match to {
            Some(end) if off >= end => return Ok(off - from),
            Some(end) => ((end - off) as usize).min(buf.len()),
            None => buf.len(),
        };
        let n = match f.read_at(&mut buf[..want], off) {
            Ok(0) => return Ok(off - from),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        off += n as u64;
    }
}

/// The two subtrees of the first `len` bytes on two threads, merged. `None` when the
/// file is not `len` bytes long any more (the caller hashes it again, on one thread) or
/// no thread could be started.
fn in_two(f: &File, len: u64, buf: &mut [u8]) -> io::Result<Option<Hash>> {
    use blake3::hazmat::{left_subtree_len, merge_subtrees_root, HasherExt, Mode};
    let split = left_subtree_len(len);
    let halves = std::thread::scope(|s| {
        let right = std::thread::Builder::new().spawn_scoped(s, || {
            let mut h = blake3::Hasher::new();
            h.set_input_offset(split);
            let mut b = vec![0u8; BLOCK];
            let n = hash_range(f, &mut h, split, Some(len), &mut b)?;
            Ok::<_, io::Error>((n == len - split).then(|| h.finalize_non_root()))
        });
        let Ok(right) = right else {
            return Ok(None);
        };
        let mut h = blake3::Hasher::new();
        let left = hash_range(f, &mut h, 0, Some(split), buf)
            .map(|n| (n == split).then(|| h.finalize_non_root()));
        let right = right
            .join()
            .map_err(|_| io::Error::other("a hashing thread panicked"))?;
        Ok::<_, io::Error>(Some((left?, right?)))
    })?;
    let (Some((Some(left), Some(right))), Ok(0)) = (halves, f.read_at(&mut buf[..1], len)) else {
        return Ok(None);
    };
    Ok(Some(Hash(
        *merge_subtrees_root(&left, &right, Mode::Hash).as_bytes(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn a_big_file_hashed_in_two_is_its_blake3() {
        // Lengths around the threshold and tree boundaries, not powers of two too.
        let data: Vec<u8> = (0..(PARALLEL_MIN as usize * 2 + 4097))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let l = PARALLEL_MIN as usize;
        for len in [l, l + 1, l + 1025, 3 * l / 2 + 7, 2 * l, 2 * l + 4097] {
            let f = file_of(&data[..len]);
            let want = Hash(*blake3::hash(&data[..len]).as_bytes());
            assert_eq!(
                in_two(&f, len as u64, &mut vec![0; BLOCK]).unwrap(),
                Some(want)
            );
            assert_eq!(blake3_of_file(&f, &mut Vec::new()).unwrap(), want);
        }
    }

    #[test]
    fn a_big_file_digested_on_two_cores_is_what_one_pass_gives() {
        let data: Vec<u8> = (0..PARALLEL_MIN as usize + 300_001)
            .map(|i| ((i * 7919) >> 5) as u8 ^ (i % 13) as u8)
            .collect();
        let f = file_of(&data);
        std::io::Seek::rewind(&mut &f).unwrap();
        let two = crate::model::chunk::digest_file(&f, &mut Vec::new()).unwrap();
        let one = crate::model::chunk::digest_reader(&data[..]).unwrap();
        assert_eq!(two, one);
        assert!(two.chunks.len() > 1);
        assert_eq!(two.hash, Hash(*blake3::hash(&data).as_bytes()));
    }

    #[test]
    fn a_file_that_is_not_its_stated_length_is_not_hashed_in_two() {
        let data = vec![7u8; PARALLEL_MIN as usize + 10];
        let f = file_of(&data);
        let mut buf = vec![0; BLOCK];
        // Longer than said: bytes past the end would be left out.
        assert_eq!(in_two(&f, PARALLEL_MIN, &mut buf).unwrap(), None);
        // Shorter than said.
        assert_eq!(in_two(&f, PARALLEL_MIN + 20, &mut buf).unwrap(), None);
    }
}
