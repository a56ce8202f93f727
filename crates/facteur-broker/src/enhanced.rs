//! MQTT 5 enhanced authentication (§4.12) as the broker runs it: the AUTH exchange before
//! CONNACK, and the packets of a re-authentication (AUTH 0x19) on a live connection. What
//! the Authentication Data means is the embedder's [`Conversation`]'s business; the broker
//! checks the packets: AUTH with reason 0x18 (or 0x19 to start a re-authentication), the
//! same Authentication Method throughout, at most [`MAX_AUTH_ROUNDS`] rounds; the exchange
//! before CONNACK within `connect_timeout` of the connection's start, each step of a
//! re-authentication within `connect_timeout`. While a re-authentication step runs,
//! nothing more is read from that client.

use crate::auth::{AuthRequest, Conversation, Identity, Step, MAX_AUTH_ROUNDS};
use crate::link::encode_into;
use crate::session_task::SessionTask;
use crate::transport::Stream;
use bytes::BytesMut;
use facteur_codec::{decode, Auth, Packet, PacketType, Properties, Property, ProtocolVersion};
use facteur_codec::{ReasonCode, Status};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why an exchange before CONNACK did not end in success.
pub(crate) enum Failure {
    /// Refused: the CONNACK's reason code and reason string.
    Refused(ReasonCode, &'static str),
    /// The client went away (or sent DISCONNECT, or took too long): nothing to answer.
    Gone,
}

/// An AUTH packet with this reason, the method and the data.
pub(crate) fn auth_packet(
    out: &mut Vec<u8>,
    reason: ReasonCode,
    method: &str,
    data: Option<&[u8]>,
) {
    let mut props = vec![Property::AuthenticationMethod(method)];
    if let Some(data) = data {
        props.push(Property::AuthenticationData(data));
    }
    let auth = Auth {
        reason_code: reason,
        properties: Properties::from_slice(&props),
    };
    encode_into(out, ProtocolVersion::V5, &Packet::Auth(auth));
}

/// What a client's AUTH packet says, checked against the exchange in progress.
pub(crate) fn client_auth(
    auth: &Auth<'_>,
    method: &str,
    expected: ReasonCode,
) -> Result<Option<Vec<u8>>, &'static str> {
    if auth.reason_code != expected {
        return Err(match expected {
            ReasonCode::ContinueAuthentication => "AUTH with another reason than continue (0x18)",
            _ => "AUTH with another reason than re-authenticate (0x19)",
        });
    }
    if auth.properties.authentication_method() != Some(method) {
        return Err("AUTH with another authentication method than the connection's");
    }
    Ok(auth.properties.authentication_data().map(<[u8]>::to_vec))
}

/// Runs the exchange before CONNACK: the conversation's first step on the CONNECT's data,
/// then AUTH 0x18 both ways until it is done. Returns the identity and the server's last
/// data (for the CONNACK).
pub(crate) async fn before_connack(
    stream: &mut Stream,
    read: &mut BytesMut,
    mut conversation: Box<dyn Conversation>,
    method: &str,
    first: Option<&[u8]>,
    packet_limit: u32,
    peer_max_packet: u32,
) -> Result<(Identity, Option<Vec<u8>>), Failure> {
    let mut data = first.map(<[u8]>::to_vec);
    for _ in 0..=MAX_AUTH_ROUNDS {
        let challenge = match conversation.step(data.as_deref()).await {
            Ok(Step::Done { identity, data }) => return Ok((identity, data)),
            Ok(Step::Continue(challenge)) => challenge,
            Err(error) => {
                return Err(Failure::Refused(
                    refusal_code(error),
                    "authentication failed",
                ))
            }
        };
        let mut out = Vec::new();
        auth_packet(
            &mut out,
            ReasonCode::ContinueAuthentication,
            method,
            Some(&challenge),
        );
        if out.len() > peer_max_packet as usize {
            let why = "the authentication data is larger than the client takes";
            return Err(Failure::Refused(
                ReasonCode::ImplementationSpecificError,
                why,
            ));
        }
        if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
            return Err(Failure::Gone);
        }
        data = next_auth(stream, read, method, packet_limit).await?;
    }
    Err(Failure::Refused(
        ReasonCode::NotAuthorized,
        "too many authentication rounds",
    ))
}

