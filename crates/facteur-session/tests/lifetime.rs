//! Server side: session expiry after the connection is lost, and the will with its delay.

mod common;

use common::*;
use facteur_codec::{Properties, Property, ProtocolVersion, QoS, ReasonCode, Will};
use facteur_session::{
    AllocStore, Config, Connection, Event, HeaplessStore, PublishError, Role, Session, Store,
};

/// A server session connected at 0 in `version` with keep alive `keep_alive`.
fn server<S: Store>(version: ProtocolVersion, keep_alive: u16) -> Session<S> {
    let mut s = Session::new(Config::new(Role::Server));
    s.on_connect(at(0), Connection::new(version, keep_alive));
    s
}

/// The will "w/t" = "bye", QoS 1, retained, with a user property, a Message Expiry Interval
/// of 30 s and a Will Delay Interval of `delay` seconds.
fn will(delay: u32) -> Will<'static> {
    let props: &'static [Property<'static>] = Box::leak(Box::new([
        Property::WillDelayInterval(delay),
        Property::UserProperty("k", "v"),
        Property::MessageExpiryInterval(30),
    ]));
    Will {
        topic: "w/t",
        payload: b"bye",
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: Properties::from_slice(props),
    }
}

/// DISCONNECT (5.0) with `reason` and, if given, a Session Expiry Interval.
fn disconnect(reason: u8, session_expiry: Option<u32>) -> Vec<u8> {
    match session_expiry {
        None => vec![0xE0, 0x01, reason],
        Some(secs) => {
            let mut f = vec![0xE0, 0x07, reason, 0x05, 0x11];
            f.extend_from_slice(&secs.to_be_bytes());
            f
        }
    }
}

fn session_expires_after_the_interval<S: Store>() {
    let mut s = server::<S>(V5, 0);
    s.set_session_expiry(10);
    s.publish(&message("a", b"x", QoS::AtLeastOnce), at(0))
        .unwrap();
    assert_eq!(s.poll_timeout(), None, "no timer while connected");
    s.on_connection_lost(at(1_000));
    assert_eq!(s.poll_timeout(), Some(at(11_000)));
    s.handle_timeout(at(10_999));
    assert!(events(&mut s).is_empty());
    assert_eq!(s.queued(), 1);
    s.handle_timeout(at(11_000));
    assert_eq!(events(&mut s), [Event::SessionExpired]);
    assert_eq!((s.queued(), s.inflight(), s.received()), (0, 0, 0));
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(at(50_000));
    assert!(events(&mut s).is_empty(), "reported once");
}

fn session_expiry_zero_ends_with_the_connection<S: Store>() {
    let mut s = server::<S>(V5, 0);
    s.set_session_expiry(0);
    s.on_connection_lost(at(500));
    assert_eq!(s.poll_timeout(), Some(at(500)));
    s.handle_timeout(at(500));
    assert_eq!(events(&mut s), [Event::SessionExpired]);
}

fn session_expiry_max_or_untracked_never_expires<S: Store>() {
    let mut untracked = server::<S>(V5, 0);
    untracked.on_connection_lost(at(0));
    assert_eq!(untracked.session_expiry(), None);
    assert_eq!(untracked.poll_timeout(), None);
    let mut forever = server::<S>(V5, 0);
    forever.set_session_expiry(u32::MAX);
    forever.on_connection_lost(at(0));
    assert_eq!(forever.poll_timeout(), None);
    forever.handle_timeout(at(u64::from(u32::MAX) * 1000));
    assert!(events(&mut forever).is_empty());
}

fn reconnect_before_expiry_keeps_the_session<S: Store>() {
    let mut s = server::<S>(V5, 0);
    s.set_session_expiry(10);
    s.publish(&message("a", b"x", QoS::AtLeastOnce), at(0))
        .unwrap();
    s.on_connection_lost(at(0));
    s.on_reconnect(at(9_999));
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(at(20_000));
    assert!(events(&mut s).is_empty());
    assert_eq!(s.queued(), 1);
    // The next loss starts the interval afresh.
    s.on_connection_lost(at(30_000));
    assert_eq!(s.poll_timeout(), Some(at(40_000)));
}

