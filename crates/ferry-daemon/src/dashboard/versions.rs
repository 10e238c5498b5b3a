//! The Versions page: each folder's kept versions (what ferry replaced or deleted), with
//! a Restore button (to its place, or to another path) that runs `ferry restore`'s code.

use super::auth::Viewer;
use super::html::{bytes, esc, time_el};
use ferry_core::index::Index;
use ferry_core::model::{display_key, key_under};

/// Versions shown per folder (newest first).
const LIMIT: usize = 500;

pub fn page(
    index: &Index,
    viewer: &Viewer,
    location: Option<i64>,
    message: Option<&str>,
) -> crate::Result<String> {
    let mut out = String::new();
    if let Some(m) = message {
        out.push_str(&format!(
            r#"<p role="status" class="notice">{}</p>"#,
            esc(m)
        ));
    }
    let locations = index.locations()?;
    if locations.is_empty() {
        out.push_str("<p>No folders yet.</p>");
        return Ok(out);
    }
    let current = location
        .and_then(|id| locations.iter().find(|l| l.id == id))
        .unwrap_or(&locations[0]);
    out.push_str(r#"<nav aria-label="Folders"><ul class="folders">"#);
    for l in &locations {
        let cur = if l.id == current.id {
            r#" aria-current="page""#
        } else {
            ""
        };
        out.push_str(&format!(
            r#"<li><a href="/versions?location={}"{cur}>{}</a></li>"#,
            l.id,
            esc(&l.root.to_string_lossy())
        ));
    }
    out.push_str("</ul></nav>");
    let mut rows = index.versions_in(current.id)?;
    rows.sort_by_key(|v| std::cmp::Reverse((v.created_at, v.id)));
    if rows.is_empty() {
        out.push_str(&format!(
            "<p>No kept versions in {}.</p>",
            esc(&current.root.to_string_lossy())
        ));
        return Ok(out);
    }
    out.push_str(&format!(
        r#"<table class="versions"><caption>Kept versions in {}, newest first</caption>
<thead><tr><th scope="col">Path</th><th scope="col">Kept</th><th scope="col">Size</th><th scope="col">Why</th><th scope="col">Restore</th></tr></thead><tbody>"#,
        esc(&current.root.to_string_lossy())
    ));
    for v in rows.iter().take(LIMIT) {
        let path = esc(&display_key(&v.path));
        out.push_str(&format!(
            r#"<tr id="version-{id}"><th scope="row"><code>{path}</code></th><td>{kept}</td><td>{size}</td><td>{reason}</td>
<td><form method="post" action="/versions/{id}/restore" class="actions">{csrf}
<label class="sr-only" for="to-{id}">Restore {path} to (empty: its own place)</label>
<input type="text" name="to" id="to-{id}" placeholder="to its place" size="18">
<button aria-label="Restore this version of {path}">Restore</button>
</form></td></tr>
"#,
            id = v.id,
            kept = time_el(v.created_at),
            size = bytes(v.size),
            reason = esc(&v.reason),
            csrf = viewer.csrf_field(),
        ));
    }
    out.push_str("</tbody></table>");
    if rows.len() > LIMIT {
        out.push_str(&format!(
            "<p>{} older versions not shown; see <code>ferry versions FILE</code>.</p>",
            rows.len() - LIMIT
        ));
    }
    Ok(out)
}

/// Restores version `id` to its own path or to `to`; a message for the page and the
/// folder to show after.
pub fn restore(index: &Index, id: i64, to: &str) -> (String, Option<i64>) {
    let found = match index.version(id) {
        Ok(Some(v)) => v,
        Ok(None) => return (format!("There is no version #{id}."), None),
        Err(e) => return (format!("Version #{id} not restored: {e}"), None),
    };
    let location = match index.locations() {
        Ok(ls) => ls.into_iter().find(|l| l.id == found.location_id),
        Err(e) => return (format!("Version #{id} not restored: {e}"), None),
    };
    let Some(location) = location else {
        return (format!("Version #{id} belongs to no folder."), None);
    };
    let path = key_under(&location.root, &found.path);
    let to = to.trim();
    let to = (!to.is_empty()).then(|| std::path::PathBuf::from(to));
    let msg = match ferry_core::versions::restore(index, &path, id, to.as_deref()) {
        Ok(out) => format!(
            "Version #{id} restored to {}{}.",
            ferry_core::model::escape_os(&out.restored_to),
            if out.replaced_kept {
                " (what it replaced is kept as a version)"
            } else {
                ""
            }
        ),
        Err(e) => format!("Version #{id} not restored: {e}"),
    };
    (msg, Some(location.id))
}