/// The error's CONNACK code.
fn refusal_code(error: crate::auth::AuthError) -> ReasonCode {
    match error {
        crate::auth::AuthError::BadCredentials => ReasonCode::BadUserNameOrPassword,
        _ => ReasonCode::NotAuthorized,
    }
}

/// Reads the client's next packet before CONNACK: an AUTH 0x18 with the method (its data
/// returned), or the end.
async fn next_auth(
    stream: &mut Stream,
    read: &mut BytesMut,
    method: &str,
    packet_limit: u32,
) -> Result<Option<Vec<u8>>, Failure> {
    loop {
        match decode(read, ProtocolVersion::V5, packet_limit) {
            Ok(Status::Complete(decoded)) => {
                let len = decoded.len;
                let answer = match decoded.packet {
                    Packet::Auth(auth) => {
                        client_auth(&auth, method, ReasonCode::ContinueAuthentication)
                            .map_err(|why| Failure::Refused(ReasonCode::ProtocolError, why))
                    }
                    Packet::Disconnect(_) => Err(Failure::Gone),
                    _ => Err(Failure::Refused(
                        ReasonCode::ProtocolError,
                        "only AUTH may come before CONNACK",
                    )),
                };
                let _ = read.split_to(len);
                return answer;
            }
            Ok(Status::Incomplete(_)) => {}
            Err(error) => {
                let reason = error.reason_code();
                let reason = match reason.is_valid_for(PacketType::ConnAck) {
                    true => reason,
                    false => ReasonCode::ProtocolError,
                };
                return Err(Failure::Refused(reason, "malformed packet"));
            }
        }
        match stream.read_buf(read).await {
            Ok(0) | Err(_) => return Err(Failure::Gone),
            Ok(_) => {}
        }
    }
}

/// What a connection's authentication settled, kept by its session while there is
/// something to keep (a username, or an enhanced authentication): anonymous clients
/// without one cost a null pointer.
#[derive(Default)]
pub(crate) struct ClientAuth {
    /// The username ACLs see.
    pub(crate) username: Option<Arc<str>>,
    /// The Authentication Method of the connection's enhanced authentication.
    pub(crate) method: Option<Box<str>>,
    /// The server's last Authentication Data of the exchange before CONNACK, sent with it.
    pub(crate) connack_data: Option<Vec<u8>>,
    /// The verified certificate's identity, the listener and whether it takes anonymous
    /// clients: what a re-authentication's [`AuthRequest`] says again.
    pub(crate) certificate_identity: Option<Box<str>>,
    pub(crate) listener: Option<usize>,
    pub(crate) anonymous_allowed: bool,
    /// A re-authentication in progress.
    pub(crate) reauth: Option<ReAuth>,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth")
            .field("username", &self.username)
            .field("method", &self.method)
            .field("reauth", &self.reauth.is_some())
            .finish_non_exhaustive()
    }
}

/// A re-authentication in progress on a live connection.
pub(crate) struct ReAuth {
    conversation: Box<dyn Conversation>,
    /// AUTH packets sent so far.
    rounds: usize,
    /// The client's data waiting for the conversation's next step (`Some`: a step is due,
    /// and nothing more is read from the client until it is taken).
    due: Option<Option<Vec<u8>>>,
}

impl SessionTask {
    fn username(&self) -> Option<&str> {
        self.auth.as_deref().and_then(|a| a.username.as_deref())
    }

    /// True when a re-authentication step waits to run (see [`SessionTask::reauth_step`]).
    pub(crate) fn reauth_due(&self) -> bool {
        self.auth
            .as_deref()
            .and_then(|a| a.reauth.as_ref())
            .is_some_and(|r| r.due.is_some())
    }

