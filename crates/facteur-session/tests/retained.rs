//! The retained message store: set, replace, clear, wildcard lookups, the `$` rule, expiry.
#![cfg(feature = "alloc")]

use facteur_codec::{Properties, Property, QoS};
use facteur_session::{Instant, PublishError, RetainedStore};
use facteur_topic::{TopicFilter, TopicName};

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn t(name: &str) -> TopicName<'_> {
    TopicName::new(name).unwrap()
}

/// (topic, payload, qos, expiry left) of every match, sorted by topic.
fn lookup<B: facteur_session::OwnedBytes>(
    store: &mut RetainedStore<B>,
    filter: &str,
    now: Instant,
) -> Vec<(String, Vec<u8>, QoS, Option<u32>)> {
    let mut got = Vec::new();
    let n = store.for_each_match(TopicFilter::new(filter).unwrap(), now, |m| {
        got.push((
            m.topic.as_str().to_owned(),
            m.payload.to_vec(),
            m.qos,
            m.properties.message_expiry_interval(),
        ))
    });
    assert_eq!(n, got.len());
    got.sort();
    got
}

fn topics(found: &[(String, Vec<u8>, QoS, Option<u32>)]) -> Vec<&str> {
    found.iter().map(|f| f.0.as_str()).collect()
}

fn set(store: &mut RetainedStore, topic: &str, payload: &[u8], now: Instant) {
    store
        .set(
            t(topic),
            payload,
            QoS::AtMostOnce,
            &Properties::EMPTY,
            None,
            now,
        )
        .unwrap();
}

#[test]
fn set_keeps_payload_qos_and_properties() {
    let mut store = RetainedStore::<Vec<u8>>::new();
    let list = [
        Property::ContentType("text/plain"),
        Property::TopicAlias(3),
        Property::UserProperty("k", "v"),
    ];
    store
        .set(
            t("a/b"),
            b"hello",
            QoS::ExactlyOnce,
            &Properties::from_slice(&list),
            None,
            at(0),
        )
        .unwrap();
    assert_eq!((store.len(), store.stored_bytes()), (1, 13 + 7 + 5));
    let m = store.get(t("a/b"), at(1)).unwrap();
    assert_eq!((m.payload, m.qos), (&b"hello"[..], QoS::ExactlyOnce));
    assert_eq!(m.properties.content_type(), Some("text/plain"));
    assert_eq!(m.properties.topic_alias(), None, "an alias is not stored");
    assert_eq!(
        m.properties.user_properties().collect::<Vec<_>>(),
        [("k", "v")]
    );
    let p = m.publish();
    assert!(p.retain && !p.dup);
    assert_eq!(
        (p.topic, p.qos, p.packet_id),
        ("a/b", QoS::ExactlyOnce, None)
    );
    assert!(store.get(t("a/c"), at(1)).is_none());
}

#[test]
fn set_replaces_and_an_empty_payload_clears() {
    let mut store = RetainedStore::new();
    set(&mut store, "a/b", b"one", at(0));
    set(&mut store, "a/b", b"three", at(1));
    assert_eq!((store.len(), store.stored_bytes()), (1, 5));
    assert_eq!(
        lookup(&mut store, "a/b", at(2)),
        [("a/b".into(), b"three".to_vec(), QoS::AtMostOnce, None)]
    );
    set(&mut store, "a/c", b"x", at(3));
    set(&mut store, "a/b", b"", at(4));
    assert_eq!((store.len(), store.stored_bytes()), (1, 1));
    assert!(lookup(&mut store, "a/b", at(5)).is_empty());
    // Clearing a topic that holds nothing is fine; the slot is reused afterwards.
    set(&mut store, "nothing/here", b"", at(6));
    set(&mut store, "a/d", b"yy", at(7));
    assert_eq!(topics(&lookup(&mut store, "a/#", at(8))), ["a/c", "a/d"]);
    assert!(store.remove(t("a/c")));
    assert!(!store.remove(t("a/c")));
    assert_eq!((store.len(), store.stored_bytes()), (1, 2));
}

#[test]
fn wildcard_lookups() {
    let mut store = RetainedStore::new();
    for name in [
        "sport",
        "sport/tennis",
        "sport/tennis/p1",
        "sport/golf",
        "/x",
        "a//b",
    ] {
        set(&mut store, name, b"v", at(0));
    }
    let now = at(1);
    assert_eq!(
        topics(&lookup(&mut store, "sport/#", now)),
        ["sport", "sport/golf", "sport/tennis", "sport/tennis/p1"]
    );
    assert_eq!(
        topics(&lookup(&mut store, "sport/+", now)),
        ["sport/golf", "sport/tennis"]
    );
    assert_eq!(
        topics(&lookup(&mut store, "+/tennis/#", now)),
        ["sport/tennis", "sport/tennis/p1"]
    );
    assert_eq!(
        topics(&lookup(&mut store, "+/+", now)),
        ["/x", "sport/golf", "sport/tennis"]
    );
    assert_eq!(topics(&lookup(&mut store, "a/+/b", now)), ["a//b"]);
    assert_eq!(lookup(&mut store, "#", now).len(), 6);
    assert!(lookup(&mut store, "sport/tennis/p2", now).is_empty());
}

