//! Matching one filter against one name, without allocation.

use crate::{TopicFilter, TopicName};

/// True if `filter` matches `name` (MQTT 5.0 §4.7).
///
/// `+` matches exactly one level (possibly empty), `#` matches the parent level and any number of
/// levels below it, and a filter whose first level is a wildcard does not match a name starting
/// with `$`. A `$share/{group}/` prefix is not stripped here: pass [`SharedFilter::filter`].
///
/// [`SharedFilter::filter`]: crate::SharedFilter::filter
///
/// ```
/// use facteur_topic::{matches, TopicFilter, TopicName};
/// let f = |s| TopicFilter::new(s).unwrap();
/// let n = |s| TopicName::new(s).unwrap();
/// assert!(matches(f("sport/#"), n("sport")));
/// assert!(matches(f("sport/+/player1"), n("sport/tennis/player1")));
/// assert!(!matches(f("+/monitor"), n("$SYS/monitor")));
/// ```
pub fn matches(filter: TopicFilter<'_>, name: TopicName<'_>) -> bool {
    if name.is_dollar() && filter.as_str().starts_with(['+', '#']) {
        return false;
    }
    let mut names = name.levels();
    for level in filter.levels() {
        match level {
            "#" => return true,
            "+" => {
                if names.next().is_none() {
                    return false;
                }
            }
            exact => {
                if names.next() != Some(exact) {
                    return false;
                }
            }
        }
    }
    names.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(filter: &str, name: &str) -> bool {
        matches(
            TopicFilter::new(filter).unwrap(),
            TopicName::new(name).unwrap(),
        )
    }

    #[test]
    fn spec_examples() {
        assert!(m("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(m("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
        assert!(m(
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon"
        ));
        assert!(m("sport/#", "sport"));
        assert!(m("sport/tennis/+", "sport/tennis/player1"));
        assert!(!m("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!m("sport/+", "sport"));
        assert!(m("sport/+", "sport/"));
        assert!(m("+/+", "/finance"));
        assert!(m("/+", "/finance"));
        assert!(!m("+", "/finance"));
        assert!(m("#", "a/b/c"));
    }

    #[test]
    fn dollar_topics_need_an_explicit_first_level() {
        assert!(!m("#", "$SYS/uptime"));
        assert!(!m("+/uptime", "$SYS/uptime"));
        assert!(m("$SYS/#", "$SYS/uptime"));
        assert!(m("$SYS/+", "$SYS/uptime"));
    }

    #[test]
    fn exact_and_empty_levels() {
        assert!(m("a//b", "a//b"));
        assert!(!m("a/b", "a/b/"));
        assert!(m("a/+/b", "a//b"));
    }
}
