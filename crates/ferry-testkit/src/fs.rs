//! File-system helpers for tests: tree listings, bind mounts, atomic swaps.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Every regular file below `dir`, recursively, sorted (none if `dir` does not exist;
/// unreadable folders are passed over). Symlinks are not followed.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("a path with a NUL byte")
}

/// `renameat2(from, to, RENAME_EXCHANGE)`: both must exist; they swap places atomically
/// (what a racing editor or attacker does between ferry's check and its use).
pub fn exchange(from: &Path, to: &Path) -> std::io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    renameat_with(CWD, from, CWD, to, RenameFlags::EXCHANGE).map_err(Into::into)
}

/// A bind mount, detached when dropped. Bind it to a name declared after the temp dir
/// it lives in, so it goes first.
pub struct BindMount(PathBuf);

/// Bind-mounts `src` at `dst` (`mount --bind`). `None`, with a note on stderr, when this
/// process may not mount (EPERM: not root, or a container without the capability);
/// the calling test then skips. Any other failure fails the test.
pub fn bind_mount(src: &Path, dst: &Path) -> Option<BindMount> {
    let (s, d) = (c_path(src), c_path(dst));
    // SAFETY: both strings are valid, NUL-terminated, and live across the call.
    let rc = unsafe {
        libc::mount(
            s.as_ptr(),
            d.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EPERM) {
            eprintln!(
                "SKIPPED: cannot bind-mount {} at {} ({e}); this test needs root",
                src.display(),
                dst.display()
            );
            return None;
        }
        panic!("mount --bind {} {}: {e}", src.display(), dst.display());
    }
    Some(BindMount(dst.to_path_buf()))
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let p = c_path(&self.0);
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
    }
}
