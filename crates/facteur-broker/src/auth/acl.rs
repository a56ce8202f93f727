//! ACL files in mosquitto's syntax, and the checks made with them.
//!
//! ```text
//! # before any `user` line: rules for anonymous clients
//! topic read public/#
//! user alice
//! topic readwrite alice/#
//! topic deny alice/secret
//! # for every client: %c is its client identifier, %u its username
//! pattern write devices/%c/status
//! ```
//!
//! `topic [read|write|readwrite|deny] FILTER` (no access word: readwrite; a first word
//! that is not an access word followed by more text is an error, not a topic with a space). A client may do
//! something on a topic when one of its rules (its `user` block, or the anonymous rules
//! when it has no username, and every `pattern`) matching the topic grants it and none
//! matching it says `deny`: deny wins. A `pattern` whose `%c` or `%u` would take a value
//! containing `+`, `#` or `/` (or a missing username) never matches for that client, so a
//! client cannot widen a pattern with its own identifier. Rules follow MQTT's matching, so
//! a wildcard at the first level does not match `$SYS` topics: those are readable only
//! where a rule names `$SYS`.

use super::FileError;
use facteur_topic::TopicFilter;
use std::collections::HashMap;
use std::path::Path;

/// What a rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Access {
    fn grants(self, want: Want) -> bool {
        matches!(
            (self, want),
            (Self::ReadWrite, _) | (Self::Read, Want::Read) | (Self::Write, Want::Write)
        )
    }
}

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Read,
    Write,
}

/// One level of a rule's filter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Literal(String),
    /// `+`
    Plus,
    /// `#`
    Hash,
    /// A `pattern` level with `%c` or `%u` in it.
    Template(Vec<Part>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    ClientId,
    Username,
}

/// One `topic` or `pattern` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    access: Access,
    levels: Vec<Level>,
}

/// The client a check is for.
struct Who<'a> {
    client_id: &'a str,
    username: Option<&'a str>,
}

impl Who<'_> {
    /// The value of a template part, if it may take part in a match (no `+ # /`).
    fn value<'s>(&'s self, part: &'s Part) -> Option<&'s str> {
        let value = match part {
            Part::Text(text) => return Some(text),
            Part::ClientId => self.client_id,
            Part::Username => self.username?,
        };
        (!value.contains(['+', '#', '/'])).then_some(value)
    }

    /// True if the template, filled in for this client, is exactly `level`.
    fn template_is(&self, parts: &[Part], mut level: &str) -> bool {
        for part in parts {
            let Some(value) = self.value(part) else {
                return false;
            };
            match level.strip_prefix(value) {
                Some(rest) => level = rest,
                None => return false,
            }
        }
        level.is_empty()
    }

    /// True if every template of `rule` can be filled in for this client.
    fn can_fill(&self, rule: &Rule) -> bool {
        rule.levels.iter().all(|level| match level {
            Level::Template(parts) => parts.iter().all(|p| self.value(p).is_some()),
            _ => true,
        })
    }
}

/// A parsed ACL file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFile {
    anonymous: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
    patterns: Vec<Rule>,
}

