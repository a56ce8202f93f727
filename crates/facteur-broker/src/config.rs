//! The broker's configuration: a TOML file with mosquitto's key names and defaults where
//! mosquitto has them. docs/configuration.md documents every key.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a configuration could not be used. The message names the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is invalid, a key is unknown, or a value has the wrong type; toml's message
    /// names the key and the line.
    #[error("invalid configuration: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of its range.
    #[error("invalid value for `{key}`: {why}")]
    Value {
        /// The key.
        key: &'static str,
        /// What is wrong.
        why: String,
    },
}

/// What a listener speaks on top of TCP (or TLS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Protocol {
    /// MQTT straight on the (TLS) connection. The default.
    #[default]
    Mqtt,
    /// MQTT over WebSocket (RFC 6455, subprotocol `mqtt`, any request path).
    Websockets,
}

/// One listener: where the broker accepts MQTT over TCP, TLS or WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Listener {
    /// The address to bind (mosquitto's `bind_address`); default `127.0.0.1`.
    #[serde(default = "default_bind_address")]
    pub bind_address: String,
    /// The TCP port; default 1883, 0 picks a free port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// `mqtt` (the default) or `websockets`.
    #[serde(default)]
    pub protocol: Protocol,
    /// The server's certificate chain (PEM); with `keyfile` it turns TLS on.
    #[serde(default)]
    pub certfile: Option<PathBuf>,
    /// The server's private key (PEM), for `certfile`.
    #[serde(default)]
    pub keyfile: Option<PathBuf>,
    /// Certificate authorities (PEM) client certificates are verified against.
    #[serde(default)]
    pub cafile: Option<PathBuf>,
    /// Refuse a TLS client without a valid certificate (needs `cafile`). Default false:
    /// with `cafile`, a certificate is verified if the client presents one.
    #[serde(default)]
    pub require_certificate: bool,
    /// The client certificate's identity (its CN, else its first DNS or email SAN) is the
    /// client's username, for authentication and ACLs; the CONNECT's own username and
    /// password are then ignored (needs `require_certificate`).
    #[serde(default)]
    pub use_identity_as_username: bool,
    /// Overrides the broker's `allow_anonymous` on this listener.
    #[serde(default)]
    pub allow_anonymous: Option<bool>,
}

fn default_bind_address() -> String {
    "127.0.0.1".into()
}

fn default_port() -> u16 {
    1883
}

impl Default for Listener {
    fn default() -> Self {
        Self {
            bind_address: default_bind_address(),
            port: default_port(),
            protocol: Protocol::Mqtt,
            certfile: None,
            keyfile: None,
            cafile: None,
            require_certificate: false,
            use_identity_as_username: false,
            allow_anonymous: None,
        }
    }
}

impl Listener {
    /// The socket address to bind.
    pub fn socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        let text = if self.bind_address.contains(':') {
            format!("[{}]:{}", self.bind_address, self.port)
        } else {
            format!("{}:{}", self.bind_address, self.port)
        };
        text.parse().map_err(|e| ConfigError::Value {
            key: "listeners.bind_address",
            why: format!("{:?} is not an IP address ({e})", self.bind_address),
        })
    }

    /// Whether the listener speaks TLS (`certfile` and `keyfile` set).
    pub fn is_tls(&self) -> bool {
        self.certfile.is_some()
    }

    /// Whether anonymous clients (no username, no certificate identity) are accepted here:
    /// the listener's `allow_anonymous`, else the broker's, else only when the listener is
    /// bound to a loopback address.
    pub fn anonymous_allowed(&self, config: &Config) -> bool {
        self.allow_anonymous
            .or(config.allow_anonymous)
            .unwrap_or_else(|| self.socket_addr().is_ok_and(|a| a.ip().is_loopback()))
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |key, why: &str| {
            Err(ConfigError::Value {
                key,
                why: why.into(),
            })
        };
        self.socket_addr()?;
        if self.certfile.is_some() != self.keyfile.is_some() {
            return bad(
                "listeners.certfile",
                "certfile and keyfile go together (both turn TLS on)",
            );
        }
        if !self.is_tls() && (self.cafile.is_some() || self.require_certificate) {
            return bad(
                "listeners.cafile",
                "cafile and require_certificate need TLS (certfile and keyfile)",
            );
        }
        if self.require_certificate && self.cafile.is_none() {
            return bad(
                "listeners.require_certificate",
                "needs cafile, the authorities client certificates are verified against",
            );
        }
        if self.use_identity_as_username && !self.require_certificate {
            return bad(
                "listeners.use_identity_as_username",
                "needs require_certificate = true (and cafile)",
            );
        }
        Ok(())
    }
}

