//! A small ordered map: a sorted `Vec` while small, a `BTreeMap` once large.
//!
//! Most trie nodes have zero or one child and most filters zero or one subscriber, where a
//! `BTreeMap` would allocate a whole B-tree leaf (eleven slots). A sorted vector holding exactly
//! what it needs is much smaller; past [`PROMOTE_AT`] entries the map switches to a `BTreeMap` so
//! that inserting into a node with a million children stays logarithmic.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::mem::size_of;

/// Above this many entries the vector becomes a `BTreeMap`.
const PROMOTE_AT: usize = 32;
/// Below this many entries a `BTreeMap` goes back to a vector (hysteresis against flapping).
const DEMOTE_AT: usize = 16;

/// Capacity of a B-tree node in the standard library (`2 * B - 1` with `B = 6`).
const BTREE_NODE_CAPACITY: usize = 11;

#[derive(Debug, Clone)]
pub(crate) enum VecMap<K, V> {
    /// Sorted by key, no duplicates.
    Small(Vec<(K, V)>),
    Large(BTreeMap<K, V>),
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        Self::Small(Vec::new())
    }
}

impl<K: Ord, V> VecMap<K, V> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Small(v) => v.len(),
            Self::Large(m) => m.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self {
            Self::Small(v) => v
                .binary_search_by(|(k, _)| k.borrow().cmp(key))
                .ok()
                .map(|i| &v[i].1),
            Self::Large(m) => m.get(key),
        }
    }

    /// Inserts or replaces, returning the previous value.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self {
            Self::Small(v) => match v.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(i) => Some(core::mem::replace(&mut v[i].1, value)),
                Err(i) => {
                    if v.len() < PROMOTE_AT {
                        // Grow one slot at a time: most of these maps stay tiny.
                        v.reserve_exact(1);
                        v.insert(i, (key, value));
                    } else {
                        let mut map: BTreeMap<K, V> = core::mem::take(v).into_iter().collect();
                        map.insert(key, value);
                        *self = Self::Large(map);
                    }
                    None
                }
            },
            Self::Large(m) => m.insert(key, value),
        }
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self {
            Self::Small(v) => {
                let i = v.binary_search_by(|(k, _)| k.borrow().cmp(key)).ok()?;
                let (_, value) = v.remove(i);
                if v.is_empty() {
                    *v = Vec::new();
                } else if v.capacity() > 2 * v.len() + 4 {
                    v.shrink_to_fit();
                }
                Some(value)
            }
            Self::Large(m) => {
                let value = m.remove(key)?;
                if m.len() < DEMOTE_AT {
                    let mut v = Vec::with_capacity(m.len());
                    v.extend(core::mem::take(m));
                    *self = Self::Small(v);
                }
                Some(value)
            }
        }
    }

    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        match self {
            Self::Small(v) => Iter::Small(v.iter()),
            Self::Large(m) => Iter::Large(m.iter()),
        }
    }

    /// Heap bytes held by the map itself (not by what its keys or values point to).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Self::Small(v) => v.capacity() * size_of::<(K, V)>(),
            Self::Large(m) => btree_heap_bytes::<K, V>(m.len()),
        }
    }
}

/// Estimated heap bytes of a `BTreeMap<K, V>` holding `len` entries: leaves about two thirds
/// full, each with its keys, values and a few words of bookkeeping, plus internal nodes.
pub(crate) fn btree_heap_bytes<K, V>(len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let leaf = BTREE_NODE_CAPACITY * (size_of::<K>() + size_of::<V>()) + 2 * size_of::<usize>();
    let leaves = len.div_ceil(BTREE_NODE_CAPACITY * 2 / 3).max(1);
    // Internal nodes add their edge pointers; about one per six leaves.
    let internal = leaves / 6 * (leaf + (BTREE_NODE_CAPACITY + 1) * size_of::<usize>());
    leaves * leaf + internal
}

pub(crate) enum Iter<'a, K, V> {
    Small(core::slice::Iter<'a, (K, V)>),
    Large(alloc::collections::btree_map::Iter<'a, K, V>),
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Small(it) => it.next().map(|(k, v)| (k, v)),
            Self::Large(it) => it.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotes_and_demotes() {
        let mut m = VecMap::default();
        for i in 0..100u32 {
            assert_eq!(m.insert(i, i * 2), None);
        }
        assert!(matches!(m, VecMap::Large(_)));
        assert_eq!(m.insert(7, 0), Some(14));
        assert_eq!(m.get(&7), Some(&0));
        for i in 0..95u32 {
            assert!(m.remove(&i).is_some());
        }
        assert!(matches!(m, VecMap::Small(_)));
        assert_eq!(m.len(), 5);
        let keys: Vec<u32> = m.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [95, 96, 97, 98, 99]);
        assert_eq!(m.remove(&3), None);
        for i in 95..100u32 {
            assert_eq!(m.remove(&i), Some(i * 2));
        }
        assert!(m.is_empty());
        assert_eq!(m.heap_bytes(), 0);
    }
}
