//! Accepting a connection: its CONNECT is read (within the connect timeout, under a small
//! size cap while unauthenticated), the client identifier and the connection count are
//! settled, the client is authenticated, and the connection is handed to its session's
//! task.

use crate::auth::{AuthError, AuthRequest};
use crate::enhanced::{self, ClientAuth, Failure};
use crate::link::encode_into;
use crate::message::Attach;
use crate::router::{LinkSlot, Router, SessionSlot};
use crate::session_task::SessionTask;
use crate::transport::Stream;
use crate::Config;
use bytes::BytesMut;
use facteur_codec::{decode, ConnAck, Connect, Packet, ProtocolVersion, ReasonCode, Status};
use facteur_session::{client_identifier, ClientId};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where a connection came from, as authentication needs to know it.
#[derive(Debug, Default)]
pub(crate) struct Origin {
    /// The listener's index in the configuration; `None` for a stream given by the
    /// embedder.
    pub(crate) listener: Option<usize>,
    /// Whether anonymous clients are accepted there.
    pub(crate) anonymous_allowed: bool,
    /// The identity of the client's verified TLS certificate.
    pub(crate) certificate_identity: Option<String>,
    /// The listener has `use_identity_as_username`.
    pub(crate) identity_as_username: bool,
}

/// Serves one accepted connection: reads its CONNECT, authenticates the client, then hands
/// the connection to its session's task (starting one if the client has none).
pub(crate) async fn serve(
    stream: Stream,
    origin: Origin,
    config: Arc<Config>,
    router: Arc<Router>,
) {
    let _task = router.track_task();
    serve_tracked(stream, origin, config, router).await;
}

async fn serve_tracked(
    mut stream: Stream,
    origin: Origin,
    config: Arc<Config>,
    router: Arc<Router>,
) {
    let deadline = tokio::time::Instant::now() + config.connect_timeout();
    let mut read = BytesMut::new();
    let frame = match Box::pin(read_connect(&mut stream, &mut read, &config)).await {
        Ok(Some(frame)) => frame,
        Ok(None) => return,
        Err(error) => {
            tracing::debug!(%error, "no valid CONNECT");
            return;
        }
    };
    let (client_id, assigned, slot) = match admit(&frame, &config, &router) {
        Ok(admitted) => admitted,
        Err(Some(refusal)) => {
            let _ = Box::pin(refuse(&mut stream, &refusal)).await;
            return;
        }
        Err(None) => return,
    };
    let authenticated = tokio::time::timeout_at(
        deadline,
        Box::pin(authenticate(
            &mut stream,
            &mut read,
            &frame,
            &client_id,
            &origin,
            &router,
            &config,
        )),
    )
    .await;
    let auth = match authenticated {
        Ok(Ok(auth)) => auth,
        Ok(Err(Some(refusal))) => {
            tracing::debug!(client = %client_id, why = %refusal.why, "CONNECT refused");
            let _ = Box::pin(refuse(&mut stream, &refusal)).await;
            return;
        }
        Ok(Err(None)) => return,
        Err(_) => {
            tracing::debug!(client = %client_id, "authentication took longer than connect_timeout");
            return;
        }
    };
    // Boxed: the session's channel then holds pointers, not whole sockets and buffers.
    let attach = Box::new(Attach {
        stream,
        read,
        frame,
        assigned,
        slot,
        auth,
    });
    hand_over(client_id.into(), attach, config, router);
}

/// Gives a connection to its client's session: to the task running it, or to a new task.
/// The session task is a task of its own (not this connection's), so that what stays in
/// memory for an idle client is only what its session needs.
pub(crate) fn hand_over(
    client_id: Arc<str>,
    mut attach: Box<Attach>,
    config: Arc<Config>,
    router: Arc<Router>,
) {
    // At most twice: a session task that ended just now is replaced by a new one.
    for _ in 0..2 {
        match router.attach(&client_id, config.max_sessions) {
            SessionSlot::Existing(mailbox) => match mailbox.attach(attach) {
                Ok(()) => return,
                Err(returned) => attach = returned,
            },
            SessionSlot::New { key, mailbox } => {
                let task = SessionTask::new(key, client_id, config, router, mailbox);
                tokio::spawn(Box::new(task).run(attach));
                return;
            }
            SessionSlot::Full => {
                tokio::spawn(refuse_attach(attach));
                return;
            }
        }
    }
}