/// The broker's settings. Every field has a default; an empty file is a valid configuration
/// (one listener on 127.0.0.1:1883).
///
/// ```
/// let config = facteur_broker::Config::from_toml("max_keepalive = 120\n[[listeners]]\nport = 0\n")?;
/// assert_eq!(config.max_keepalive, 120);
/// assert_eq!(config.listeners[0].bind_address, "127.0.0.1");
/// assert!(facteur_broker::Config::from_toml("max_keepalve = 1").is_err());
/// # Ok::<(), facteur_broker::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Config {
    /// Where to accept connections; default one listener on 127.0.0.1:1883. May be empty
    /// for an embedded broker that only serves streams it is given
    /// ([`BrokerHandle::serve_stream`](crate::BrokerHandle::serve_stream)).
    pub listeners: Vec<Listener>,
    /// Most clients connected at once; 0 means no limit (mosquitto: -1). Default 0.
    pub max_connections: usize,
    /// Most QoS 1/2 messages the broker sends to one client before it acknowledges them
    /// (fewer if a 5.0 client's own Receive Maximum is lower). Default 20.
    pub max_inflight_messages: u16,
    /// Most QoS 1/2 messages one client may send before the broker acknowledges them: the
    /// Receive Maximum announced to 5.0 clients, a client exceeding it is disconnected
    /// (0x93). Default 20.
    pub receive_maximum: u16,
    /// Most messages waiting for one client beyond those being sent; when full, QoS 0
    /// messages are dropped first, and every drop is counted. Default 1000.
    pub max_queued_messages: usize,
    /// Most payload bytes waiting for one client, as `max_queued_messages` counts messages;
    /// 0 means no limit. Default 0.
    pub max_queued_bytes: usize,
    /// Largest PUBLISH payload accepted, in bytes; 0 means no limit beyond
    /// `max_packet_size`. Default 0.
    pub message_size_limit: u32,
    /// Largest packet accepted, fixed header included; 0 means MQTT's own limit (256 MiB).
    /// Sent to 5.0 clients as Maximum Packet Size. Default 1 MiB (1,048,576).
    pub max_packet_size: u32,
    /// Largest first packet (the CONNECT, will included) accepted from a connection the
    /// broker has not admitted yet: a socket that has not said who it is cannot make the
    /// broker hold more. `max_packet_size` lowers it. Default 64 KiB (65,536).
    pub max_connect_packet_size: u32,
    /// Most sessions held at once, connected or not (persistent sessions outlive their
    /// connection); a new client past it is refused (CONNACK 0x89, Server busy). 0 means
    /// no limit. Default 100,000.
    pub max_sessions: usize,
    /// Most topics holding a retained message; a retained message for a new topic past it
    /// is delivered but not kept (counted). 0 means no limit. Default 100,000.
    pub max_retained_messages: usize,
    /// Most bytes of retained messages (payloads and properties) held, as
    /// `max_retained_messages` counts topics. 0 means no limit. Default 64 MiB.
    pub max_retained_bytes: usize,
    /// Largest keep alive accepted, in seconds; a 5.0 client asking for more (or for none)
    /// is told this value as Server Keep Alive, and 3.x keep alives are capped to it.
    /// Default 65535.
    pub max_keepalive: u16,
    /// Topic aliases a 5.0 client may use towards the broker. Default 10.
    pub max_topic_alias: u16,
    /// Whether retained messages are kept. Default true.
    pub retain_available: bool,
    /// Whether a client may connect with an empty client identifier (one is then assigned).
    /// Default true.
    pub allow_zero_length_clientid: bool,
    /// Seconds a client has to send CONNECT after the TCP connection opens. Default 10.
    pub connect_timeout: u64,
    /// Seconds between updates of the `$SYS/broker/...` topics; 0 turns them off. Default 10.
    pub sys_interval: u64,
    /// How long a persistent session whose client is gone is kept when nothing else ends it
    /// (3.x clean session 0, 5.0 Session Expiry Interval 0xFFFFFFFF), in mosquitto's
    /// notation: a number and one of `h`, `d`, `w`, `m` (30 days), `y` (365 days), for
    /// example `"14d"`. Default: kept until the broker stops.
    pub persistent_client_expiration: Option<Expiration>,
    /// Whether clients without a username (and without a certificate identity) may
    /// connect; a listener's own `allow_anonymous` overrides it. Not set: false when the
    /// file defines `listeners` ([`Config::from_toml`] sets it), and in code, true only on
    /// loopback listeners and for streams given to
    /// [`BrokerHandle::serve_stream`](crate::BrokerHandle::serve_stream).
    pub allow_anonymous: Option<bool>,
    /// The password file (`username:hash` lines, written by `facteur passwd` or mosquitto's
    /// `mosquitto_passwd`): clients giving a username must give its password.
    pub password_file: Option<PathBuf>,
    /// The ACL file, in mosquitto's syntax: what each client may publish, subscribe to and
    /// receive. Not set: everything is allowed to every client admitted.
    pub acl_file: Option<PathBuf>,
}

