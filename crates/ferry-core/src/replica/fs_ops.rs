//! Low-level file-system operations the executor builds on: fast local copies
//! (reflink, then `copy_file_range`, then plain copy), verification, durability
//! (`syncfs`), temp-file names. Where on disk they happen is `beneath`'s job.

use crate::error::{Error, IoContext, Result};
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;

/// This process's effective user ID, asked of the kernel once (a copy asks about
/// ownership for every file).
pub(crate) fn euid() -> u32 {
    static EUID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *EUID.get_or_init(|| rustix::process::geteuid().as_raw())
}

/// File systems (by device) that said they cannot share extents at all: a reflink is
/// not tried again for files there (one failed `FICLONE` per file otherwise).
fn no_reflink() -> &'static std::sync::Mutex<Vec<u64>> {
    static DEVICES: std::sync::OnceLock<std::sync::Mutex<Vec<u64>>> = std::sync::OnceLock::new();
    DEVICES.get_or_init(Default::default)
}

/// Copies all of `src` into the empty file `dst`, sharing extents where the file
/// system can (reflink), else letting the kernel copy (`copy_file_range`).
pub(crate) fn clone_or_copy(
    src: &File,
    dst: &File,
    src_path: &Path,
    moved: &dyn Fn(u64),
) -> Result<u64> {
    let meta = src.metadata().ctx("stat", src_path)?;
    let len = meta.len();
    let dev = std::os::unix::fs::MetadataExt::dev(&meta);
    let can_clone = no_reflink().lock().map_or(true, |d| !d.contains(&dev));
    if can_clone {
        // SAFETY: both descriptors are open files owned by the caller for the whole call.
        let cloned = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
        if cloned == 0 {
            moved(len);
            return Ok(len);
        }
        // EOPNOTSUPP: the source's file system shares no extents with any file (EXDEV,
        // another file system, says nothing about the next destination).
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::EOPNOTSUPP) {
            if let Ok(mut d) = no_reflink().lock() {
                if !d.contains(&dev) {
                    d.push(dev);
                }
            }
        }
    }
    if std::os::unix::fs::MetadataExt::blocks(&meta) * 512 < len {
        if let Some(n) = copy_sparse(src, dst, len, src_path)? {
            moved(n);
            return Ok(n);
        }
    }
    let mut copied: u64 = 0;
    loop {
        // SAFETY: null offsets make the kernel use and advance each file's own offset.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                std::ptr::null_mut(),
                dst.as_raw_fd(),
                std::ptr::null_mut(),
                // Steps of at most COPY_STEP, so a big file's progress is seen moving.
                COPY_STEP.min((len - copied.min(len)).max(1 << 20) as usize),
                0,
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EXDEV)
                | Some(libc::ENOSYS)
                | Some(libc::EOPNOTSUPP)
                | Some(libc::EINVAL)
                    if copied == 0 =>
                {
                    let n = plain_copy(src, dst, src_path)?;
                    moved(n);
                    return Ok(n);
                }
                Some(libc::EINTR) => continue,
                _ => return Err(err).ctx("copy from", src_path),
            }
        }
        if n == 0 {
            break;
        }
        copied += n as u64;
        moved(n as u64);
        if copied >= len {
            // The size the copy was asked for: a file that grew since is changed, and
            // the copy's check of its hash says so. (Saves a call per file to see EOF.)
            break;
        }
    }
    Ok(copied)
}

/// The most one `copy_file_range` call moves: big enough to cost nothing extra, small
/// enough that progress of a big file is reported every few hundred milliseconds.
const COPY_STEP: usize = 16 << 20;

