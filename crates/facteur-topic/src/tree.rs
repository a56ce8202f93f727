//! The subscription tree: which subscribers want a published topic.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::mem::size_of;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::arena::{Arena, NodeId, TrieNode, NONE, ROOT};
use crate::level::Level;
use crate::vecmap::VecMap;
use crate::{TopicFilter, TopicName};

/// A position past the last level of a topic: every level has been consumed.
pub(crate) const END: u32 = u32::MAX;

/// Chooses which member of a shared-subscription group (`$share/{group}/{filter}`) receives a
/// message.
///
/// Every group has its own picker, created with [`Default`] when the group's first member
/// subscribes and dropped with its last member, so state such as a round-robin cursor is kept
/// per group. `pick` takes `&self` so that matching only needs a shared borrow of the tree:
/// stateful pickers keep their state in atomics or cells.
///
/// ```
/// use facteur_topic::{Pick, SubscriptionTree, TopicFilter, TopicName};
///
/// /// Always the member with the smallest subscriber id.
/// #[derive(Default)]
/// struct First;
///
/// impl<K, V> Pick<K, V> for First {
///     fn pick(&self, _topic: TopicName<'_>, _members: &[(K, V)]) -> usize {
///         0
///     }
/// }
///
/// let mut tree = SubscriptionTree::<u32, (), First>::with_pick();
/// let filter = TopicFilter::new("$share/g/jobs/+")?;
/// tree.insert(filter, 9, ());
/// tree.insert(filter, 4, ());
/// let mut got = Vec::new();
/// tree.for_each_match(TopicName::new("jobs/1")?, |id, _| got.push(*id));
/// assert_eq!(got, [4]);
/// # Ok::<(), facteur_topic::TopicError>(())
/// ```
pub trait Pick<K, V> {
    /// Returns the index in `members` of the member that receives the message published on
    /// `topic`. `members` is never empty and is sorted by subscriber; an index past its end is
    /// taken modulo its length.
    fn pick(&self, topic: TopicName<'_>, members: &[(K, V)]) -> usize;
}

/// The default [`Pick`]: members of a group take turns, in subscriber order.
///
/// The cursor is a relaxed atomic read then written back, so matching the same tree from
/// several threads at once may give a member two messages in a row; it never skips the group.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl Clone for RoundRobin {
    fn clone(&self) -> Self {
        Self {
            next: AtomicUsize::new(self.next.load(Ordering::Relaxed)),
        }
    }
}

impl<K, V> Pick<K, V> for RoundRobin {
    fn pick(&self, _topic: TopicName<'_>, members: &[(K, V)]) -> usize {
        let i = self.next.load(Ordering::Relaxed) % members.len().max(1);
        self.next.store(i + 1, Ordering::Relaxed);
        i
    }
}

/// One shared-subscription group on one filter.
#[derive(Debug, Clone)]
struct Group<K, V, P> {
    name: Box<str>,
    /// Sorted by subscriber, never empty.
    members: Vec<(K, V)>,
    picker: P,
}

/// The subscriptions made with one filter.
#[derive(Debug, Clone)]
struct Subscribers<K, V, P> {
    direct: VecMap<K, V>,
    /// Sorted by name.
    groups: Vec<Group<K, V, P>>,
}

impl<K: Ord, V, P> Subscribers<K, V, P> {
    fn new() -> Self {
        Self {
            direct: VecMap::default(),
            groups: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.direct.is_empty() && self.groups.is_empty()
    }

    fn group_index(&self, name: &str) -> Result<usize, usize> {
        self.groups.binary_search_by(|g| (*g.name).cmp(name))
    }

    fn insert(&mut self, group: Option<&str>, key: K, value: V) -> Option<V>
    where
        P: Default,
    {
        let Some(name) = group else {
            return self.direct.insert(key, value);
        };
        let g = match self.group_index(name) {
            Ok(g) => g,
            Err(g) => {
                self.groups.reserve_exact(1);
                self.groups.insert(
                    g,
                    Group {
                        name: name.into(),
                        members: Vec::new(),
                        picker: P::default(),
                    },
                );
                g
            }
        };
        let members = &mut self.groups[g].members;
        match members.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => Some(core::mem::replace(&mut members[i].1, value)),
            Err(i) => {
                members.reserve_exact(1);
                members.insert(i, (key, value));
                None
            }
        }
    }

    fn get(&self, group: Option<&str>, key: &K) -> Option<&V> {
        let Some(name) = group else {
            return self.direct.get(key);
        };
        let members = &self.groups[self.group_index(name).ok()?].members;
        let i = members.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
        Some(&members[i].1)
    }