    /// An AUTH from the connected client: starts a re-authentication (0x19) or answers the
    /// one in progress (0x18). Anything else, or AUTH on a connection that did not use
    /// enhanced authentication, is a protocol error.
    pub(crate) fn on_auth(&mut self, auth: &Auth<'_>) {
        let Some(method) = self.auth.as_deref().and_then(|a| a.method.clone()) else {
            let why = "AUTH on a connection without enhanced authentication";
            return self.close_with(ReasonCode::ProtocolError, why);
        };
        let in_progress = self.auth.as_deref().is_some_and(|a| a.reauth.is_some());
        let expected = match in_progress {
            true => ReasonCode::ContinueAuthentication,
            false => ReasonCode::ReAuthenticate,
        };
        let data = match client_auth(auth, &method, expected) {
            Ok(data) => data,
            Err(why) => return self.close_with(ReasonCode::ProtocolError, why),
        };
        if in_progress {
            if let Some(reauth) = self.auth.as_deref_mut().and_then(|a| a.reauth.as_mut()) {
                reauth.due = Some(data);
            }
            return;
        }
        let conversation = {
            let Some(state) = self.auth.as_deref() else {
                return;
            };
            let request = AuthRequest {
                client_id: &self.client_id,
                username: state.username.as_deref(),
                password: None,
                certificate_identity: state.certificate_identity.as_deref(),
                username_from_certificate: false,
                anonymous_allowed: state.anonymous_allowed,
                listener: state.listener,
                version: ProtocolVersion::V5,
            };
            self.router.authenticator.enhanced(&method, &request)
        };
        match (conversation, self.auth.as_deref_mut()) {
            (Some(conversation), Some(state)) => {
                state.reauth = Some(ReAuth {
                    conversation,
                    rounds: 0,
                    due: Some(data),
                });
            }
            _ => self.close_with(
                ReasonCode::BadAuthenticationMethod,
                "this authentication method is not supported",
            ),
        }
    }

    /// Runs the due step of the re-authentication in progress (within `connect_timeout`)
    /// and queues what follows: AUTH 0x18 with the next challenge, AUTH 0x00 when done (the
    /// identity ACLs see is then the new one), or DISCONNECT 0x87 when refused.
    pub(crate) async fn reauth_step(&mut self) {
        let Some(state) = self.auth.as_deref_mut() else {
            return;
        };
        let (Some(mut reauth), Some(method)) = (state.reauth.take(), state.method.clone()) else {
            return;
        };
        let Some(data) = reauth.due.take() else {
            state.reauth = Some(reauth);
            return;
        };
        let timeout = self.config.connect_timeout();
        let step = tokio::time::timeout(timeout, reauth.conversation.step(data.as_deref())).await;
        let (reason, data) = match step {
            Ok(Ok(Step::Continue(challenge))) if reauth.rounds < MAX_AUTH_ROUNDS => {
                reauth.rounds += 1;
                if let Some(state) = self.auth.as_deref_mut() {
                    state.reauth = Some(reauth);
                }
                (ReasonCode::ContinueAuthentication, Some(challenge))
            }
            Ok(Ok(Step::Done { identity, data })) => {
                if let Some(state) = self.auth.as_deref_mut() {
                    state.username = identity.username.map(Arc::from);
                }
                tracing::debug!(client = %self.client_id, user = ?self.username(), "re-authenticated");
                (ReasonCode::Success, data)
            }
            refused => {
                tracing::debug!(client = %self.client_id, ?refused, "re-authentication refused");
                return self.close_with(ReasonCode::NotAuthorized, "re-authentication failed");
            }
        };
        let mut out = Vec::new();
        auth_packet(&mut out, reason, &method, data.as_deref());
        if out.len() > self.session.connection().peer_maximum_packet_size as usize {
            let why = "the authentication data is larger than the client takes";
            return self.close_with(ReasonCode::ImplementationSpecificError, why);
        }
        if let Some(link) = &mut self.link {
            link.out.extend_from_slice(&out);
        }
    }
}
