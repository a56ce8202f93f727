//! Who may connect and what each client may do: the traits an embedder implements
//! ([`Authenticator`], [`Authorizer`]) and the file-based implementations the broker uses
//! by default ([`FileAuthenticator`]: `password_file` and `allow_anonymous`;
//! [`FileAuthorizer`]: `acl_file`).

pub mod acl;
mod files;
pub mod password;

pub use files::{FileAuthenticator, FileAuthorizer};

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future, as [`Authenticator::authenticate`] returns (the trait is used as
/// `dyn Authenticator`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a connecting client presented: the broker asks an [`Authenticator`] whether it
/// may connect, once per CONNECT.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthRequest<'a> {
    /// The client identifier (assigned by the broker if the client sent none).
    pub client_id: &'a str,
    /// The username: the CONNECT's, or the certificate's identity on a listener with
    /// `use_identity_as_username` (see [`AuthRequest::username_from_certificate`]).
    pub username: Option<&'a str>,
    /// The CONNECT's password (none where the username is the certificate's identity).
    pub password: Option<&'a [u8]>,
    /// The identity (CN, else first DNS or email SAN) of the client's TLS certificate,
    /// verified against the listener's `cafile`, if it presented one.
    pub certificate_identity: Option<&'a str>,
    /// True when `username` is the verified certificate's identity.
    pub username_from_certificate: bool,
    /// Whether the listener accepts anonymous clients (`allow_anonymous`).
    pub anonymous_allowed: bool,
    /// The listener's index in the configuration; `None` for a stream given to
    /// [`BrokerHandle::serve_stream`](crate::BrokerHandle::serve_stream).
    pub listener: Option<usize>,
    /// The protocol version of the CONNECT.
    pub version: facteur_codec::ProtocolVersion,
}

/// Who a client is once admitted: what ACLs see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity {
    /// The username rules are looked up with; `None` for an anonymous client.
    pub username: Option<String>,
}

impl Identity {
    /// An anonymous client.
    pub fn anonymous() -> Self {
        Self { username: None }
    }

    /// A client known as `username`.
    pub fn user(username: impl Into<String>) -> Self {
        Self {
            username: Some(username.into()),
        }
    }
}

/// Why a client may not connect: the CONNACK says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// Unknown user or wrong password (5.0: 0x86; 3.x: 5, not authorized, as mosquitto
    /// answers, so that 3.x clients learn no more than that).
    BadCredentials,
    /// The client is known but may not connect, or an anonymous client where anonymous
    /// clients are not accepted (5.0: 0x87; 3.x: 5).
    NotAuthorized,
}

/// Decides whether a client may connect. Implement it to look clients up elsewhere (a
/// database, a directory); the broker calls it once per CONNECT, before the client's
/// session is touched, and a refused client gets its CONNACK and nothing else.
///
/// ```
/// use facteur_broker::auth::{AuthError, AuthRequest, Authenticator, BoxFuture, Identity};
///
/// struct OnlyAlice;
///
/// impl Authenticator for OnlyAlice {
///     fn authenticate<'a>(
///         &'a self,
///         request: &'a AuthRequest<'a>,
///     ) -> BoxFuture<'a, Result<Identity, AuthError>> {
///         Box::pin(async move {
///             match (request.username, request.password) {
///                 (Some("alice"), Some(b"wonderland")) => Ok(Identity::user("alice")),
///                 _ => Err(AuthError::BadCredentials),
///             }
///         })
///     }
/// }
/// ```
pub trait Authenticator: Send + Sync + 'static {
    /// Accepts the client (with the identity ACLs will see) or refuses it. Called for a
    /// CONNECT without an Authentication Method.
    fn authenticate<'a>(
        &'a self,
        request: &'a AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<Identity, AuthError>>;

    /// MQTT 5 enhanced authentication (§4.12): starts a [`Conversation`] for `method`, the
    /// Authentication Method of a CONNECT or of a re-authentication (AUTH 0x19) on a live
    /// connection, for the client of `request`. `None` (the default): the method is not
    /// supported, and the client gets CONNACK 0x8C (Bad authentication method), or
    /// DISCONNECT 0x8C for a re-authentication.
    fn enhanced(&self, method: &str, request: &AuthRequest<'_>) -> Option<Box<dyn Conversation>> {
        let _ = (method, request);
        None
    }
}

/// One MQTT 5 enhanced authentication exchange, from the client's first Authentication
/// Data to the verdict, as an [`Authenticator::enhanced`] implementation runs it (a
/// challenge-response such as SCRAM keeps its state here). The broker checks the packets
/// (AUTH with reason 0x18 and the same Authentication Method, at most
/// [`MAX_AUTH_ROUNDS`] rounds, within `connect_timeout`) and passes on the data.
pub trait Conversation: Send + 'static {
    /// Takes the client's Authentication Data (the CONNECT's or re-authentication's, then
    /// that of each AUTH it sends; `None` when absent) and says what comes next. An error
    /// refuses the client: CONNACK 0x86 or 0x87, or for a re-authentication DISCONNECT
    /// 0x87.
    fn step<'a>(&'a mut self, data: Option<&'a [u8]>) -> BoxFuture<'a, Result<Step, AuthError>>;
}

