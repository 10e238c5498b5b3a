/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid store location {location:?}: {reason}")]
    BadLocation { location: String, reason: String },
    #[error("invalid object ID prefix {0:?}: lowercase hex, at most 64 characters")]
    BadPrefix(String),
    #[error("unexpected blob name in the store: {0}")]
    UnexpectedBlob(String),
    #[error("object store: {0}")]
    Object(#[from] object_store::Error),
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("stored value out of range: {0}")]
    OutOfRange(&'static str),
    #[error("background task failed: {0}")]
    Task(String),
}
