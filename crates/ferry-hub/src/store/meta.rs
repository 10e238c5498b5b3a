//! The hub's mutable metadata, behind one trait so a single node can use an embedded
//! SQLite file and a cluster of stateless nodes can share a PostgreSQL database.

use std::future::Future;

use super::StoreError;
use crate::{Epoch, ObjectId, ShareId};

/// A member device of a share: its ID (as ferry-net names devices) and the age
/// recipient its key slots are wrapped to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    pub device_id: String,
    pub recipient: String,
}

/// A share's current manifest: its version (1, 2, ...) and the sealed manifest or a
/// reference to it. Opaque bytes here; sealed by the devices, unreadable by the hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestHead {
    pub version: u64,
    pub manifest: Vec<u8>,
}

/// One stored key slot: a label (the device ID, or `passphrase`) and the slot's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRecord {
    pub label: String,
    pub slot: Vec<u8>,
}

/// What a compare-and-swap of a manifest head did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CasOutcome {
    /// The head moved to `version`.
    Swapped { version: u64 },
    /// Someone else moved it first; the head is at `current` (0 = no head).
    Conflict { current: u64 },
}

/// One record of a device's log in a share: the sealed batch of that device's index
/// entries with origin sequence numbers in `(after, upto]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub after: u64,
    pub upto: u64,
    pub batch: Vec<u8>,
}

/// What an append to a device's log did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOutcome {
    Appended,
    /// The log's head is not where the writer thought (`head`; 0 = empty): nothing stored.
    Conflict {
        head: u64,
    },
}

/// What the hub's metadata says of a stored object (see [`MetaStore::touch_objects`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectState {
    /// No row: not stored (or stored before this hub counted objects, until indexed).
    Absent,
    /// Stored; just touched, so garbage collection leaves it alone for a while.
    Present,
    /// Chosen by garbage collection and about to be deleted: neither reported present
    /// nor stored again until the collection is done with it.
    Doomed,
}

/// What committing a staged compaction of a log did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompactOutcome {
    /// The records up to `upto` were replaced; `freed` bytes of old records went.
    Compacted { freed: u64 },
    /// Nothing changed: the staged records do not cover `(0, upto]` exactly, or `upto`
    /// is not a record boundary of the log.
    Refused(&'static str),
}

/// Objects garbage collection may delete now, or why it may not.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GcPlan {
    /// Member devices whose log has records but who never said what it references:
    /// nothing of the share is collected until each has.
    pub blocked_by: Vec<String>,
    /// Objects marked doomed (this run's and any left by an interrupted one), with
    /// their sizes.
    pub doomed: Vec<(ObjectId, u64)>,
}

