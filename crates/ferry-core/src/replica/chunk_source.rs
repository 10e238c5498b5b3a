//! Content by hash. A replica that writes a file asks for the pieces of its content
//! from chunk sources, nearest first: this device's own files (a rename, a copy or the
//! old version of the same file hold most chunks of a small change), then a peer or
//! the hub. Every piece is checked against its BLAKE3 before it is used, so a source
//! that lies or a file that changed under it costs a retry elsewhere, never a wrong
//! byte.

use crate::error::Result;
use crate::index::Index;
use crate::model::chunk::Hash;
use crate::model::entry::{EntryKind, FileState, Presence};
use crate::replica::location::Location;
use std::cell::RefCell;
use std::collections::hash_map::{Entry, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// `len` bytes at `offset` of the content whose BLAKE3 is `content`; `hash` is the
/// BLAKE3 of those bytes (for a one-chunk file, the content hash itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// BLAKE3 of the whole content the piece belongs to.
    pub content: Hash,
    /// Where the piece starts in it.
    pub offset: u64,
    /// How many bytes it has.
    pub len: u32,
    /// BLAKE3 of the piece itself.
    pub hash: Hash,
}

/// The pieces `state`'s content is made of, in order: one per chunk, or the whole file
/// as one piece when it has no chunk list (no larger than one chunk). Empty for an
/// empty file, a directory, or a file whose hash is unknown.
pub(crate) fn pieces_of(state: &FileState) -> Vec<Piece> {
    let Some(content) = state.hash else {
        return Vec::new();
    };
    if state.kind != EntryKind::File || state.size == 0 {
        return Vec::new();
    }
    if state.chunks.is_empty() {
        return match u32::try_from(state.size) {
            Ok(len) => vec![Piece {
                content,
                offset: 0,
                len,
                hash: content,
            }],
            Err(_) => Vec::new(),
        };
    }
    let mut offset = 0;
    (state.chunks.iter())
        .map(|c| {
            let p = Piece {
                content,
                offset,
                len: c.len,
                hash: c.hash,
            };
            offset += u64::from(c.len);
            p
        })
        .collect()
}

/// Somewhere pieces of content can be read from.
pub trait ChunkSource {
    /// Reads `piece` into `buf` (replacing what it held) and checks its hash. `Ok(false)`
    /// when this source does not have it, or what it has no longer matches; an error
    /// only when the source itself failed (the caller may try the next one).
    fn read(&self, piece: &Piece, buf: &mut Vec<u8>) -> Result<bool>;

    /// Pieces the caller will ask this source for soon, in order: a source far away
    /// may start fetching them now, so the round trips overlap (the default does
    /// nothing). Asking again for pieces already asked for costs nothing.
    fn prefetch(&self, _upcoming: &[Piece]) {}

    /// The caller is done with `content` (built, or given up): pieces of it fetched
    /// ahead and not read may be dropped (the default does nothing).
    fn forget(&self, _content: &Hash) {}
}

/// Reads `piece` at its offset of `file` into `buf`; whether the bytes match its hash.
pub(crate) fn read_piece(file: &File, piece: &Piece, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    buf.resize(piece.len as usize, 0);
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], piece.offset + done as u64) {
            Ok(0) => return Ok(false), // shorter than indexed: changed
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Hash::of(buf) == piece.hash)
}

/// One open file whose content is known (the indexed state it was opened against):
/// serves pieces of that content only.
pub struct OpenContent {
    file: File,
    state: FileState,
}

impl OpenContent {
    /// `None` when the state names no content (no hash).
    pub fn new(file: File, state: &FileState) -> Option<OpenContent> {
        state.hash?;
        Some(OpenContent {
            file,
            state: state.clone(),
        })
    }

    /// The state the file was opened against (its content is this state's).
    pub fn state(&self) -> &FileState {
        &self.state
    }
}

impl ChunkSource for OpenContent {
    fn read(&self, piece: &Piece, buf: &mut Vec<u8>) -> Result<bool> {
        if self.state.hash != Some(piece.content) {
            return Ok(false);
        }
        // A read error here only means this file cannot help; the next source can.
        Ok(read_piece(&self.file, piece, buf).unwrap_or(false))
    }
}

