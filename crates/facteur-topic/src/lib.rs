//! MQTT topic names and topic filters.
//!
//! This crate holds the one copy of MQTT's topic rules used by every other facteur crate:
//!
//! * [`TopicName`] and [`TopicFilter`]: validated, borrowed topic strings (MQTT 3.1.1 §4.7 and
//!   MQTT 5.0 §4.7), with [`SharedFilter`] for `$share/{group}/{filter}` subscriptions.
//! * [`matches()`]: does a filter match a name, without allocating.
//!
//! With the `alloc` feature (on by default through `std`):
//!
//! * [`OwnedTopicName`] and [`OwnedTopicFilter`]: the same, owning their string.
//! * [`SubscriptionTree`]: a trie of subscriptions that finds every subscriber of a published
//!   topic, shared subscriptions (`$share/{group}/{filter}`) included, with a [`Pick`] policy
//!   per group ([`RoundRobin`] by default).
//! * [`RetainedIndex`]: retained messages by topic name, looked up by filter.
//!
//! It is `#![no_std]`; without `alloc` it needs no allocator.
//!
//! ```
//! use facteur_topic::{matches, TopicFilter, TopicName};
//!
//! let filter = TopicFilter::new("maison/+/temperature")?;
//! let name = TopicName::new("maison/etage1/temperature")?;
//! assert!(matches(filter, name));
//! assert!(TopicName::new("maison/#").is_err()); // no wildcard in a name
//! # Ok::<(), facteur_topic::TopicError>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(test)]
extern crate std;

#[cfg(feature = "alloc")]
mod arena;
mod error;
mod filter;
#[cfg(feature = "alloc")]
mod level;
mod matching;
mod name;
#[cfg(feature = "alloc")]
mod owned;
#[cfg(feature = "alloc")]
mod retained;
mod scan;
#[cfg(feature = "alloc")]
mod tree;
#[cfg(feature = "alloc")]
mod vecmap;

pub use error::TopicError;
pub use filter::{SharedFilter, TopicFilter, SHARE_PREFIX};
pub use matching::matches;
pub use name::TopicName;
#[cfg(feature = "alloc")]
pub use owned::{OwnedTopicFilter, OwnedTopicName};
#[cfg(feature = "alloc")]
pub use retained::RetainedIndex;
#[doc(hidden)]
pub use scan::{all_plain_filters_valid, find_any_of3};
#[cfg(feature = "alloc")]
pub use tree::{Pick, RoundRobin, SubscriptionTree};

/// The longest topic name or filter MQTT can carry: its length travels as a 16-bit integer.
pub const MAX_TOPIC_LEN: usize = 65_535;

/// The separator between topic levels.
pub const LEVEL_SEPARATOR: char = '/';
/// The single-level wildcard, valid only as a whole level of a filter.
pub const SINGLE_LEVEL_WILDCARD: char = '+';
/// The multi-level wildcard, valid only as the whole last level of a filter.
pub const MULTI_LEVEL_WILDCARD: char = '#';

/// Checks the rules shared by names and filters: length and no U+0000.
fn check_common(topic: &str) -> Result<(), TopicError> {
    if topic.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { len: topic.len() });
    }
    if let Some(at) = scan::find_any_of3(topic.as_bytes(), 0, 0, 0) {
        return Err(TopicError::NullCharacter { at });
    }
    Ok(())
}