    fn remove(&mut self, group: Option<&str>, key: &K) -> Option<V> {
        let Some(name) = group else {
            return self.direct.remove(key);
        };
        let g = self.group_index(name).ok()?;
        let members = &mut self.groups[g].members;
        let i = members.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
        let (_, value) = members.remove(i);
        if members.is_empty() {
            self.groups.remove(g);
            if self.groups.is_empty() {
                self.groups = Vec::new();
            }
        }
        Some(value)
    }

    /// Calls `f` for every direct subscriber and for one member of every group.
    fn visit<'t, F>(&'t self, topic: TopicName<'_>, f: &mut F)
    where
        P: Pick<K, V>,
        F: FnMut(&'t K, &'t V),
    {
        for (k, v) in self.direct.iter() {
            f(k, v);
        }
        for g in &self.groups {
            let (k, v) = &g.members[g.picker.pick(topic, &g.members) % g.members.len()];
            f(k, v);
        }
    }

    fn heap_bytes(&self) -> usize {
        let groups: usize = self
            .groups
            .iter()
            .map(|g| g.name.len() + g.members.capacity() * size_of::<(K, V)>())
            .sum();
        self.direct.heap_bytes() + self.groups.capacity() * size_of::<Group<K, V, P>>() + groups
    }
}

/// A level of the trie.
#[derive(Debug, Clone)]
struct Node<K, V, P> {
    /// The parent node; [`NONE`] for the root and for free slots.
    parent: NodeId,
    /// The child reached through a `+` level.
    plus: NodeId,
    /// Children reached through an exact level.
    children: VecMap<Level, NodeId>,
    /// Subscriptions whose filter ends at this node.
    here: Option<Box<Subscribers<K, V, P>>>,
    /// Subscriptions whose filter ends with `/#` after this node (`#` alone for the root).
    multi: Option<Box<Subscribers<K, V, P>>>,
}

impl<K, V, P> TrieNode for Node<K, V, P> {
    const ID_LIMIT: NodeId = NONE;
    const FULL: &'static str = "subscription tree is full";

    fn new(parent: NodeId) -> Self {
        Self {
            parent,
            plus: NONE,
            children: VecMap::default(),
            here: None,
            multi: None,
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

    fn plus(&self) -> Option<NodeId> {
        Some(self.plus)
    }

    fn plus_mut(&mut self) -> Option<&mut NodeId> {
        Some(&mut self.plus)
    }

    fn is_empty(&self) -> bool {
        self.plus == NONE && self.children.is_empty() && self.here.is_none() && self.multi.is_none()
    }
}

/// Splits a (non-shared) filter into the levels that are trie nodes and whether it ends in `#`:
/// `"a/b"` → `(Some("a/b"), false)`, `"a/#"` → `(Some("a"), true)`, `"#"` → `(None, true)`.
pub(crate) fn split_multi(filter: &str) -> (Option<&str>, bool) {
    if filter == "#" {
        (None, true)
    } else if let Some(path) = filter.strip_suffix("/#") {
        (Some(path), true)
    } else {
        (Some(filter), false)
    }
}

/// A subscription tree: a trie of filter levels that finds every subscription matching a
/// topic name without looking at the others.
///
/// * `K` identifies a subscriber (a client id, a session index…). A subscriber holds at most one
///   subscription per filter: inserting again replaces its value.
/// * `V` is what the subscription carries (QoS, options, subscription identifier…).
/// * `P` picks the member of a shared-subscription group that receives each message;
///   [`RoundRobin`] by default.
///
/// Filters `$share/{group}/{filter}` make shared subscriptions: every matching message goes to
/// exactly one member of each group, per filter. Filters whose first level is `+` or `#` do not
/// match names starting with `$` (MQTT 5.0 §4.7.2). A subscriber whose filters overlap is visited
/// once per matching filter.
///
/// Nodes live in one arena and link to each other by index, so nothing recurses: deep topics
/// (up to the 32,768 levels a 65,535-byte topic can have) are handled without stack growth, and
/// removing the last subscription under a node frees it and every ancestor left empty.
///
/// ```
/// use facteur_topic::{SubscriptionTree, TopicFilter, TopicName};
///
/// let mut tree = SubscriptionTree::new();
/// let f = |s| TopicFilter::new(s).unwrap();
/// tree.insert(f("maison/+/temperature"), "alice", 1u8);
/// tree.insert(f("maison/#"), "bob", 0);
/// tree.insert(f("$share/workers/maison/#"), "w1", 1);
/// tree.insert(f("$share/workers/maison/#"), "w2", 1);
/// assert_eq!(tree.insert(f("maison/#"), "bob", 2), Some(0)); // replaced
///
/// let mut got = Vec::new();
/// tree.for_each_match(TopicName::new("maison/salon/temperature")?, |who, qos| {
///     got.push((*who, *qos))
/// });
/// got.sort();
/// assert_eq!(got, [("alice", 1), ("bob", 2), ("w1", 1)]);
///
/// assert_eq!(tree.remove(f("maison/+/temperature"), &"alice"), Some(1));
/// assert_eq!(tree.len(), 3);
/// # Ok::<(), facteur_topic::TopicError>(())
/// ```
#[derive(Clone)]
pub struct SubscriptionTree<K, V, P = RoundRobin> {
    /// Slot [`ROOT`] is the root; free slots hold empty nodes.
    nodes: Arena<Node<K, V, P>>,
    len: usize,
}

impl<K: Ord, V, P> Default for SubscriptionTree<K, V, P> {
    fn default() -> Self {
        Self::with_pick()
    }
}

impl<K: Ord, V> SubscriptionTree<K, V> {
    /// An empty tree whose shared-subscription groups take turns ([`RoundRobin`]).
    pub fn new() -> Self {
        Self::with_pick()
    }
}

impl<K: Ord, V, P> fmt::Debug for SubscriptionTree<K, V, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionTree")
            .field("len", &self.len)
            .field("nodes", &self.node_count())
            .finish_non_exhaustive()
    }
}