/// Copies only the data segments of a sparse file, so holes stay holes. Returns `None`
/// when the file system cannot say where the data is (then a plain copy follows).
fn copy_sparse(src: &File, dst: &File, len: u64, src_path: &Path) -> Result<Option<u64>> {
    let (sfd, dfd) = (src.as_raw_fd(), dst.as_raw_fd());
    let mut off: i64 = 0;
    let mut copied = 0u64;
    while (off as u64) < len {
        // SAFETY: plain lseek on a valid descriptor.
        let data = unsafe { libc::lseek(sfd, off, libc::SEEK_DATA) };
        if data < 0 {
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ENXIO) => break, // only a hole remains
                Some(libc::EINVAL) if copied == 0 => return Ok(None),
                _ => return Err(err).ctx("find data in", src_path),
            }
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(sfd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(std::io::Error::last_os_error()).ctx("find hole in", src_path);
        }
        let (mut from, mut to) = (data, data);
        while from < hole {
            // SAFETY: explicit offsets; the kernel advances our copies of them.
            let n = unsafe {
                libc::copy_file_range(sfd, &mut from, dfd, &mut to, (hole - from) as usize, 0)
            };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                if copied == 0 {
                    return Ok(None);
                }
                return Err(err).ctx("copy from", src_path);
            }
            if n == 0 {
                break;
            }
            copied += n as u64;
        }
        off = hole;
    }
    dst.set_len(len).ctx("set length of copy of", src_path)?;
    Ok(Some(len))
}

fn plain_copy(mut src: &File, mut dst: &File, src_path: &Path) -> Result<u64> {
    std::io::copy(&mut src, &mut dst).ctx("copy from", src_path)
}

/// BLAKE3 of a file's bytes (used to verify what landed in a temp file).
pub(crate) fn blake3_file(path: &Path, buf: &mut Vec<u8>) -> Result<crate::model::chunk::Hash> {
    let f = File::open(path).ctx("open for verification", path)?;
    blake3_of(&f, path, buf)
}

/// BLAKE3 of an open file's bytes from its start (positioned reads, so the file's own
/// offset does not matter).
pub(crate) fn blake3_of(
    f: &File,
    path: &Path,
    buf: &mut Vec<u8>,
) -> Result<crate::model::chunk::Hash> {
    crate::model::file_hash::blake3_of_file(f, buf).ctx("read for verification", path)
}

/// Makes everything written on the file system holding `path` durable, in one call:
/// cheaper than one fsync a file when a batch of files was written.
pub(crate) fn sync_filesystem(path: &Path) -> Result<()> {
    let f = File::open(path).ctx("open for syncfs", path)?;
    // SAFETY: the descriptor is valid for the call.
    let rc = unsafe { libc::syncfs(f.as_raw_fd()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).ctx("syncfs", path);
    }
    Ok(())
}

/// A temp-file name carrying `tag` (a location's [`crate::replica::location::Location::temp_tag`]):
/// `.ferry.tmp.<tag>.<16 random hex>`, the same length whatever file it stands for,
/// so it stays within `NAME_MAX` (see [`crate::replica::ignore_rules::temp_tag_of`]).
pub fn temp_name(tag: &str) -> OsString {
    let r = &uuid::Uuid::new_v4().simple().to_string()[..16];
    OsString::from(format!(
        "{}{tag}.{r}",
        crate::replica::ignore_rules::TEMP_PREFIX
    ))
}

/// The temp-file name of a staged copy whose content has BLAKE3 `hash`: like
/// [`temp_name`], with the first 8 hex digits of the hash in place of random ones
/// (8 random digits follow). After a crash, a leftover whose bytes have that hash is
/// ferry's own copy (see [`is_own_copy`]; a user's file matches by chance once in
/// 2^32); anything else is kept.
pub(crate) fn staged_temp_name(tag: &str, hash: &crate::model::chunk::Hash) -> OsString {
    let h = &hash.to_hex()[..8];
    OsString::from(format!(
        "{}{tag}.{h}{:08x}",
        crate::replica::ignore_rules::TEMP_PREFIX,
        name_part()
    ))
}

