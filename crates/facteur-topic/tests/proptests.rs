//! Property tests: the subscription tree and the retained index agree with [`matches`] applied
//! to every filter or topic one by one, and never leave empty nodes behind.
#![cfg(feature = "alloc")]

use std::collections::{BTreeMap, BTreeSet};

use facteur_topic::{matches, RetainedIndex, SubscriptionTree, TopicFilter, TopicName};
use proptest::prelude::*;

/// Few distinct levels so that filters and names collide often; `$s` makes `$` topics when it
/// comes first, and the long one is stored out of line in the tries.
fn name_level() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("a"),
        Just("b"),
        Just("c"),
        Just(""),
        Just("$s"),
        Just("a-level-longer-than-22-bytes"),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(name_level(), 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("empty name", |name| !name.is_empty())
}

fn filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![3 => name_level(), 2 => Just("+")];
    (prop::collection::vec(level, 0..4), any::<bool>()).prop_filter_map(
        "empty filter",
        |(mut levels, multi)| {
            if multi || levels.is_empty() {
                levels.push("#");
            }
            let filter = levels.join("/");
            TopicFilter::new(&filter).is_ok().then_some(filter)
        },
    )
}

/// A filter, sometimes turned into a shared subscription of group `g` or `h`.
fn maybe_shared_filter() -> impl Strategy<Value = String> {
    (
        filter(),
        prop_oneof![3 => Just(None), 1 => Just(Some("g")), 1 => Just(Some("h"))],
    )
        .prop_map(|(filter, group)| match group {
            Some(group) => format!("$share/{group}/{filter}"),
            None => filter,
        })
}

fn f(s: &str) -> TopicFilter<'_> {
    TopicFilter::new(s).unwrap()
}

fn n(s: &str) -> TopicName<'_> {
    TopicName::new(s).unwrap()
}

/// The trie nodes a set of (non-shared) filters needs: every prefix of their levels, a final
/// `#` excepted.
fn expected_nodes<'a>(filters: impl IntoIterator<Item = &'a str>) -> usize {
    let mut prefixes = BTreeSet::new();
    for filter in filters {
        let levels: Vec<&str> = filter.split('/').collect();
        let path = match levels.last() {
            Some(&"#") => &levels[..levels.len() - 1],
            _ => &levels[..],
        };
        for i in 1..=path.len() {
            prefixes.insert(path[..i].to_vec());
        }
    }
    prefixes.len()
}

/// The filter a (possibly shared) subscription matches with.
fn inner(filter: &str) -> &str {
    f(filter).shared().map_or(filter, |s| s.filter().as_str())
}

