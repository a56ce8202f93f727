//! Quality of service levels.

/// The delivery guarantee of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum QoS {
    /// At most once: fire and forget.
    #[default]
    AtMostOnce = 0,
    /// At least once: resent until PUBACK.
    AtLeastOnce = 1,
    /// Exactly once: PUBLISH/PUBREC then PUBREL/PUBCOMP.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for its two-bit value; `None` for 3, which MQTT reserves.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }

    /// The lower of two levels: what a subscriber gets when publish and subscription QoS differ.
    pub fn min(self, other: Self) -> Self {
        core::cmp::min(self, other)
    }
}
