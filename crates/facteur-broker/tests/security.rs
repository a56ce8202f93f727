//! Who may connect and what each client may do, over real sockets at byte level: the
//! password file (mosquitto's formats), `allow_anonymous`, the ACL file (an ACL matrix:
//! anonymous clients, users, patterns, deny, wildcard subscriptions, retained messages,
//! wills, hostile client identifiers, `$SYS`), reloading, and an embedder's own
//! authenticator and authorizer. Every wait is bounded; "not delivered" is shown by a
//! later message arriving first, never by waiting.

mod common;

use common::admin::AdminArea;
use common::*;
use facteur_broker::auth::{AuthError, AuthRequest, Authenticator, BoxFuture, Identity};
use facteur_broker::{Broker, BrokerHandle, Config, Security};
use facteur_codec::{Connect, Packet, Properties, Publish, QoS, SubscriptionOptions, Will};
use std::path::Path;

const PASSWORDS: [(&str, &str); 3] = [("alice", "a-pw"), ("spy", "s-pw"), ("bob", "b-pw")];

const ACL: &str = "\
# anonymous clients
topic read public/#
topic write public/in

user alice
topic readwrite alice/#
topic deny alice/private/#
topic read public/#
topic read $SYS/broker/uptime

user spy
topic read #
topic deny alice/diary

pattern readwrite devices/%c/#
pattern read inbox/%u
";

fn password_file(dir: &Path) -> std::path::PathBuf {
    let text: String = PASSWORDS.iter().map(|(u, p)| passwd_line(u, p)).collect();
    write_file(dir, "passwd", &text)
}

async fn secured(acl: &str) -> BrokerHandle {
    let dir = temp_dir("security");
    let passwords = password_file(&dir);
    let acl = write_file(&dir, "acl", acl);
    broker_with(|c| {
        c.password_file = Some(passwords);
        c.acl_file = Some(acl);
        c.allow_anonymous = Some(true);
        c.sys_interval = 0;
    })
    .await
}

fn user(name: &str) -> &'static str {
    PASSWORDS.iter().find(|(u, _)| *u == name).unwrap().1
}

async fn as_user(
    broker: &BrokerHandle,
    version: facteur_codec::ProtocolVersion,
    id: &str,
    name: &str,
) -> Peer {
    Peer::connect(broker, login(version, id, name, user(name))).await
}

#[tokio::test]
async fn unknown_user_and_wrong_password_are_refused_alike() {
    let dir = temp_dir("passwords");
    let passwords = password_file(&dir);
    let broker = broker_with(|c| {
        c.password_file = Some(passwords);
        c.allow_anonymous = Some(false);
    })
    .await;
    let _alice = Peer::connect(&broker, login(V311, "a", "alice", "a-pw")).await;
    let _bob = Peer::connect(&broker, login(V5, "b", "bob", "b-pw")).await;
    // 3.1.1: 5 (not authorized) for both, as mosquitto answers; then the connection ends.
    for (name, password) in [("alice", "wrong"), ("nobody", "a-pw"), ("alice", "")] {
        let (connack, mut peer) = try_connect(&broker, login(V311, "x", name, password)).await;
        assert_eq!(connack, [0x20, 0x02, 0x00, 0x05], "{name}/{password}");
        assert!(peer.closed().await);
    }
    // 5.0: 0x86 for both, same bytes.
    for (name, password) in [("alice", "wrong"), ("nobody", "a-pw")] {
        let (connack, mut peer) = try_connect(&broker, login(V5, "x", name, password)).await;
        assert_eq!(connack, connack_why(0x86, "bad username or password"));
        assert!(peer.closed().await);
    }
    // Anonymous clients are refused here: 3.1.1 5, 5.0 0x87.
    let (connack, _) = try_connect(&broker, Connect::new(V311, "anon")).await;
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x05]);
    let (connack, _) = try_connect(&broker, Connect::new(V5, "anon")).await;
    assert_eq!(connack, connack_why(0x87, "not authorized"));
    assert_eq!(broker.stats().clients_connected, 2);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_listener_can_accept_anonymous_clients_where_the_broker_does_not() {
    let broker = broker_with(|c| {
        c.allow_anonymous = Some(false);
        c.listeners[0].allow_anonymous = Some(true);
    })
    .await;
    Peer::client(&broker, V311, "anon").await;
    broker.shutdown().await;
    // In code, with nothing set: anonymous clients only on loopback listeners.
    let broker = broker_with(|_| {}).await;
    Peer::client(&broker, V5, "anon").await;
    broker.shutdown().await;
}

