//! The index's typed columns: enums stored as their text names, refused on read when
//! a row holds a name this ferry does not know (the row is reported corrupt, never
//! taken as a default).

use crate::conduit::Schedule;
use crate::index::{ConflictStatus, RunStatus};
use crate::plan::{ConflictPolicy, SyncMode};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

fn unknown(what: &str, s: &str) -> FromSqlError {
    FromSqlError::Other(format!("unknown {what} {s:?}").into())
}

/// Stores `$ty` as its `Display` text and reads it back with `$parse` (text → `Option`);
/// a name `$parse` does not know is an error naming `$what`.
macro_rules! text_column {
    ($ty:ty, $what:literal, $parse:expr) => {
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(self.to_string().into())
            }
        }

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
