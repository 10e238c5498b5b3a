//! Immutable blobs (sealed objects) on object storage.
//!
//! Layout: `shares/<share>/objects/<first two hex digits>/<object ID hex>`. Puts are
//! create-only (`PutMode::Create`): a blob is never overwritten. An object ID names one
//! plaintext chunk within a share, so a second put of the same ID carries the same
//! chunk (sealed with other random keys) and is reported as already there.

use std::path::Path as FsPath;
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::StoreError;
use crate::{ObjectId, ShareId};

/// What a put did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Stored,
    /// A blob with this ID was already there; it was left as it was.
    AlreadyPresent,
}

#[derive(Clone, Debug)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
}

impl BlobStore {
    /// Opens a store by location:
    ///
    /// - a directory path (or `file:///dir`): blobs as files under it (created if
    ///   missing), fsynced on write;
    /// - `s3://BUCKET?endpoint=http://127.0.0.1:9000&region=us-east-1`: any
    ///   S3-compatible store. Credentials come from the usual `AWS_*` environment
    ///   variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...); any object_store
    ///   S3 option may also be given in the query (`access_key_id=...`), but a URL
    ///   tends to end up in logs, so prefer the environment for secrets. An `http://`
    ///   endpoint is allowed (for a store on loopback or a private network).
    pub fn open(location: &str) -> Result<Self, StoreError> {
        if location.starts_with("s3://") {
            return Self::s3(location);
        }
        let dir = match location.strip_prefix("file://") {
            Some(path) => path,
            None if location.contains("://") => {
                return Err(bad(location, "only s3:// and file:// URLs, or a path"));
            }
            None => location,
        };
        Self::local(FsPath::new(dir))
    }

    pub fn local(dir: &FsPath) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| bad(&dir.display().to_string(), &e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(dir)?.with_fsync(true);
        Ok(BlobStore {
            inner: Arc::new(store),
        })
    }

    fn s3(location: &str) -> Result<Self, StoreError> {
        let url = url::Url::parse(location).map_err(|e| bad(location, &e.to_string()))?;
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| bad(location, "no bucket"))?;
        if !matches!(url.path(), "" | "/") {
            return Err(bad(location, "a path inside the bucket is not supported"));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (key, value) in url.query_pairs() {
            let config_key: AmazonS3ConfigKey = key
                .parse()
                .map_err(|_| bad(location, &format!("unknown S3 option {key:?}")))?;
            if config_key == AmazonS3ConfigKey::Endpoint && value.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
            builder = builder.with_config(config_key, value);
        }
        Ok(BlobStore {
            inner: Arc::new(builder.build()?),
        })
    }

    fn path(share: &ShareId, id: &ObjectId) -> Path {
        let hex = id.to_hex();
        Path::from(format!("shares/{share}/objects/{}/{hex}", &hex[..2]))
    }

    /// Stores `bytes` as object `id`, create-only.
    pub async fn put(
        &self,
        share: &ShareId,
        id: &ObjectId,
        bytes: Vec<u8>,
    ) -> Result<PutOutcome, StoreError> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .inner
            .put_opts(&Self::path(share, id), PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => Ok(PutOutcome::Stored),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(PutOutcome::AlreadyPresent),
            Err(e) => Err(e.into()),
        }
    }

    /// The blob, or `None` if there is none by this ID.
    pub async fn get(&self, share: &ShareId, id: &ObjectId) -> Result<Option<Vec<u8>>, StoreError> {
        match self.inner.get(&Self::path(share, id)).await {
            Ok(result) => Ok(Some(result.bytes().await?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn exists(&self, share: &ShareId, id: &ObjectId) -> Result<bool, StoreError> {
        match self.inner.head(&Self::path(share, id)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a blob (for garbage collection); removing one that is gone is not an error.
    pub async fn delete(&self, share: &ShareId, id: &ObjectId) -> Result<(), StoreError> {
        match self.inner.delete(&Self::path(share, id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object of the share with its stored size (for indexing what was stored
    /// before the hub recorded objects), sorted by ID.
    pub async fn list_sized(&self, share: &ShareId) -> Result<Vec<(ObjectId, u64)>, StoreError> {
        let dir = format!("shares/{share}/objects");
        let metas: Vec<_> = self
            .inner
            .list(Some(&Path::from(dir)))
            .try_collect()
            .await?;
        let mut out = Vec::new();
        for meta in metas {
            let name = meta.location.filename().unwrap_or_default();
            let id: ObjectId = name
                .parse()
                .map_err(|_| StoreError::UnexpectedBlob(meta.location.to_string()))?;
            out.push((id, meta.size));
        }
        out.sort();
        Ok(out)
    }

    /// The share's object IDs whose hex form starts with `prefix` (`""` for all), sorted.
    pub async fn list(&self, share: &ShareId, prefix: &str) -> Result<Vec<ObjectId>, StoreError> {
        let prefix_ok = prefix.len() <= 64
            && prefix
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !prefix_ok {
            return Err(StoreError::BadPrefix(prefix.to_owned()));
        }
        let dir = match prefix.get(..2) {
            Some(fanout) => format!("shares/{share}/objects/{fanout}"),
            None => format!("shares/{share}/objects"),
        };
        let metas: Vec<_> = self
            .inner
            .list(Some(&Path::from(dir)))
            .try_collect()
            .await?;
        let mut ids = Vec::new();
        for meta in metas {
            let name = meta.location.filename().unwrap_or_default();
            let id: ObjectId = name
                .parse()
                .map_err(|_| StoreError::UnexpectedBlob(meta.location.to_string()))?;
            if name.starts_with(prefix) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }
}

fn bad(location: &str, reason: &str) -> StoreError {
    StoreError::BadLocation {
        location: location.to_owned(),
        reason: reason.to_owned(),
    }
}