impl AclFile {
    /// Reads an ACL file.
    ///
    /// # Errors
    /// The file cannot be read, or a line does not parse: the error names the file and the
    /// line.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let text = super::read_file(path)?;
        Self::parse(&text).map_err(|(line, why)| FileError::at(path, line, why))
    }

    /// Parses an ACL file's text; an error gives the line (from 1) and the problem.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut acl = Self::default();
        let mut user: Option<String> = None;
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
            let rest = rest.trim();
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err((number, "`user` needs a username".into()));
                    }
                    acl.users.entry(rest.to_owned()).or_default();
                    user = Some(rest.to_owned());
                }
                "topic" | "pattern" => {
                    let is_pattern = keyword == "pattern";
                    let rule = parse_rule(rest, is_pattern).map_err(|why| (number, why))?;
                    match (&user, is_pattern) {
                        (_, true) => acl.patterns.push(rule),
                        (Some(user), false) => {
                            acl.users.entry(user.clone()).or_default().push(rule)
                        }
                        (None, false) => acl.anonymous.push(rule),
                    }
                }
                other => {
                    return Err((
                        number,
                        format!("unknown keyword {other:?} (expected topic, user or pattern)"),
                    ))
                }
            }
        }
        Ok(acl)
    }

    /// True if the client may publish to `topic`.
    pub fn may_publish(&self, client_id: &str, username: Option<&str>, topic: &str) -> bool {
        self.check(
            &Who {
                client_id,
                username,
            },
            topic,
            Want::Write,
        )
    }

    /// True if the client may receive a message published to `topic`.
    pub fn may_read(&self, client_id: &str, username: Option<&str>, topic: &str) -> bool {
        self.check(
            &Who {
                client_id,
                username,
            },
            topic,
            Want::Read,
        )
    }

    /// True if the client may subscribe to `filter`: some rule lets it read a topic the
    /// filter matches, and no `deny` rule covers every topic the filter matches. (Each
    /// message is checked again on delivery, so a subscriber to `#` receives only what it
    /// may read.)
    pub fn may_subscribe(&self, client_id: &str, username: Option<&str>, filter: &str) -> bool {
        let who = Who {
            client_id,
            username,
        };
        let Ok(filter) = TopicFilter::new(filter) else {
            return false;
        };
        let filter: Vec<&str> = filter.levels().collect();
        let mut readable = false;
        for rule in self.rules_for(&who) {
            if rule.access == Access::Deny && covers(&who, &rule.levels, &filter, true) {
                return false;
            }
            if rule.access.grants(Want::Read) {
                readable |= overlaps(&who, &rule.levels, &filter, true);
            }
        }
        readable
    }

    /// The rules that apply to a client: its user's (or the anonymous ones), then the
    /// patterns it can fill in.
    fn rules_for<'a>(&'a self, who: &'a Who<'_>) -> impl Iterator<Item = &'a Rule> + 'a {
        let own = match who.username {
            Some(user) => self.users.get(user).map_or(&[][..], Vec::as_slice),
            None => &self.anonymous,
        };
        own.iter()
            .chain(self.patterns.iter().filter(|rule| who.can_fill(rule)))
    }

    fn check(&self, who: &Who<'_>, topic: &str, want: Want) -> bool {
        let mut allowed = false;
        for rule in self.rules_for(who) {
            if matches_topic(who, &rule.levels, topic) {
                if rule.access == Access::Deny {
                    return false;
                }
                allowed |= rule.access.grants(want);
            }
        }
        allowed
    }
}

fn parse_rule(rest: &str, is_pattern: bool) -> Result<Rule, String> {
    let (first, after) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    let (access, filter) = match first {
        "read" => (Access::Read, after.trim()),
        "write" => (Access::Write, after.trim()),
        "readwrite" => (Access::ReadWrite, after.trim()),
        "deny" => (Access::Deny, after.trim()),
        // One word: a filter, read and write. A first word that is not an access word
        // followed by more is refused rather than read as a topic with a space: a typo
        // (`topic raed secrets/#`) must not become a readwrite rule.
        _ if after.trim().is_empty() => (Access::ReadWrite, rest),
        other => {
            return Err(format!(
                "unknown access {other:?} (read, write, readwrite or deny)"
            ))
        }
    };
    if filter.is_empty() {
        return Err("missing topic filter".into());
    }
    // The filter must be valid MQTT once templates are filled in.
    let checked = if is_pattern {
        filter.replace("%c", "c").replace("%u", "u")
    } else {
        filter.to_owned()
    };
    TopicFilter::new(&checked).map_err(|e| format!("invalid topic filter {filter:?}: {e}"))?;
    if TopicFilter::new(&checked).is_ok_and(|f| f.shared().is_some()) {
        return Err(format!(
            "{filter:?}: a rule names topics, not shared subscriptions"
        ));
    }
    let levels = filter
        .split('/')
        .map(|level| match level {
            "+" => Level::Plus,
            "#" => Level::Hash,
            _ if is_pattern && (level.contains("%c") || level.contains("%u")) => {
                Level::Template(parse_template(level))
            }
            _ => Level::Literal(level.to_owned()),
        })
        .collect();
    Ok(Rule { access, levels })
}

fn parse_template(mut level: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    while !level.is_empty() {
        let next = [level.find("%c"), level.find("%u")]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(0) => {
                parts.push(if level.starts_with("%c") {
                    Part::ClientId
                } else {
                    Part::Username
                });
                level = &level[2..];
            }
            Some(at) => {
                parts.push(Part::Text(level[..at].to_owned()));
                level = &level[at..];
            }
            None => {
                parts.push(Part::Text(level.to_owned()));
                level = "";
            }
        }
    }
    parts
}

