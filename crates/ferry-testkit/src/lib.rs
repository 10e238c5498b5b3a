//! Helpers shared by ferry's integration tests (ferry-core's and the `ferry` binary's):
//! a command's result with readable assertions, file-tree listings, bind mounts and
//! atomic swaps. Test code only: helpers panic with a message instead of returning
//! errors.

mod bytes;
mod fs;
mod run;

pub use bytes::noise;
pub use fs::{bind_mount, exchange, files_below, BindMount};
pub use run::{finish, Run};
