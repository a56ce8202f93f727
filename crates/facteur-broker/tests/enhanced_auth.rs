//! MQTT 5 enhanced authentication at byte level: the AUTH exchange before CONNACK (a
//! challenge and its answer, the CONNACK carrying the method and the server's last
//! data), refusals (a wrong answer, another packet than AUTH, an unsupported method),
//! re-authentication on a live connection (AUTH 0x19, the identity ACLs see changing with
//! it, a failed one ending the connection), and AUTH where no enhanced authentication was
//! used.

mod common;

use common::admin::AdminArea;
use common::*;
use facteur_broker::auth::{
    AuthError, AuthRequest, Authenticator, BoxFuture, Conversation, Identity, Step,
};
use facteur_broker::{Broker, BrokerHandle, Config, Security};
use facteur_codec::{
    Auth, Connect, Packet, Properties, Property, QoS, ReasonCode, SubscriptionOptions,
};

/// A challenge-response: the client says "hello", the server answers with a nonce, the
/// client proves it knows a secret with it (`NONCE:secret` is "guest", `NONCE:root` is
/// "root").
struct Challenge;

struct ChallengeConversation {
    nonce: Option<&'static [u8]>,
}

impl Conversation for ChallengeConversation {
    fn step<'a>(&'a mut self, data: Option<&'a [u8]>) -> BoxFuture<'a, Result<Step, AuthError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            match (self.nonce, data) {
                (None, Some(b"hello")) => {
                    self.nonce = Some(b"nonce-1");
                    Ok(Step::Continue(b"nonce-1".to_vec()))
                }
                (Some(_), Some(b"nonce-1:secret")) => Ok(Step::Done {
                    identity: Identity::user("guest"),
                    data: Some(b"welcome".to_vec()),
                }),
                (Some(_), Some(b"nonce-1:root")) => Ok(Step::Done {
                    identity: Identity::user("root"),
                    data: None,
                }),
                _ => Err(AuthError::BadCredentials),
            }
        })
    }
}

impl Authenticator for Challenge {
    fn authenticate<'a>(
        &'a self,
        _request: &'a AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<Identity, AuthError>> {
        Box::pin(async { Ok(Identity::anonymous()) })
    }

    fn enhanced(&self, method: &str, _request: &AuthRequest<'_>) -> Option<Box<dyn Conversation>> {
        (method == "CHAL").then(|| Box::new(ChallengeConversation { nonce: None }) as _)
    }
}

async fn challenge_broker() -> BrokerHandle {
    let mut config = Config::default();
    config.listeners[0].port = 0;
    let security = Security::new()
        .authenticator(Challenge)
        .authorizer(AdminArea);
    Broker::start_with(config, security).await.unwrap()
}

/// The exact bytes of an AUTH with `reason`, method "CHAL" and `data`.
fn auth_bytes(reason: u8, data: Option<&[u8]>) -> Vec<u8> {
    let mut props = vec![0x15, 0x00, 0x04];
    props.extend_from_slice(b"CHAL");
    if let Some(data) = data {
        props.extend_from_slice(&[0x16, 0x00, data.len() as u8]);
        props.extend_from_slice(data);
    }
    let mut f = vec![0xF0, 2 + props.len() as u8, reason, props.len() as u8];
    f.extend(props);
    f
}

async fn send_auth(peer: &mut Peer, reason: ReasonCode, data: &[u8]) {
    let props = [
        Property::AuthenticationMethod("CHAL"),
        Property::AuthenticationData(data),
    ];
    let packet = Auth {
        reason_code: reason,
        properties: Properties::from_slice(&props),
    };
    peer.send(&Packet::Auth(packet)).await;
}

/// Connects with method CHAL and first data `hello`; returns the peer after the
/// challenge (AUTH 0x18 with the nonce, checked byte for byte).
async fn challenged(broker: &BrokerHandle, id: &str) -> Peer {
    let props = [
        Property::AuthenticationMethod("CHAL"),
        Property::AuthenticationData(b"hello"),
    ];
    let connect = Connect {
        properties: Properties::from_slice(&props),
        ..Connect::new(V5, id)
    };
    let mut peer = Peer::raw(broker, V5).await;
    peer.send(&Packet::Connect(connect)).await;
    assert_eq!(peer.recv_bytes().await, auth_bytes(0x18, Some(b"nonce-1")));
    peer
}

/// The CONNACK of a default 5.0 connection (Receive Maximum 20, Topic Alias Maximum 10,
/// Maximum Packet Size 1 MiB) with these properties added.
fn connack_with(extra: &[u8]) -> Vec<u8> {
    let base = [
        0x21, 0x00, 0x14, 0x22, 0x00, 0x0A, 0x27, 0x00, 0x10, 0x00, 0x00,
    ];
    let len = base.len() + extra.len();
    let mut f = vec![0x20, 3 + len as u8, 0x00, 0x00, len as u8];
    f.extend_from_slice(&base);
    f.extend_from_slice(extra);
    f
}