/// A rule level that is not a wildcard, compared with a topic (or filter) level.
fn literal_is(who: &Who<'_>, rule: &Level, level: &str) -> bool {
    match rule {
        Level::Literal(text) => text == level,
        Level::Template(parts) => who.template_is(parts, level),
        Level::Plus | Level::Hash => false,
    }
}

/// True if the rule's filter matches the topic name (MQTT's rules, `$` included).
fn matches_topic(who: &Who<'_>, rule: &[Level], topic: &str) -> bool {
    let mut levels = topic.split('/');
    for (index, level) in rule.iter().enumerate() {
        let wildcard = matches!(level, Level::Plus | Level::Hash);
        if index == 0 && wildcard && topic.starts_with('$') {
            return false;
        }
        if *level == Level::Hash {
            return true;
        }
        let Some(name) = levels.next() else {
            return false;
        };
        if !wildcard && !literal_is(who, level, name) {
            return false;
        }
    }
    levels.next().is_none()
}

/// One level of a subscription filter.
fn is_wild(level: &str) -> bool {
    level == "+" || level == "#"
}

/// True if some topic matches both the rule and the filter.
fn overlaps(who: &Who<'_>, rule: &[Level], filter: &[&str], first: bool) -> bool {
    match (rule.first(), filter.first()) {
        (None, None) => true,
        (Some(r), Some(f)) if first && dollar_apart(r, f) => false,
        (Some(Level::Hash), _) | (_, Some(&"#")) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some(r), Some(f)) => {
            let level_ok = *r == Level::Plus || *f == "+" || literal_is(who, r, f);
            level_ok && overlaps(who, &rule[1..], &filter[1..], false)
        }
    }
}

/// True if every topic the filter matches is matched by the rule.
fn covers(who: &Who<'_>, rule: &[Level], filter: &[&str], first: bool) -> bool {
    match (rule.first(), filter.first()) {
        (Some(r), Some(f)) if first && dollar_apart(r, f) => false,
        (Some(Level::Hash), _) => true,
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some(_), Some(&"#")) => false,
        (Some(Level::Plus), Some(_)) => covers(who, &rule[1..], &filter[1..], false),
        (Some(r), Some(f)) => {
            !is_wild(f) && literal_is(who, r, f) && covers(who, &rule[1..], &filter[1..], false)
        }
    }
}

