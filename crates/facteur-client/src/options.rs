//! What a client connects to and how: [`Options`], from a builder or a URL.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use facteur_codec::{ProtocolVersion, QoS};

use crate::message::PublishProperties;
use crate::Error;

/// How the bytes travel to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// Plain TCP (`mqtt://`, port 1883 by default).
    Tcp,
    /// TLS over TCP (`mqtts://`, port 8883 by default).
    Tls(TlsOptions),
    /// WebSocket (`ws://`, port 80 by default), the `mqtt` subprotocol, at this path.
    Ws {
        /// The HTTP path of the upgrade request (`/mqtt` by default).
        path: String,
    },
    /// WebSocket over TLS (`wss://`, port 443 by default).
    Wss {
        /// The HTTP path of the upgrade request.
        path: String,
        /// The TLS settings.
        tls: TlsOptions,
    },
}

impl Transport {
    /// The TLS settings, for `mqtts://` and `wss://`.
    pub fn tls_mut(&mut self) -> Option<&mut TlsOptions> {
        match self {
            Self::Tls(tls) | Self::Wss { tls, .. } => Some(tls),
            _ => None,
        }
    }
}

/// Which certificate authorities a TLS connection trusts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Roots {
    /// Mozilla's roots as shipped by the `webpki-roots` crate (the default).
    #[default]
    WebPki,
    /// The operating system's certificate store (`rustls-native-certs`).
    Native,
    /// The certificates of this PEM file only (a private CA, as mosquitto's `--cafile`).
    CaFile(PathBuf),
    /// These PEM-encoded certificates only.
    CaPem(Vec<u8>),
}

/// TLS settings (rustls).
///
/// ```
/// use facteur_client::{Roots, TlsOptions};
/// let mut tls = TlsOptions::default();
/// tls.roots = Roots::CaFile("ca.pem".into());
/// tls.client_auth = Some(("client.pem".into(), "client.key".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TlsOptions {
    /// The trusted roots.
    pub roots: Roots,
    /// A client certificate chain and its private key (PEM files), for mutual TLS.
    pub client_auth: Option<(PathBuf, PathBuf)>,
    /// The name the server's certificate must carry (the host by default).
    pub server_name: Option<String>,
    /// Accept a certificate whose name does not match the host (it must still chain to a
    /// trusted root), as mosquitto's `--insecure`.
    pub skip_name_check: bool,
}

/// The will: published by the broker if the connection ends without a normal DISCONNECT.
///
/// ```
/// use facteur_client::Will;
/// use facteur_codec::QoS;
/// let will = Will::new("maison/capteur/etat", "hors ligne").qos(QoS::AtLeastOnce).retain(true);
/// assert!(will.retain);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Will {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Bytes,
    /// Its QoS.
    pub qos: QoS,
    /// Whether the broker keeps it as retained.
    pub retain: bool,
    /// Its properties (5.0).
    pub properties: PublishProperties,
    /// Will Delay Interval in seconds (5.0).
    pub delay: Option<u32>,
}

impl Will {
    /// A QoS 0, non-retained will.
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            payload: payload.into(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: PublishProperties::default(),
            delay: None,
        }
    }

    /// With this QoS.
    #[must_use]
    pub fn qos(mut self, qos: QoS) -> Self {
        self.qos = qos;
        self
    }

    /// Retained or not.
    #[must_use]
    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }
}

