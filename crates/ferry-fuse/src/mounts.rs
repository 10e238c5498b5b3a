//! Finding and removing mounts, also stale ones (their process died: "Transport
//! endpoint is not connected").

use crate::FuseError;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Undoes the octal escapes of `/proc/self/mountinfo` (`\040` for a space).
fn unescape(s: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Whether a file system is mounted at `path` (an absolute path), from
/// `/proc/self/mountinfo` (which never touches the mount itself, so a stale or hung
/// mount is found without blocking).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape(mp) == path)
}

/// Unmounts the mount at `mountpoint`, also one whose process died: `fusermount3 -u`,
/// then a lazy `fusermount3 -u -z` (which detaches a busy or stale mount).
pub fn unmount(mountpoint: &Path) -> Result<(), FuseError> {
    let mp = std::path::absolute(mountpoint).map_err(|e| FuseError::Unmount {
        path: mountpoint.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !is_mounted(&mp) {
        return Err(FuseError::Unmount {
            path: mp,
            reason: "nothing is mounted there".into(),
        });
    }
    let mut said = String::new();
    for args in [&["-u"][..], &["-u", "-z"][..]] {
        match Command::new("fusermount3").args(args).arg(&mp).output() {
            Ok(o) if o.status.success() && !is_mounted(&mp) => return Ok(()),
            Ok(o) => said = String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => said = format!("fusermount3: {e} (install fuse3)"),
        }
    }
    Err(FuseError::Unmount {
        path: mp,
        reason: said,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape("/tmp/a\\040b"), PathBuf::from("/tmp/a b"));
        assert_eq!(unescape("/plain"), PathBuf::from("/plain"));
        assert_eq!(unescape("/end\\"), PathBuf::from("/end\\"));
    }
}