/// Asks the broker's authenticator whether the client of this CONNECT may connect (for a
/// 5.0 CONNECT with an Authentication Method, through the AUTH exchange). What it settled
/// is kept for the session when there is something to keep.
async fn authenticate(
    stream: &mut Stream,
    read: &mut BytesMut,
    frame: &[u8],
    client_id: &str,
    origin: &Origin,
    router: &Router,
    config: &Config,
) -> Result<Option<Box<ClientAuth>>, Option<Refusal>> {
    let (connect, _) = parse_connect(frame).ok_or(None)?;
    let from_certificate = origin.identity_as_username;
    let request = AuthRequest {
        client_id,
        username: match from_certificate {
            true => origin.certificate_identity.as_deref(),
            false => connect.username,
        },
        password: connect.password.filter(|_| !from_certificate),
        certificate_identity: origin.certificate_identity.as_deref(),
        username_from_certificate: from_certificate,
        anonymous_allowed: origin.anonymous_allowed,
        listener: origin.listener,
        version: connect.protocol,
    };
    if from_certificate && request.username.is_none() {
        let why = "this listener takes the username from a client certificate";
        return Err(Some(Refusal::new(&connect, ReasonCode::NotAuthorized, why)));
    }
    let mut auth = ClientAuth {
        certificate_identity: origin.certificate_identity.as_deref().map(Box::from),
        listener: origin.listener,
        anonymous_allowed: origin.anonymous_allowed,
        ..ClientAuth::default()
    };
    let identity = match connect.properties.authentication_method() {
        Some(method) => {
            let Some(conversation) = router.authenticator.enhanced(method, &request) else {
                let why = "this authentication method is not supported";
                let reason = ReasonCode::BadAuthenticationMethod;
                return Err(Some(Refusal::new(&connect, reason, why)));
            };
            let peer_max = connect
                .properties
                .maximum_packet_size()
                .unwrap_or(facteur_codec::PROTOCOL_MAX_PACKET_SIZE);
            let data = connect.properties.authentication_data();
            let limit = config.connect_packet_limit();
            match enhanced::before_connack(
                stream,
                read,
                conversation,
                method,
                data,
                limit,
                peer_max,
            )
            .await
            {
                Ok((identity, data)) => {
                    auth.method = Some(method.into());
                    auth.connack_data = data;
                    identity
                }
                Err(Failure::Refused(reason, why)) => {
                    return Err(Some(Refusal::new(&connect, reason, why)))
                }
                Err(Failure::Gone) => return Err(None),
            }
        }
        None => match router.authenticator.authenticate(&request).await {
            Ok(identity) => identity,
            Err(error) => {
                let (reason, why) = match error {
                    // 3.x clients get 5 (not authorized) either way, as from mosquitto.
                    AuthError::BadCredentials if connect.protocol.is_v5() => (
                        ReasonCode::BadUserNameOrPassword,
                        "bad username or password",
                    ),
                    _ => (ReasonCode::NotAuthorized, "not authorized"),
                };
                return Err(Some(Refusal::new(&connect, reason, why)));
            }
        },
    };
    auth.username = identity.username.map(Arc::from);
    Ok((auth.username.is_some() || auth.method.is_some()).then(|| Box::new(auth)))
}

/// Refuses a connection the broker has no room for a session for.
async fn refuse_attach(attach: Box<Attach>) {
    let Some((connect, _)) = parse_connect(&attach.frame) else {
        return;
    };
    let why = "the broker holds as many sessions as max_sessions allows";
    let refusal = Refusal::new(&connect, ReasonCode::ServerBusy, why);
    let mut stream = attach.stream;
    let _ = refuse(&mut stream, &refusal).await;
}