/// Reconnecting after the connection is lost: exponential backoff with jitter.
///
/// The n-th attempt in a row waits a random time between half and all of
/// `min(initial × 2ⁿ, max)`.
///
/// ```
/// use facteur_client::Reconnect;
/// use std::time::Duration;
/// let r = Reconnect::default();
/// assert!(r.delay(0) <= Duration::from_millis(500));
/// assert!(r.delay(30) <= Duration::from_secs(30));
/// assert!(Reconnect::off().delay(0).is_zero());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    /// Whether to reconnect at all.
    pub enabled: bool,
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Reconnect {
    /// On, 500 ms doubling up to 30 s.
    fn default() -> Self {
        Self {
            enabled: true,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Reconnect {
    /// No reconnection: the client ends with its first connection.
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// The wait before attempt `attempt` (0 for the first after a loss): zero when off.
    pub fn delay(&self, attempt: u32) -> Duration {
        if !self.enabled {
            return Duration::ZERO;
        }
        let full = self
            .initial
            .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.max);
        // Jitter: between half and all of it, so clients cut off together spread out.
        full.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// Everything a [`Client`](crate::Client) needs to connect, and its limits.
///
/// ```
/// use facteur_client::Options;
/// use facteur_codec::ProtocolVersion;
/// use std::time::Duration;
/// let options = Options::new("localhost", 1883)
///     .client_id("capteur-salon")
///     .keep_alive(Duration::from_secs(30))
///     .credentials("alice", "secret")
///     .protocol(ProtocolVersion::V3_1_1);
/// assert_eq!(options.port, 1883);
/// let from_url = Options::from_url("mqtts://alice:secret@broker.example:8884?client_id=c1")?;
/// assert_eq!((from_url.host.as_str(), from_url.port), ("broker.example", 8884));
/// assert_eq!(from_url.username.as_deref(), Some("alice"));
/// assert_eq!(from_url.client_id, "c1");
/// # Ok::<(), facteur_client::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The broker's host name or address.
    pub host: String,
    /// The broker's port.
    pub port: u16,
    /// TCP, TLS, WebSocket.
    pub transport: Transport,
    /// MQTT 3.1.1 or 5.0 (the default).
    pub protocol: ProtocolVersion,
    /// The client identifier; empty asks the broker to assign one.
    pub client_id: String,
    /// Clean start (5.0) / clean session (3.1.1) on the first connection. Later
    /// connections of a 5.0 client resume the session (clean start 0).
    pub clean_start: bool,
    /// Keep alive (whole seconds; zero turns it off).
    pub keep_alive: Duration,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Bytes>,
    /// The will.
    pub will: Option<Will>,
    /// Session Expiry Interval in seconds (5.0).
    pub session_expiry: Option<u32>,
    /// Most incoming QoS 1/2 messages unacknowledged at once (5.0 Receive Maximum).
    pub receive_maximum: u16,
    /// The largest packet this client takes (5.0 Maximum Packet Size, enforced in every
    /// version before a packet's body is read).
    pub max_packet_size: u32,
    /// Topic aliases this client takes from the broker (5.0 Topic Alias Maximum).
    pub topic_alias_maximum: u16,
    /// 5.0 Request Problem Information.
    pub request_problem_information: bool,
    /// User properties of the CONNECT (5.0).
    pub user_properties: Vec<(String, String)>,
    /// Most outgoing QoS 1/2 messages unacknowledged at once (also bounded by the
    /// broker's Receive Maximum).
    pub max_inflight: u16,
    /// Messages held before they are sent: connected, a full queue makes `publish` wait;
    /// offline, `publish` fails with [`Error::QueueFull`] past it.
    pub max_queued: u32,
    /// Capacity of the channel of requests from the handles, and of the incoming
    /// messages not yet read (the connection stops reading when it is full).
    pub channel_capacity: usize,
    /// Reconnection.
    pub reconnect: Reconnect,
    /// How long a connection (TCP, TLS, WebSocket and CONNACK) may take.
    pub connect_timeout: Duration,
    /// Incoming QoS 1/2 messages are acknowledged only when the application calls
    /// [`Message::ack`](crate::Message::ack) (or drops the message).
    pub manual_acks: bool,
}

impl Options {
    /// A 5.0 client of `host:port` over TCP with a generated client identifier, clean
    /// start, keep alive 60 s, reconnection on.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            transport: Transport::Tcp,
            protocol: ProtocolVersion::V5,
            client_id: format!("facteur-{:08x}", fastrand::u32(..)),
            clean_start: true,
            keep_alive: Duration::from_secs(60),
            username: None,
            password: None,
            will: None,
            session_expiry: None,
            receive_maximum: 64,
            max_packet_size: 1 << 20,
            topic_alias_maximum: 16,
            request_problem_information: true,
            user_properties: Vec::new(),
            max_inflight: 64,
            max_queued: 1000,
            channel_capacity: 64,
            reconnect: Reconnect::default(),
            connect_timeout: Duration::from_secs(10),
            manual_acks: false,
        }
    }

    /// Options from a URL: `mqtt://`, `mqtts://`, `ws://` or `wss://`, with
    /// `user:password@`, a port (default 1883, 8883, 80, 443), a path for WebSocket
    /// (default `/mqtt`) and the query keys `client_id`, `keep_alive` (seconds),
    /// `clean_start` (`true`/`false`) and `protocol` (`3.1.1` or `5`).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for anything else.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::InvalidUrl(format!("{url}: {why}"));
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let path = match parsed.path() {
            "" | "/" => "/mqtt".to_owned(),
            p => p.to_owned(),
        };
        let (transport, default_port) = match parsed.scheme() {
            "mqtt" | "tcp" => (Transport::Tcp, 1883),
            "mqtts" | "ssl" => (Transport::Tls(TlsOptions::default()), 8883),
            "ws" => (Transport::Ws { path }, 80),
            "wss" => (
                Transport::Wss {
                    path,
                    tls: TlsOptions::default(),
                },
                443,
            ),
            other => return Err(bad(&format!("unknown scheme {other}"))),
        };
        let mut options = Self::new(host, parsed.port().unwrap_or(default_port));
        options.transport = transport;
        if !parsed.username().is_empty() {
            let user = percent_decode(parsed.username()).ok_or_else(|| bad("user name"))?;
            options.username = Some(user);
        }
        if let Some(password) = parsed.password() {
            let password = percent_decode(password).ok_or_else(|| bad("password"))?;
            options.password = Some(Bytes::from(password));
        }
        for (key, value) in parsed.query_pairs() {
            match &*key {
                "client_id" => options.client_id = value.into_owned(),
                "keep_alive" => {
                    let secs = value.parse().map_err(|_| bad("keep_alive"))?;
                    options.keep_alive = Duration::from_secs(secs);
                }
                "clean_start" => {
                    options.clean_start = value.parse().map_err(|_| bad("clean_start"))?;
                }
                "protocol" => {
                    options.protocol = parse_protocol(&value).ok_or_else(|| bad("protocol"))?;
                }
                other => return Err(bad(&format!("unknown parameter {other}"))),
            }
        }
        Ok(options)
    }

    /// With this client identifier.
    #[must_use]
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// With this protocol version (3.1.1 or 5.0).
    #[must_use]
    pub fn protocol(mut self, protocol: ProtocolVersion) -> Self {
        self.protocol = protocol;
        self
    }

    /// With this keep alive (whole seconds, at most 65,535).
    #[must_use]
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Clean start or not.
    #[must_use]
    pub fn clean_start(mut self, clean: bool) -> Self {
        self.clean_start = clean;
        self
    }

    /// With a user name and password.
    #[must_use]
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<Bytes>) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// With a will.
    #[must_use]
    pub fn will(mut self, will: Will) -> Self {
        self.will = Some(will);
        self
    }

    /// With this transport.
    #[must_use]
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// With this Session Expiry Interval (5.0).
    #[must_use]
    pub fn session_expiry(mut self, secs: u32) -> Self {
        self.session_expiry = Some(secs);
        self
    }

    /// With this reconnection policy.
    #[must_use]
    pub fn reconnect(mut self, reconnect: Reconnect) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Manual acknowledgements on or off.
    #[must_use]
    pub fn manual_acks(mut self, on: bool) -> Self {
        self.manual_acks = on;
        self
    }

    /// The keep alive in whole seconds, as CONNECT carries it.
    pub(crate) fn keep_alive_secs(&self) -> u16 {
        u16::try_from(self.keep_alive.as_secs()).unwrap_or(u16::MAX)
    }
}

