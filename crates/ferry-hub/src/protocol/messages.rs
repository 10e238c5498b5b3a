//! The hub protocol's messages (prost derive; a field tag is never reused), and the
//! plaintext records devices seal before the hub sees them.

use ferry_net::wire::share::WireEntry;

/// One request, on a stream the device opened.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    #[prost(
        oneof = "Req",
        tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15"
    )]
    pub req: Option<Req>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Req {
    /// The shares the asking device is a member of, with what it needs of each.
    #[prost(message, tag = "1")]
    ListShares(ListShares),
    /// Makes a share (an admitted device) or adds members to it (a member).
    #[prost(message, tag = "2")]
    CreateShare(CreateShare),
    /// The asking device's age recipient for a share, signed with its device key.
    #[prost(message, tag = "3")]
    Register(Register),
    #[prost(message, tag = "4")]
    PutSlots(PutSlots),
    #[prost(message, tag = "5")]
    PutHead(PutHead),
    /// Which of these object IDs the hub lacks.
    #[prost(message, tag = "6")]
    Missing(Missing),
    #[prost(message, tag = "7")]
    PutObject(PutObject),
    #[prost(message, tag = "8")]
    GetObject(GetObject),
    /// Appends a sealed batch to the asking device's own log.
    #[prost(message, tag = "9")]
    Append(Append),
    #[prost(message, tag = "10")]
    ReadLog(ReadLog),
    /// Removes a member from a share (for good: it cannot be added back); the hub
    /// stops serving it that share. The remover then starts a new key epoch.
    #[prost(message, tag = "11")]
    RemoveMember(RemoveMember),
    /// Sets the hash of the share's restore token (a member that set a passphrase).
    #[prost(message, tag = "12")]
    SetRestore(SetRestore),
    /// On [`super::HUB_RESTORE_ALPN`] only, from any device: the restore token of a
    /// share's passphrase makes it a member and gets it the passphrase slots.
    #[prost(message, tag = "13")]
    Restore(Restore),
    /// Part of a compaction of the asking device's own log: records that will replace
    /// its log up to a head, and object IDs the compacted log references.
    #[prost(message, tag = "14")]
    StageCompaction(StageCompaction),
    /// Swaps the staged records in for the log's records up to `upto` and makes the
    /// staged object IDs the log's references (what garbage collection keeps).
    #[prost(message, tag = "15")]
    CommitCompaction(CommitCompaction),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StageCompaction {
    #[prost(string, tag = "1")]
    pub share_id: String,
    /// Drops whatever was staged before (a compaction starts over).
    #[prost(bool, tag = "2")]
    pub begin: bool,
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<LogRecordMsg>,
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub refs: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CommitCompaction {
    #[prost(string, tag = "1")]
    pub share_id: String,
    #[prost(uint64, tag = "2")]
    pub upto: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SetRestore {
    #[prost(string, tag = "1")]
    pub share_id: String,
    #[prost(bytes = "vec", tag = "2")]
    pub verifier: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Restore {
    #[prost(string, tag = "1")]
    pub share_id: String,
    #[prost(bytes = "vec", tag = "2")]
    pub token: Vec<u8>,
}

/// The share's passphrase slots, by epoch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RestoreReply {
    #[prost(message, repeated, tag = "1")]
    pub slots: Vec<EpochSlot>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RemoveMember {
    #[prost(string, tag = "1")]
    pub share_id: String,
    #[prost(string, tag = "2")]
    pub device_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListShares {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateShare {
    #[prost(string, tag = "1")]
    pub share_id: String,
    #[prost(string, repeated, tag = "2")]
    pub members: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Register {
    #[prost(string, tag = "1")]
    pub share_id: String,
    /// `age1…` recipient, a space, and the Ed25519 signature in hex (see `client`).
    #[prost(string, tag = "2")]
    pub recipient: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SlotMsg {
    #[prost(string, tag = "1")]
    pub label: String,
    #[prost(bytes = "vec", tag = "2")]
    pub slot: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutSlots {
    #[prost(string, tag = "1")]
    pub share_id: String,
    #[prost(uint32, tag = "2")]
    pub epoch: u32,
    #[prost(message, repeated, tag = "3")]
    pub slots: Vec<SlotMsg>,
    /// Starts `epoch` (the latest + 1) with these slots; refused with `Conflict` if
    /// another member started it first. Without it, slots are added to an epoch the
    /// share has.
    #[prost(bool, tag = "4")]
    pub new_epoch: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutHead {
    #[prost(string, tag = "1")]
    pub share_id: String,
    #[prost(uint64, tag = "2")]
    pub expected: u64,
    #[prost(bytes = "vec", tag = "3")]
    pub manifest: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Missing {
    #[prost(string, tag = "1")]
    pub share_id: String,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub ids: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutObject {
    #[prost(string, tag = "1")]
    pub share_id: String,
    #[prost(bytes = "vec", tag = "2")]
    pub id: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetObject {
    #[prost(string, tag = "1")]
    pub share_id: String,
    #[prost(bytes = "vec", tag = "2")]
    pub id: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Append {
    #[prost(string, tag = "1")]
    pub share_id: String,
    #[prost(uint64, tag = "2")]
    pub after: u64,
    #[prost(uint64, tag = "3")]
    pub upto: u64,
    #[prost(bytes = "vec", tag = "4")]
    pub batch: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadLog {
    #[prost(string, tag = "1")]
    pub share_id: String,
    #[prost(string, tag = "2")]
    pub device_id: String,
    #[prost(uint64, tag = "3")]
    pub after: u64,
}

/// The hub's answer to one request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Reply {
    #[prost(oneof = "Rep", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub rep: Option<Rep>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Rep {
    #[prost(message, tag = "1")]
    Ok(Done),
    #[prost(message, tag = "2")]
    Error(HubError),
    #[prost(message, tag = "3")]
    Shares(SharesReply),
    #[prost(message, tag = "4")]
    Missing(Missing),
    #[prost(message, tag = "5")]
    Object(ObjectReply),
    #[prost(message, tag = "6")]
    Log(LogReply),
    #[prost(message, tag = "7")]
    Restore(RestoreReply),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Done {}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum ErrorCode {
    Unspecified = 0,
    /// Not a member of that share (or not admitted to create one).
    Refused = 1,
    /// Malformed: bad IDs, not a sealed object, a bad range.
    Invalid = 2,
    /// Over a size cap.
    TooLarge = 3,
    /// A compare-and-swap or log append lost: `head` says where things are.
    Conflict = 4,
    /// The hub's own store failed.
    Internal = 5,
    /// The upload would take the share past the hub's quota: nothing was stored.
    OverQuota = 6,
    /// The object is being deleted by garbage collection: try again shortly.
    Busy = 7,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HubError {
    #[prost(enumeration = "ErrorCode", tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(uint64, tag = "3")]
    pub head: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Member {
    #[prost(string, tag = "1")]
    pub device_id: String,
    /// Empty until the device registered.
    #[prost(string, tag = "2")]
    pub recipient: String,
    /// It has a key slot in the latest epoch.
    #[prost(bool, tag = "3")]
    pub has_slot: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LogHead {
    #[prost(string, tag = "1")]
    pub device_id: String,
    #[prost(uint64, tag = "2")]
    pub upto: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HubShare {
    #[prost(string, tag = "1")]
    pub share_id: String,
    #[prost(message, repeated, tag = "2")]
    pub members: Vec<Member>,
    /// The latest epoch with key slots (0: none yet).
    #[prost(uint32, tag = "3")]
    pub epoch: u32,
    /// The asking device's slot in that epoch (empty: none).
    #[prost(bytes = "vec", tag = "4")]
    pub my_slot: Vec<u8>,
    /// The sealed share descriptor and its version (0: none).
    #[prost(uint64, tag = "5")]
    pub head_version: u64,
    #[prost(bytes = "vec", tag = "6")]
    pub head: Vec<u8>,
    #[prost(message, repeated, tag = "7")]
    pub logs: Vec<LogHead>,
    /// The labels of the latest epoch's slots (a device ID, or `passphrase`): a
    /// device label that is no longer a member means the epoch must be rotated.
    #[prost(string, repeated, tag = "8")]
    pub slot_holders: Vec<String>,
    /// The asking device's slots of earlier epochs.
    #[prost(message, repeated, tag = "9")]
    pub older_slots: Vec<EpochSlot>,
    /// Devices removed from the share (never members again).
    #[prost(string, repeated, tag = "10")]
    pub removed: Vec<String>,
    /// Bytes the hub counts as stored for the share (sealed objects and log records).
    #[prost(uint64, tag = "11")]
    pub stored_bytes: u64,
    /// The hub's quota per share (0: none).
    #[prost(uint64, tag = "12")]
    pub quota: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EpochSlot {
    #[prost(uint32, tag = "1")]
    pub epoch: u32,
    #[prost(bytes = "vec", tag = "2")]
    pub slot: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SharesReply {
    #[prost(message, repeated, tag = "1")]
    pub shares: Vec<HubShare>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ObjectReply {
    #[prost(bool, tag = "1")]
    pub found: bool,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LogRecordMsg {
    #[prost(uint64, tag = "1")]
    pub after: u64,
    #[prost(uint64, tag = "2")]
    pub upto: u64,
    #[prost(bytes = "vec", tag = "3")]
    pub batch: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LogReply {
    #[prost(message, repeated, tag = "1")]
    pub records: Vec<LogRecordMsg>,
}

/// Pushed by the hub on a stream it opens: a share the device is a member of changed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Changed {
    #[prost(string, tag = "1")]
    pub share_id: String,
}

// ---- Sealed by devices; the hub never sees these in the clear. ----

/// What a member needs to accept a share it was offered through the hub: the hub's
/// manifest head of the share, sealed under the manifest key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Descriptor {
    #[prost(string, tag = "1")]
    pub share_id: String,
    /// The device that made the share.
    #[prost(string, tag = "2")]
    pub creator: String,
    /// Its folder's location ID (its replica ID in version vectors).
    #[prost(string, tag = "3")]
    pub folder_id: String,
    #[prost(string, tag = "4")]
    pub folder_name: String,
    #[prost(string, tag = "5")]
    pub mode: String,
    #[prost(string, tag = "6")]
    pub conflict_policy: String,
}

/// One entry of a batch with the origin device's sequence number.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchEntry {
    #[prost(message, optional, tag = "1")]
    pub entry: Option<WireEntry>,
    #[prost(uint64, tag = "2")]
    pub seq: u64,
}

/// One object of a file's content: its ID and how many plaintext bytes it holds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ObjectRef {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(uint32, tag = "2")]
    pub len: u32,
}

/// The objects a content (by its BLAKE3) is cut into by the share's keyed chunker.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContentObjects {
    #[prost(bytes = "vec", tag = "1")]
    pub content: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    pub objects: Vec<ObjectRef>,
}

/// One record of a device's log: its folder's entries with sequence in (after, upto].
#[derive(Clone, PartialEq, prost::Message)]
pub struct Batch {
    #[prost(string, tag = "1")]
    pub device_id: String,
    #[prost(string, tag = "2")]
    pub folder_id: String,
    #[prost(uint64, tag = "3")]
    pub after: u64,
    #[prost(uint64, tag = "4")]
    pub upto: u64,
    #[prost(message, repeated, tag = "5")]
    pub entries: Vec<BatchEntry>,
    #[prost(message, repeated, tag = "6")]
    pub contents: Vec<ContentObjects>,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply {
            rep: Some(Rep::Ok(Done {})),
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Reply {
        Reply {
            rep: Some(Rep::Error(HubError {
                code: code as i32,
                message: message.into(),
                head: 0,
            })),
        }
    }
}
