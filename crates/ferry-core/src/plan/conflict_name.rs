//! Names for conflict copies: `name.conflict-YYYYMMDD-HHMMSS-<side>.ext`, unique, within
//! the file-name limit. Used by the reconciler, archive planning and `ferry resolve`.

use crate::model::rel_path::{decoded_len, shorten_name, RelPath, NAME_MAX};
use crate::plan::{Occupied, Side};
use std::collections::HashSet;

/// `name.conflict-YYYYMMDD-HHMMSS-<side>.ext`, unique among `taken` (which it joins)
/// and not `occupied`.
pub(crate) fn conflict_name(
    taken: &mut HashSet<String>,
    occupied: Occupied<'_>,
    now: i64,
    path: &RelPath,
    side: Side,
) -> RelPath {
    // The name's key: `.` is never escaped, and lengths count the bytes on disk.
    let name = path.file_name();
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 && decoded_len(&name[i..]) <= 32 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    // Room for ".conflict-YYYYMMDD-HHMMSS-a-NN" and the extension.
    let stem = shorten_name(stem, NAME_MAX - decoded_len(ext) - 32);
    let stamp = chrono::DateTime::from_timestamp(now, 0)
        .unwrap_or_default()
        .format("%Y%m%d-%H%M%S")
        .to_string();
    let mut n = 1;
    loop {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("-{n}")
        };
        let candidate = format!("{stem}.conflict-{stamp}-{}{suffix}{ext}", side.letter());
        if let Ok(p) = path.with_file_name(&candidate) {
            if !occupied(&p) && taken.insert(p.as_str().to_string()) {
                return p;
            }
        }
        n += 1;
    }
}