#[tokio::test]
async fn an_unsupported_authentication_method_is_refused_with_0x8c() {
    let broker = broker_with(|_| {}).await;
    let method = [facteur_codec::Property::AuthenticationMethod("SCRAM-SHA-1")];
    let connect = Connect {
        properties: Properties::from_slice(&method),
        ..Connect::new(V5, "scram")
    };
    let (connack, mut peer) = try_connect(&broker, connect).await;
    assert_eq!(
        connack,
        connack_why(0x8C, "this authentication method is not supported")
    );
    assert!(peer.closed().await);
    broker.shutdown().await;
}

#[tokio::test]
async fn bad_security_files_stop_start_up_with_file_and_line() {
    let dir = temp_dir("bad-files");
    let good = password_file(&dir);
    let bad_passwords = write_file(
        &dir,
        "bad-passwd",
        &format!("{}bob\n", passwd_line("a", "b")),
    );
    let bad_acl = write_file(
        &dir,
        "bad-acl",
        "user alice\ntopic read a/#\ntopic raed b\n",
    );
    let missing = dir.join("missing");
    let start = |edit: Box<dyn FnOnce(&mut Config)>| async move {
        let mut config = Config::default();
        config.listeners[0].port = 0;
        edit(&mut config);
        Broker::start(config)
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let p = bad_passwords.clone();
    let error = start(Box::new(move |c| c.password_file = Some(p))).await;
    assert_eq!(
        error,
        format!("{}:2: expected `username:hash`", bad_passwords.display())
    );
    let a = bad_acl.clone();
    let error = start(Box::new(move |c| {
        c.password_file = Some(good);
        c.acl_file = Some(a);
    }))
    .await;
    assert_eq!(
        error,
        format!(
            "{}:3: unknown access \"raed\" (read, write, readwrite or deny)",
            bad_acl.display()
        )
    );
    let m = missing.clone();
    let error = start(Box::new(move |c| c.acl_file = Some(m))).await;
    assert!(
        error.starts_with(&format!("{}: cannot read", missing.display())),
        "{error}"
    );
}

#[tokio::test]
async fn publish_refused_5_0_gets_0x87_and_3_1_1_an_acknowledgement_and_nothing_delivered() {
    let broker = secured(ACL).await;
    let mut alice = as_user(&broker, V311, "alice", "alice").await;
    alice
        .subscribe("#", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    let mut v5 = Peer::client(&broker, V5, "anon5").await;
    v5.send(&publish("alice/x", b"no", QoS::AtLeastOnce, Some(7)))
        .await;
    assert_eq!(v5.recv_bytes().await, [0x40, 0x03, 0x00, 0x07, 0x87]);
    v5.send(&publish("alice/x", b"no", QoS::ExactlyOnce, Some(8)))
        .await;
    assert_eq!(v5.recv_bytes().await, [0x50, 0x03, 0x00, 0x08, 0x87]);
    let mut v3 = Peer::client(&broker, V311, "anon3").await;
    v3.send(&publish("alice/x", b"no", QoS::AtLeastOnce, Some(9)))
        .await;
    assert_eq!(v3.recv_bytes().await, [0x40, 0x02, 0x00, 0x09]);
    v3.send(&publish("public/in", b"yes", QoS::AtLeastOnce, Some(10)))
        .await;
    assert_eq!(v3.recv_bytes().await, [0x40, 0x02, 0x00, 0x0A]);
    // Alice gets the allowed message first: the refused ones were never routed.
    let (topic, payload) = topic_payload(V311, &alice.recv_bytes().await);
    assert_eq!((topic.as_str(), &payload[..]), ("public/in", &b"yes"[..]));
    assert!(broker.stats().dropped >= 3);
    broker.shutdown().await;
}

#[tokio::test]
async fn subscribe_refusals_per_filter_0x80_in_3_1_1_and_0x87_in_5_0() {
    let broker = secured(ACL).await;
    let mut v3 = Peer::client(&broker, V311, "anon3").await;
    let subs = [
        facteur_codec::Subscription {
            filter: "public/#",
            options: SubscriptionOptions::qos(QoS::AtLeastOnce),
        },
        facteur_codec::Subscription {
            filter: "alice/#",
            options: SubscriptionOptions::qos(QoS::AtMostOnce),
        },
        facteur_codec::Subscription {
            filter: "#",
            options: SubscriptionOptions::qos(QoS::AtMostOnce),
        },
    ];
    v3.send(&Packet::Subscribe(facteur_codec::Subscribe::new(1, &subs)))
        .await;
    // `#` is granted: it reaches public/#, and deliveries are checked one by one.
    assert_eq!(
        v3.recv_bytes().await,
        [0x90, 0x05, 0x00, 0x01, 0x01, 0x80, 0x00]
    );
    let mut v5 = Peer::client(&broker, V5, "anon5").await;
    v5.send(&Packet::Subscribe(facteur_codec::Subscribe::new(2, &subs)))
        .await;
    let why = b"not authorized";
    let mut expected = vec![
        0x90,
        6 + 3 + why.len() as u8,
        0x00,
        0x02,
        3 + why.len() as u8,
        0x1F,
        0x00,
        why.len() as u8,
    ];
    expected.extend_from_slice(why);
    expected.extend_from_slice(&[0x01, 0x87, 0x00]);
    assert_eq!(v5.recv_bytes().await, expected);
    // Deny wins: a filter all inside a denied area is refused.
    let mut spy = as_user(&broker, V311, "spy", "spy").await;
    let denied = spy
        .subscribe("alice/diary", SubscriptionOptions::qos(QoS::AtMostOnce), 3)
        .await;
    assert_eq!(denied, [0x90, 0x03, 0x00, 0x03, 0x80]);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_wildcard_subscriber_gets_only_what_it_may_read_retained_included() {
    let broker = secured(ACL).await;
    let mut alice = as_user(&broker, V311, "alice", "alice").await;
    let retained = |topic, payload| {
        Packet::Publish(Publish {
            retain: true,
            ..Publish::new(topic, payload)
        })
    };
    alice.send(&retained("alice/diary", b"secret")).await;
    alice.send(&retained("alice/news", b"hello")).await;
    sync(&mut alice).await;
    let mut spy = as_user(&broker, V311, "spy", "spy").await;
    let suback = spy
        .subscribe("#", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    assert_eq!(suback, [0x90, 0x03, 0x00, 0x01, 0x00]);
    // Of the two retained messages, only the readable one; then live ones, the denied
    // one left out.
    let (topic, _) = topic_payload(V311, &spy.recv_bytes().await);
    assert_eq!(topic, "alice/news");
    alice
        .send(&publish("alice/diary", b"d", QoS::AtMostOnce, None))
        .await;
    alice
        .send(&publish("alice/private/x", b"p", QoS::AtMostOnce, None))
        .await;
    alice
        .send(&publish("alice/later", b"l", QoS::AtMostOnce, None))
        .await;
    let (topic, _) = topic_payload(V311, &spy.recv_bytes().await);
    assert_eq!(topic, "alice/later");
    broker.shutdown().await;
}

#[tokio::test]
async fn wills_are_checked_when_published_and_when_delivered() {
    let broker = secured(ACL).await;
    let mut alice = as_user(&broker, V311, "alice", "alice").await;
    alice
        .subscribe("#", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    let will = |topic| Will {
        topic,
        payload: b"gone",
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Properties::EMPTY,
    };
    // An anonymous client may not write alice/: its will is dropped.
    let refused = Peer::connect(
        &broker,
        Connect {
            will: Some(will("alice/will")),
            ..Connect::new(V311, "w1")
        },
    )
    .await;
    drop(refused);
    let allowed = Peer::connect(
        &broker,
        Connect {
            will: Some(will("public/in")),
            ..Connect::new(V311, "w2")
        },
    )
    .await;
    // Wait until the first will was handled (its connection's end is seen) before the
    // second connection goes: the broker sees them in this order.
    let mut probe = Peer::client(&broker, V311, "w1").await;
    sync(&mut probe).await;
    drop(allowed);
    let (topic, _) = topic_payload(V311, &alice.recv_bytes().await);
    assert_eq!(topic, "public/in");
    broker.shutdown().await;
}

#[tokio::test]
async fn patterns_and_hostile_client_ids() {
    let broker = secured(ACL).await;
    let mut dev = Peer::client(&broker, V311, "dev1").await;
    let granted = dev
        .subscribe(
            "devices/dev1/#",
            SubscriptionOptions::qos(QoS::AtMostOnce),
            1,
        )
        .await;
    assert_eq!(granted, [0x90, 0x03, 0x00, 0x01, 0x00]);
    let other = dev
        .subscribe(
            "devices/dev2/#",
            SubscriptionOptions::qos(QoS::AtMostOnce),
            2,
        )
        .await;
    assert_eq!(other, [0x90, 0x03, 0x00, 0x02, 0x80]);
    // Client identifiers with + # / take no part in patterns.
    for id in ["+", "#", "dev1/x"] {
        let mut hostile = Peer::client(&broker, V5, id).await;
        hostile
            .send(&publish(
                "devices/dev1/x/t",
                b"h",
                QoS::AtLeastOnce,
                Some(1),
            ))
            .await;
        assert_eq!(
            hostile.recv_bytes().await,
            [0x40, 0x03, 0x00, 0x01, 0x87],
            "{id}"
        );
        let suback = hostile
            .subscribe("devices/+/t", SubscriptionOptions::qos(QoS::AtMostOnce), 2)
            .await;
        assert_eq!(suback[suback.len() - 1], 0x87, "{id}");
    }
    dev.send(&publish("devices/dev1/own", b"o", QoS::AtMostOnce, None))
        .await;
    let (topic, _) = topic_payload(V311, &dev.recv_bytes().await);
    assert_eq!(topic, "devices/dev1/own");
    // %u: each user its own inbox.
    let mut bob = as_user(&broker, V311, "bob", "bob").await;
    let own = bob
        .subscribe("inbox/bob", SubscriptionOptions::qos(QoS::AtMostOnce), 3)
        .await;
    assert_eq!(own, [0x90, 0x03, 0x00, 0x03, 0x00]);
    let theirs = bob
        .subscribe("inbox/alice", SubscriptionOptions::qos(QoS::AtMostOnce), 4)
        .await;
    assert_eq!(theirs, [0x90, 0x03, 0x00, 0x04, 0x80]);
    broker.shutdown().await;
}

#[tokio::test]
async fn sys_topics_are_readable_only_where_an_acl_names_them() {
    let dir = temp_dir("sys");
    let passwords = password_file(&dir);
    let acl = write_file(&dir, "acl", ACL);
    let broker = broker_with(|c| {
        c.password_file = Some(passwords);
        c.acl_file = Some(acl);
        c.sys_interval = 1;
    })
    .await;
    let mut spy = as_user(&broker, V311, "spy", "spy").await;
    let refused = spy
        .subscribe("$SYS/#", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    assert_eq!(refused, [0x90, 0x03, 0x00, 0x01, 0x80]);
    let mut alice = as_user(&broker, V311, "alice", "alice").await;
    let granted = alice
        .subscribe("$SYS/#", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    assert_eq!(granted, [0x90, 0x03, 0x00, 0x01, 0x00]);
    // Retained $SYS messages, then the next update: only the uptime each time.
    for _ in 0..2 {
        let (topic, _) = topic_payload(V311, &alice.recv_bytes().await);
        assert_eq!(topic, "$SYS/broker/uptime");
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn a_resumed_session_is_checked_against_the_new_connections_rights() {
    let broker = secured(ACL).await;
    let persistent = |connect: Connect<'static>| Connect {
        clean_start: false,
        ..connect
    };
    let mut first =
        Peer::connect(&broker, persistent(login(V311, "roamer", "alice", "a-pw"))).await;
    first
        .subscribe("alice/#", SubscriptionOptions::qos(QoS::AtLeastOnce), 1)
        .await;
    first
        .subscribe("public/#", SubscriptionOptions::qos(QoS::AtLeastOnce), 2)
        .await;
    first.send_bytes(&[0xE0, 0x00]).await;
    assert!(first.closed().await);
    // The same session, now anonymous: alice's topics are no longer delivered.
    let (connack, mut again) = try_connect(&broker, persistent(Connect::new(V311, "roamer"))).await;
    // Session present.
    assert_eq!(connack, [0x20, 0x02, 0x01, 0x00]);
    let mut alice = as_user(&broker, V311, "alice", "alice").await;
    alice
        .send(&publish("alice/x", b"a", QoS::AtLeastOnce, Some(1)))
        .await;
    assert_eq!(alice.recv_bytes().await, [0x40, 0x02, 0x00, 0x01]);
    let mut anon = Peer::client(&broker, V311, "anon").await;
    anon.send(&publish("public/in", b"p", QoS::AtLeastOnce, Some(2)))
        .await;
    assert_eq!(anon.recv_bytes().await, [0x40, 0x02, 0x00, 0x02]);
    let (topic, _) = topic_payload(V311, &again.recv_bytes().await);
    assert_eq!(topic, "public/in");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_failed_reload_keeps_the_rules_in_force() {
    let dir = temp_dir("reload");
    let passwords = password_file(&dir);
    let acl = write_file(&dir, "acl", "topic read a/#\n");
    let broker = broker_with(|c| {
        c.password_file = Some(passwords.clone());
        c.acl_file = Some(acl.clone());
        c.allow_anonymous = Some(true);
    })
    .await;
    let mut anon = Peer::client(&broker, V311, "anon").await;
    assert_eq!(
        anon.subscribe("b/#", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
            .await,
        [0x90, 0x03, 0x00, 0x01, 0x80]
    );
    // A broken ACL file: refused, the old rules stay (nothing opens up).
    std::fs::write(&acl, "topic read b/#\ntopik read c\n").unwrap();
    let error = broker.reload_security_files().unwrap_err();
    assert_eq!(error.line, Some(2));
    assert_eq!(
        anon.subscribe("b/#", SubscriptionOptions::qos(QoS::AtMostOnce), 2)
            .await,
        [0x90, 0x03, 0x00, 0x02, 0x80]
    );
    assert_eq!(
        anon.subscribe("a/#", SubscriptionOptions::qos(QoS::AtMostOnce), 3)
            .await,
        [0x90, 0x03, 0x00, 0x03, 0x00]
    );
    // A good ACL file but a broken password file: neither is put in force.
    std::fs::write(&acl, "topic read b/#\n").unwrap();
    std::fs::write(&passwords, "carol\n").unwrap();
    assert!(broker.reload_security_files().is_err());
    assert_eq!(
        anon.subscribe("b/#", SubscriptionOptions::qos(QoS::AtMostOnce), 4)
            .await,
        [0x90, 0x03, 0x00, 0x04, 0x80]
    );
    Peer::connect(&broker, login(V311, "a2", "alice", "a-pw")).await;
    // Both good: both in force, for connected clients too.
    std::fs::write(&passwords, passwd_line("carol", "c-pw")).unwrap();
    broker.reload_security_files().unwrap();
    assert_eq!(
        anon.subscribe("b/#", SubscriptionOptions::qos(QoS::AtMostOnce), 5)
            .await,
        [0x90, 0x03, 0x00, 0x05, 0x00]
    );
    Peer::connect(&broker, login(V311, "c", "carol", "c-pw")).await;
    let (connack, _) = try_connect(&broker, login(V311, "a3", "alice", "a-pw")).await;
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x05]);
    broker.shutdown().await;
}

/// An embedder's authenticator: looks users up asynchronously.
struct Directory;

impl Authenticator for Directory {
    fn authenticate<'a>(
        &'a self,
        request: &'a AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<Identity, AuthError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            match (request.username, request.password) {
                (Some("root"), Some(b"toor")) => Ok(Identity::user("root")),
                (Some("locked"), Some(b"pw")) => Ok(Identity::user("locked")),
                (Some("banned"), _) => Err(AuthError::NotAuthorized),
                _ => Err(AuthError::BadCredentials),
            }
        })
    }
}

#[tokio::test]
async fn an_embedders_authenticator_and_authorizer() {
    let mut config = Config::default();
    config.listeners[0].port = 0;
    let security = Security::new()
        .authenticator(Directory)
        .authorizer(AdminArea);
    let broker = Broker::start_with(config, security).await.unwrap();
    let mut root = Peer::connect(&broker, login(V5, "r", "root", "toor")).await;
    let (connack, _) = try_connect(&broker, login(V5, "x", "root", "nope")).await;
    assert_eq!(connack, connack_why(0x86, "bad username or password"));
    let (connack, _) = try_connect(&broker, login(V5, "x", "banned", "x")).await;
    assert_eq!(connack, connack_why(0x87, "not authorized"));
    let (connack, _) = try_connect(&broker, login(V311, "x", "banned", "x")).await;
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x05]);
    // Authenticated, but its rights cannot be had: refused as well.
    let (connack, _) = try_connect(&broker, login(V5, "x", "locked", "pw")).await;
    assert_eq!(connack, connack_why(0x87, "not authorized"));
    let suback = root
        .subscribe("#", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    assert_eq!(suback, [0x90, 0x04, 0x00, 0x01, 0x00, 0x00]);
    root.send(&publish("admin/x", b"1", QoS::AtLeastOnce, Some(1)))
        .await;
    assert_eq!(root.recv_bytes().await, [0x40, 0x02, 0x00, 0x01]);
    let (topic, _) = topic_payload(V5, &root.recv_bytes().await);
    assert_eq!(topic, "admin/x");
    broker.shutdown().await;
}

/// Sends PINGREQ and waits for PINGRESP: everything sent before has been acted on.
async fn sync(peer: &mut Peer) {
    peer.send_bytes(&[0xC0, 0x00]).await;
    assert_eq!(peer.recv_bytes().await, [0xD0, 0x00]);
}
