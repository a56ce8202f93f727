//! MQTT 5 PUBLISH properties of outgoing messages: stored as wire bytes, sent and resent as
//! given, with the Message Expiry Interval rewritten to the time left and the session's own
//! topic alias.

mod common;

use common::*;
use facteur_codec::{PayloadFormat, Properties, Property, Publish, QoS};
use facteur_session::{
    AllocStore, Config, Connection, HeaplessStore, PublishError, Role, Session, Store,
};

fn with_props(
    topic: &str,
    payload: &'static [u8],
    qos: QoS,
    props: Vec<Property<'static>>,
) -> Publish<'static> {
    let mut p = message(topic, payload, qos);
    p.properties = Properties::from_slice(Box::leak(props.into_boxed_slice()));
    p
}

fn client<S: Store>(connection: Connection) -> Session<S> {
    let mut s = Session::new(Config::new(Role::Client));
    s.on_connect(at(0), connection);
    s
}

/// Every PUBLISH property but Topic Alias goes out, in order, after the expiry; the expiry is
/// what is left when sent, and again what is left when resent.
fn every_property_is_sent_and_resent_with_the_expiry_left<S: Store>() {
    let mut c = client::<S>(Connection::new(V5, 0));
    let props = vec![
        Property::PayloadFormatIndicator(PayloadFormat::Utf8),
        Property::MessageExpiryInterval(100),
        Property::ContentType("t/p"),
        Property::ResponseTopic("r"),
        Property::CorrelationData(&[1, 2]),
        Property::TopicAlias(7),
        Property::UserProperty("k", "v"),
        Property::SubscriptionIdentifier(5),
    ];
    c.publish(&with_props("a/b", b"hi", QoS::AtLeastOnce, props), at(0))
        .unwrap();
    #[rustfmt::skip]
    let first = vec![
        0x32, 0x29, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01,
        0x1F, // properties: 31 bytes
        0x02, 0x00, 0x00, 0x00, 98, // Message Expiry Interval: 100 s - 2 s waited
        0x01, 0x01, // Payload Format Indicator: UTF-8
        0x03, 0x00, 0x03, b't', b'/', b'p', // Content Type
        0x08, 0x00, 0x01, b'r', // Response Topic
        0x09, 0x00, 0x02, 0x01, 0x02, // Correlation Data
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // User Property
        0x0B, 0x05, // Subscription Identifier
        b'h', b'i',
    ];
    assert_eq!(drain(&mut c, at(2_500)), std::slice::from_ref(&first));
    // Resent 10 s after it was accepted: DUP, and 90 s left.
    c.on_connection_lost(at(10_000));
    c.on_reconnect(at(10_000));
    let mut resent = first;
    resent[0] = 0x3A;
    resent[14] = 90;
    assert_eq!(drain(&mut c, at(10_000)), [resent.clone()]);
    // Later still, 100 s and more: the interval left is 0 (it is in flight, it goes out).
    c.on_connection_lost(at(150_000));
    c.on_reconnect(at(150_000));
    resent[14] = 0;
    assert_eq!(drain(&mut c, at(150_000)), [resent]);
}

/// The topic alias the session assigns is sent first; the caller's is never used; the other
/// properties follow on every message, aliased or not; a resend has no alias.
fn session_alias_replaces_the_callers<S: Store>() {
    let mut connection = Connection::new(V5, 0);
    connection.peer_topic_alias_maximum = 1;
    let mut c = client::<S>(connection);
    let props = || vec![Property::UserProperty("k", "v"), Property::TopicAlias(9)];
    c.publish(&with_props("a/b", b"x", QoS::AtMostOnce, props()), at(0))
        .unwrap();
    c.publish(&with_props("a/b", b"x", QoS::AtLeastOnce, props()), at(0))
        .unwrap();
    #[rustfmt::skip]
    let expected = [
        vec![
            0x30, 0x11, 0x00, 0x03, b'a', b'/', b'b',
            0x0A, 0x23, 0x00, 0x01, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v',
            b'x',
        ],
        vec![
            0x32, 0x10, 0x00, 0x00, 0x00, 0x01,
            0x0A, 0x23, 0x00, 0x01, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v',
            b'x',
        ],
    ];
    assert_eq!(drain(&mut c, at(0)), expected);
    c.on_connection_lost(at(1));
    c.on_reconnect(at(1));
    #[rustfmt::skip]
    let resent = vec![
        0x3A, 0x10, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01,
        0x07, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v',
        b'x',
    ];
    assert_eq!(drain(&mut c, at(1)), [resent]);
}

/// Before 5.0 there are no properties on the wire.
fn no_properties_in_3_1_1<S: Store>() {
    let mut c = client::<S>(Connection::new(V3, 0));
    let props = vec![
        Property::UserProperty("k", "v"),
        Property::MessageExpiryInterval(10),
    ];
    c.publish(&with_props("a/b", b"hi", QoS::AtMostOnce, props), at(0))
        .unwrap();
    assert_eq!(
        drain(&mut c, at(1_000)),
        [vec![0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i']]
    );
}

/// Properties a PUBLISH cannot carry are refused when the message is accepted.
fn invalid_properties_are_refused<S: Store>() {
    let mut c = client::<S>(Connection::new(V5, 0));
    for props in [
        vec![Property::SessionExpiryInterval(1)],
        vec![Property::ContentType("a"), Property::ContentType("b")],
        vec![Property::SubscriptionIdentifier(0)],
    ] {
        assert_eq!(
            c.publish(&with_props("t", b"", QoS::AtMostOnce, props), at(0)),
            Err(PublishError::InvalidProperties)
        );
    }
    assert_eq!(c.queued(), 0);
}

/// With `HeaplessStore` the stored properties count against `BYTES`: topic 1 + alias slot 3
/// + user property 7 + payload 1 = 12.
#[test]
fn heapless_bytes_bound_the_stored_properties() {
    let props = || vec![Property::UserProperty("k", "v")];
    let mut fits = client::<HeaplessStore<1, 1, 12>>(Connection::new(V5, 0));
    fits.publish(&with_props("t", b"x", QoS::AtMostOnce, props()), at(0))
        .unwrap();
    let mut short = client::<HeaplessStore<1, 1, 11>>(Connection::new(V5, 0));
    assert_eq!(
        short.publish(&with_props("t", b"x", QoS::AtMostOnce, props()), at(0)),
        Err(PublishError::TooLarge)
    );
}

macro_rules! for_both_stores {
    ($($name:ident),* $(,)?) => {
        mod heapless_store {
            $( #[test] fn $name() { super::$name::<super::Fixed>() } )*
        }
        mod alloc_store {
            $( #[test] fn $name() { super::$name::<super::AllocStore>() } )*
        }
    };
}

for_both_stores!(
    every_property_is_sent_and_resent_with_the_expiry_left,
    session_alias_replaces_the_callers,
    no_properties_in_3_1_1,
    invalid_properties_are_refused,
);