/// A duration written as mosquitto writes `persistent_client_expiration`: a positive whole
/// number followed by `h` (hours), `d` (days), `w` (weeks), `m` (months of 30 days) or `y`
/// (years of 365 days).
///
/// ```
/// use facteur_broker::Expiration;
/// assert_eq!("2d".parse::<Expiration>()?.seconds(), 2 * 24 * 3600);
/// assert!("2 days".parse::<Expiration>().is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Expiration {
    seconds: u64,
}

impl Expiration {
    /// The duration in seconds.
    pub fn seconds(&self) -> u64 {
        self.seconds
    }
}

impl std::str::FromStr for Expiration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let why = || format!("{text:?} is not a number followed by h, d, w, m or y (e.g. \"14d\")");
        let unit = text.chars().last().ok_or_else(why)?;
        let per_unit: u64 = match unit {
            'h' => 3_600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            'm' => 30 * 86_400,
            'y' => 365 * 86_400,
            _ => return Err(why()),
        };
        let count: u64 = text[..text.len() - 1].parse().map_err(|_| why())?;
        if count == 0 {
            return Err(why());
        }
        let seconds = count.checked_mul(per_unit).ok_or_else(why)?;
        Ok(Self { seconds })
    }
}

impl TryFrom<String> for Expiration {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listeners: vec![Listener::default()],
            max_connections: 0,
            max_inflight_messages: 20,
            receive_maximum: 20,
            max_queued_messages: 1000,
            max_queued_bytes: 0,
            message_size_limit: 0,
            max_packet_size: 1 << 20,
            max_connect_packet_size: 1 << 16,
            max_sessions: 100_000,
            max_retained_messages: 100_000,
            max_retained_bytes: 64 << 20,
            max_keepalive: 65_535,
            max_topic_alias: 10,
            retain_available: true,
            allow_zero_length_clientid: true,
            connect_timeout: 10,
            sys_interval: 10,
            persistent_client_expiration: None,
            allow_anonymous: None,
            password_file: None,
            acl_file: None,
        }
    }
}

