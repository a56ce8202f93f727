//! Owned topic names and filters, for storing beyond the lifetime of a packet buffer.

use alloc::borrow::ToOwned;
use alloc::string::String;
use core::borrow::Borrow;
use core::str::FromStr;

use crate::name::validate_name;
use crate::{SharedFilter, TopicError, TopicFilter, TopicName};

/// A validated topic name that owns its string; [`OwnedTopicName::as_name`] borrows it back as
/// a [`TopicName`].
///
/// ```
/// use facteur_topic::{OwnedTopicName, TopicName};
///
/// let owned = OwnedTopicName::new("maison/etage1/temperature")?;
/// let borrowed: TopicName<'_> = owned.as_name();
/// assert_eq!(borrowed.levels().count(), 3);
/// assert_eq!(TopicName::new("a/b")?.into_owned(), "a/b".parse::<OwnedTopicName>()?);
/// assert!(OwnedTopicName::new(String::from("a/+")).is_err());
/// # Ok::<(), facteur_topic::TopicError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnedTopicName(String);

impl OwnedTopicName {
    /// Validates `name` as a topic name, taking ownership of it (no copy when given a `String`).
    pub fn new(name: impl Into<String>) -> Result<Self, TopicError> {
        let name = name.into();
        validate_name(&name)?;
        Ok(Self(name))
    }

    /// Borrows the name as a [`TopicName`].
    pub fn as_name(&self) -> TopicName<'_> {
        TopicName::new_unchecked(&self.0)
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Gives back the string.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A validated topic filter that owns its string; [`OwnedTopicFilter::as_filter`] borrows it
/// back as a [`TopicFilter`].
///
/// ```
/// use facteur_topic::{OwnedTopicFilter, TopicFilter};
///
/// let owned = OwnedTopicFilter::new("$share/workers/jobs/+")?;
/// assert_eq!(owned.as_filter().shared().unwrap().group(), "workers");
/// assert_eq!(OwnedTopicFilter::from(TopicFilter::new("a/#")?), "a/#".parse::<OwnedTopicFilter>()?);
/// assert!(OwnedTopicFilter::new("a/#/b").is_err());
/// # Ok::<(), facteur_topic::TopicError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnedTopicFilter(String);

impl OwnedTopicFilter {
    /// Validates `filter` as a topic filter (a `$share/` filter is checked as one too), taking
    /// ownership of it.
    pub fn new(filter: impl Into<String>) -> Result<Self, TopicError> {
        let filter = filter.into();
        TopicFilter::new(&filter)?;
        Ok(Self(filter))
    }

    /// Borrows the filter as a [`TopicFilter`].
    pub fn as_filter(&self) -> TopicFilter<'_> {
        TopicFilter::new_unchecked(&self.0)
    }

    /// The share name and inner filter when this is a `$share/{group}/{filter}` subscription.
    pub fn shared(&self) -> Option<SharedFilter<'_>> {
        self.as_filter().shared()
    }

    /// The filter as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Gives back the string.
    pub fn into_string(self) -> String {
        self.0
    }
}

macro_rules! owned_impls {
    ($owned:ident, $borrowed:ident, $as:ident) => {
        impl From<$borrowed<'_>> for $owned {
            fn from(borrowed: $borrowed<'_>) -> Self {
                Self(borrowed.as_str().to_owned())
            }
        }

        impl<'a> From<&'a $owned> for $borrowed<'a> {
            fn from(owned: &'a $owned) -> Self {
                owned.$as()
            }
        }

        impl From<$owned> for String {
            fn from(owned: $owned) -> Self {
                owned.0
            }
        }

        impl TryFrom<String> for $owned {
            type Error = TopicError;

            fn try_from(s: String) -> Result<Self, TopicError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $owned {
            type Error = TopicError;

            fn try_from(s: &str) -> Result<Self, TopicError> {
                Self::new(s)
            }
        }

        impl FromStr for $owned {
            type Err = TopicError;

            fn from_str(s: &str) -> Result<Self, TopicError> {
                Self::new(s)
            }
        }

        impl core::fmt::Display for $owned {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $owned {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $owned {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<$borrowed<'_>> for $owned {
            fn eq(&self, other: &$borrowed<'_>) -> bool {
                self.0 == other.as_str()
            }
        }

        impl PartialEq<$owned> for $borrowed<'_> {
            fn eq(&self, other: &$owned) -> bool {
                self.as_str() == other.0
            }
        }

        impl PartialEq<str> for $owned {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $owned {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

owned_impls!(OwnedTopicName, TopicName, as_name);
owned_impls!(OwnedTopicFilter, TopicFilter, as_filter);

impl TopicName<'_> {
    /// Copies the name into an [`OwnedTopicName`].
    pub fn into_owned(self) -> OwnedTopicName {
        OwnedTopicName::from(self)
    }
}

impl TopicFilter<'_> {
    /// Copies the filter into an [`OwnedTopicFilter`].
    pub fn into_owned(self) -> OwnedTopicFilter {
        OwnedTopicFilter::from(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn round_trips() {
        let name = OwnedTopicName::new("a/b").unwrap();
        assert_eq!(name.as_name(), TopicName::new("a/b").unwrap());
        assert_eq!(name, TopicName::new("a/b").unwrap());
        assert_eq!(TopicName::new("a/b").unwrap(), name);
        assert_eq!(name, "a/b");
        assert_eq!(name.to_string(), "a/b");
        assert_eq!(String::from(name.clone()), "a/b");
        assert_eq!(OwnedTopicName::try_from("a/b").unwrap(), name);
        assert_eq!(OwnedTopicName::new("").unwrap_err(), TopicError::Empty);
        assert_eq!(
            "a/#".parse::<OwnedTopicName>(),
            Err(TopicError::WildcardInName { at: 2 })
        );

        let filter = OwnedTopicFilter::new(String::from("a/+")).unwrap();
        assert_eq!(TopicFilter::from(&filter).as_str(), "a/+");
        assert!(filter.shared().is_none());
        assert_eq!(filter.clone().into_string(), "a/+");
        assert_eq!(
            OwnedTopicFilter::new("$share//x"),
            Err(TopicError::InvalidShareName)
        );
        assert_eq!(
            OwnedTopicFilter::new("a+"),
            Err(TopicError::WildcardNotWholeLevel { at: 1 })
        );
    }
}
