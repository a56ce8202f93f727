//! OwnTracks location tracking on facteur: phones running the OwnTracks app publish their
//! positions to a facteur broker; the [recorder] stores them in SQLite ([store]); a web
//! page and an HTTP API close to OwnTracks Recorder's ([web]) list the devices and draw
//! their tracks, live.
#![forbid(unsafe_code)]

pub mod geojson;
pub mod payload;
pub mod recorder;
pub mod store;
pub mod time;
pub mod topic;
pub mod web;