#[test]
fn dollar_topics_need_an_explicit_first_level() {
    let mut store = RetainedStore::new();
    set(&mut store, "$SYS/broker/uptime", b"1", at(0));
    set(&mut store, "$SYS", b"2", at(0));
    set(&mut store, "sys/broker/uptime", b"3", at(0));
    let now = at(1);
    assert_eq!(topics(&lookup(&mut store, "#", now)), ["sys/broker/uptime"]);
    assert_eq!(
        topics(&lookup(&mut store, "+/broker/+", now)),
        ["sys/broker/uptime"]
    );
    assert_eq!(
        topics(&lookup(&mut store, "$SYS/#", now)),
        ["$SYS", "$SYS/broker/uptime"]
    );
    assert_eq!(
        topics(&lookup(&mut store, "$SYS/+/uptime", now)),
        ["$SYS/broker/uptime"]
    );
}

#[test]
fn expired_messages_are_not_returned_and_are_removed() {
    let mut store = RetainedStore::<Vec<u8>>::new();
    let none = &Properties::EMPTY;
    store
        .set(t("a/short"), b"s", QoS::AtLeastOnce, none, Some(10), at(0))
        .unwrap();
    store
        .set(t("a/long"), b"l", QoS::AtLeastOnce, none, Some(100), at(0))
        .unwrap();
    store
        .set(t("a/never"), b"n", QoS::AtLeastOnce, none, None, at(0))
        .unwrap();
    store
        .set(t("b/short"), b"b", QoS::AtLeastOnce, none, Some(10), at(0))
        .unwrap();
    // 4.5 s later: whole seconds waited are subtracted.
    assert_eq!(
        lookup(&mut store, "a/+", at(4_500)),
        [
            ("a/long".into(), b"l".to_vec(), QoS::AtLeastOnce, Some(96)),
            ("a/never".into(), b"n".to_vec(), QoS::AtLeastOnce, None),
            ("a/short".into(), b"s".to_vec(), QoS::AtLeastOnce, Some(6)),
        ]
    );
    // At 10 s "a/short" is gone, and removed by the lookup that met it.
    assert_eq!(
        topics(&lookup(&mut store, "a/+", at(10_000))),
        ["a/long", "a/never"]
    );
    assert_eq!((store.len(), store.expired_count()), (3, 1));
    // "b/short" was not looked up: still held until a lookup or a purge.
    assert!(store.get(t("b/short"), at(10_000)).is_none());
    assert_eq!((store.len(), store.expired_count()), (2, 2));
    store
        .set(t("c"), b"c", QoS::AtLeastOnce, none, Some(1), at(10_000))
        .unwrap();
    assert_eq!(store.purge_expired(at(100_000)), 2);
    assert_eq!(store.len(), 1);
    assert_eq!(store.stored_bytes(), 1);
    assert_eq!(topics(&lookup(&mut store, "#", at(100_000))), ["a/never"]);
    // A message set again gets a fresh interval.
    store
        .set(
            t("a/never"),
            b"n",
            QoS::AtLeastOnce,
            none,
            Some(5),
            at(100_000),
        )
        .unwrap();
    assert_eq!(lookup(&mut store, "a/never", at(101_000))[0].3, Some(4));
}

#[test]
fn heapless_buffer_bounds_each_message() {
    let mut store = RetainedStore::<heapless::Vec<u8, 8>>::new();
    let none = &Properties::EMPTY;
    store
        .set(t("a"), b"12345678", QoS::AtMostOnce, none, None, at(0))
        .unwrap();
    // 5 bytes of expiry slot + 4 of payload do not fit 8: the message before stays.
    assert_eq!(
        store.set(t("a"), b"1234", QoS::AtMostOnce, none, Some(9), at(0)),
        Err(PublishError::TooLarge)
    );
    assert_eq!(store.get(t("a"), at(0)).unwrap().payload, b"12345678");
    store
        .set(t("a"), b"123", QoS::AtMostOnce, none, Some(9), at(0))
        .unwrap();
    assert_eq!(store.stored_bytes(), 8);
}

#[test]
fn invalid_properties_are_refused() {
    let mut store = RetainedStore::<Vec<u8>>::new();
    let list = [Property::ReasonString("no")];
    assert_eq!(
        store.set(
            t("a"),
            b"x",
            QoS::AtMostOnce,
            &Properties::from_slice(&list),
            None,
            at(0)
        ),
        Err(PublishError::InvalidProperties)
    );
    assert!(store.is_empty());
}
