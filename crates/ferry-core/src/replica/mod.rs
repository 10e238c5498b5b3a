//! A local folder as a replica: its identity and lock (`location`), safe access beneath
//! its root (`beneath`, `disk`), the walk and scan that index it, ignore rules, the
//! version store.

pub mod beneath;
pub mod chunk_source;
pub(crate) mod disk;
pub mod fs_ops;
pub mod ignore_rules;
pub mod location;
pub mod overlap;
pub mod scan;
pub mod version_store;
pub mod view;
pub mod walk;
