//! The node arena shared by the subscription tree and the retained index: trie nodes in one
//! `Vec`, linked by index, with a free list of slots to reuse.

use alloc::vec;
use alloc::vec::Vec;
use core::mem::size_of;

use crate::level::Level;
use crate::vecmap::VecMap;

/// Index of a node in the arena.
pub(crate) type NodeId = u32;
/// "No node": an absent `+` child, the root's parent.
pub(crate) const NONE: NodeId = NodeId::MAX;
/// The root node, which is never freed.
pub(crate) const ROOT: NodeId = 0;

/// A trie node that an [`Arena`] can hold.
pub(crate) trait TrieNode {
    /// Node ids from this one up are reserved: the arena panics rather than reach it.
    const ID_LIMIT: NodeId;
    /// The panic message when the arena is full.
    const FULL: &'static str;

    /// An empty node under `parent`; an empty node under [`NONE`] fills free slots.
    fn new(parent: NodeId) -> Self;

    /// The parent node; [`NONE`] for the root and for free slots.
    fn parent(&self) -> NodeId;

    /// Children reached through an exact level.
    fn children(&self) -> &VecMap<Level, NodeId>;

    /// Children reached through an exact level, mutably.
    fn children_mut(&mut self) -> &mut VecMap<Level, NodeId>;

    /// The child reached through a `+` level ([`NONE`] if absent), for nodes that keep it apart
    /// from the exact levels; `None` for nodes where `+` is not a wildcard.
    fn plus(&self) -> Option<NodeId> {
        None
    }

    /// The `+` child slot, mutably; `None` when [`plus`](Self::plus) is.
    fn plus_mut(&mut self) -> Option<&mut NodeId> {
        None
    }

    /// True if the node holds nothing and has no child: pruning frees it.
    fn is_empty(&self) -> bool;

    /// The child reached through `level`, if any.
    fn child(&self, level: &str) -> Option<NodeId> {
        match self.plus() {
            Some(plus) if level == "+" => Some(plus).filter(|&c| c != NONE),
            _ => self.children().get(level.as_bytes()).copied(),
        }
    }
}

/// Trie nodes in one `Vec`, linked by [`NodeId`]: slot [`ROOT`] is the root; free slots hold
/// empty nodes and are reused before the arena grows.
#[derive(Debug, Clone)]
pub(crate) struct Arena<N> {
    nodes: Vec<N>,
    free: Vec<NodeId>,
}

impl<N: TrieNode> Arena<N> {
    /// An arena holding only the root.
    pub(crate) fn new() -> Self {
        Self {
            nodes: vec![N::new(NONE)],
            free: Vec::new(),
        }
    }

    /// The number of slots, free ones and the root included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The number of nodes in use, the root excepted.
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len() - 1
    }

    /// Every slot, free ones and the root included.
    pub(crate) fn iter(&self) -> core::slice::Iter<'_, N> {
        self.nodes.iter()
    }

    /// Bytes of the slot and free-list vectors, at their capacity.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * size_of::<N>() + self.free.capacity() * size_of::<NodeId>()
    }

    /// Drops the free slots at the end of the arena and the spare capacity.
    pub(crate) fn shrink_to_fit(&mut self) {
        // Free slots at the end of the arena can go; the root (slot 0) is never free.
        self.free.sort_unstable();
        while self.free.last().map(|&id| id as usize) == Some(self.nodes.len() - 1) {
            self.free.pop();
            self.nodes.pop();
        }
        self.nodes.shrink_to_fit();
        self.free.shrink_to_fit();
    }

    /// The node `id`.
    #[inline]
    pub(crate) fn get(&self, id: NodeId) -> &N {
        &self.nodes[id as usize]
    }

    /// The node `id`, mutably.
    #[inline]
    pub(crate) fn get_mut(&mut self, id: NodeId) -> &mut N {
        &mut self.nodes[id as usize]
    }

    /// A new empty node under `parent`, in a free slot if there is one.
    fn alloc(&mut self, parent: NodeId) -> NodeId {
        if let Some(id) = self.free.pop() {
            self.nodes[id as usize] = N::new(parent);
            return id;
        }
        let id = NodeId::try_from(self.nodes.len())
            .ok()
            .filter(|&id| id < N::ID_LIMIT)
            .expect(N::FULL);
        self.nodes.push(N::new(parent));
        id
    }

    /// Makes `id` a free slot, dropping whatever capacity it kept.
    fn free(&mut self, id: NodeId) {
        self.nodes[id as usize] = N::new(NONE);
        self.free.push(id);
    }

    /// The node reached from the root by `levels`, if it exists.
    pub(crate) fn find<'l>(&self, levels: impl IntoIterator<Item = &'l str>) -> Option<NodeId> {
        let mut node = ROOT;
        for level in levels {
            node = self.get(node).child(level)?;
        }
        Some(node)
    }

    /// The node reached from the root by `levels`, created with whatever nodes are missing.
    ///
    /// # Panics
    ///
    /// If the arena would need an id from [`TrieNode::ID_LIMIT`] up.
    pub(crate) fn find_or_insert<'l>(
        &mut self,
        levels: impl IntoIterator<Item = &'l str>,
    ) -> NodeId {
        let mut node = ROOT;
        for level in levels {
            node = self.child_or_insert(node, level);
        }
        node
    }

    fn child_or_insert(&mut self, parent: NodeId, level: &str) -> NodeId {
        if let Some(child) = self.get(parent).child(level) {
            return child;
        }
        let child = self.alloc(parent);
        let p = self.get_mut(parent);
        match p.plus_mut() {
            Some(plus) if level == "+" => *plus = child,
            _ => {
                p.children_mut().insert(Level::new(level), child);
            }
        }
        child
    }

    /// Frees `node` and its ancestors while they are empty; `path` holds the levels from the
    /// root to `node`.
    pub(crate) fn prune(&mut self, mut node: NodeId, path: &str) {
        let mut levels = path.rsplit('/');
        while node != ROOT && self.get(node).is_empty() {
            let level = levels.next().unwrap_or_default();
            let parent = self.get(node).parent();
            let p = self.get_mut(parent);
            match p.plus_mut() {
                Some(plus) if level == "+" => *plus = NONE,
                _ => {
                    p.children_mut().remove(level.as_bytes());
                }
            }
            self.free(node);
            node = parent;
        }
    }
}
