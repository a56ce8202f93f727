//! OwnTracks topics: `owntracks/USER/DEVICE` for positions and the will, and
//! `owntracks/USER/DEVICE/SUBTOPIC` (`event`, `waypoint`, `waypoints`, `info`...) for the
//! rest.

/// The parts of an OwnTracks topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTopic<'a> {
    /// The user (the MQTT username, when the broker's ACL is `owntracks/%u/#`).
    pub user: &'a str,
    /// The device.
    pub device: &'a str,
    /// What follows the device (`event`, `waypoint`...), if anything.
    pub subtopic: Option<&'a str>,
}

/// Splits `owntracks/USER/DEVICE[/SUBTOPIC]`; `None` for any other topic.
///
/// ```
/// use facteur_owntracks::topic::parse;
/// let t = parse("owntracks/alice/phone/event").unwrap();
/// assert_eq!((t.user, t.device, t.subtopic), ("alice", "phone", Some("event")));
/// assert!(parse("owntracks/alice").is_none());
/// ```
pub fn parse(topic: &str) -> Option<DeviceTopic<'_>> {
    let mut parts = topic.split('/');
    if parts.next() != Some("owntracks") {
        return None;
    }
    let user = parts.next().filter(|s| !s.is_empty())?;
    let device = parts.next().filter(|s| !s.is_empty())?;
    let subtopic = parts.next();
    if parts.next().is_some() || subtopic == Some("") {
        return None;
    }
    Some(DeviceTopic {
        user,
        device,
        subtopic,
    })
}

/// The topic of `user`'s `device`.
pub fn device_topic(user: &str, device: &str) -> String {
    format!("owntracks/{user}/{device}")
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn topics() {
        let t = parse("owntracks/bob/car").unwrap();
        assert_eq!((t.user, t.device, t.subtopic), ("bob", "car", None));
        for other in [
            "",
            "owntracks",
            "owntracks//x",
            "owntracks/a/",
            "other/a/b",
            "owntracks/a/b/c/d",
            "owntracks/a/b/",
        ] {
            assert!(parse(other).is_none(), "{other}");
        }
    }
}
