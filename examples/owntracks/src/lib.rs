//! OwnTracks location tracking on facteur: phones running the OwnTracks app publish their
//! positions to a facteur broker; the [recorder] stores them in SQLite ([store]); a web
//! page and an HTTP API close to OwnTracks Recorder's ([web]) list the devices and draw
//! their tracks, live; a [simulator] stands in for phones; [demo] runs everything in one
//! process.
//!
//! ```text
//! phones / simulator --MQTT (user, password; ACL owntracks/%u/#)--> facteur broker
//!   --> recorder (user "recorder", read-only) --> SQLite --> axum: page, /api/0/..., SSE
//! ```
#![forbid(unsafe_code)]

pub mod broker_setup;
pub mod demo;
pub mod geojson;
pub mod payload;
pub mod recorder;
pub mod simulator;
pub mod store;
pub mod time;
pub mod topic;
pub mod web;
