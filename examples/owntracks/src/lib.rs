//! OwnTracks location tracking on facteur: phones running the OwnTracks app publish their
//! positions to a facteur broker; the [recorder] stores them in SQLite ([store]).
#![forbid(unsafe_code)]

pub mod payload;
pub mod recorder;
pub mod store;
pub mod time;
pub mod topic;