fn disconnect_changes_the_session_expiry<S: Store>() {
    let mut s = server::<S>(V5, 0);
    s.set_session_expiry(10);
    feed(&mut s, &disconnect(0x00, Some(60)), V5, at(0));
    assert_eq!(s.session_expiry(), Some(60));
    assert_eq!(
        events(&mut s),
        [Event::Disconnected {
            reason: ReasonCode::Success
        }]
    );
    s.on_connection_lost(at(1_000));
    assert_eq!(s.poll_timeout(), Some(at(61_000)));
    // From 0 to anything else is a protocol error.
    let mut zero = server::<S>(V5, 0);
    zero.set_session_expiry(0);
    feed(&mut zero, &disconnect(0x00, Some(60)), V5, at(0));
    assert_eq!(zero.session_expiry(), Some(0));
    assert_eq!(
        events(&mut zero),
        [Event::ProtocolError {
            reason: ReasonCode::ProtocolError
        }]
    );
    assert_eq!(
        drain(&mut zero, at(0)),
        [disconnect_why(
            0x82,
            "Session Expiry Interval set on DISCONNECT after 0 on CONNECT"
        )]
    );
}

fn will_is_due_after_its_delay<S: Store>() {
    let mut s = server::<S>(V5, 0);
    s.set_session_expiry(100);
    s.set_will(&will(5)).unwrap();
    assert_eq!(s.will_delay(), Some(5));
    s.on_connection_lost(at(1_000));
    assert_eq!(s.poll_timeout(), Some(at(6_000)));
    s.handle_timeout(at(5_999));
    assert!(events(&mut s).is_empty());
    s.handle_timeout(at(6_000));
    assert_eq!(events(&mut s), [Event::WillDue]);
    let w = s.will().unwrap();
    assert_eq!((w.topic, w.payload), ("w/t", &b"bye"[..]));
    assert_eq!(
        (w.qos, w.retain, w.dup, w.packet_id),
        (QoS::AtLeastOnce, true, false, None)
    );
    assert_eq!(w.properties.message_expiry_interval(), Some(30));
    assert_eq!(w.properties.will_delay_interval(), None);
    assert_eq!(
        w.properties.user_properties().collect::<Vec<_>>(),
        [("k", "v")]
    );
    // Reported once; the session expiry still runs.
    assert_eq!(s.poll_timeout(), Some(at(101_000)));
    s.clear_will();
    assert!(s.will().is_none());
    s.handle_timeout(at(101_000));
    assert_eq!(events(&mut s), [Event::SessionExpired]);
}

fn session_expiry_shorter_than_the_will_delay<S: Store>() {
    let mut s = server::<S>(V5, 0);
    s.set_session_expiry(10);
    s.set_will(&will(60)).unwrap();
    s.on_connection_lost(at(0));
    assert_eq!(s.poll_timeout(), Some(at(10_000)));
    s.handle_timeout(at(10_000));
    assert_eq!(events(&mut s), [Event::WillDue, Event::SessionExpired]);
    assert_eq!(
        s.will().unwrap().topic,
        "w/t",
        "kept for the caller to publish"
    );
    assert_eq!(s.poll_timeout(), None);
}

fn normal_disconnect_deletes_the_will<S: Store>() {
    for (version, frame) in [(V5, vec![0xE0, 0x00]), (V3, vec![0xE0, 0x00])] {
        let mut s = server::<S>(version, 0);
        s.set_session_expiry(10);
        s.set_will(&will(0)).unwrap();
        feed(&mut s, &frame, version, at(0));
        assert!(s.will().is_none());
        s.on_connection_lost(at(0));
        assert_eq!(s.poll_timeout(), Some(at(10_000)));
        s.handle_timeout(at(10_000));
        assert_eq!(
            events(&mut s),
            [
                Event::Disconnected {
                    reason: ReasonCode::Success
                },
                Event::SessionExpired
            ]
        );
    }
}