/// Whether a client may connect, and under which client identifier (and whether the
/// broker chose it). A refusal says with which CONNACK, if any.
pub(crate) fn admit(
    frame: &[u8],
    config: &Config,
    router: &Arc<Router>,
) -> Result<(String, bool, LinkSlot), Option<Refusal>> {
    let (connect, _) = parse_connect(frame).ok_or(None)?;
    let (id, assigned) = match client_identifier(&connect, &config.server_policy()) {
        Ok(ClientId::Given(id)) => (id.to_owned(), false),
        Ok(ClientId::Assign) => (format!("facteur-{:016x}", router.next_key()), true),
        Err(refused) => return Err(Some(Refusal::new(&connect, refused.reason, refused.why))),
    };
    // Counted at once (no check-then-act race between connections).
    let Some(slot) = router.reserve_link(config.max_connections) else {
        let why = "the broker has as many clients as max_connections allows";
        return Err(Some(Refusal::new(&connect, ReasonCode::ServerBusy, why)));
    };
    Ok((id, assigned, slot))
}

/// A CONNECT refused: the CONNACK that says so (5.0: with a reason string, if the client
/// takes a packet that large).
pub(crate) struct Refusal {
    pub(crate) version: ProtocolVersion,
    pub(crate) reason: ReasonCode,
    pub(crate) why: String,
    pub(crate) max_packet_size: u32,
}

impl Refusal {
    pub(crate) fn new(connect: &Connect<'_>, reason: ReasonCode, why: impl Into<String>) -> Self {
        Self {
            version: connect.protocol,
            reason,
            why: why.into(),
            max_packet_size: connect
                .properties
                .maximum_packet_size()
                .unwrap_or(facteur_codec::PROTOCOL_MAX_PACKET_SIZE),
        }
    }

    /// The CONNACK's bytes.
    pub(crate) fn connack(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let version = self.version;
        Packet::ConnAck(ConnAck::new(self.reason)).with_reason_string(
            &self.why,
            self.max_packet_size,
            version,
            |connack| encode_into(&mut out, version, connack),
        );
        out
    }
}

pub(crate) fn parse_connect(frame: &[u8]) -> Option<(Connect<'_>, usize)> {
    match decode(
        frame,
        ProtocolVersion::V3_1_1,
        facteur_codec::PROTOCOL_MAX_PACKET_SIZE,
    ) {
        Ok(Status::Complete(decoded)) => match decoded.packet {
            Packet::Connect(connect) => Some((connect, decoded.len)),
            _ => None,
        },
        _ => None,
    }
}

/// Reads until a whole first packet is there (within the connect timeout). Returns its
/// bytes, or `None` if the client closed or timed out or sent something else, after answering
/// what must be answered (an unsupported protocol version gets CONNACK 0x01).
pub(crate) async fn read_connect(
    stream: &mut Stream,
    read: &mut BytesMut,
    config: &Config,
) -> std::io::Result<Option<BytesMut>> {
    let deadline = tokio::time::Instant::now() + config.connect_timeout();
    loop {
        match decode(read, ProtocolVersion::V3_1_1, config.connect_packet_limit()) {
            Ok(Status::Complete(decoded)) => {
                if !matches!(decoded.packet, Packet::Connect(_)) {
                    return Ok(None);
                }
                let len = decoded.len;
                return Ok(Some(read.split_to(len)));
            }
            Ok(Status::Incomplete(_)) => {}
            Err(error) => {
                if error.reason_code() == ReasonCode::UnsupportedProtocolVersion {
                    // The client's version is unknown: the 3.x answer is the one all read.
                    stream.write_all(&[0x20, 0x02, 0x00, 0x01]).await?;
                    stream.flush().await?;
                }
                return Ok(None);
            }
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(read)).await {
            Ok(Ok(0)) | Err(_) => return Ok(None),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(error),
        }
    }
}

pub(crate) async fn refuse(stream: &mut Stream, refusal: &Refusal) -> std::io::Result<()> {
    stream.write_all(&refusal.connack()).await?;
    stream.shutdown().await
}
