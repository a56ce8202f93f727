//! The retained-message index: retained messages by topic name, looked up by filter.

use alloc::boxed::Box;
use alloc::vec;
use core::fmt;
use core::mem::size_of;

use crate::arena::{Arena, NodeId, TrieNode, ROOT};
use crate::level::Level;
use crate::tree::END;
use crate::vecmap::VecMap;
use crate::{TopicFilter, TopicName};

/// Position marking a frame whose whole subtree matches (below a `#`).
const ALL: u32 = u32::MAX - 1;

/// A retained message's topic and value.
#[derive(Debug, Clone)]
struct Entry<V> {
    name: Box<str>,
    value: V,
}

#[derive(Debug, Clone)]
struct Node<V> {
    /// [`NONE`](crate::arena::NONE) for the root and free slots.
    parent: NodeId,
    children: VecMap<Level, NodeId>,
    value: Option<Box<Entry<V>>>,
}

impl<V> TrieNode for Node<V> {
    const ID_LIMIT: NodeId = ALL;
    const FULL: &'static str = "retained index is full";

    fn new(parent: NodeId) -> Self {
        Self {
            parent,
            children: VecMap::default(),
            value: None,
        }
    }

    fn parent(&self) -> NodeId {
        self.parent
    }

    fn children(&self) -> &VecMap<Level, NodeId> {
        &self.children
    }

    fn children_mut(&mut self) -> &mut VecMap<Level, NodeId> {
        &mut self.children
    }

    fn is_empty(&self) -> bool {
        self.value.is_none() && self.children.is_empty()
    }
}

/// Retained messages (or anything else kept per topic name), found by filter through a trie of
/// levels: a lookup visits only the branches its filter can match, not every topic.
///
/// Filters whose first level is `+` or `#` do not match names starting with `$`. A
/// `$share/{group}/` prefix is matched literally, like [`matches`](crate::matches) does: MQTT
/// sends no retained message for a shared subscription, and [`SharedFilter::filter`] gives the
/// inner filter should one want it anyway.
///
/// [`SharedFilter::filter`]: crate::SharedFilter::filter
///
/// ```
/// use facteur_topic::{RetainedIndex, TopicFilter, TopicName};
///
/// let mut retained = RetainedIndex::new();
/// let n = |s| TopicName::new(s).unwrap();
/// retained.insert(n("site/1/device/7/temp"), 21.5);
/// retained.insert(n("site/2/device/7/temp"), 19.0);
/// retained.insert(n("site/2/device/8/temp"), 18.0);
/// assert_eq!(retained.insert(n("site/2/device/8/temp"), 18.5), Some(18.0));
///
/// let mut got = Vec::new();
/// retained.for_each_match(TopicFilter::new("site/+/device/7/temp")?, |name, value| {
///     got.push((name.as_str(), *value))
/// });
/// got.sort_by(|a, b| a.0.cmp(b.0));
/// assert_eq!(got, [("site/1/device/7/temp", 21.5), ("site/2/device/7/temp", 19.0)]);
///
/// assert_eq!(retained.remove(n("site/1/device/7/temp")), Some(21.5));
/// assert_eq!(retained.len(), 2);
/// # Ok::<(), facteur_topic::TopicError>(())
/// ```
#[derive(Clone)]
pub struct RetainedIndex<V> {
    nodes: Arena<Node<V>>,
    len: usize,
}

impl<V> Default for RetainedIndex<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> fmt::Debug for RetainedIndex<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetainedIndex")
            .field("len", &self.len)
            .field("nodes", &self.node_count())
            .finish_non_exhaustive()
    }
}

impl<V> RetainedIndex<V> {
    /// An empty index.
    pub fn new() -> Self {
        Self {
            nodes: Arena::new(),
            len: 0,
        }
    }

    /// The number of topics holding a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no topic holds a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of trie nodes in use, the root excepted: one per distinct topic prefix, `0`
    /// when empty.
    pub fn node_count(&self) -> usize {
        self.nodes.node_count()
    }

    /// Removes every value.
    pub fn clear(&mut self) {
        *self = Self::new();
    }