fn disconnect_with_will_message_keeps_it<S: Store>() {
    let mut s = server::<S>(V5, 0);
    s.set_will(&will(0)).unwrap();
    feed(&mut s, &disconnect(0x04, None), V5, at(0));
    s.on_connection_lost(at(2_000));
    assert_eq!(s.poll_timeout(), Some(at(2_000)));
    s.handle_timeout(at(2_000));
    assert_eq!(
        events(&mut s),
        [
            Event::Disconnected {
                reason: ReasonCode::DisconnectWithWillMessage
            },
            Event::WillDue
        ]
    );
    assert!(s.will().is_some());
}

fn keep_alive_timeout_makes_the_will_due<S: Store>() {
    let mut s = server::<S>(V5, 10);
    s.set_will(&will(3)).unwrap();
    s.handle_timeout(at(15_000));
    assert_eq!(events(&mut s), [Event::KeepAliveTimeout]);
    s.on_connection_lost(at(15_000));
    assert_eq!(s.poll_timeout(), Some(at(18_000)));
    s.handle_timeout(at(18_000));
    assert_eq!(events(&mut s), [Event::WillDue]);
}

fn reconnect_before_the_delay_cancels_the_will<S: Store>() {
    let mut s = server::<S>(V5, 0);
    s.set_will(&will(30)).unwrap();
    s.on_connection_lost(at(0));
    assert_eq!(s.poll_timeout(), Some(at(30_000)));
    s.on_reconnect(at(10_000));
    assert!(s.will().is_none());
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(at(40_000));
    assert!(events(&mut s).is_empty());
    // A will set while disconnected belongs to the next connection: kept by on_connect.
    s.on_connection_lost(at(50_000));
    s.set_will(&will(1)).unwrap();
    assert_eq!(
        s.poll_timeout(),
        None,
        "not armed: its connection is not lost yet"
    );
    s.on_reconnect(at(60_000));
    assert_eq!(s.will_delay(), Some(1));
    s.on_connection_lost(at(70_000));
    assert_eq!(s.poll_timeout(), Some(at(71_000)));
}

fn will_must_fit_and_be_valid<S: Store>() {
    let mut s = server::<S>(V5, 0);
    let mut bad = will(0);
    bad.topic = "w/#";
    assert!(matches!(
        s.set_will(&bad),
        Err(PublishError::InvalidTopic(_))
    ));
    let mut bad = will(0);
    bad.properties = Properties::from_slice(&[Property::ReceiveMaximum(1)]);
    assert_eq!(s.set_will(&bad), Err(PublishError::InvalidProperties));
    assert!(s.will().is_none());
}

/// With `HeaplessStore` the will counts against `BYTES`: topic 3 + expiry slot 5 + user
/// property 7 + payload 3 = 18.
#[test]
fn heapless_will_fits_the_message_buffer() {
    let mut fits = server::<HeaplessStore<1, 1, 18>>(V5, 0);
    fits.set_will(&will(0)).unwrap();
    let mut short = server::<HeaplessStore<1, 1, 17>>(V5, 0);
    assert_eq!(short.set_will(&will(0)), Err(PublishError::TooLarge));
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
    session_expires_after_the_interval,
    session_expiry_zero_ends_with_the_connection,
    session_expiry_max_or_untracked_never_expires,
    reconnect_before_expiry_keeps_the_session,
    disconnect_changes_the_session_expiry,
    will_is_due_after_its_delay,
    session_expiry_shorter_than_the_will_delay,
    normal_disconnect_deletes_the_will,
    disconnect_with_will_message_keeps_it,
    keep_alive_timeout_makes_the_will_due,
    reconnect_before_the_delay_cancels_the_will,
    will_must_fit_and_be_valid,
);