#[derive(Debug, Clone)]
enum Op {
    Insert(String, u32, u8),
    Remove(String, u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (maybe_shared_filter(), 0..3u32, any::<u8>()).prop_map(|(f, k, v)| Op::Insert(f, k, v)),
        (maybe_shared_filter(), 0..3u32).prop_map(|(f, k)| Op::Remove(f, k)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every subscription the tree reports matches, and every matching one is reported once.
    #[test]
    fn tree_agrees_with_matches(
        filters in prop::collection::vec(filter(), 0..24),
        names in prop::collection::vec(name(), 1..12),
    ) {
        let mut tree = SubscriptionTree::new();
        for (i, filter) in filters.iter().enumerate() {
            prop_assert_eq!(tree.insert(f(filter), i, i), None);
        }
        prop_assert_eq!(tree.len(), filters.len());
        prop_assert_eq!(tree.node_count(), expected_nodes(filters.iter().map(|s| s.as_str())));
        for name in &names {
            let mut got = Vec::new();
            tree.for_each_match(n(name), |k, v| {
                assert_eq!(k, v);
                got.push(*k);
            });
            got.sort_unstable();
            let want: Vec<usize> = (0..filters.len())
                .filter(|&i| matches(f(&filters[i]), n(name)))
                .collect();
            prop_assert_eq!(got, want, "name {:?}", name);
        }
    }

    /// Random inserts and removes, shared ones included, keep the tree in step with a map of
    /// subscriptions: same return values, same count, exactly the nodes still needed, and one
    /// member per matching group.
    #[test]
    fn tree_insert_remove_keeps_no_empty_node(
        ops in prop::collection::vec(op(), 0..64),
        names in prop::collection::vec(name(), 1..6),
    ) {
        let mut tree = SubscriptionTree::new();
        let fresh = tree.memory_usage();
        let mut model: BTreeMap<(String, u32), u8> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Insert(filter, k, v) => {
                    let got = tree.insert(f(&filter), k, v);
                    prop_assert_eq!(got, model.insert((filter, k), v));
                }
                Op::Remove(filter, k) => {
                    let got = tree.remove(f(&filter), &k);
                    prop_assert_eq!(got, model.remove(&(filter, k)));
                }
            }
            prop_assert_eq!(tree.len(), model.len());
            prop_assert_eq!(
                tree.node_count(),
                expected_nodes(model.keys().map(|(filter, _)| inner(filter)))
            );
        }
        tree.shrink_to_fit();
        prop_assert_eq!(
            tree.node_count(),
            expected_nodes(model.keys().map(|(filter, _)| inner(filter)))
        );
        for ((filter, k), v) in &model {
            prop_assert_eq!(tree.get(f(filter), k), Some(v));
        }
        for name in &names {
            let mut got = 0;
            tree.for_each_match(n(name), |_, _| got += 1);
            let matching = model.keys().filter(|(filter, _)| matches(f(inner(filter)), n(name)));
            let direct = matching.clone().filter(|(filter, _)| f(filter).shared().is_none());
            let groups: BTreeSet<&str> = matching
                .filter(|(filter, _)| f(filter).shared().is_some())
                .map(|(filter, _)| filter.as_str())
                .collect();
            prop_assert_eq!(got, direct.count() + groups.len(), "name {:?}", name);
        }
        for (filter, k) in model.keys() {
            prop_assert!(tree.remove(f(filter), k).is_some());
        }
        prop_assert!(tree.is_empty());
        prop_assert_eq!(tree.node_count(), 0);
        prop_assert_eq!(tree.memory_usage(), fresh);
    }

    /// Retained lookups return exactly the topics `matches` selects, and the index holds one
    /// node per distinct topic prefix.
    #[test]
    fn retained_agrees_with_a_scan(
        ops in prop::collection::vec((name(), any::<bool>(), any::<u16>()), 0..48),
        filters in prop::collection::vec(filter(), 1..12),
    ) {
        let mut index = RetainedIndex::new();
        let mut model: BTreeMap<String, u16> = BTreeMap::new();
        for (name, insert, value) in ops {
            if insert {
                prop_assert_eq!(index.insert(n(&name), value), model.insert(name, value));
            } else {
                prop_assert_eq!(index.remove(n(&name)), model.remove(&name));
            }
            prop_assert_eq!(index.len(), model.len());
        }
        let mut prefixes = BTreeSet::new();
        for name in model.keys() {
            let levels: Vec<&str> = name.split('/').collect();
            for i in 1..=levels.len() {
                prefixes.insert(levels[..i].to_vec());
            }
        }
        prop_assert_eq!(index.node_count(), prefixes.len());
        for filter in &filters {
            let mut got = Vec::new();
            index.for_each_match(f(filter), |name, value| got.push((name.as_str().to_owned(), *value)));
            got.sort();
            let want: Vec<(String, u16)> = model
                .iter()
                .filter(|(name, _)| matches(f(filter), n(name)))
                .map(|(name, value)| (name.clone(), *value))
                .collect();
            prop_assert_eq!(got, want, "filter {:?}", filter);
        }
        for name in model.keys() {
            prop_assert!(index.remove(n(name)).is_some());
        }
        prop_assert_eq!(index.node_count(), 0);
    }
}