/// Most AUTH packets the broker sends in one enhanced authentication.
pub const MAX_AUTH_ROUNDS: usize = 16;

/// What a [`Conversation`] wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Send the client AUTH 0x18 (Continue authentication) with this Authentication Data,
    /// and call [`Conversation::step`] with its answer.
    Continue(Vec<u8>),
    /// Authenticated as `identity`: CONNACK 0x00 (or, for a re-authentication, AUTH 0x00)
    /// with the Authentication Method and `data` as Authentication Data, if any. A
    /// re-authentication may change the identity ACLs see.
    Done {
        /// Who the client is now.
        identity: Identity,
        /// The server's last Authentication Data.
        data: Option<Vec<u8>>,
    },
}

/// An admitted client, as an [`Authorizer`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Client<'a> {
    /// Its client identifier.
    pub client_id: &'a str,
    /// Its username, from its [`Identity`].
    pub username: Option<&'a str>,
}

impl<'a> Client<'a> {
    /// A client with this identifier and username.
    pub fn new(client_id: &'a str, username: Option<&'a str>) -> Self {
        Self {
            client_id,
            username,
        }
    }
}

/// Decides what an admitted client may do, at three points: each PUBLISH it sends (5.0:
/// a refused one gets PUBACK/PUBREC 0x87; 3.x: acknowledged and dropped, counted), each
/// filter of its SUBSCRIBE (refused: 0x80 in 3.x, 0x87 in 5.0, the other filters granted),
/// and each message on its way to it, retained messages and wills included (refused:
/// not sent, counted as dropped).
///
/// The methods are not `async`: the third runs for every message delivered, on the
/// delivering task. An implementation backed by something slow keeps its own cache.
pub trait Authorizer: Send + Sync + 'static {
    /// May the client publish to `topic`?
    fn may_publish(&self, client: &Client<'_>, topic: &str) -> bool;
    /// May the client subscribe to `filter` (a shared subscription's filter without its
    /// `$share/GROUP/` prefix)?
    fn may_subscribe(&self, client: &Client<'_>, filter: &str) -> bool;
    /// May the client receive a message published to `topic`?
    fn may_read(&self, client: &Client<'_>, topic: &str) -> bool;
}

/// How a broker decides who connects and what each may do: by default the file-based
/// [`FileAuthenticator`] and [`FileAuthorizer`] made from the configuration; an embedder
/// replaces either with its own (see [`Broker::start_with`](crate::Broker::start_with)).
#[derive(Clone, Default)]
pub struct Security {
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
    pub(crate) authorizer: Option<Arc<dyn Authorizer>>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("authenticator", &self.authenticator.is_some())
            .field("authorizer", &self.authorizer.is_some())
            .finish()
    }
}

impl Security {
    /// The file-based defaults (what [`Broker::start`](crate::Broker::start) uses).
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `authenticator` instead of the password file and `allow_anonymous`.
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticator = Some(Arc::new(authenticator));
        self
    }

    /// Uses `authorizer` instead of the ACL file.
    pub fn authorizer(mut self, authorizer: impl Authorizer) -> Self {
        self.authorizer = Some(Arc::new(authorizer));
        self
    }
}

/// A security file (password file, ACL file, certificate, key) that cannot be used: the
/// message names the file and, for a line that does not parse, the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {why}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// The line (from 1), when one line is at fault.
    pub line: Option<usize>,
    /// What is wrong.
    pub why: String,
}

impl FileError {
    pub(crate) fn at(path: &Path, line: usize, why: String) -> Self {
        Self {
            path: path.to_owned(),
            line: (line > 0).then_some(line),
            why,
        }
    }

    pub(crate) fn whole(path: &Path, why: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            line: None,
            why: why.into(),
        }
    }
}

/// Most bytes a security file may have (a bound on what reading one holds).
const MAX_FILE_SIZE: u64 = 64 << 20;

/// Reads a security file as UTF-8 text, up to [`MAX_FILE_SIZE`].
pub(crate) fn read_file(path: &Path) -> Result<String, FileError> {
    read_bytes(path).and_then(|bytes| {
        String::from_utf8(bytes).map_err(|e| FileError::whole(path, format!("not UTF-8: {e}")))
    })
}

/// Reads a file, up to [`MAX_FILE_SIZE`].
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, FileError> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| FileError::whole(path, format!("cannot read: {e}"));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(FileError::whole(
            path,
            format!("larger than {MAX_FILE_SIZE} bytes"),
        ));
    }
    Ok(bytes)
}