/// `3.1.1`, `311`, `mqttv311`, `5`, `5.0`, `mqttv5` (mosquitto's spellings).
pub fn parse_protocol(text: &str) -> Option<ProtocolVersion> {
    match text {
        "3.1.1" | "311" | "mqttv311" | "4" => Some(ProtocolVersion::V3_1_1),
        "5" | "5.0" | "mqttv5" => Some(ProtocolVersion::V5),
        _ => None,
    }
}

/// Decodes `%XX` escapes of a URL's user or password.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_every_scheme() {
        let o = Options::from_url("mqtt://h").unwrap();
        assert_eq!((o.port, &o.transport), (1883, &Transport::Tcp));
        let o = Options::from_url("mqtts://u%40x:p%3As@h:1").unwrap();
        assert_eq!(o.port, 1);
        assert!(matches!(o.transport, Transport::Tls(_)));
        assert_eq!(o.username.as_deref(), Some("u@x"));
        assert_eq!(o.password.as_deref(), Some(&b"p:s"[..]));
        let o = Options::from_url("ws://h/").unwrap();
        assert_eq!(
            (o.port, o.transport),
            (
                80,
                Transport::Ws {
                    path: "/mqtt".into()
                }
            )
        );
        let o = Options::from_url("wss://[::1]:9001/ws?protocol=311&keep_alive=5").unwrap();
        assert_eq!((o.host.as_str(), o.port), ("::1", 9001));
        assert!(matches!(o.transport, Transport::Wss { ref path, .. } if path == "/ws"));
        assert_eq!(o.protocol, ProtocolVersion::V3_1_1);
        assert_eq!(o.keep_alive, Duration::from_secs(5));
    }

    #[test]
    fn bad_urls_are_errors() {
        for url in [
            "http://h",
            "mqtt://",
            "nonsense",
            "mqtt://h?x=1",
            "mqtt://h?protocol=4.0",
        ] {
            assert!(
                matches!(Options::from_url(url), Err(Error::InvalidUrl(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_max_with_jitter() {
        let r = Reconnect {
            enabled: true,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let d = r.delay(2);
            assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(400));
            assert!(r.delay(40) <= Duration::from_secs(1));
        }
    }
}
