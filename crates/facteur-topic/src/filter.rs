//! Topic filters: what a SUBSCRIBE asks for, wildcards included.

use crate::{check_common, TopicError, MULTI_LEVEL_WILDCARD, SINGLE_LEVEL_WILDCARD};

/// The prefix of an MQTT 5 shared subscription: `$share/{share name}/{filter}`.
pub const SHARE_PREFIX: &str = "$share/";

/// A validated topic filter: non-empty, at most 65,535 bytes, no U+0000, `+` and `#` only as
/// whole levels and `#` only as the last level.
///
/// A `$share/{group}/{filter}` string is a valid filter too; [`TopicFilter::shared`] splits it.
///
/// ```
/// use facteur_topic::TopicFilter;
/// assert!(TopicFilter::new("maison/+/temperature").is_ok());
/// assert!(TopicFilter::new("maison/#").is_ok());
/// assert!(TopicFilter::new("maison/#/x").is_err());
/// assert!(TopicFilter::new("maison/etage+").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter<'a>(&'a str);

impl<'a> TopicFilter<'a> {
    /// Validates `filter` as a topic filter (a `$share/` filter is checked as one too).
    #[inline]
    pub fn new(filter: &'a str) -> Result<Self, TopicError> {
        // The common case inline (a valid filter, not shared); the rest, and every error,
        // out of line.
        let bytes = filter.as_bytes();
        if !bytes.is_empty()
            && bytes.len() <= crate::MAX_TOPIC_LEN
            && bytes[0] != b'$'
            && crate::scan::is_valid_filter(bytes)
        {
            return Ok(Self(filter));
        }
        Self::new_slow(filter)
    }

    #[inline(never)]
    fn new_slow(filter: &'a str) -> Result<Self, TopicError> {
        validate_filter(filter)?;
        if filter.starts_with(SHARE_PREFIX) {
            SharedFilter::parse(filter)?;
        }
        Ok(Self(filter))
    }

    /// Wraps a string already known to be a valid filter.
    #[cfg(feature = "alloc")]
    pub(crate) fn new_unchecked(filter: &'a str) -> Self {
        debug_assert!(validate_filter(filter).is_ok());
        Self(filter)
    }

    /// The filter as a string.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// The levels of the filter, split on `/`.
    pub fn levels(&self) -> core::str::Split<'a, char> {
        self.0.split('/')
    }

    /// True if the filter holds `+` or `#`.
    pub fn has_wildcards(&self) -> bool {
        self.0
            .bytes()
            .any(|b| b == SINGLE_LEVEL_WILDCARD as u8 || b == MULTI_LEVEL_WILDCARD as u8)
    }

    /// The share name and inner filter when this is a `$share/{group}/{filter}` subscription.
    ///
    /// ```
    /// use facteur_topic::TopicFilter;
    /// let f = TopicFilter::new("$share/workers/jobs/+")?;
    /// let shared = f.shared().unwrap();
    /// assert_eq!(shared.group(), "workers");
    /// assert_eq!(shared.filter().as_str(), "jobs/+");
    /// # Ok::<(), facteur_topic::TopicError>(())
    /// ```
    pub fn shared(&self) -> Option<SharedFilter<'a>> {
        SharedFilter::parse(self.0).ok()
    }
}

impl core::fmt::Display for TopicFilter<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

impl AsRef<str> for TopicFilter<'_> {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// A shared subscription `$share/{group}/{filter}` split into its parts (MQTT 5.0 §4.8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SharedFilter<'a> {
    group: &'a str,
    filter: TopicFilter<'a>,
}

impl<'a> SharedFilter<'a> {
    /// Parses a `$share/{group}/{filter}` string. The group must be non-empty and hold none of
    /// `/`, `+`, `#`; the filter after it must be a valid, non-empty topic filter.
    pub fn parse(full: &'a str) -> Result<Self, TopicError> {
        let rest = full
            .strip_prefix(SHARE_PREFIX)
            .ok_or(TopicError::InvalidShareName)?;
        let (group, filter) = rest
            .split_once('/')
            .ok_or(TopicError::MissingSharedFilter)?;
        if group.is_empty() || group.contains(['+', '#']) {
            return Err(TopicError::InvalidShareName);
        }
        if filter.is_empty() {
            return Err(TopicError::MissingSharedFilter);
        }
        validate_filter(filter)?;
        Ok(Self {
            group,
            filter: TopicFilter(filter),
        })
    }

    /// The share name: subscribers with the same name share the messages.
    pub fn group(&self) -> &'a str {
        self.group
    }

    /// The filter messages are matched against.
    pub fn filter(&self) -> TopicFilter<'a> {
        self.filter
    }
}

/// Checks `filter` against the topic-filter rules, naming the first problem.
///
/// A valid filter is recognised eight bytes at a time ([`scan::is_valid_filter`]); a filter
/// that is not is then walked byte by byte for the exact error, so the errors are those of
/// the rules in order: empty, length, the first U+0000, the first misplaced wildcard.
///
/// [`scan::is_valid_filter`]: crate::scan::is_valid_filter
#[inline]
pub(crate) fn validate_filter(filter: &str) -> Result<(), TopicError> {
    if !filter.is_empty()
        && filter.len() <= crate::MAX_TOPIC_LEN
        && crate::scan::is_valid_filter(filter.as_bytes())
    {
        return Ok(());
    }
    first_filter_error(filter)
}