impl<K: Ord, V, P> SubscriptionTree<K, V, P> {
    /// An empty tree whose shared-subscription groups pick members with `P`.
    pub fn with_pick() -> Self {
        Self {
            nodes: Arena::new(),
            len: 0,
        }
    }

    /// The number of subscriptions: one per (filter, subscriber), shared ones included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there is no subscription.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of trie nodes in use, the root excepted: `0` for an empty tree. A filter of
    /// `n` levels uses at most `n` nodes (`n - 1` if it ends in `#`), fewer when it shares a
    /// prefix with another filter.
    pub fn node_count(&self) -> usize {
        self.nodes.node_count()
    }

    /// Removes every subscription.
    pub fn clear(&mut self) {
        *self = Self::with_pick();
    }

    /// Gives back the spare capacity of the node arena, which grows by doubling: after a bulk
    /// load up to half of it can be unused. Slots freed by removals in the middle of the arena
    /// stay allocated, to be reused by later inserts.
    pub fn shrink_to_fit(&mut self) {
        self.nodes.shrink_to_fit();
    }

    /// An estimate of the heap and inline bytes the tree uses: the node arena (at its capacity),
    /// level strings, subscriber maps and groups. It counts `size_of::<K>()` and
    /// `size_of::<V>()` per subscription but not what `K` or `V` themselves point to, and
    /// estimates allocator overhead as zero. Walks every node: O(nodes).
    pub fn memory_usage(&self) -> usize {
        let subs = |s: &Option<Box<Subscribers<K, V, P>>>| {
            s.as_ref()
                .map_or(0, |s| size_of::<Subscribers<K, V, P>>() + s.heap_bytes())
        };
        let nodes: usize = self
            .nodes
            .iter()
            .map(|n| {
                let keys: usize = n.children.iter().map(|(k, _)| k.heap_bytes()).sum();
                n.children.heap_bytes() + keys + subs(&n.here) + subs(&n.multi)
            })
            .sum();
        size_of::<Self>() + self.nodes.heap_bytes() + nodes
    }

