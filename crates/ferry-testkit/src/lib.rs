//! Helpers shared by ferry's integration tests (ferry-core's and the `ferry` binary's):
//! a command's result with readable assertions, file-tree listings and snapshots, bind mounts and
//! atomic swaps. Test code only: helpers panic with a message instead of returning
//! errors.

mod bytes;
mod fs;
mod run;
mod tree;

pub use bytes::noise;
pub use fs::{bind_mount, exchange, files_below, BindMount};
pub use run::{finish, Run};
pub use tree::{
    ago, kept_versions, names_starting_with, read, same_bytes, set_mode, set_mtime, snapshot,
    write, Content, Node, Snapshot,
};
