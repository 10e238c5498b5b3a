//! Garbage collection of objects no member's log references any more.
//!
//! The hub cannot read what a log references, so each member says it when it compacts
//! its own log (`StageCompaction` / `CommitCompaction`): the object IDs its compacted log
//! references, dated by the commit. An object is deleted only when
//!
//! - no current member's references include it,
//! - every member whose log has records has sent references (else the share waits),
//! - it was last touched (stored, or reported present to an uploader) before the
//!   oldest member's reference date *and* more than the grace period ago.
//!
//! A device appends a record only after asking the hub for each of its objects (an
//! upload or a `Missing` answer touches the object), so an object a record appended
//! after a member's references mentions was touched after them and is kept. Choosing
//! and deleting are two steps: the objects are first marked doomed in one transaction
//! (a doomed object is reported missing and refused for upload until it is gone, so an
//! uploader cannot count on it), then deleted from the blob store, then forgotten.
//! A run interrupted in between finishes the doomed ones next time.

use std::time::{Duration, Instant};

use crate::{BlobStore, MetaStore, ShareId, StoreError};

/// Blob deletions in flight at once.
const DELETE_AT_ONCE: usize = 32;

/// What one collection did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub shares: usize,
    pub objects_deleted: u64,
    pub bytes_freed: u64,
    /// Shares not collected because a member with a log never sent its references.
    pub blocked: Vec<(ShareId, Vec<String>)>,
    pub millis: u64,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One collection over every share.
pub async fn collect<M: MetaStore>(
    meta: &M,
    blobs: &BlobStore,
    grace: Duration,
) -> Result<GcReport, StoreError> {
    let started = Instant::now();
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let mut report = GcReport::default();
    for share in meta.shares().await? {
        report.shares += 1;
        let plan = meta
            .doom_unreferenced(&share, now_ms().saturating_sub(grace_ms))
            .await?;
        if !plan.blocked_by.is_empty() {
            report.blocked.push((share.clone(), plan.blocked_by));
        }
        // Deletes go out DELETE_AT_ONCE at a time (an S3 delete is a round trip each).
        let mut gone = Vec::new();
        for part in plan.doomed.chunks(DELETE_AT_ONCE) {
            let mut deletes = Vec::with_capacity(part.len());
            for (id, _) in part {
                let share = &share;
                deletes.push(async move { (*id, blobs.delete(share, id).await) });
            }
            for (id, r) in futures_util::future::join_all(deletes).await {
                match r {
                    Ok(()) => gone.push(id),
                    Err(e) => tracing::warn!("share {share}: deleting object {id}: {e}"),
                }
            }
        }
        report.objects_deleted += gone.len() as u64;
        report.bytes_freed += meta.forget_objects(&share, &gone).await?;
    }
    report.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(report)
}

/// Records, once per hub (with no share yet, nothing is noted and the next start looks
/// again), the objects stored before the hub kept a row per object,
/// and recomputes every share's usage from its objects and log records (bytes stored
/// before quotas existed were not counted).
pub async fn index_stored_objects<M: MetaStore>(
    meta: &M,
    blobs: &BlobStore,
) -> Result<(), StoreError> {
    if meta.objects_indexed().await? {
        return Ok(());
    }
    let shares = meta.shares().await?;
    let last = shares.len();
    for (i, share) in shares.iter().enumerate() {
        let found = blobs.list_sized(share).await?;
        meta.index_objects(share, &found, now_ms(), i + 1 == last)
            .await?;
    }
    Ok(())
}