/// The files of one local location, found by content hash through the index and read
/// through the root's handle (never through a symlink). Each content looked up stays
/// known for its next pieces: its file open, or that there is none here. (A writer
/// asks for a handful of contents per file: the new one and the old versions.)
pub struct LocalContent<'a> {
    index: &'a Index,
    loc: &'a Location,
    looked_up: RefCell<HashMap<Hash, Option<(File, PathBuf)>>>,
}

impl<'a> LocalContent<'a> {
    /// Contents of location `loc`, found through `index`.
    pub fn new(index: &'a Index, loc: &'a Location) -> Self {
        LocalContent {
            index,
            loc,
            looked_up: RefCell::new(HashMap::new()),
        }
    }

    /// A live file of this location whose indexed content is `content`, opened (with
    /// its path, for errors), if it still has the indexed size and mtime.
    fn open(&self, content: &Hash) -> Result<Option<(File, PathBuf)>> {
        open_content(self.index, self.loc, content)
    }
}

/// A live file of `loc` whose indexed content is `content`, opened through the root's
/// handle (with its path, for errors), if it still has the indexed size and mtime.
fn open_content(index: &Index, loc: &Location, content: &Hash) -> Result<Option<(File, PathBuf)>> {
    let Some(path) = index.find_file_by_hash(loc.id(), content)? else {
        return Ok(None);
    };
    let Some(e) = index.entry(loc.id(), &path)? else {
        return Ok(None);
    };
    if e.state.presence != Presence::Live {
        return Ok(None);
    }
    match crate::replica::disk::open_source(loc, &path, &e.stat()) {
        Ok((f, _)) => Ok(Some((f, path.under(&loc.root)))),
        // Changed since it was indexed: not a source now.
        Err(crate::error::Error::Changed(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

impl ChunkSource for LocalContent<'_> {
    fn read(&self, piece: &Piece, buf: &mut Vec<u8>) -> Result<bool> {
        let mut looked_up = self.looked_up.borrow_mut();
        let found = match looked_up.entry(piece.content) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(self.open(&piece.content)?),
        };
        let Some((file, shown)) = found else {
            return Ok(false);
        };
        crate::error::IoContext::ctx(read_piece(file, piece, buf), "read", shown.clone())
    }
}

/// How many files a [`FolderContent`] keeps open between requests.
const FOLDER_OPEN_FILES: usize = 64;

/// The files of one local location, owning its index connection: a server answering
/// another device's requests from several threads at once. Look-ups take turns on the
/// index; the files found stay open for the next pieces of the same content (a few
/// dozen at most), and reads run in parallel. A file that stopped matching (a piece
/// whose bytes do not hash right) is looked up again.
pub struct FolderContent {
    inner: std::sync::Mutex<(Index, Location)>,
    open: std::sync::Mutex<HashMap<Hash, std::sync::Arc<(File, PathBuf)>>>,
}

impl FolderContent {
    /// Serves `loc`'s files, found through `index` (a connection of its own).
    pub fn new(index: Index, loc: Location) -> FolderContent {
        FolderContent {
            inner: std::sync::Mutex::new((index, loc)),
            open: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, content: &Hash) -> Option<std::sync::Arc<(File, PathBuf)>> {
        self.open.lock().ok()?.get(content).cloned()
    }
}

impl ChunkSource for FolderContent {
    fn read(&self, piece: &Piece, buf: &mut Vec<u8>) -> Result<bool> {
        if let Some(f) = self.cached(&piece.content) {
            if read_piece(&f.0, piece, buf).unwrap_or(false) {
                return Ok(true);
            }
            if let Ok(mut open) = self.open.lock() {
                open.remove(&piece.content);
            }
        }
        let found = {
            let guard = self
                .inner
                .lock()
                .map_err(|_| crate::error::Error::Other("content server poisoned".into()))?;
            let (index, loc) = &*guard;
            open_content(index, loc, &piece.content)?
        };
        let Some(found) = found else {
            return Ok(false);
        };
        let found = std::sync::Arc::new(found);
        let read = read_piece(&found.0, piece, buf);
        if let Ok(mut open) = self.open.lock() {
            if open.len() >= FOLDER_OPEN_FILES {
                open.clear();
            }
            open.insert(piece.content, found.clone());
        }
        crate::error::IoContext::ctx(read, "read", found.1.clone())
    }
}