impl Config {
    /// Parses and checks a configuration. A file that defines `listeners` and does not set
    /// `allow_anonymous` refuses anonymous clients (as mosquitto 2.0 does).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(text)?;
        let defines_listeners = table.contains_key("listeners");
        let mut config: Self = table.try_into()?;
        if defines_listeners && config.allow_anonymous.is_none() {
            config.allow_anonymous = Some(false);
        }
        config.check()?;
        Ok(config)
    }

    /// Reads, parses and checks a configuration file. Relative paths in it (`certfile`,
    /// `password_file`, ...) are taken from the file's own directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Self::from_toml(&text)?;
        if let Some(dir) = path.parent() {
            config.resolve_paths(dir);
        }
        Ok(config)
    }

    /// Makes every relative file path relative to `dir`.
    fn resolve_paths(&mut self, dir: &Path) {
        let resolve = |p: &mut Option<PathBuf>| {
            if let Some(path) = p {
                if path.is_relative() {
                    *path = dir.join(&*path);
                }
            }
        };
        resolve(&mut self.password_file);
        resolve(&mut self.acl_file);
        for listener in &mut self.listeners {
            resolve(&mut listener.certfile);
            resolve(&mut listener.keyfile);
            resolve(&mut listener.cafile);
        }
    }

    /// Checks the values serde cannot.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |key, why: &str| {
            Err(ConfigError::Value {
                key,
                why: why.into(),
            })
        };
        for listener in &self.listeners {
            listener.check()?;
        }
        if self.max_inflight_messages == 0 {
            return bad("max_inflight_messages", "must be at least 1");
        }
        if self.receive_maximum == 0 {
            return bad("receive_maximum", "must be at least 1");
        }
        if self.max_queued_messages == 0 {
            return bad("max_queued_messages", "must be at least 1");
        }
        if self.max_packet_size != 0 && self.max_packet_size < 16 {
            return bad("max_packet_size", "must be 0 (no limit) or at least 16");
        }
        if self.max_connect_packet_size < 16 {
            return bad("max_connect_packet_size", "must be at least 16");
        }
        if self.connect_timeout == 0 {
            return bad("connect_timeout", "must be at least 1 second");
        }
        Ok(())
    }

    /// The packet size limit in force.
    pub(crate) fn connect_packet_limit(&self) -> u32 {
        self.max_connect_packet_size.min(self.packet_limit())
    }

    /// The largest packet accepted: `max_packet_size`, or MQTT's own limit for 0.
    pub fn packet_limit(&self) -> u32 {
        match self.max_packet_size {
            0 => facteur_codec::PROTOCOL_MAX_PACKET_SIZE,
            n => n,
        }
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout)
    }

    /// What facteur-session needs to answer a CONNECT under this configuration.
    pub(crate) fn server_policy(&self) -> facteur_session::ServerPolicy {
        let mut policy = facteur_session::ServerPolicy::new();
        policy.max_keep_alive = self.max_keepalive;
        policy.max_inflight = self.max_inflight_messages;
        policy.maximum_packet_size = self.max_packet_size;
        policy.retain_available = self.retain_available;
        policy.allow_empty_client_id = self.allow_zero_length_clientid;
        policy.never_expires_cap = self
            .persistent_client_expiration
            .map(|limit| u32::try_from(limit.seconds()).unwrap_or(u32::MAX - 1));
        policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persistent_client_expiration_reads_mosquitto_units() {
        let config = Config::from_toml("persistent_client_expiration = \"2w\"").unwrap();
        let two_weeks = 14 * 86_400;
        assert_eq!(
            config.persistent_client_expiration.map(|e| e.seconds()),
            Some(two_weeks)
        );
        // Only sessions kept "forever" are cut short.
        assert_eq!(
            config.server_policy().never_expires_cap,
            Some(two_weeks as u32)
        );
        assert_eq!(Config::default().server_policy().never_expires_cap, None);
        for (text, seconds) in [
            ("1h", 3_600),
            ("3d", 3 * 86_400),
            ("1m", 30 * 86_400),
            ("2y", 2 * 365 * 86_400),
        ] {
            assert_eq!(
                text.parse::<Expiration>().unwrap().seconds(),
                seconds,
                "{text}"
            );
        }
        for bad in [
            "",
            "h",
            "0d",
            "-1d",
            "1.5d",
            "10",
            "1s",
            "99999999999999999999y",
        ] {
            assert!(bad.parse::<Expiration>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn empty_file_is_the_safe_default() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(
            config.listeners[0].socket_addr().unwrap(),
            "127.0.0.1:1883".parse().unwrap()
        );
    }

    #[test]
    fn security_keys_and_the_anonymous_default() {
        let text = "password_file = \"passwd\"\nacl_file = \"acl\"\n\
            [[listeners]]\nport = 8883\nprotocol = \"websockets\"\n\
            certfile = \"s.crt\"\nkeyfile = \"s.key\"\ncafile = \"ca.crt\"\n\
            require_certificate = true\nuse_identity_as_username = true\nallow_anonymous = true\n";
        let config = Config::from_toml(text).unwrap();
        let listener = &config.listeners[0];
        assert_eq!(listener.protocol, Protocol::Websockets);
        assert!(listener.is_tls() && listener.require_certificate);
        assert!(listener.use_identity_as_username);
        assert!(listener.anonymous_allowed(&config));
        // A file that defines listeners refuses anonymous clients unless it says otherwise.
        assert_eq!(config.allow_anonymous, Some(false));
        let loopback = Config::from_toml("[[listeners]]\nport = 1\n").unwrap();
        assert!(!loopback.listeners[0].anonymous_allowed(&loopback));
        // Without listeners in the file (or without a file): open on loopback only.
        let default = Config::from_toml("max_keepalive = 5").unwrap();
        assert_eq!(default.allow_anonymous, None);
        assert!(default.listeners[0].anonymous_allowed(&default));
        let mut wide = Config::default();
        wide.listeners[0].bind_address = "0.0.0.0".into();
        assert!(!wide.listeners[0].anonymous_allowed(&wide));
        // Relative paths are taken from the file's directory.
        let mut resolved = config.clone();
        resolved.resolve_paths(Path::new("/etc/facteur"));
        assert_eq!(resolved.password_file, Some("/etc/facteur/passwd".into()));
        assert_eq!(
            resolved.listeners[0].cafile,
            Some("/etc/facteur/ca.crt".into())
        );
    }

    #[test]
    fn tls_keys_that_do_not_go_together() {
        for (text, key) in [
            ("[[listeners]]\ncertfile = \"a\"", "certfile"),
            ("[[listeners]]\nkeyfile = \"a\"", "certfile"),
            ("[[listeners]]\ncafile = \"a\"", "cafile"),
            (
                "[[listeners]]\ncertfile = \"a\"\nkeyfile = \"b\"\nrequire_certificate = true",
                "require_certificate",
            ),
            (
                "[[listeners]]\ncertfile = \"a\"\nkeyfile = \"b\"\ncafile = \"c\"\nuse_identity_as_username = true",
                "use_identity_as_username",
            ),
            ("[[listeners]]\nprotocol = \"http\"", "protocol"),
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?}: {err}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        for (text, key) in [
            ("max_conections = 5", "max_conections"),
            ("max_keepalive = \"x\"", "max_keepalive"),
            ("max_inflight_messages = 0", "max_inflight_messages"),
            ("[[listeners]]\nbind_address = \"nowhere\"", "bind_address"),
            ("receive_maximum = 0", "receive_maximum"),
            (
                "persistent_client_expiration = \"3x\"",
                "persistent_client_expiration",
            ),
            ("max_queued_bytes = -1", "max_queued_bytes"),
            ("[[listeners]]\nprot = 1", "prot"),
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?}: {err}");
        }
    }
}
