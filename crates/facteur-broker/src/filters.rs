//! The filters one session is subscribed with: a short list while there are few (what most
//! clients hold, cheap in memory), a hash set past that, so that neither an idle client nor
//! one with thousands of subscriptions pays more than it needs.

use std::collections::HashSet;

/// Past this many filters, a session's list becomes a set.
const FEW: usize = 8;

/// A session's subscription filters, each once.
#[derive(Debug, Default)]
pub(crate) struct Filters {
    few: Vec<Box<str>>,
    /// Boxed: a client with few filters pays one pointer for it, not a whole empty set.
    #[allow(clippy::box_collection)]
    many: Option<Box<HashSet<Box<str>>>>,
}

impl Filters {
    /// Adds `filter` (once).
    pub(crate) fn insert(&mut self, filter: &str) {
        if let Some(many) = &mut self.many {
            if !many.contains(filter) {
                many.insert(filter.into());
            }
        } else if !self.few.iter().any(|f| **f == *filter) {
            if self.few.len() < FEW {
                self.few.push(filter.into());
            } else {
                let mut many: HashSet<Box<str>> =
                    std::mem::take(&mut self.few).into_iter().collect();
                many.insert(filter.into());
                self.many = Some(Box::new(many));
            }
        }
    }

    /// Removes `filter`, if held.
    pub(crate) fn remove(&mut self, filter: &str) {
        match &mut self.many {
            Some(many) => {
                many.remove(filter);
            }
            None => self.few.retain(|f| **f != *filter),
        }
    }

    /// Takes every filter out.
    pub(crate) fn take_all(&mut self) -> impl Iterator<Item = Box<str>> {
        let few = std::mem::take(&mut self.few);
        let many = self.many.take().map(|many| *many).unwrap_or_default();
        few.into_iter().chain(many)
    }

    /// How many filters are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.few.len() + self.many.as_ref().map_or(0, |many| many.len())
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
        assert!(filters.few.is_empty());
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
        assert!(filters.many.is_none(), "a short list, no set");
    }
}
