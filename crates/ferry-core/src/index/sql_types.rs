//! The index's typed columns: enums stored as their text names, refused on read when
//! a row holds a name this ferry does not know (the row is reported corrupt, never
//! taken as a default).

use crate::conduit::Schedule;
use crate::index::{ConflictStatus, Resolution, RunStatus};
use crate::model::entry::EntryKind;
use crate::plan::{ConflictPolicy, Side, SyncMode};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

fn unknown(what: &str, s: &str) -> FromSqlError {
    FromSqlError::Other(format!("unknown {what} {s:?}").into())
}

/// Stores `$ty` as its `Display` text (or the `&'static str` `$name` gives) and reads
/// it back with `$parse` (text → `Option`); a name `$parse` does not know is an error
/// naming `$what`.
macro_rules! text_column {
    ($ty:ty, $what:literal, $parse:expr) => {
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(self.to_string().into())
            }
        }
        text_column!(@read $ty, $what, $parse);
    };
    ($ty:ty, $what:literal, $parse:expr, $name:expr) => {
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                let name: fn(&$ty) -> &'static str = $name;
                Ok(name(self).into())
            }
        }
        text_column!(@read $ty, $what, $parse);
    };
    (@read $ty:ty, $what:literal, $parse:expr) => {

        impl FromSql for $ty {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = v.as_str()?;
                let parse: fn(&str) -> Option<$ty> = $parse;
                parse(s).ok_or_else(|| unknown($what, s))
            }
        }
    };
}

text_column!(SyncMode, "mode", |s| SyncMode::parse(s).ok());
text_column!(ConflictPolicy, "conflict policy", |s| {
    ConflictPolicy::parse(s).ok()
});
text_column!(RunStatus, "run status", RunStatus::parse);
text_column!(Schedule, "schedule", |s| Schedule::parse(s).ok());
text_column!(ConflictStatus, "conflict status", ConflictStatus::parse);
text_column!(Resolution, "resolution", Resolution::parse);
text_column!(EntryKind, "kind", EntryKind::parse, |k| k.as_str());
text_column!(
    Side,
    "side",
    |s| match s {
        "a" => Some(Side::A),
        "b" => Some(Side::B),
        _ => None,
    },
    |s| s.letter()
);
