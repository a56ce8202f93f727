//! Topic names: what a PUBLISH is sent to.

use crate::{check_common, TopicError, MULTI_LEVEL_WILDCARD, SINGLE_LEVEL_WILDCARD};

/// A validated topic name: non-empty, at most 65,535 bytes, no U+0000, no wildcard.
///
/// Empty levels are allowed (`a//b`, `/a`), as MQTT allows them.
///
/// ```
/// use facteur_topic::TopicName;
/// let name = TopicName::new("maison/etage1/temperature")?;
/// assert_eq!(name.levels().count(), 3);
/// assert!(TopicName::new("maison/+").is_err());
/// # Ok::<(), facteur_topic::TopicError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName<'a>(&'a str);

impl<'a> TopicName<'a> {
    /// Validates `name` as a topic name.
    #[inline]
    pub fn new(name: &'a str) -> Result<Self, TopicError> {
        validate_name(name)?;
        Ok(Self(name))
    }

    /// True if `name` is a valid topic name: [`TopicName::new`] without the reason why not,
    /// eight bytes at a time.
    ///
    /// ```
    /// use facteur_topic::TopicName;
    /// assert!(TopicName::is_valid("maison/etage1/temperature"));
    /// assert!(!TopicName::is_valid("maison/+") && !TopicName::is_valid(""));
    /// ```
    #[inline]
    pub fn is_valid(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= crate::MAX_TOPIC_LEN
            && crate::scan::is_valid_name(name.as_bytes())
    }

    /// Wraps a string already known to be a valid name.
    #[cfg(feature = "alloc")]
    pub(crate) fn new_unchecked(name: &'a str) -> Self {
        debug_assert!(validate_name(name).is_ok());
        Self(name)
    }

    /// The topic as a string.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// The levels of the name, split on `/`.
    pub fn levels(&self) -> core::str::Split<'a, char> {
        self.0.split('/')
    }

    /// True for names starting with `$` (such as `$SYS/...`), which filters starting with a
    /// wildcard do not match.
    pub fn is_dollar(&self) -> bool {
        self.0.starts_with('$')
    }
}

impl core::fmt::Display for TopicName<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

impl AsRef<str> for TopicName<'_> {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// Checks `name` against the topic-name rules, naming the first problem.
#[inline]
pub(crate) fn validate_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > crate::MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { len: name.len() });
    }
    // One pass for the three bytes a name must not hold.
    let wildcards = (SINGLE_LEVEL_WILDCARD as u8, MULTI_LEVEL_WILDCARD as u8);
    match crate::scan::find_any_of3(name.as_bytes(), 0, wildcards.0, wildcards.1) {
        None => Ok(()),
        Some(_) => {
            check_common(name)?;
            let at =
                crate::scan::find_any_of3(name.as_bytes(), wildcards.0, wildcards.1, wildcards.1);
            Err(TopicError::WildcardInName {
                at: at.unwrap_or(0),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_empty_levels() {
        for ok in ["a", "a/b", "/", "//", "/a", "a/", "$SYS/broker", "é/ü"] {
            assert!(TopicName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_wildcards_empty_and_nul() {
        assert_eq!(TopicName::new(""), Err(TopicError::Empty));
        assert_eq!(
            TopicName::new("a/+"),
            Err(TopicError::WildcardInName { at: 2 })
        );
        assert_eq!(
            TopicName::new("#"),
            Err(TopicError::WildcardInName { at: 0 })
        );
        assert_eq!(
            TopicName::new("a\0b"),
            Err(TopicError::NullCharacter { at: 1 })
        );
    }

    #[test]
    fn is_valid_answers_as_new() {
        let alphabet = [b'a', b'/', b'+', b'#', 0, b'$', b'*', b','];
        let mut checked = 0;
        for len in 0..=5u32 {
            for mut n in 0..alphabet.len().pow(len) {
                let mut s = std::vec::Vec::new();
                for _ in 0..len {
                    s.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                let s = core::str::from_utf8(&s).unwrap();
                assert_eq!(TopicName::is_valid(s), TopicName::new(s).is_ok(), "{s:?}");
                checked += 1;
            }
        }
        // One or two special bytes at every position of longer names (words end after bytes
        // 7, 15 and 23; the last word overlaps the one before).
        for len in 1..=26 {
            for i in 0..len {
                for j in i..len {
                    for (x, y) in [
                        (b'+', b'a'),
                        (b'#', b'a'),
                        (0, b'a'),
                        (b'$', b'*'),
                        (b' ', b'#'),
                    ] {
                        let mut s = std::vec![b'a'; len];
                        s[j] = y;
                        s[i] = x;
                        let s = core::str::from_utf8(&s).unwrap();
                        assert_eq!(TopicName::is_valid(s), TopicName::new(s).is_ok(), "{s:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 40_000);
        let long = "a".repeat(crate::MAX_TOPIC_LEN + 1);
        assert!(!TopicName::is_valid(&long));
        assert!(TopicName::is_valid(&long[1..]));
    }

    #[test]
    fn length_limit_is_65535_bytes() {
        let long = "a".repeat(super::super::MAX_TOPIC_LEN);
        assert!(TopicName::new(&long).is_ok());
        let longer = "a".repeat(super::super::MAX_TOPIC_LEN + 1);
        assert_eq!(
            TopicName::new(&longer),
            Err(TopicError::TooLong { len: 65_536 })
        );
    }
}