    /// Gives back the spare capacity of the node arena, which grows by doubling: after a bulk
    /// load up to half of it can be unused. Slots freed by removals in the middle of the arena
    /// stay allocated, to be reused by later inserts.
    pub fn shrink_to_fit(&mut self) {
        self.nodes.shrink_to_fit();
    }

    /// An estimate of the bytes the index uses: node arena (at its capacity), level strings,
    /// topic names and `size_of::<V>()` per value, but not what `V` points to. O(nodes).
    pub fn memory_usage(&self) -> usize {
        let nodes: usize = self
            .nodes
            .iter()
            .map(|n| {
                let keys: usize = n.children.iter().map(|(k, _)| k.heap_bytes()).sum();
                let value = n
                    .value
                    .as_ref()
                    .map_or(0, |e| size_of::<Entry<V>>() + e.name.len());
                n.children.heap_bytes() + keys + value
            })
            .sum();
        size_of::<Self>() + self.nodes.heap_bytes() + nodes
    }

    /// Sets the value of `name`, returning the value it replaces.
    ///
    /// # Panics
    ///
    /// If the index would need more than `u32::MAX - 1` nodes.
    pub fn insert(&mut self, name: TopicName<'_>, value: V) -> Option<V> {
        let node = self.nodes.find_or_insert(name.levels());
        let slot = &mut self.nodes.get_mut(node).value;
        match slot {
            Some(entry) => Some(core::mem::replace(&mut entry.value, value)),
            None => {
                *slot = Some(Box::new(Entry {
                    name: name.as_str().into(),
                    value,
                }));
                self.len += 1;
                None
            }
        }
    }

    /// Removes the value of `name`, returning it, and frees the nodes left empty.
    pub fn remove(&mut self, name: TopicName<'_>) -> Option<V> {
        let node = self.find(name)?;
        let entry = self.nodes.get_mut(node).value.take()?;
        self.len -= 1;
        self.nodes.prune(node, name.as_str());
        if self.len == 0 {
            debug_assert_eq!(self.node_count(), 0);
            self.clear();
        }
        Some(entry.value)
    }

    /// The value of `name`.
    pub fn get(&self, name: TopicName<'_>) -> Option<&V> {
        let entry = self.nodes.get(self.find(name)?).value.as_ref()?;
        Some(&entry.value)
    }

    /// The value of `name`, mutably.
    pub fn get_mut(&mut self, name: TopicName<'_>) -> Option<&mut V> {
        let node = self.find(name)?;
        let entry = self.nodes.get_mut(node).value.as_mut()?;
        Some(&mut entry.value)
    }