/// Every write that changes a share also bumps the share's change counter in the same
/// transaction, so a reader that saw counter N has seen every change up to N.
pub trait MetaStore: Send + Sync {
    /// Adds a member device, or updates its recipient.
    fn add_device(
        &self,
        share: &ShareId,
        device: &DeviceRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes a member device for good (it is recorded as removed, and
    /// [`MetaStore::removed_devices`] lists it); false if it was not a member.
    fn remove_device(
        &self,
        share: &ShareId,
        device_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Devices removed from the share, by device ID.
    fn removed_devices(
        &self,
        share: &ShareId,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Starts `epoch` with `slots`, only if the share's latest epoch is `epoch - 1`
    /// (none for epoch 1): of two members rotating at once exactly one wins (false for
    /// the other; nothing stored).
    fn create_epoch(
        &self,
        share: &ShareId,
        epoch: Epoch,
        slots: &[SlotRecord],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Counts `bytes` more stored for `share` if the total stays within `limit` (none:
    /// always); false when it would not (nothing counted). One statement, so uploads
    /// racing on several nodes cannot together pass the limit.
    fn reserve_bytes(
        &self,
        share: &ShareId,
        bytes: u64,
        limit: Option<u64>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes back bytes reserved for an upload that stored nothing.
    fn release_bytes(
        &self,
        share: &ShareId,
        bytes: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The bytes counted as stored for `share` (objects and log records).
    fn stored_bytes(&self, share: &ShareId)
        -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Sets (or, with `None`, removes) the hash of the share's restore token.
    fn set_restore_verifier(
        &self,
        share: &ShareId,
        verifier: Option<&[u8]>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn restore_verifier(
        &self,
        share: &ShareId,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// The share's member devices, by device ID.
    fn devices(
        &self,
        share: &ShareId,
    ) -> impl Future<Output = Result<Vec<DeviceRecord>, StoreError>> + Send;

    /// Stores key slots of `epoch`; a slot with the same label is replaced.
    fn put_key_slots(
        &self,
        share: &ShareId,
        epoch: Epoch,
        slots: &[SlotRecord],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The key slots of `epoch`, by label.
    fn key_slots(
        &self,
        share: &ShareId,
        epoch: Epoch,
    ) -> impl Future<Output = Result<Vec<SlotRecord>, StoreError>> + Send;

    /// The newest epoch that has key slots.
    fn latest_epoch(
        &self,
        share: &ShareId,
    ) -> impl Future<Output = Result<Option<Epoch>, StoreError>> + Send;

    fn manifest_head(
        &self,
        share: &ShareId,
    ) -> impl Future<Output = Result<Option<ManifestHead>, StoreError>> + Send;

    /// Moves the head from version `expected` (0 = none yet) to `expected + 1` with
    /// `manifest`, only if it is still at `expected`: of two nodes racing from the same
    /// version exactly one wins and the other learns the current version.
    fn swap_manifest_head(
        &self,
        share: &ShareId,
        expected: u64,
        manifest: &[u8],
    ) -> impl Future<Output = Result<CasOutcome, StoreError>> + Send;

    /// How many changes the share has had (0 for an unknown share).
    fn change_counter(
        &self,
        share: &ShareId,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The shares `device_id` is a member of.
    fn member_shares(
        &self,
        device_id: &str,
    ) -> impl Future<Output = Result<Vec<ShareId>, StoreError>> + Send;

    /// Lets `device_id` create shares on this hub.
    fn allow_device(&self, device_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether `device_id` may create shares.
    fn is_allowed(&self, device_id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Appends a record to `device_id`'s log in `share`, only if the log's head (the
    /// highest `upto`, 0 when empty) is `after`; `upto` must be above `after`, except
    /// for the first record of a log (an empty folder says it exists).
    fn append_log(
        &self,
        share: &ShareId,
        device_id: &str,
        after: u64,
        upto: u64,
        batch: &[u8],
    ) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send;

    /// Up to `limit` records of `device_id`'s log with `upto` above `after`, in order.
    fn log_after(
        &self,
        share: &ShareId,
        device_id: &str,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<LogRecord>, StoreError>> + Send;

    /// Each device's log head in `share` (devices without a log are absent).
    fn log_heads(
        &self,
        share: &ShareId,
    ) -> impl Future<Output = Result<Vec<(String, u64)>, StoreError>> + Send;

    // ---- Garbage collection and compaction ----

    /// For each of `ids` of `share`: present objects are touched (`now_ms`), so a
    /// collection deciding now leaves them; absent and doomed ones are reported so.
    fn touch_objects(
        &self,
        share: &ShareId,
        ids: &[ObjectId],
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<ObjectState>, StoreError>> + Send;

    /// Records an object just stored (or found stored), touched at `now_ms`; a doomed
    /// row stays doomed. True when the row is new (its bytes were not counted before).
    fn record_object(
        &self,
        share: &ShareId,
        id: &ObjectId,
        bytes: u64,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stages part of a compaction of `device_id`'s log: records (sealed by the
    /// device) and object IDs its compacted log references. `begin` drops anything
    /// staged before; returns the bytes of staged records so dropped (no longer
    /// counted in the share's usage).
    fn stage_compaction(
        &self,
        share: &ShareId,
        device_id: &str,
        begin: bool,
        records: &[LogRecord],
        refs: &[ObjectId],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// In one transaction: if the staged records cover `(0, upto]` without a gap and
    /// `upto` is a record boundary of the log, they replace the log's records up to
    /// `upto`, the staged references become the log's (dated `now_ms`), and the old
    /// records' bytes leave the share's usage.
    fn commit_compaction(
        &self,
        share: &ShareId,
        device_id: &str,
        upto: u64,
        now_ms: i64,
    ) -> impl Future<Output = Result<CompactOutcome, StoreError>> + Send;

    /// Marks doomed, in one transaction, the share's objects that no member's log
    /// references and that were last touched before both `cutoff_ms` and the oldest
    /// member's reference date; returns every doomed object.
    fn doom_unreferenced(
        &self,
        share: &ShareId,
        cutoff_ms: i64,
    ) -> impl Future<Output = Result<GcPlan, StoreError>> + Send;

    /// Forgets doomed objects whose blobs are deleted; their bytes leave the usage.
    fn forget_objects(
        &self,
        share: &ShareId,
        ids: &[ObjectId],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Every share this hub has seen.
    fn shares(&self) -> impl Future<Output = Result<Vec<ShareId>, StoreError>> + Send;

    /// Whether the objects in the blob store have been recorded (done once, by
    /// [`MetaStore::index_objects`]).
    fn objects_indexed(&self) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records objects found in the blob store that have no row (stored before this
    /// hub kept them), recomputes each listed share's usage from its objects and log
    /// records, and, with `done`, notes that indexing is done.
    fn index_objects(
        &self,
        share: &ShareId,
        found: &[(ObjectId, u64)],
        now_ms: i64,
        done: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

pub(crate) fn to_i64(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange("above i64::MAX"))
}

pub(crate) fn to_u64(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::OutOfRange("negative"))
}

pub(crate) fn to_epoch(value: i64) -> Result<Epoch, StoreError> {
    u32::try_from(value)
        .map(Epoch)
        .map_err(|_| StoreError::OutOfRange("epoch"))
}