/// The varying part of a temp name: distinct for each name this process makes (a
/// random start, then a counter spread over 32 bits), without asking the kernel for
/// randomness per file. A name taken already (another process) is retried by the
/// caller's create-new; nothing relies on the name being unguessable, since temp
/// files are created with `O_EXCL | O_NOFOLLOW`.
fn name_part() -> u32 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    (start.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 32) as u32
}

/// Whether `name` is a staged-copy temp name (see [`staged_temp_name`]) whose content
/// hash is `hash`.
pub(crate) fn is_own_copy(name: &str, hash: &crate::model::chunk::Hash) -> bool {
    let Some(rest) = name.strip_prefix(crate::replica::ignore_rules::TEMP_PREFIX) else {
        return false;
    };
    match rest.split_once('.') {
        Some((_, r)) if r.len() == 16 => r[..8] == hash.to_hex()[..8],
        _ => false,
    }
}

/// A temp-file name with no location tag, for work inside `.ferry/` (never scanned).
pub(crate) fn random_temp_name(what: &str) -> OsString {
    let r = &uuid::Uuid::new_v4().simple().to_string()[..16];
    OsString::from(format!(".{what}.tmp.{r}"))
}

/// Whether an lstat error means "nothing is there" (the path or one of its parents is gone,
/// or a parent is now a file).
pub(crate) fn is_absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// Copies `src` into the empty file `dst` with plain reads and writes, taking each
/// block's bytes from `limiter` first (a bandwidth-limited conduit).
pub(crate) fn throttled_copy(
    src: &File,
    dst: &File,
    src_path: &Path,
    limiter: &crate::throttle::RateLimiter,
    buf: &mut Vec<u8>,
    moved: &dyn Fn(u64),
) -> Result<u64> {
    use std::io::Write;
    // Small blocks keep the rate smooth at low limits.
    let block = (limiter.rate() / 8).clamp(4096, 1 << 20) as usize;
    buf.resize(block, 0);
    let (mut r, mut w) = (src, dst);
    let mut copied = 0u64;
    loop {
        let n = match r.read(&mut buf[..block]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).ctx("read", src_path),
        };
        limiter.acquire(n as u64);
        w.write_all(&buf[..n]).ctx("write copy of", src_path)?;
        copied += n as u64;
        moved(n as u64);
    }
    Ok(copied)
}

/// Free and total bytes of the file system holding `path` (for unprivileged users).
pub fn free_space(path: &Path) -> Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c =
        std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::InvalidPath {
            path: path.to_string_lossy().into_owned(),
            reason: "contains a NUL byte",
        })?;
    // SAFETY: statvfs is plain old data; zeroed is a valid value to be overwritten.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).ctx("statvfs", path);
    }
    let frsize = st.f_frsize as u64;
    Ok((st.f_bavail as u64 * frsize, st.f_blocks as u64 * frsize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::chunk::Hash;

    /// Temp names of one content differ from each other (no randomness asked per
    /// name), and each is recognised as a copy of that content only.
    #[test]
    fn staged_temp_names_are_distinct_and_name_their_content() {
        let h = Hash::of(b"content");
        let other = Hash::of(b"other");
        let names: std::collections::HashSet<String> = (0..10_000)
            .map(|_| staged_temp_name("tag", &h).into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 10_000);
        for n in names.iter().take(50) {
            assert!(is_own_copy(n, &h), "{n}");
            assert!(!is_own_copy(n, &other), "{n}");
        }
    }

    #[test]
    fn hashing_a_file_keeps_a_bounded_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let mut buf = Vec::new();
        let got = blake3_of(&File::open(&path).unwrap(), &path, &mut buf).unwrap();
        assert_eq!(got, crate::model::chunk::Hash::of(&bytes));
        assert_eq!(buf.len(), crate::model::file_hash::BLOCK);
        assert!(buf.len() <= 256 << 10, "a copy worker's hash buffer grew");
    }
}