/// At the first level: a wildcard on one side and a `$` topic on the other never meet.
fn dollar_apart(rule: &Level, filter: &str) -> bool {
    let rule_wild = matches!(rule, Level::Plus | Level::Hash);
    let rule_dollar = matches!(rule, Level::Literal(t) if t.starts_with('$'));
    (rule_wild && filter.starts_with('$')) || (rule_dollar && is_wild(filter))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# anonymous clients
topic read public/#
topic deny public/secret

user alice
topic readwrite alice/#
topic deny alice/private/#
topic read $SYS/broker/uptime

user bob
topic write sensors/+/temp

pattern readwrite devices/%c/#
pattern read users/%u/inbox
pattern write dev-%c-out/x
";

    fn acl() -> AclFile {
        AclFile::parse(FILE).unwrap()
    }

    #[test]
    fn anonymous_rules_come_before_any_user_line() {
        let acl = acl();
        assert!(acl.may_read("c", None, "public/news"));
        assert!(!acl.may_publish("c", None, "public/news"));
        assert!(!acl.may_read("c", None, "public/secret"), "deny wins");
        assert!(!acl.may_read("c", None, "alice/x"));
        // Alice's rules are not the anonymous ones.
        assert!(!acl.may_read("c", Some("alice"), "public/news"));
    }

    #[test]
    fn user_blocks_and_deny() {
        let acl = acl();
        assert!(acl.may_publish("c", Some("alice"), "alice/a/b"));
        assert!(acl.may_read("c", Some("alice"), "alice"));
        assert!(!acl.may_read("c", Some("alice"), "alice/private/x"));
        assert!(!acl.may_publish("c", Some("alice"), "alice/private"));
        assert!(acl.may_publish("c", Some("bob"), "sensors/k/temp"));
        assert!(!acl.may_read("c", Some("bob"), "sensors/k/temp"));
        assert!(!acl.may_publish("c", Some("bob"), "sensors/k/temp/x"));
        // A user the file does not name gets only the patterns.
        assert!(!acl.may_read("c", Some("carol"), "public/news"));
        assert!(acl.may_read("c", Some("carol"), "users/carol/inbox"));
        assert!(!acl.may_read("c", Some("carol"), "users/alice/inbox"));
    }

    #[test]
    fn patterns_fill_in_client_id_and_username() {
        let acl = acl();
        assert!(acl.may_publish("d1", None, "devices/d1/status"));
        assert!(acl.may_read("d1", None, "devices/d1"));
        assert!(!acl.may_publish("d1", None, "devices/d2/status"));
        assert!(acl.may_publish("d1", None, "dev-d1-out/x"));
        assert!(!acl.may_publish("d1", None, "dev-d2-out/x"));
        assert!(!acl.may_publish("d1", None, "dev-d1-outx/x"));
        // %u without a username matches nothing.
        assert!(!acl.may_read("c", None, "users//inbox"));
    }

    #[test]
    fn a_hostile_client_id_or_username_never_widens_a_pattern() {
        let acl = acl();
        for id in ["+", "#", "a/b", "d1/#", "+/x"] {
            for topic in ["devices/d1/status", "devices/a/b/status", "devices/x"] {
                assert!(!acl.may_publish(id, None, topic), "{id} {topic}");
            }
            assert!(!acl.may_subscribe(id, None, "devices/+/#"), "{id}");
            assert!(!acl.may_subscribe(id, None, "devices/#"), "{id}");
        }
        assert!(!acl.may_read("c", Some("+"), "users/x/inbox"));
        assert!(!acl.may_read("c", Some("a/b"), "users/a/b/inbox"));
        assert!(!acl.may_subscribe("c", Some("#"), "users/+/inbox"));
    }

    #[test]
    fn sys_topics_only_where_named() {
        let acl = acl();
        assert!(acl.may_read("c", Some("alice"), "$SYS/broker/uptime"));
        assert!(!acl.may_read("c", Some("alice"), "$SYS/broker/version"));
        let everything = AclFile::parse("topic read #\ntopic read +/x").unwrap();
        assert!(everything.may_read("c", None, "a/b"));
        assert!(!everything.may_read("c", None, "$SYS/broker/uptime"));
        assert!(!everything.may_read("c", None, "$x/x"));
        assert!(!everything.may_subscribe("c", None, "$SYS/#"));
        assert!(everything.may_subscribe("c", None, "#"));
    }

    #[test]
    fn subscriptions_need_something_readable_and_no_covering_deny() {
        let acl = acl();
        // Wildcards are granted when they reach something readable; deliveries are
        // checked one by one.
        assert!(acl.may_subscribe("c", None, "#"));
        assert!(acl.may_subscribe("c", None, "public/+"));
        assert!(acl.may_subscribe("c", None, "+/news"));
        assert!(!acl.may_subscribe("c", None, "public/secret"));
        assert!(!acl.may_subscribe("c", None, "private/#"));
        assert!(acl.may_subscribe("c", Some("alice"), "alice/#"));
        assert!(!acl.may_subscribe("c", Some("alice"), "alice/private/+"));
        assert!(!acl.may_subscribe("c", Some("alice"), "alice/private/#"));
        assert!(acl.may_subscribe("c", Some("alice"), "$SYS/broker/+"));
        assert!(!acl.may_subscribe("c", Some("alice"), "$SYS/broker/version"));
        // Write-only rules give nothing to read.
        assert!(!acl.may_subscribe("c", Some("bob"), "sensors/+/temp"));
        assert!(acl.may_subscribe("d1", None, "devices/d1/#"));
        assert!(acl.may_subscribe("d1", None, "devices/+/x"));
        assert!(!acl.may_subscribe("d1", None, "devices/d2/#"));
    }

    #[test]
    fn bad_lines_name_the_line() {
        for (text, line, why) in [
            ("topic read a/#/b", 1, "invalid topic filter"),
            ("\n\ntopc read a", 3, "unknown keyword"),
            ("user\n", 1, "needs a username"),
            ("topic read", 1, "missing topic filter"),
            ("topic deny", 1, "missing topic filter"),
            ("pattern read a/%c#", 1, "invalid topic filter"),
            ("topic read $share/g/a", 1, "shared"),
            ("user a\ntopic raed secrets/#", 2, "unknown access \"raed\""),
        ] {
            let (at, message) = AclFile::parse(text).unwrap_err();
            assert_eq!(at, line, "{text:?}: {message}");
            assert!(message.contains(why), "{text:?}: {message}");
        }
    }
}