    /// Adds the subscription of `subscriber` to `filter`, or replaces its value if it exists,
    /// returning the value replaced. A `$share/{group}/{filter}` filter subscribes `subscriber`
    /// as a member of `group` on `filter`.
    ///
    /// # Panics
    ///
    /// If the tree would need more than `u32::MAX - 1` nodes.
    pub fn insert(&mut self, filter: TopicFilter<'_>, subscriber: K, value: V) -> Option<V>
    where
        P: Default,
    {
        let (group, filter) = split_shared(filter);
        let (path, multi) = split_multi(filter);
        let node = self
            .nodes
            .find_or_insert(path.into_iter().flat_map(|p| p.split('/')));
        let n = self.nodes.get_mut(node);
        let slot = if multi { &mut n.multi } else { &mut n.here };
        let previous = slot
            .get_or_insert_with(|| Box::new(Subscribers::new()))
            .insert(group, subscriber, value);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// Removes the subscription of `subscriber` to `filter` (`$share/` included), returning its
    /// value, and frees the nodes it leaves empty.
    pub fn remove(&mut self, filter: TopicFilter<'_>, subscriber: &K) -> Option<V> {
        let (group, filter) = split_shared(filter);
        let (path, multi) = split_multi(filter);
        let node = self.find(path)?;
        let n = self.nodes.get_mut(node);
        let slot = if multi { &mut n.multi } else { &mut n.here };
        let subs = slot.as_mut()?;
        let value = subs.remove(group, subscriber)?;
        if subs.is_empty() {
            *slot = None;
        }
        self.len -= 1;
        self.nodes.prune(node, path.unwrap_or(""));
        if self.len == 0 {
            debug_assert_eq!(self.node_count(), 0);
            // Empty again: give the arena back.
            self.clear();
        }
        Some(value)
    }

    /// The value of the subscription of `subscriber` to `filter` (`$share/` included).
    pub fn get(&self, filter: TopicFilter<'_>, subscriber: &K) -> Option<&V> {
        let (group, filter) = split_shared(filter);
        let (path, multi) = split_multi(filter);
        let n = self.nodes.get(self.find(path)?);
        let slot = if multi { &n.multi } else { &n.here };
        slot.as_ref()?.get(group, subscriber)
    }

    /// Calls `visit(subscriber, value)` for every subscription matching `name`: every matching
    /// non-shared subscription, and one member (chosen by `P`) of every matching shared group.
    ///
    /// Does not allocate unless the trie path followed is more than about 15 levels deep, in
    /// which case its work list spills into one `Vec`.
    pub fn for_each_match<'t, F>(&'t self, name: TopicName<'_>, mut visit: F)
    where
        P: Pick<K, V>,
        F: FnMut(&'t K, &'t V),
    {
        let topic = name.as_str();
        let dollar = name.is_dollar();
        let mut stack = Stack::new();
        stack.push(Frame { node: ROOT, pos: 0 });
        while let Some(Frame { node, pos }) = stack.pop() {
            let n = self.nodes.get(node);
            // A first-level wildcard must not match `$` topics.
            let wildcards = !(dollar && node == ROOT);
            if wildcards {
                if let Some(multi) = &n.multi {
                    multi.visit(name, &mut visit);
                }
            }
            if pos == END {
                if let Some(here) = &n.here {
                    here.visit(name, &mut visit);
                }
                continue;
            }
            let rest = &topic[pos as usize..];
            // A byte loop: levels are short, and `str::find(char)` costs more in its set-up
            // than the search (it was 4% of a broker's instructions per message).
            let (level, next) = match rest.bytes().position(|b| b == b'/') {
                // Topics are at most 65,535 bytes: positions fit in a u32.
                Some(i) => (&rest[..i], pos + i as u32 + 1),
                None => (rest, END),
            };
            if let Some(&child) = n.children.get(level.as_bytes()) {
                stack.push(Frame {
                    node: child,
                    pos: next,
                });
            }
            if wildcards && n.plus != NONE {
                stack.push(Frame {
                    node: n.plus,
                    pos: next,
                });
            }
        }
    }

    /// The node reached by the levels of `path` (the root for `None`), if it exists.
    fn find(&self, path: Option<&str>) -> Option<NodeId> {
        self.nodes.find(path.into_iter().flat_map(|p| p.split('/')))
    }
}

/// `(Some(group), inner filter)` for a shared subscription, `(None, filter)` otherwise.
fn split_shared(filter: TopicFilter<'_>) -> (Option<&str>, &str) {
    match filter.shared() {
        Some(shared) => (Some(shared.group()), shared.filter().as_str()),
        None => (None, filter.as_str()),
    }
}

/// A node still to visit and where its level starts in the topic ([`END`] when consumed).
#[derive(Debug, Clone, Copy)]
struct Frame {
    node: NodeId,
    pos: u32,
}

/// How many frames [`Stack`] keeps inline before it allocates: enough for a topic of 15
/// levels. The inline frames are set up at every match (a larger array cost a 512-byte
/// `memset` per message).
const INLINE_FRAMES: usize = 16;

/// A LIFO work list that lives on the call stack and spills to the heap only when deep.
/// Matching pushes at most two frames per frame popped, one level deeper, so it holds at most
/// one frame per level plus one.
struct Stack {
    inline: [Frame; INLINE_FRAMES],
    len: usize,
    spill: Vec<Frame>,
}

impl Stack {
    fn new() -> Self {
        Self {
            inline: [Frame { node: 0, pos: 0 }; INLINE_FRAMES],
            len: 0,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, frame: Frame) {
        if self.len < INLINE_FRAMES {
            self.inline[self.len] = frame;
            self.len += 1;
        } else {
            self.spill.push(frame);
        }
    }

    fn pop(&mut self) -> Option<Frame> {
        if let Some(frame) = self.spill.pop() {
            return Some(frame);
        }
        self.len = self.len.checked_sub(1)?;
        Some(self.inline[self.len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    fn f(s: &str) -> TopicFilter<'_> {
        TopicFilter::new(s).unwrap()
    }

    fn n(s: &str) -> TopicName<'_> {
        TopicName::new(s).unwrap()
    }

    fn matched<P: Pick<u32, u8>>(tree: &SubscriptionTree<u32, u8, P>, name: &str) -> Vec<u32> {
        let mut got = Vec::new();
        tree.for_each_match(n(name), |k, _| got.push(*k));
        got.sort_unstable();
        got
    }

    #[test]
    fn spec_examples() {
        let mut tree = SubscriptionTree::<u32, u8>::new();
        let filters = [
            "sport/tennis/player1/#", // 0
            "sport/#",                // 1
            "sport/tennis/+",         // 2
            "sport/+",                // 3
            "+/+",                    // 4
            "/+",                     // 5
            "+",                      // 6
            "#",                      // 7
            "$SYS/#",                 // 8
            "$SYS/+",                 // 9
            "a//b",                   // 10
            "a/+/b",                  // 11
        ];
        for (i, filter) in filters.iter().enumerate() {
            assert_eq!(tree.insert(f(filter), i as u32, 0), None);
        }
        assert_eq!(tree.len(), filters.len());
        assert_eq!(matched(&tree, "sport/tennis/player1"), [0, 1, 2, 7]);
        assert_eq!(matched(&tree, "sport/tennis/player1/ranking"), [0, 1, 7]);
        assert_eq!(matched(&tree, "sport"), [1, 6, 7]);
        assert_eq!(matched(&tree, "sport/"), [1, 3, 4, 7]);
        assert_eq!(matched(&tree, "/finance"), [4, 5, 7]);
        assert_eq!(matched(&tree, "$SYS/uptime"), [8, 9]);
        assert_eq!(matched(&tree, "$SYS"), [8]);
        assert_eq!(matched(&tree, "a//b"), [7, 10, 11]);
        assert_eq!(matched(&tree, "x/y/z"), [7]);
    }

    #[test]
    fn replace_get_remove_and_prune() {
        let mut tree = SubscriptionTree::<u32, u8>::new();
        assert_eq!(tree.node_count(), 0);
        assert_eq!(tree.insert(f("a/b/c"), 1, 0), None);
        assert_eq!(tree.insert(f("a/b/c"), 1, 2), Some(0));
        assert_eq!(tree.insert(f("a/+/#"), 2, 1), None);
        assert_eq!(tree.get(f("a/b/c"), &1), Some(&2));
        assert_eq!(tree.get(f("a/b/c"), &2), None);
        assert_eq!(tree.get(f("a/+/#"), &2), Some(&1));
        assert_eq!(tree.get(f("a/+"), &2), None);
        assert_eq!(tree.len(), 2);
        assert_eq!(tree.node_count(), 4); // a, a/b, a/b/c, a/+
        assert_eq!(tree.remove(f("a/b/c"), &2), None);
        assert_eq!(tree.remove(f("a/b"), &1), None);
        assert_eq!(tree.remove(f("a/b/c"), &1), Some(2));
        assert_eq!(tree.node_count(), 2); // a, a/+
        assert_eq!(tree.remove(f("a/+/#"), &2), Some(1));
        assert_eq!(tree.node_count(), 0);
        assert!(tree.is_empty());
        assert_eq!(matched(&tree, "a/b/c"), [] as [u32; 0]);
    }

    #[test]
    fn freed_nodes_are_reused() {
        let mut tree = SubscriptionTree::<u32, u8>::new();
        tree.insert(f("keep"), 0, 0);
        for round in 0..10 {
            tree.insert(f("x/y/z"), round, 0);
            tree.remove(f("x/y/z"), &round);
        }
        assert_eq!(tree.node_count(), 1);
        assert!(tree.nodes.len() <= 5);
        let before = tree.memory_usage();
        tree.shrink_to_fit();
        assert_eq!(tree.nodes.len(), 2);
        assert!(tree.memory_usage() < before);
        assert_eq!(matched(&tree, "keep"), [0]);
        tree.insert(f("x/y"), 1, 0);
        assert_eq!(tree.node_count(), 3);
        assert_eq!(matched(&tree, "x/y"), [1]);
    }

    #[test]
    fn shared_groups_round_robin_per_group() {
        let mut tree = SubscriptionTree::<u32, u8>::new();
        for member in [1, 2, 3] {
            tree.insert(f("$share/g/t/+"), member, 0);
        }
        for member in [10, 11] {
            tree.insert(f("$share/h/t/+"), member, 0);
        }
        // Same group name on another filter is another group.
        tree.insert(f("$share/g/t/#"), 20, 0);
        tree.insert(f("t/+"), 99, 0);
        assert_eq!(tree.len(), 7);
        let mut counts = [0u32; 100];
        for _ in 0..6 {
            let got = matched(&tree, "t/x");
            assert_eq!(got.len(), 4, "{got:?}");
            assert_eq!(got.iter().filter(|k| (1..=3).contains(*k)).count(), 1);
            assert_eq!(got.iter().filter(|k| (10..=11).contains(*k)).count(), 1);
            assert!(got.contains(&20) && got.contains(&99));
            for k in got {
                counts[k as usize] += 1;
            }
        }
        assert_eq!(&counts[1..4], [2, 2, 2]);
        assert_eq!(&counts[10..12], [3, 3]);
        assert_eq!(tree.remove(f("$share/g/t/+"), &2), Some(0));
        assert_eq!(tree.remove(f("$share/g/t/+"), &2), None);
        assert_eq!(tree.get(f("$share/h/t/+"), &10), Some(&0));
        for k in [1, 3] {
            tree.remove(f("$share/g/t/+"), &k);
        }
        for k in [10, 11] {
            tree.remove(f("$share/h/t/+"), &k);
        }
        tree.remove(f("$share/g/t/#"), &20);
        tree.remove(f("t/+"), &99);
        assert!(tree.is_empty());
        assert_eq!(tree.node_count(), 0);
    }

    #[test]
    fn matching_needs_only_a_shared_borrow() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<SubscriptionTree<u32, u8>>();
        send_sync::<crate::RetainedIndex<u8>>();
    }

    #[test]
    fn shared_subscriptions_honour_the_dollar_rule() {
        let mut tree = SubscriptionTree::<u32, u8>::new();
        tree.insert(f("$share/g/#"), 1, 0);
        tree.insert(f("$share/g/$SYS/#"), 2, 0);
        assert_eq!(matched(&tree, "$SYS/x"), [2]);
        assert_eq!(matched(&tree, "x"), [1]);
    }

    #[test]
    fn deep_topics_do_not_recurse() {
        let mut tree = SubscriptionTree::<u32, u8>::new();
        let deep: String = "/".repeat(20_000);
        let filter = alloc::format!("{deep}#");
        tree.insert(f(&filter), 1, 0);
        tree.insert(f(&deep), 2, 0);
        let plus: String = "+/".repeat(20_000) + "+";
        tree.insert(f(&plus), 3, 0);
        assert_eq!(matched(&tree, &deep), [1, 2, 3]);
        assert_eq!(tree.node_count(), 40_002);
        assert!(tree.memory_usage() > 40_002 * size_of::<Node<u32, u8, RoundRobin>>());
        tree.remove(f(&filter), &1);
        tree.remove(f(&deep), &2);
        tree.remove(f(&plus), &3);
        assert_eq!(tree.node_count(), 0);
    }

    #[test]
    fn wide_nodes_and_memory_estimate() {
        let mut tree = SubscriptionTree::<u32, u8>::new();
        let empty = tree.memory_usage();
        for i in 0..1000u32 {
            tree.insert(f(&alloc::format!("w/{i}")), i, 0);
        }
        assert_eq!(matched(&tree, "w/567"), [567]);
        let full = tree.memory_usage();
        assert!(full > empty + 1000 * 8, "{empty} {full}");
        for i in 0..1000u32 {
            assert_eq!(tree.remove(f(&alloc::format!("w/{i}")), &i), Some(0));
        }
        assert_eq!(tree.node_count(), 0);
        assert_eq!(tree.memory_usage(), empty);
        assert!(alloc::format!("{tree:?}").contains("len: 0"));
    }
}
