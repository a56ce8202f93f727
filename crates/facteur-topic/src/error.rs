//! The one error type for topic names and filters.

/// Why a topic name or filter is not valid. Offsets are byte offsets into the topic string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// Topic names and filters must hold at least one character.
    #[error("topic is empty")]
    Empty,
    /// Longer than the 65,535 bytes a 16-bit length can carry.
    #[error("topic is {len} bytes long, more than the 65535 allowed")]
    TooLong {
        /// The length found.
        len: usize,
    },
    /// MQTT strings must not contain U+0000.
    #[error("topic contains U+0000 at byte {at}")]
    NullCharacter {
        /// Where the character is.
        at: usize,
    },
    /// A topic name (what is published to) must not contain `+` or `#`.
    #[error("wildcard character at byte {at} in a topic name")]
    WildcardInName {
        /// Where the wildcard is.
        at: usize,
    },
    /// `+` or `#` shares its level with other characters, as in `a/b+/c`.
    #[error("wildcard at byte {at} is not a whole level")]
    WildcardNotWholeLevel {
        /// Where the wildcard is.
        at: usize,
    },
    /// `#` is followed by more levels, as in `a/#/b`.
    #[error("multi-level wildcard at byte {at} is not the last level")]
    MultiLevelNotLast {
        /// Where the wildcard is.
        at: usize,
    },
    /// A `$share/` filter whose share name is empty or holds `/`, `+` or `#`.
    #[error("invalid share name in a shared subscription")]
    InvalidShareName,
    /// A `$share/{name}/` filter with nothing after the share name.
    #[error("shared subscription has no topic filter after the share name")]
    MissingSharedFilter,
}
