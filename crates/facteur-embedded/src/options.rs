//! What the client says in its CONNECT.

use facteur_codec::{ProtocolVersion, Will};

/// The CONNECT the client sends, first and on every reconnect: version, identity, keep
/// alive, session, will, credentials.
///
/// ```
/// use facteur_embedded::{ConnectOptions, Properties, ProtocolVersion, QoS, Will};
/// let mut options = ConnectOptions::new(ProtocolVersion::V5, "sensor-42");
/// options.keep_alive = 30;
/// options.session_expiry = 3600; // keep the session an hour: in-flight messages survive
/// options.will = Some(Will {
///     topic: "maison/sensor-42/status",
///     payload: b"offline",
///     qos: QoS::AtLeastOnce,
///     retain: true,
///     properties: Properties::EMPTY,
/// });
/// options.username = Some("device");
/// options.password = Some(b"secret");
/// assert!(options.resumes());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectOptions<'a> {
    /// MQTT 3.1.1 or 5.0 (or 3.1, for old brokers).
    pub version: ProtocolVersion,
    /// The client identifier (empty: the broker assigns one, 5.0 and 3.1.1 clean sessions).
    pub client_id: &'a str,
    /// Keep alive in seconds (0: none). The broker may lower it (5.0 Server Keep Alive);
    /// the driver sends PINGREQ after that long without sending anything.
    pub keep_alive: u16,
    /// 3.1.1: clean session on the first connection (the broker forgets any session it
    /// held for this identifier), or not (the broker keeps the session after the connection
    /// ends, and a device that rebooted takes up the one it kept). MQTT 5 always starts a
    /// client without session state clean (MQTT-3.2.2-4) and keeps the session with
    /// [`session_expiry`](Self::session_expiry); this field is then only read by
    /// [`resumes`](Self::resumes) for 3.1.1. Reconnections of a session that lasts never
    /// ask for a clean start, so the session carries on.
    pub clean_start: bool,
    /// MQTT 5 Session Expiry Interval in seconds: how long the broker keeps the session
    /// after the connection is lost (0: it ends with the connection; `u32::MAX`: never).
    /// MQTT 3.1.1 has no interval: a session lasts when `clean_start` is false.
    pub session_expiry: u32,
    /// The will: published by the broker if the connection ends without DISCONNECT.
    pub will: Option<Will<'a>>,
    /// User name.
    pub username: Option<&'a str>,
    /// Password.
    pub password: Option<&'a [u8]>,
    /// How long to wait for the CONNACK, in milliseconds.
    pub connect_timeout_ms: u32,
}

impl<'a> ConnectOptions<'a> {
    /// `version` and `client_id`, keep alive 60 s, a clean start, a session that ends with
    /// the connection, no will, no credentials, 10 s for the CONNACK.
    pub const fn new(version: ProtocolVersion, client_id: &'a str) -> Self {
        Self {
            version,
            client_id,
            keep_alive: 60,
            clean_start: true,
            session_expiry: 0,
            will: None,
            username: None,
            password: None,
            connect_timeout_ms: 10_000,
        }
    }

    /// True if the broker keeps the session across connections: a reconnection resumes it
    /// (MQTT 5: Session Expiry Interval above 0; 3.1.1: no clean session).
    pub const fn resumes(&self) -> bool {
        if self.version.is_v5() {
            self.session_expiry > 0
        } else {
            !self.clean_start
        }
    }
}