/// The rules one byte at a time, for the error [`validate_filter`] reports.
#[cold]
fn first_filter_error(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    check_common(filter)?;
    let bytes = filter.as_bytes();
    for (at, &b) in bytes.iter().enumerate() {
        if b != SINGLE_LEVEL_WILDCARD as u8 && b != MULTI_LEVEL_WILDCARD as u8 {
            continue;
        }
        let starts_level = at == 0 || bytes[at - 1] == b'/';
        let ends_level = at + 1 == bytes.len() || bytes[at + 1] == b'/';
        if !starts_level || !ends_level {
            return Err(TopicError::WildcardNotWholeLevel { at });
        }
        if b == MULTI_LEVEL_WILDCARD as u8 && at + 1 != bytes.len() {
            return Err(TopicError::MultiLevelNotLast { at });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_at_a_time_check_agrees_with_the_rules_byte_by_byte() {
        let check = |s: &str| {
            assert_eq!(
                crate::scan::is_valid_filter(s.as_bytes()),
                s.is_empty() || first_filter_error(s).is_ok(),
                "{s:?}"
            );
            // The inline path of `new` answers as the whole rules do, and the many-filter
            // check says yes only when they do (and the filter does not start with `$`).
            assert_eq!(TopicFilter::new(s), TopicFilter::new_slow(s), "{s:?}");
            assert_eq!(
                crate::all_plain_filters_valid([s]),
                !s.starts_with('$') && TopicFilter::new_slow(s).is_ok(),
                "{s:?}"
            );
            assert_eq!(
                crate::all_plain_filters_valid(["a/+", s, "#"]),
                crate::all_plain_filters_valid([s])
            );
        };
        let alphabet = [b'a', b'/', b'+', b'#', 0, b'$'];
        let mut checked = 0;
        // Every string up to 6 bytes over the bytes that matter.
        for len in 0..=6u32 {
            for mut n in 0..alphabet.len().pow(len) {
                let mut s = std::vec::Vec::new();
                for _ in 0..len {
                    s.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                check(core::str::from_utf8(&s).unwrap());
                checked += 1;
            }
        }
        // Longer ones: two special bytes and a `/` at every position, across word boundaries
        // (an 8-byte word ends after bytes 7, 15 and 23).
        let pairs = [
            (b'+', b'#'),
            (b'#', b'+'),
            (b'+', b'+'),
            (b'#', b'#'),
            (b'+', 0),
            (0, b'#'),
            (b'/', b'+'),
            (b'#', b'/'),
            (b'/', b'/'),
        ];
        for len in 1..=26 {
            for i in 0..len {
                for j in i..len {
                    for (x, y) in pairs {
                        for k in 0..len {
                            let mut s = std::vec![b'a'; len];
                            s[k] = b'/';
                            s[i] = x;
                            s[j] = y;
                            check(core::str::from_utf8(&s).unwrap());
                            checked += 1;
                        }
                    }
                }
            }
        }
        // Whole levels around every word boundary.
        for pad in 0..17 {
            let a = "x".repeat(pad);
            for s in [
                std::format!("{a}/+"),
                std::format!("{a}/#"),
                std::format!("{a}/+/b"),
                std::format!("{a}/+b"),
                std::format!("{a}+/b"),
                std::format!("{a}/#/"),
                std::format!("+/{a}/#"),
                std::format!("#{a}"),
                std::format!("{a}é/+/ü/#"),
            ] {
                check(&s);
                checked += 1;
            }
        }
        assert!(checked > 100_000);
    }

    #[test]
    fn accepts_spec_examples() {
        for ok in [
            "#",
            "+",
            "+/+",
            "/+",
            "sport/#",
            "sport/tennis/#",
            "sport/+/player1",
            "+/tennis/#",
            "a//b",
            "$SYS/#",
            "$share/g/a/#",
            "$share/g/#",
        ] {
            assert!(TopicFilter::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_misplaced_wildcards() {
        assert_eq!(
            TopicFilter::new("sport/tennis#"),
            Err(TopicError::WildcardNotWholeLevel { at: 12 })
        );
        assert_eq!(
            TopicFilter::new("sport/tennis/#/ranking"),
            Err(TopicError::MultiLevelNotLast { at: 13 })
        );
        assert_eq!(
            TopicFilter::new("sport+"),
            Err(TopicError::WildcardNotWholeLevel { at: 5 })
        );
        assert_eq!(TopicFilter::new(""), Err(TopicError::Empty));
    }

    #[test]
    fn shared_subscriptions() {
        let shared = TopicFilter::new("$share/grp/a/+/c")
            .unwrap()
            .shared()
            .unwrap();
        assert_eq!(shared.group(), "grp");
        assert_eq!(shared.filter().as_str(), "a/+/c");
        assert_eq!(
            TopicFilter::new("$share/grp"),
            Err(TopicError::MissingSharedFilter)
        );
        assert_eq!(
            TopicFilter::new("$share/grp/"),
            Err(TopicError::MissingSharedFilter)
        );
        assert_eq!(
            TopicFilter::new("$share//a"),
            Err(TopicError::InvalidShareName)
        );
        assert_eq!(
            TopicFilter::new("$share/+/a"),
            Err(TopicError::InvalidShareName)
        );
        assert!(TopicFilter::new("$share/g+h/a").is_err());
        assert!(TopicFilter::new("$sharex/a").unwrap().shared().is_none());
    }
}
