//! The filters one session is subscribed with: a short list while there are few (what most
//! clients hold, cheap in memory), a hash set past that, so that neither an idle client nor
//! one with thousands of subscriptions pays more than it needs.

use std::collections::HashSet;

/// Past this many filters, a session's list becomes a set.
const FEW: usize = 8;

/// A session's subscription filters, each once.
#[derive(Debug)]
pub(crate) enum Filters {
    /// A short list.
    Few(Vec<Box<str>>),
    /// A set, boxed: a client with few filters pays no more than a list for it.
    #[allow(clippy::box_collection)]
    Many(Box<HashSet<Box<str>>>),
}

impl Default for Filters {
    fn default() -> Self {
        Self::Few(Vec::new())
    }
}

impl Filters {
    /// Adds `filter` (once).
    pub(crate) fn insert(&mut self, filter: &str) {
        match self {
            Self::Many(many) => {
                if !many.contains(filter) {
                    many.insert(filter.into());
                }
            }
            Self::Few(few) if few.iter().any(|f| **f == *filter) => {}
            Self::Few(few) if few.len() < FEW => few.push(filter.into()),
            Self::Few(few) => {
                let mut many: HashSet<Box<str>> = std::mem::take(few).into_iter().collect();
                many.insert(filter.into());
                *self = Self::Many(Box::new(many));
            }
        }
    }

    /// Removes `filter`, if held.
    pub(crate) fn remove(&mut self, filter: &str) {
        match self {
            Self::Many(many) => {
                many.remove(filter);
            }
            Self::Few(few) => few.retain(|f| **f != *filter),
        }
    }

    /// Takes every filter out.
    pub(crate) fn take_all(&mut self) -> Box<dyn Iterator<Item = Box<str>>> {
        match std::mem::take(self) {
            Self::Few(few) => Box::new(few.into_iter()),
            Self::Many(many) => Box::new(many.into_iter()),
        }
    }

    /// How many filters are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            Self::Few(few) => few.len(),
            Self::Many(many) => many.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_filter_once_from_a_list_to_a_set() {
        let mut filters = Filters::default();
        for round in 0..2 {
            for i in 0..20 {
                filters.insert(&format!("f/{i}"));
            }
            assert_eq!(filters.len(), 20, "round {round}");
        }
        assert!(matches!(filters, Filters::Many(_)));
        filters.remove("f/3");
        filters.remove("not held");
        assert_eq!(filters.len(), 19);
        let mut all: Vec<_> = filters.take_all().collect();
        all.sort();
        assert_eq!(all.len(), 19);
        assert_eq!(filters.len(), 0);

        filters.insert("a");
        filters.insert("a");
        filters.remove("a");
        assert_eq!(filters.len(), 0);
        assert!(matches!(filters, Filters::Few(_)), "a short list, no set");
    }
}