    /// Calls `visit(name, value)` for every topic matching `filter`, walking only the branches
    /// of the trie the filter can match (a `#` visits the whole subtree below it). Allocates
    /// one work list per call.
    pub fn for_each_match<'t, F>(&'t self, filter: TopicFilter<'_>, mut visit: F)
    where
        F: FnMut(TopicName<'t>, &'t V),
    {
        let filter = filter.as_str();
        let mut emit = |node: &'t Node<V>| {
            if let Some(entry) = &node.value {
                visit(TopicName::new_unchecked(&entry.name), &entry.value);
            }
        };
        let mut stack = vec![(ROOT, 0u32)];
        while let Some((id, pos)) = stack.pop() {
            let node = self.nodes.get(id);
            // At the root, wildcards skip `$` topics.
            let visible = |level: &Level| id != ROOT || !level.is_dollar();
            if pos == ALL || pos == END {
                emit(node);
                if pos == ALL {
                    stack.extend(node.children.iter().map(|(_, &c)| (c, ALL)));
                }
                continue;
            }
            let rest = &filter[pos as usize..];
            let (level, next) = match rest.find('/') {
                Some(i) => (&rest[..i], pos + i as u32 + 1),
                None => (rest, END),
            };
            match level {
                "#" => {
                    // `a/#` matches `a` itself.
                    emit(node);
                    let children = node.children.iter().filter(|(k, _)| visible(k));
                    stack.extend(children.map(|(_, &c)| (c, ALL)));
                }
                "+" => {
                    let children = node.children.iter().filter(|(k, _)| visible(k));
                    stack.extend(children.map(|(_, &c)| (c, next)));
                }
                exact => {
                    if let Some(&child) = node.children.get(exact.as_bytes()) {
                        stack.push((child, next));
                    }
                }
            }
        }
    }

    /// Calls `visit(name, value)` for every topic holding a value, `$` topics included.
    pub fn for_each<'t, F>(&'t self, mut visit: F)
    where
        F: FnMut(TopicName<'t>, &'t V),
    {
        for entry in self.nodes.iter().filter_map(|n| n.value.as_ref()) {
            visit(TopicName::new_unchecked(&entry.name), &entry.value);
        }
    }

    fn find(&self, name: TopicName<'_>) -> Option<NodeId> {
        self.nodes.find(name.levels())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    fn n(s: &str) -> TopicName<'_> {
        TopicName::new(s).unwrap()
    }

    fn lookup(index: &RetainedIndex<u32>, filter: &str) -> Vec<String> {
        let mut got = Vec::new();
        index.for_each_match(TopicFilter::new(filter).unwrap(), |name, value| {
            assert_eq!(index.get(name), Some(value));
            got.push(name.as_str().into());
        });
        got.sort();
        got
    }

    #[test]
    fn filters_select_topics() {
        let mut index = RetainedIndex::new();
        let names = [
            "sport",
            "sport/",
            "sport/tennis",
            "sport/tennis/player1",
            "/finance",
            "$SYS/uptime",
            "$SYS",
            "a//b",
        ];
        for (i, name) in names.iter().enumerate() {
            assert_eq!(index.insert(n(name), i as u32), None);
        }
        assert_eq!(index.len(), names.len());
        assert_eq!(
            lookup(&index, "sport/#"),
            ["sport", "sport/", "sport/tennis", "sport/tennis/player1"]
        );
        assert_eq!(lookup(&index, "sport/+"), ["sport/", "sport/tennis"]);
        assert_eq!(lookup(&index, "+"), ["sport"]);
        assert_eq!(
            lookup(&index, "+/+"),
            ["/finance", "sport/", "sport/tennis"]
        );
        assert_eq!(lookup(&index, "#").len(), 6);
        assert_eq!(lookup(&index, "$SYS/#"), ["$SYS", "$SYS/uptime"]);
        assert_eq!(lookup(&index, "a/+/b"), ["a//b"]);
        assert_eq!(lookup(&index, "nothing/#"), [] as [&str; 0]);
        let mut all = 0;
        index.for_each(|_, _| all += 1);
        assert_eq!(all, names.len());
    }

    #[test]
    fn replace_remove_and_prune() {
        let mut index = RetainedIndex::new();
        let empty = index.memory_usage();
        assert_eq!(index.insert(n("a/b/c"), 1), None);
        assert_eq!(index.insert(n("a"), 2), None);
        assert_eq!(index.insert(n("a/b/c"), 3), Some(1));
        *index.get_mut(n("a")).unwrap() += 10;
        assert_eq!(index.get(n("a")), Some(&12));
        assert_eq!(index.get(n("a/b")), None);
        assert_eq!(index.node_count(), 3);
        assert!(index.memory_usage() > empty);
        assert_eq!(index.remove(n("a/b")), None);
        assert_eq!(index.remove(n("a/b/c")), Some(3));
        assert_eq!(index.node_count(), 1);
        index.shrink_to_fit();
        assert_eq!(index.nodes.len(), 2);
        assert_eq!(index.get(n("a")), Some(&12));
        assert_eq!(index.remove(n("a")), Some(12));
        assert_eq!(index.node_count(), 0);
        assert!(index.is_empty());
        assert_eq!(index.memory_usage(), empty);
        assert!(alloc::format!("{index:?}").contains("nodes: 0"));
    }

    #[test]
    fn deep_topics_do_not_recurse() {
        let mut index = RetainedIndex::new();
        let deep: String = "x/".repeat(30_000) + "x";
        index.insert(n(&deep), 1);
        assert_eq!(lookup(&index, "#").len(), 1);
        assert_eq!(lookup(&index, "x/#").len(), 1);
        index.remove(n(&deep));
        assert_eq!(index.node_count(), 0);
    }
}