#[tokio::test]
async fn a_challenge_and_its_answer_then_connack_with_method_and_data() {
    let broker = challenge_broker().await;
    let mut peer = challenged(&broker, "c1").await;
    send_auth(
        &mut peer,
        ReasonCode::ContinueAuthentication,
        b"nonce-1:secret",
    )
    .await;
    let mut extra = vec![0x15, 0x00, 0x04];
    extra.extend_from_slice(b"CHAL");
    extra.extend_from_slice(&[0x16, 0x00, 0x07]);
    extra.extend_from_slice(b"welcome");
    assert_eq!(peer.recv_bytes().await, connack_with(&extra));
    // Connected as "guest": admin/ is refused.
    let suback = peer
        .subscribe("admin/#", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    assert_eq!(suback[suback.len() - 1], 0x87);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_wrong_answer_another_packet_or_an_unknown_method_is_refused() {
    let broker = challenge_broker().await;
    let mut wrong = challenged(&broker, "c2").await;
    send_auth(
        &mut wrong,
        ReasonCode::ContinueAuthentication,
        b"nonce-1:guess",
    )
    .await;
    assert_eq!(
        wrong.recv_bytes().await,
        connack_why(0x86, "authentication failed")
    );
    assert!(wrong.closed().await);
    let mut impatient = challenged(&broker, "c3").await;
    impatient
        .send(&publish("a", b"b", QoS::AtMostOnce, None))
        .await;
    assert_eq!(
        impatient.recv_bytes().await,
        connack_why(0x82, "only AUTH may come before CONNACK")
    );
    assert!(impatient.closed().await);
    let mut reauth_too_early = challenged(&broker, "c4").await;
    send_auth(&mut reauth_too_early, ReasonCode::ReAuthenticate, b"x").await;
    assert_eq!(
        reauth_too_early.recv_bytes().await,
        connack_why(0x82, "AUTH with another reason than continue (0x18)")
    );
    let props = [Property::AuthenticationMethod("SCRAM-SHA-256")];
    let connect = Connect {
        properties: Properties::from_slice(&props),
        ..Connect::new(V5, "c5")
    };
    let (connack, _) = try_connect(&broker, connect).await;
    assert_eq!(
        connack,
        connack_why(0x8C, "this authentication method is not supported")
    );
    assert_eq!(broker.stats().clients_connected, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn re_authentication_changes_the_identity_acls_see() {
    let broker = challenge_broker().await;
    let mut peer = challenged(&broker, "c6").await;
    send_auth(
        &mut peer,
        ReasonCode::ContinueAuthentication,
        b"nonce-1:secret",
    )
    .await;
    let connack = peer.recv_bytes().await;
    assert_eq!(connack[3], 0x00);
    let before = peer
        .subscribe("admin/#", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    assert_eq!(before[before.len() - 1], 0x87);
    // Re-authenticate as root, while the connection carries on.
    send_auth(&mut peer, ReasonCode::ReAuthenticate, b"hello").await;
    assert_eq!(peer.recv_bytes().await, auth_bytes(0x18, Some(b"nonce-1")));
    peer.send_bytes(&[0xC0, 0x00]).await;
    assert_eq!(peer.recv_bytes().await, [0xD0, 0x00]);
    send_auth(
        &mut peer,
        ReasonCode::ContinueAuthentication,
        b"nonce-1:root",
    )
    .await;
    assert_eq!(peer.recv_bytes().await, auth_bytes(0x00, None));
    let after = peer
        .subscribe("admin/#", SubscriptionOptions::qos(QoS::AtMostOnce), 2)
        .await;
    assert_eq!(after, [0x90, 0x04, 0x00, 0x02, 0x00, 0x00]);
    // A failed re-authentication ends the connection.
    send_auth(&mut peer, ReasonCode::ReAuthenticate, b"goodbye").await;
    peer.told_why_then_closed(0x87, "re-authentication failed")
        .await;
    broker.shutdown().await;
}

#[tokio::test]
async fn auth_without_enhanced_authentication_is_a_protocol_error() {
    let broker = challenge_broker().await;
    let mut plain = Peer::client(&broker, V5, "plain").await;
    send_auth(&mut plain, ReasonCode::ReAuthenticate, b"hello").await;
    plain
        .told_why_then_closed(0x82, "AUTH on a connection without enhanced authentication")
        .await;
    // With it, AUTH 0x18 out of turn, or with another method, is one too.
    let mut peer = challenged(&broker, "c7").await;
    send_auth(
        &mut peer,
        ReasonCode::ContinueAuthentication,
        b"nonce-1:secret",
    )
    .await;
    assert_eq!(peer.recv_bytes().await[3], 0x00);
    send_auth(&mut peer, ReasonCode::ContinueAuthentication, b"x").await;
    peer.told_why_then_closed(0x82, "AUTH with another reason than re-authenticate (0x19)")
        .await;
    broker.shutdown().await;
}
