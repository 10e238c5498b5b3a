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

impl ToSql for SyncMode {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for SyncMode {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = v.as_str()?;
        SyncMode::parse(s).map_err(|_| unknown("mode", s))
    }
}

impl ToSql for ConflictPolicy {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for ConflictPolicy {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = v.as_str()?;
        ConflictPolicy::parse(s).map_err(|_| unknown("conflict policy", s))
    }
}

impl ToSql for RunStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for RunStatus {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = v.as_str()?;
        RunStatus::parse(s).ok_or_else(|| unknown("run status", s))
    }
}

impl ToSql for Schedule {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.to_string().into())
    }
}

impl FromSql for Schedule {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = v.as_str()?;
        Schedule::parse(s).map_err(|_| unknown("schedule", s))
    }
}

impl ToSql for ConflictStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for ConflictStatus {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = v.as_str()?;
        ConflictStatus::parse(s).ok_or_else(|| unknown("conflict status", s))
    }
}
